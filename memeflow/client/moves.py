"""Recognising moved, renamed and copied files by their content, so they are not encoded again.

A document's id comes from its file's path, and its `sha256` tag from its bytes. A file the
index does not know by path but knows by hash is a move when the stored document's file is
gone (the document is re-filed under the new path and the old one removed), or a copy when
it is still there (the new document reuses the stored vector). Either way no pixels are read.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class StoredDoc:
    """An indexed document found by its content hash."""

    id: str
    uri: str | None
    embedding: np.ndarray
    words: str | None = None  # read on it by OCR: a moved file keeps them too


@dataclass(frozen=True)
class Reuse:
    """A file to index with the vector of `source`; `moved` when the source's file is gone."""

    path: Path
    source: StoredDoc
    moved: bool


def _file_gone(uri: str | None) -> bool:
    return uri is None or not Path(uri).exists()


def plan_reuse(
    files: Sequence[Path],
    hashes: dict[Path, str],
    stored_by_hash: dict[str, list[StoredDoc]],
    file_gone: Callable[[str | None], bool] = _file_gone,
) -> tuple[list[Reuse], list[Path]]:
    """Splits files the index does not know by path into reuses and files to encode.

    Each stored document whose file is gone is moved at most once; a second file with
    the same bytes becomes a copy of it.
    """
    reuses: list[Reuse] = []
    to_encode: list[Path] = []
    moved_away: set[str] = set()
    for path in files:
        candidates = stored_by_hash.get(hashes[path], [])
        if not candidates:
            to_encode.append(path)
            continue
        gone = next((c for c in candidates if c.id not in moved_away and file_gone(c.uri)), None)
        if gone is not None:
            moved_away.add(gone.id)
            reuses.append(Reuse(path, gone, moved=True))
        else:
            reuses.append(Reuse(path, candidates[0], moved=False))
    return reuses, to_encode
