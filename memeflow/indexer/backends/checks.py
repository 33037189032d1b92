"""Input checks every backend makes before it writes or searches anything, so that a bad
document is refused with a message naming it, whichever backend holds the index."""

import json
import numbers
from collections.abc import Sequence

import numpy as np

from memeflow.indexer.backends.base import Frames, StoredDocument
from memeflow.uris import printable
from memeflow.vectors import unit_rows


def id_list(ids: Sequence[str]) -> list[str]:
    """The ids as a list. A str is a Sequence[str] too (of its letters): TypeError for it,
    or for any id that is not a str, rather than storing letters."""
    if isinstance(ids, str) or not all(isinstance(doc_id, str) for doc_id in ids):
        raise TypeError(f"ids must be a sequence of strings, got {ids!r:.80}")
    return list(ids)


def unit_vectors(array: np.ndarray, what: str) -> np.ndarray:
    """Rows scaled to unit length (`unit_rows`), (n, dim) float32. ValueError (naming
    `what`) for what has no direction: not 2-d, NaN or inf, a zero row."""
    matrix = np.asarray(array, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array (n, dim), got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{what} contain NaN or inf")
    zero = np.flatnonzero(~matrix.any(axis=1))
    if len(zero):
        raise ValueError(f"{what} row {int(zero[0])} has zero norm")
    return unit_rows(matrix)


def tag_json(documents: Sequence[StoredDocument]) -> list[str]:
    """Each document's tags as JSON; ValueError if they are not JSON-serialisable."""
    try:
        return [json.dumps(document.get("tags") or {}) for document in documents]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"tags must be JSON-serialisable: {exc}") from None


def valid_text(ids: Sequence[str], documents: Sequence[StoredDocument]) -> None:
    """ValueError for an id, uri or words that is not valid Unicode (a lone surrogate, from
    an undecodable file name that was not made a `file://` URI): no database stores it."""
    for doc_id, document in zip(ids, documents, strict=True):
        texts = (("id", doc_id), ("uri", document.get("uri")), ("words", document.get("words")))
        for what, text in texts:
            try:
                (text or "").encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"document {printable(doc_id)}: its {what} is not valid "
                                 f"Unicode: {printable(text or '')}") from None


def unit_frames(frames: Sequence[Frames | None] | None, ids: Sequence[str], dim: int
                ) -> list[Frames | None]:
    """One entry per id (all None when `frames` is None), each document's frame vectors
    scaled to unit length ((k, dim) float32) and its times as ints. ValueError naming the
    document for frames of another dimension, none at all, NaN or inf, a zero row, or
    times that are not one int per frame."""
    if frames is None:
        return [None] * len(ids)
    if isinstance(frames, Frames) or len(frames) != len(ids):
        raise ValueError(f"got {len(ids)} ids and {len(frames)} frames: give one entry "
                         "(None for a still) per id")
    checked: list[Frames | None] = []
    for doc_id, entry in zip(ids, frames, strict=True):
        if entry is None:
            checked.append(None)
            continue
        what = f"document {printable(doc_id)}: its frames"
        vectors, ms = entry
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] != dim:
            raise ValueError(f"{what} must be a (k, {dim}) array with k >= 1, got shape "
                             f"{matrix.shape}")
        if isinstance(ms, str | bytes) or len(ms) != len(matrix) or not all(
                isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in ms):
            raise ValueError(f"{what} need one time in ms (an int) per frame: got "
                             f"{len(matrix)} frames and times {ms!r:.80}")
        checked.append(Frames(unit_vectors(matrix, what), [int(t) for t in ms]))
    return checked
