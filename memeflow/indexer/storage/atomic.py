"""Replacing a workspace file whole: a reader, or a restart after a crash, finds the old
file or the new one, never half of one."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def temporary_path(path: Path) -> Path:
    """Where `atomic_write` writes before the rename: `<name>.tmp` in the same folder (a
    rename is atomic only within one file system). A crash can leave one behind."""
    return path.with_name(path.name + ".tmp")


def fsync_dir(folder: Path) -> None:
    """Makes a file's creation or rename in `folder` durable, not just its contents."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write `path`'s new contents to. On a clean exit it is fsynced and
    renamed over `path`, then the folder is fsynced: the new file survives a power cut. On
    an exception the temporary file is removed, `path` is left as it was, and the
    exception propagates (OSError for a full disk)."""
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_bytes(path: Path, data: bytes) -> None:
    """`path` replaced by `data`, atomically and durably (see `atomic_write`)."""
    with atomic_write(path) as fh:
        fh.write(data)
