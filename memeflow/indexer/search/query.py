"""The first stage: each query as the later stages take it, a unit vector and, when the
words on memes can take part, the text to match against them."""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from memeflow.indexer.backends.base import Collection
from memeflow.indexer.backends.checks import unit_vectors


class Query(NamedTuple):
    """vector: (dim,) float32, unit length; text: None when the words have no say."""

    vector: np.ndarray
    text: str | None


def resolve(collection: Collection, queries: np.ndarray, texts: Sequence[str | None] | None,
            ocr_weight: float) -> list[Query]:
    """One Query per row of `queries` ((q, dim) float32) and its text (`texts[i]`, None or
    blank for none). A text takes part when `ocr_weight` > 0 and some meme has words.
    ValueError for NaN, inf, a zero row, or another dimension than the collection's."""
    unit = unit_vectors(queries, "queries")
    if collection.dim is not None and unit.shape[1] != collection.dim:
        raise ValueError(f"expected queries of dimension {collection.dim}, got {unit.shape[1]}")
    given = list(texts) if texts is not None else [None] * len(unit)
    if len(given) != len(unit):
        raise ValueError(f"got {len(unit)} query vectors but {len(given)} texts")
    worded = ocr_weight > 0 and any(t and t.strip() for t in given) and collection.has_lexical()
    return [Query(vector, text if worded and text and text.strip() else None)
            for vector, text in zip(unit, given, strict=True)]
