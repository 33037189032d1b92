"""What `memeflow watch` has seen change and not yet sent: files waiting to stop growing,
folders that arrived whole, and paths that went away.

Watchdog's events only say where to look. A file is sent once its size and modification
time have stayed the same for `settle` seconds (a file still being copied or downloaded
waits); a file renamed or moved into place is complete and waits for nothing. A folder
created or moved in is walked by the same rules as `memeflow index` (`scan_paths`, then
`selected` for the rules above it). A path that went away is kept until the files that
arrived with it are sent, so a move is re-filed by its content hash, not encoded again.
"""

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from memeflow.client.files import scan_paths, selected

# Events that may change a file's bytes; reading one (ours too, when hashing) is no change.
WRITES = frozenset({"created", "modified", "closed"})
Signature = tuple[int, int] | None  # (size in bytes, mtime in ns); None: not yet read


@dataclass
class Waiting:
    """A file to send once it is settled: since when (monotonic s) its signature holds."""

    root: str
    signature: Signature
    since: float


@dataclass
class Pending:
    """Changes under the watched folders, gathered from events until sent."""

    settle: float = 1.0  # seconds a file's size and mtime must hold before it is sent
    include_hidden: bool = False
    files: dict[str, Waiting] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)  # folder -> its watched root
    gone: dict[str, str] = field(default_factory=dict)  # path -> its watched root
    last_event: float = 0.0  # monotonic s of the latest event
    first: float | None = None  # monotonic s of the oldest change not yet sent

    def __bool__(self) -> bool:
        return bool(self.files or self.folders or self.gone)

    def add(self, root: str, event: FileSystemEvent) -> None:
        """One event of the observer of `root`."""
        now = time.monotonic()
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else ""
        if isinstance(event, DirMovedEvent | FileMovedEvent | DirDeletedEvent | FileDeletedEvent):
            self.files.pop(src, None)
            self.folders.pop(src, None)
            self.gone[src] = root
        elif isinstance(event, DirCreatedEvent):
            self.folders[src] = root
        elif not event.is_directory and event.event_type in WRITES:
            if src not in self.files:  # settled() follows it from here
                self._file(root, src, None, now)
        else:  # opened, read, attributes: the bytes are the same
            return
        if isinstance(event, DirMovedEvent) and _under(dest, root):
            self.folders[dest] = root
        elif isinstance(event, FileMovedEvent) and _under(dest, root):
            self._file(root, dest, _signature(dest), now - self.settle)  # complete
        if self:
            self.last_event = now
            self.first = self.first if self.first is not None else now

    def _file(self, root: str, path: str, signature: Signature, since: float) -> None:
        if selected(path, root, self.include_hidden):
            self.files[path] = Waiting(root, signature, since)
            self.gone.pop(path, None)

    def expand(self) -> None:
        """Folders that arrived become their files (as `memeflow index` collects them)."""
        folders, self.folders = self.folders, {}
        now = time.monotonic()
        for folder, root in folders.items():
            for path in scan_paths([folder], self.include_hidden).files:
                self._file(root, str(path), None, now)

    def settled(self) -> tuple[list[str], int]:
        """The files settled now, and the number still changing. A file that vanished is
        dropped (its deletion is an event of its own)."""
        now = time.monotonic()
        ready, changing = [], 0
        for path, waiting in list(self.files.items()):
            signature = _signature(path)
            if signature is None:
                del self.files[path]
            elif signature != waiting.signature:
                waiting.signature, waiting.since = signature, now
                changing += 1
            elif now - waiting.since >= self.settle:
                ready.append(path)
            else:
                changing += 1
        return ready, changing

    def take(self, files: list[str], with_gone: bool) -> tuple[list[str], list[str]]:
        """Removes `files` (and, `with_gone`, the paths gone) from what is pending; returns
        them and the folders to prune for the paths gone (the deepest that still exist)."""
        for path in files:
            self.files.pop(path, None)
        prune: list[str] = []
        if with_gone:
            prune = prune_folders(self.gone.items())
            self.gone = {}
        if not self:
            self.first = None
        return files, prune


def prune_folders(gone: Iterable[tuple[str, str]]) -> list[str]:
    """For (path, root) pairs of paths gone: the deepest folders that still exist above
    them (no lower than their root), none inside another; where a path exists again it
    is a new file, sent as one, and needs no pruning."""
    folders = set()
    for path, root in gone:
        if os.path.lexists(path):
            continue
        folder = os.path.dirname(path)
        while folder != root and _under(folder, root) and not os.path.isdir(folder):
            folder = os.path.dirname(folder)
        folders.add(folder if _under(folder, root) else root)
    return sorted(f for f in folders
                  if not any(f != other and _under(f, other) for other in folders))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _signature(path: str) -> Signature:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns
