"""/rank: candidate texts ordered by how well they describe an image, with probabilities.

CLIP's zero-shot recipe: cosines between the image and each text, times 100 (CLIP's
trained logit scale), through a softmax. The image is a document's `blob` or `uri`, or
the `id` of an indexed meme (its stored vector: the indexer fills it in); the candidates
are the document's `matches`, each with a `text`. The reply has the matches best first,
`score` the probability and `tags["cosine"]` the cosine.
"""

from collections.abc import Callable

import numpy as np

from memeflow.documents import MemeDoc, is_id_only

LOGIT_SCALE = 100.0
def zero_shot(image: np.ndarray, texts: np.ndarray, scale: float = LOGIT_SCALE
              ) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, cosines) of unit text rows (n, d) against a unit image vector (d,)."""
    cosines = np.asarray(texts, np.float64) @ np.asarray(image, np.float64)
    logits = scale * cosines
    weights = np.exp(logits - logits.max())
    return weights / weights.sum(), cosines


def rank_candidates(doc: MemeDoc, stored_vector: Callable[[str], np.ndarray | None]) -> None:
    """Order the document's candidates by probability; no vectors go back to the client."""
    if not doc.error and doc.embedding is None and is_id_only(doc):
        assert doc.id is not None  # is_id_only: it has one
        doc.embedding = stored_vector(doc.id)  # type: ignore[assignment]  # pydantic: an NdArray
        if doc.embedding is None:
            doc.error = f"id {doc.id}: no meme with this id is indexed; send the image instead"
    if not doc.error and doc.embedding is not None:
        texts = np.stack([np.asarray(m.embedding) for m in doc.matches])
        probabilities, cosines = zero_shot(np.asarray(doc.embedding), texts)
        for match, probability, cosine in zip(doc.matches, probabilities, cosines, strict=True):
            match.score, match.tags = float(probability), {"cosine": float(cosine)}
        order = np.lexsort((np.arange(len(cosines)), -cosines))
        doc.matches = type(doc.matches)([doc.matches[int(i)] for i in order])
    doc.embedding = None
    for match in doc.matches:
        match.embedding = None
