"""Input checks every backend makes before it writes or searches anything, so that a bad
document is refused with a message naming it, whichever backend holds the index."""

import json
from collections.abc import Sequence

import numpy as np

from memeflow.indexer.backends.base import StoredDocument
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
