"""Vector helpers shared by the encoder and the indexer: unit-length rows, and checks for
embeddings that clients bring themselves."""

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from memeflow.fields import content_id

if TYPE_CHECKING:  # only the Flow passes documents; the client imports no DocArray
    from memeflow.documents import MemeDoc


def unit_rows(rows: npt.ArrayLike, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """`rows` ((n, d), any real dtype) scaled to unit length, so a dot product is the cosine.

    The norms are taken in float64 and the result has `dtype` (float32 by default), shape
    (n, d). A zero row stays zero (it has no direction; callers that must refuse one check
    first); NaN and inf pass through as they are.
    """
    matrix = np.asarray(rows, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(dtype)


def check_own_vector(doc: "MemeDoc", dim: int | None, holder: str = "the index holds") -> None:
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
