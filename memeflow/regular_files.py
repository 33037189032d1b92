"""Reading a local file that must be a regular file, without ever blocking on one that is not.

A FIFO named like an image (`pipe.jpg`) blocks `open()` until some other process writes to
it, which may be never; a character device (`/dev/zero`) never ends; a socket cannot be
opened at all. Checking with `stat()` first is not enough: the name can be swapped for a
FIFO between the check and the `open()`. So every read of a user's file (an image named on
the command line or found in a folder, a sidecar, a `.memeflowignore`, the encoder's files
under MEMEFLOW_ROOTS) goes through `open_regular`: `open()` with O_NONBLOCK, which returns
at once for a FIFO, then `fstat()` of what was opened, refusing anything but a regular
file; for a regular file O_NONBLOCK changes nothing and is cleared.
"""

import os
import stat
from typing import BinaryIO

KINDS = (
    (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
# O_NOCTTY: opening a terminal device must not make it this process's terminal.
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


class NotRegularFile(OSError):
    """The path names a folder, a FIFO, a socket or a device (or a link to one).
    `strerror` is "not a regular file: <what it is>"."""

    def __init__(self, path: str | os.PathLike[str], mode: int) -> None:
        super().__init__(f"not a regular file: {file_kind(mode)}")
        self.strerror = f"not a regular file: {file_kind(mode)}"
        self.filename = os.fspath(path)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def file_kind(mode: int) -> str:
    """What a `st_mode` that is not a regular file's is, in words."""
    return next((name for test, name in KINDS if test(mode)), "not a plain file")


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """`path` opened for binary reading; NotRegularFile (an OSError) when it is not a
    regular file, other OSErrors as `open()` raises them. Never blocks on a FIFO."""
    info = os.stat(path)  # most refusals without opening anything (a tape may rewind)
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFile(path, info.st_mode)
    fd = os.open(path, _FLAGS)
    try:
        info = os.fstat(fd)  # what was opened: the name may have changed since the stat
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(path, info.st_mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file (at most `max_bytes` + 1 when a limit is given, so the
    caller can tell the file is over it); errors as `open_regular`."""
    with open_regular(path) as fh:
        return fh.read() if max_bytes is None else fh.read(max_bytes + 1)


def read_regular_text(path: str | os.PathLike[str], errors: str = "strict") -> str:
    """A regular file's text as UTF-8; errors as `open_regular`, UnicodeDecodeError."""
    return read_regular(path).decode("utf-8", errors)
