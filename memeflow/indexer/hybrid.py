"""Text queries answered by the picture and by the words on it, fused into one ranking.

CLIP ranks memes by what they show; the text index (`memeflow.textindex`) by the words
read on them. Each proposes its best candidates and reciprocal rank fusion
(`memeflow.fusion`) orders the union. `ocr_weight` scales the words' votes against
CLIP's (1: equal say; 0: the pure CLIP ranking, words ignored). Every hit keeps its
cosine similarity as `score`, reports its rank in each signal that found it (`signals`)
and, when its words matched, how well (`words_score`): what a shard merger needs to
fuse the union of several shards' answers again.
"""

from collections.abc import Callable, Sequence
from typing import Any

from memeflow import config
from memeflow.documents import Hit
from memeflow.indexer.bm25 import TextIndex
from memeflow.indexer.fusion import reciprocal_rank_fusion

PHRASE_BONUS = 1000.0  # a quoted caption outranks any partial match (as in TextIndex.search)


def ocr_weight(parameters: dict[str, Any]) -> float:
    """The `ocr_weight` request parameter, else MEMEFLOW_OCR_WEIGHT, else 1; >= 0."""
    raw = parameters.get("ocr_weight")
    if raw is None:
        raw = config.ocr_weight()
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"ocr_weight must be a number >= 0 (0 turns the words off), got {raw!r}")
    return value


def words_ranking(
    words: TextIndex, text: str, pool: int, keep: Callable[[str], bool] | None = None
) -> tuple[list[tuple[str, float]], bool]:
    """(id, words_score) of the best `pool` memes by their words that `keep` accepts, and
    whether the text index has no more matches beyond them."""
    found = words.search(text, pool)
    ranked = [(hit.id, hit.score + (PHRASE_BONUS if hit.phrase else 0.0)) for hit in found
              if keep is None or keep(hit.id)]
    return ranked, len(found) < pool


def with_clip_signals(hits: Sequence[Hit], first_rank: int = 1) -> list[Hit]:
    """Hits of a picture-only ranking, each saying it was found by the picture at its rank."""
    return [{**hit, "signals": {"clip": rank}} for rank, hit in enumerate(hits, start=first_rank)]


def fuse(
    picture: Sequence[Hit],
    worded: Sequence[tuple[str, float]],
    weight: float,
    hits_for: Callable[[list[str]], list[Hit]],
) -> list[Hit]:
    """One ranking of the picture's hits (best first) and the memes found by their words
    ((id, words_score), best first). `hits_for(ids)` gives the hits of memes that only
    their words found (scored against the query all the same)."""
    fused = reciprocal_rank_fusion(
        {"words": [doc_id for doc_id, _ in worded], "clip": [hit["id"] for hit in picture]},
        {"words": weight, "clip": 1.0},
    )
    known = {hit["id"]: hit for hit in picture}
    missing = [doc_id for doc_id, _, _ in fused if doc_id not in known]
    if missing:
        known.update({hit["id"]: hit for hit in hits_for(missing)})
    scores = dict(worded)
    return [
        {**known[doc_id], "signals": signals, "words_score": scores.get(doc_id)}
        for doc_id, _, signals in fused
    ]
