"""Hybrid search: text queries answered by the dense ranking (CLIP: what a meme shows) and
the lexical one (BM25 in SQLite FTS5, `memeflow.indexer.indexes.words`: the words read on it),
fused into one.

Each proposes its best candidates and reciprocal rank fusion
(`memeflow.indexer.search.fusion`) orders the union. `ocr_weight` scales the words'
votes against CLIP's (1: equal say; 0: the pure CLIP ranking, words ignored). Every hit keeps its
cosine similarity as `score`, reports its rank in each signal that found it (`signals`)
and, when its words matched, how well (`words_score`): what a shard merger needs to
fuse the union of several shards' answers again.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from memeflow import config
from memeflow.documents import Hit
from memeflow.indexer.search.fusion import reciprocal_rank_fusion
from memeflow.params import RequestError

PHRASE_BONUS = 1000.0  # a quoted caption outranks any partial match
# The signals' names in a match's `signals` (the API's): dense (CLIP) and lexical (BM25).
DENSE, LEXICAL = "clip", "words"


def ocr_weight(parameters: dict[str, Any]) -> float:
    """The `ocr_weight` request parameter, else MEMEFLOW_OCR_WEIGHT, else 1; >= 0. A bad
    parameter is the caller's RequestError; a bad variable, the service's ValueError."""
    raw = parameters.get("ocr_weight")
    error: type[ValueError] = RequestError
    if raw is None:
        raw, error = config.ocr_weight(), ValueError
    try:
        value = math.nan if isinstance(raw, bool) else float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not value >= 0 or value == math.inf:
        name = "ocr_weight" if error is RequestError else "MEMEFLOW_OCR_WEIGHT"
        raise error(f"{name} must be a number >= 0 (0 turns the words off), got {raw!r}")
    return value


def lexical_ranking(found: Sequence[tuple[str, float, bool]]) -> list[tuple[str, float]]:
    """(id, words_score) of the memes the words found ((id, BM25 score, whole phrase), as
    `EmbeddedCollection.search_words` gives them, best first): a whole phrase gets PHRASE_BONUS."""
    return [(doc_id, score + (PHRASE_BONUS if phrase else 0.0)) for doc_id, score, phrase in found]


def with_dense_signals(hits: Sequence[Mapping[str, Any]], first_rank: int = 1) -> list[Hit]:
    """Hits of a dense-only ranking, each saying it was found by the dense signal at its rank."""
    return [cast(Hit, {**hit, "signals": {DENSE: rank}})
            for rank, hit in enumerate(hits, start=first_rank)]


def fuse(
    dense: Sequence[Mapping[str, Any]],
    lexical: Sequence[tuple[str, float]],
    weight: float,
    hits_for: Callable[[list[str]], Sequence[Mapping[str, Any]]],
) -> list[Hit]:
    """One ranking of the dense hits (best first) and the memes found by their words
    ((id, words_score), best first). `hits_for(ids)` gives the hits of memes that only
    their words found (scored against the query all the same)."""
    fused = reciprocal_rank_fusion(
        {LEXICAL: [doc_id for doc_id, _ in lexical], DENSE: [hit["id"] for hit in dense]},
        {LEXICAL: weight, DENSE: 1.0},
    )
    known = {hit["id"]: hit for hit in dense}
    missing = [doc_id for doc_id, _, _ in fused if doc_id not in known]
    if missing:
        known.update({hit["id"]: hit for hit in hits_for(missing)})
    scores = dict(lexical)
    return [
        cast(Hit, {**known[doc_id], "signals": signals, "words_score": scores.get(doc_id)})
        for doc_id, _, signals in fused
    ]
