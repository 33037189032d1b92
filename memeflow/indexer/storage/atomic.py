"""Replacing a workspace file whole: a reader, or a restart after a crash, finds the old
file or the new one, never half of one."""

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO


def temporary_path(path: Path) -> Path:
    """Where `atomic_write` writes before the rename: `<name>.tmp` in the same folder (a
    rename is atomic only within one file system). A crash can leave one behind."""
    return path.with_name(path.name + ".tmp")


def fsync_path(path: Path) -> None:
    """Flushes `path` to disk. For a folder this makes the creation or rename of a file in
    it durable, not just the file's contents."""
    fd = os.open(path, os.O_RDONLY)
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
    fsync_path(path.parent)


def write_bytes(path: Path, data: bytes) -> None:
    """`path` replaced by `data`, atomically and durably (see `atomic_write`)."""
    with atomic_write(path) as fh:
        fh.write(data)


def write_many(files: Mapping[Path, bytes]) -> None:
    """Each path replaced by its bytes, atomically and durably as `write_bytes` does, with
    one fsync of each folder for all of them instead of one per file. Every temporary file
    is written before the first fsync, so the file system can flush them in one journal
    commit (ext4, XFS). On an error (OSError for a full disk) the temporary files left are
    removed and the error propagates; files already renamed keep their new contents, their
    folder synced."""
    pending = [(temporary_path(path), path) for path in files]
    renamed = False
    try:
        for tmp, path in pending:
            tmp.write_bytes(files[path])
        for tmp, _ in pending:
            fsync_path(tmp)
        while pending:
            tmp, path = pending[0]
            os.replace(tmp, path)
            renamed = True
            pending.pop(0)
    except BaseException:
        for tmp, _ in pending:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    finally:
        if renamed:  # the renames done, durable even when a later one failed
            for folder in {path.parent for path in files}:
                fsync_path(folder)
