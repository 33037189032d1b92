"""Text queries answered by the picture and by the words on it, fused into one ranking.

CLIP ranks memes by what they show; the text index (`memeflow.textindex`) by the words
read on them. Each proposes its best `top_k + POOL` candidates and reciprocal rank fusion
(`memeflow.fusion`) orders the union. `ocr_weight` scales the words' votes against
CLIP's (1: equal say; 0: the pure CLIP ranking, words ignored). Every hit keeps its
cosine similarity as `score` and reports its rank in each signal that found it.
"""

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from memeflow.fusion import reciprocal_rank_fusion
from memeflow.store import VectorStore
from memeflow.textindex import TextIndex

POOL = 100  # candidates beyond top_k from each signal: fusion can lift one from below the cut
DEFAULT_OCR_WEIGHT = 1.0


def ocr_weight(parameters: dict[str, Any]) -> float:
    """The `ocr_weight` request parameter, else MEMEFLOW_OCR_WEIGHT, else 1; >= 0."""
    raw = parameters.get("ocr_weight")
    if raw is None:
        raw = os.environ.get("MEMEFLOW_OCR_WEIGHT") or DEFAULT_OCR_WEIGHT
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"ocr_weight must be a number >= 0 (0 turns the words off), got {raw!r}")
    return value


def clip_only(hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CLIP's hits, each saying it was found by the picture at its rank."""
    return [{**hit, "signals": {"clip": rank}} for rank, hit in enumerate(hits, start=1)]


def fused_search(
    store: VectorStore,
    words: TextIndex,
    query: np.ndarray,
    text: str,
    top_k: int,
    weight: float,
) -> list[dict[str, Any]]:
    """The top_k memes for a text query (`query` is its CLIP vector), by picture and words."""
    if weight == 0 or not len(words):
        return clip_only(store.search(query[None, :], top_k)[0])
    pool = top_k + POOL
    by_picture = store.search(query[None, :], pool)[0]
    by_words = [hit.id for hit in words.search(text, pool)]
    fused = reciprocal_rank_fusion(
        {"words": by_words, "clip": [hit["id"] for hit in by_picture]},
        {"words": weight, "clip": 1.0},
    )[:top_k]
    known = {hit["id"]: hit for hit in by_picture}
    missing = [doc_id for doc_id, _, _ in fused if doc_id not in known]
    if missing:  # found by their words only: score them against the query all the same
        unit = query / np.linalg.norm(query)
        scores = store.vectors(missing) @ unit.astype(np.float32)
        for doc_id, record, score in zip(missing, store.get(missing), scores, strict=True):
            assert record is not None  # the text index holds only stored ids
            known[doc_id] = {"id": doc_id, "score": min(float(score), 1.0), **record}
    return [{**known[doc_id], "signals": signals} for doc_id, _, signals in fused]


def search(
    store: VectorStore,
    words: TextIndex,
    queries: np.ndarray,
    texts: Sequence[str | None],
    top_k: int,
    weight: float,
) -> list[list[dict[str, Any]]]:
    """Hits per query: fused for the text queries (`texts[i]` set), by picture for the rest."""
    fuse = weight > 0 and len(words) > 0
    results: list[list[dict[str, Any]]] = [[] for _ in texts]
    by_picture = [i for i, text in enumerate(texts) if not (fuse and text)]
    if by_picture:
        for i, hits in zip(by_picture, store.search(queries[by_picture], top_k), strict=True):
            results[i] = clip_only(hits)
    for i, text in enumerate(texts):
        if fuse and text:
            results[i] = fused_search(store, words, queries[i], text, top_k, weight)
    return results
