"""Splitting the index over shards and merging their answers into one.

Every shard sees every request (polling ALL). A document belongs to the shard its id
hashes to, so re-indexing an id always lands on the same shard and never duplicates it.
Each shard answers a search with its own exact top-k; the best k of their union, in the
store's order (score descending, then id), is exactly what one shard holding
everything would return.
"""

import hashlib
from collections.abc import Sequence

from docarray import DocList

from memeflow.docs import MatchDoc
from memeflow.search import SearchOptions


def shard_of(doc_id: str, shards: int) -> int:
    """Stable across processes and Python versions (unlike the built-in hash)."""
    digest = hashlib.blake2b(doc_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def merge_matches(
    per_shard: Sequence[DocList[MatchDoc]], options: SearchOptions
) -> DocList[MatchDoc]:
    """The page of the union. Each shard has already filtered, re-scored and collapsed its
    own hits; collapsing again folds duplicates that live on different shards."""
    merged = [match for matches in per_shard for match in matches]
    merged.sort(key=lambda match: (-match.score, match.id or ""))
    return DocList[MatchDoc](options.page(options.collapse(merged, lambda m: m.tags)))
