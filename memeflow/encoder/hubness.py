"""Each indexed image's *hubness*: its mean cosine to its nearest prompts in a bank of
generic ones (the neighbourhood a typical query lives in). The bank is embedded once when
the encoder starts; the value goes into the image's `hubness` tag, and a search with
`hub_correction` ranks by `cosine - hubness` (`memeflow.indexer.search.hub_correction`).
"""

from collections.abc import Sequence

import numpy as np

from memeflow.documents import HUB_TAG, MemeDoc
from memeflow.vectors import unit_rows

DEFAULT_NEIGHBOURS = 10
GENERIC_PROMPTS = (
    "a photo", "a picture", "an image", "a meme", "a funny meme", "a photo of a person",
    "a photo of a man", "a photo of a woman", "a photo of a face", "a photo of an animal",
    "a photo of a dog", "a photo of a cat", "a cartoon", "a drawing", "a screenshot",
    "text", "a caption", "words on a picture", "a reaction image", "a photo of people",
    "a photo of a child", "a photo of food", "a photo of a car", "a photo of a building",
    "a photo of nature", "a photo of the sky", "a photo of a room", "a close-up photo",
    "a blurry photo", "a black and white photo", "a bright photo", "a dark photo",
    "something", "a thing", "a scene", "an object", "a happy person", "a sad person",
    "an angry person", "a surprised person", "a celebrity", "a politician",
    "a movie still", "a tv show", "a video game", "a logo", "a sign", "a poster",
)


def hubness(vectors: np.ndarray, bank: np.ndarray, neighbours: int = DEFAULT_NEIGHBOURS
            ) -> np.ndarray:
    """Per row of `vectors` (unit rows, (n, d)): the mean of its `neighbours` highest
    cosines to the unit rows of `bank` ((m, d))."""
    if len(vectors) == 0:
        return np.empty(0, np.float32)
    bank_scores = np.asarray(bank, np.float32) @ np.asarray(vectors, np.float32).T
    return bank_closeness(bank_scores, neighbours)


def tag_hubness(docs: Sequence[MemeDoc], bank: np.ndarray) -> None:
    """Store each embedded document's hubness in its tags, for `hub_correction`."""
    embedded = [doc for doc in docs if not doc.error and doc.embedding is not None]
    if embedded:
        vectors = unit_rows(np.stack([np.asarray(doc.embedding) for doc in embedded]))
        for doc, value in zip(embedded, hubness(vectors, bank), strict=True):
            doc.tags = {**doc.tags, HUB_TAG: round(float(value), 6)}




def bank_closeness(bank_scores: np.ndarray, k: int = 10) -> np.ndarray:
    """Each gallery item's mean similarity to its k closest bank queries: its hubness."""
    k = max(1, min(k, bank_scores.shape[0]))
    return -np.partition(-bank_scores, k - 1, axis=0)[:k].mean(axis=0)
