"""Splitting the index over shards and merging their answers into one.

Every shard sees every request (polling ALL). A document belongs to the shard its id
hashes to, so re-indexing an id always lands on the same shard and never duplicates it.
Each shard answers a search with its own exact top-k; the best k of their union, in the
store's order (score descending, then id), is exactly what one shard holding
everything would return.
"""

import hashlib
from collections.abc import Sequence
from typing import cast

from docarray import DocList

from memeflow.documents import Hit, MatchDoc
from memeflow.indexer.search import collapse, fusion, page
from memeflow.indexer.search.options import SearchOptions


def shard_of(doc_id: str, shards: int) -> int:
    """Stable across processes and Python versions (unlike the built-in hash)."""
    digest = hashlib.blake2b(doc_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def merge_matches(
    per_shard: Sequence[DocList[MatchDoc]], options: SearchOptions
) -> DocList[MatchDoc]:
    """The page of the union, through the last stages of a search (`memeflow.indexer.search`):
    fusion, collapse, page. Each shard has already filtered, re-scored and collapsed its
    own hits; collapsing again folds duplicates that live on different shards. When the
    words on memes took part, the union is fused again from each signal's global order
    (the words' scores come from each shard's own statistics: close to, not exactly, what
    one shard would rank)."""
    merged = [match for matches in per_shard for match in matches]
    merged.sort(key=lambda match: (-match.score, match.id or ""))
    hits = [_as_hit(match) for match in merged]
    lexical = None
    if any(fusion.LEXICAL in match.signals for match in merged):
        lexical = sorted(((m.id or "", m.words_score or 0.0) for m in merged
                          if fusion.LEXICAL in m.signals), key=lambda pair: (-pair[1], pair[0]))
    dense = [hit for hit, m in zip(hits, merged, strict=True)
             if lexical is None or fusion.DENSE in m.signals]
    fused = fusion.fuse(dense, lexical, hits, options.ocr_weight)
    collapsed = collapse.fold(fused, options.dedup_distance, options.group_by)
    return DocList[MatchDoc]([MatchDoc(**hit) for hit in page.cut(
        collapsed, options.offset, options.top_k)])


def _as_hit(match: MatchDoc) -> Hit:
    """Every field of the match, its embedding included, so that a page rebuilt from hits
    loses nothing."""
    return cast(Hit, {name: getattr(match, name) for name in type(match).model_fields})
