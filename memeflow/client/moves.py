"""Recognising moved, renamed and copied files by their content, so they are not encoded again.

A document's id comes from its file's path, and its `sha256` tag from its bytes. A file the
index does not know by path but knows by hash is a move when the stored document's file is
gone (the document is re-filed under the new path and the old one removed), or a copy when
it is still there (the new document reuses the stored vector). Either way no pixels are read.
A stored document whose uri reaches this very file by another path (through a link, or
as a resolved path from before links were kept) is a move too: one file, one document.
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from memeflow.uris import ImageLoadError, local_path


@dataclass(frozen=True)
class StoredDoc:
    """An indexed document found by its content hash."""

    id: str
    uri: str | None
    embedding: np.ndarray
    words: str | None = None  # read on it by OCR: a moved file keeps them too
    tags: dict[str, Any] = field(default_factory=dict)  # with what the encoder derived
    # An animated image or a video: its frames' (k, dim) vectors and times in ms, so that a
    # moved or copied one keeps every frame without being encoded again.
    frames: np.ndarray | None = None
    frame_ms: list[int] | None = None


@dataclass(frozen=True)
class Reuse:
    """A file to index with the vector of `source`; `moved` when the source's file is gone."""

    path: Path
    source: StoredDoc
    moved: bool


def stored_path(uri: str | None) -> str | None:
    """The local path a stored uri names, or None (a URL, another host's file URL)."""
    try:
        return local_path(uri) if uri else None
    except ImageLoadError:  # a file URL of another host: not a file here
        return None


def uri_prefixes(root: str) -> list[str]:
    """The uri prefixes of files under the folder `root`: its path when that is UTF-8, and
    its `file://` form, which names the files below it that are not."""
    encoded = "file://" + quote(os.fsencode(root), safe="/")
    try:
        root.encode("utf-8")
    except UnicodeEncodeError:
        return [encoded]
    return [root, encoded]


def _file_gone(uri: str | None) -> bool:
    """Whether a stored uri no longer leads to a file here (a URL counts as gone)."""
    path = stored_path(uri)
    return path is None or not os.path.exists(path)


def _same_file(uri: str | None, path: Path) -> bool:
    """Whether a stored uri reaches `path`'s file by another way."""
    stored = stored_path(uri)
    try:
        return stored is not None and os.path.samefile(stored, path)
    except OSError:
        return False


def plan_reuse(
    files: Sequence[Path],
    hashes: dict[Path, str],
    stored_by_hash: dict[str, list[StoredDoc]],
    file_gone: Callable[[str | None], bool] = _file_gone,
    same_file: Callable[[str | None, Path], bool] = _same_file,
) -> tuple[list[Reuse], list[Path]]:
    """Splits files the index does not know by path into reuses and files to encode.

    Each stored document whose file is gone, or is this same file, is moved at most
    once; a second file with the same bytes becomes a copy of it.
    """
    reuses: list[Reuse] = []
    to_encode: list[Path] = []
    moved_away: set[str] = set()
    for path in files:
        candidates = stored_by_hash.get(hashes[path], [])
        if not candidates:
            to_encode.append(path)
            continue
        gone = next((c for c in candidates if c.id not in moved_away
                     and (file_gone(c.uri) or same_file(c.uri, path))), None)
        if gone is not None:
            moved_away.add(gone.id)
            reuses.append(Reuse(path, gone, moved=True))
        else:
            reuses.append(Reuse(path, candidates[0], moved=False))
    return reuses, to_encode
