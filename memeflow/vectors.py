"""Checks for embeddings that clients bring themselves, shared by the encoder and the indexer."""

import numpy as np

from memeflow.documents import MemeDoc, content_id


def check_own_vector(doc: MemeDoc, dim: int | None, holder: str = "the index holds") -> None:
    """Set `doc.error` when its embedding cannot be stored; give it an id when it has none.

    `holder` says whose dimension counts, for the message: "the model makes" in the encoder.
    dim=None (an empty index) accepts any 1-d vector.
    """
    vector = np.asarray(doc.embedding, dtype=np.float32)
    if vector.ndim != 1 and dim is None:
        doc.error = f"embedding has shape {tuple(vector.shape)}: send a 1-d vector"
    elif vector.ndim != 1 or (dim is not None and vector.shape[0] != dim):
        doc.error = (
            f"embedding has shape {tuple(vector.shape)} but {holder} {dim}-d vectors: "
            f"send a {dim}-d vector, or leave `embedding` empty to have one made"
        )
    elif not np.isfinite(vector).all() or not np.any(vector):
        doc.error = "embedding is zero or holds NaN/inf: send a finite, non-zero vector"
    elif doc.id is None:
        doc.id = content_id(data=vector.tobytes())  # type: ignore[assignment]  # pydantic: an ID
