"""How `memeflow watch` learns of changes in a folder: the kernel's events, or polling.

Events (watchdog's native observer: inotify on Linux) cost nothing while nothing changes
and arrive within milliseconds, but need one inotify watch per folder, and never arrive
for changes made by another machine on a network mount. So a folder is polled (a stat of
every file every `interval` seconds, watchdog's `PollingObserver`) when asked (`--poll`),
when it lies on a network file system (read from /proc/self/mountinfo), and when the
kernel refuses more watches or instances (ENOSPC, EMFILE): at start, or later for a new
subfolder, which watchdog then only logs; both are caught and said in one line.
"""

import errno
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEventHandler
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from memeflow import config

# File systems whose changes made elsewhere raise no local event.
NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "afs", "ceph", "9p", "virtiofs", "glusterfs",
    "lustre", "gpfs", "ncpfs", "coda", "davfs", "fuse.sshfs", "fuse.glusterfs", "fuse.rclone",
    "fuse.davfs2", "fuse.s3fs", "fuse.gcsfuse", "fuse.cephfs", "fuse.smbnetfs"})
LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE})  # out of inotify watches / instances
WATCHES_SETTING = Path("/proc/sys/fs/inotify/max_user_watches")
DEFAULT_INTERVAL = config.DEFAULT_POLL_INTERVAL


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounts(mountinfo: str) -> list[tuple[str, str]]:
    """(mount point, file system type) of each line of /proc/self/mountinfo's text."""
    found = []
    for line in mountinfo.splitlines():
        before, sep, after = line.partition(" - ")
        fields = before.split()
        if sep and len(fields) >= 5 and after.split():
            found.append((_unescape(fields[4]), after.split()[0]))
    return found


def fs_type(folder: str | Path, mountinfo: str | None = None) -> str | None:
    """The type of the file system `folder` lies on (the deepest mount holding it), or None
    where /proc/self/mountinfo cannot be read (not Linux)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text(errors="surrogateescape")
        except OSError:
            return None
    path = os.path.realpath(folder)
    best: tuple[int, str] | None = None
    for point, kind in mounts(mountinfo):  # later lines mount over earlier ones
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), kind)
    return best[1] if best else None


def is_network(kind: str | None) -> bool:
    return kind is not None and (kind in NETWORK_FS or kind.startswith(("nfs", "smb")))


def watch_limit() -> str:
    """The kernel's setting to raise, with its value, for the fallback's line."""
    try:
        return f"fs.inotify.max_user_watches={WATCHES_SETTING.read_text().strip()}"
    except OSError:
        return "fs.inotify.max_user_watches"


def is_limit(error: BaseException) -> bool:
    """Whether the kernel refused another inotify watch or instance."""
    return isinstance(error, OSError) and error.errno in LIMIT_ERRNOS


@dataclass
class Mode:
    """How one folder is watched, and why, as the one line `describe` gives."""

    folder: str
    polling: bool
    reason: str = ""

    def describe(self, interval: float) -> str:
        how = f"by polling every {interval:g} s" if self.polling else "by file system events"
        return f"watching {self.folder} {how}" + (f" ({self.reason})" if self.reason else "")


def choose_mode(folder: str, poll: bool) -> Mode:
    """Polling when asked or on a network file system; events otherwise."""
    if poll:
        return Mode(folder, True, "--poll")
    kind = fs_type(folder)
    if is_network(kind):
        return Mode(folder, True, f"a {kind} mount: changes made on other machines raise no "
                    "events here")
    return Mode(folder, False)


class LimitAlarm(logging.Handler):
    """Catches watchdog's warning that a new subfolder could not be watched (the kernel's
    limit was reached after the start: watchdog logs it and goes on without that
    subfolder), so that its folder falls back to polling. `take()` hands over the paths
    and reasons met since the last call."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._lock = threading.Lock()
        self._found: list[tuple[str, OSError]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        raised = record.exc_info[1] if record.exc_info else None  # rebuilding after an overflow
        error = next((a for a in (*args, raised) if isinstance(a, OSError) and is_limit(a)),
                     None)
        if error is not None:
            path = next((a for a in args if isinstance(a, bytes | str)), b"")
            with self._lock:
                self._found.append((os.fsdecode(path), error))

    def take(self) -> list[tuple[str, OSError]]:
        with self._lock:
            found, self._found = self._found, []
        return found

    def __enter__(self) -> "LimitAlarm":
        logging.getLogger("watchdog.observers.inotify").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("watchdog.observers.inotify").removeHandler(self)


def start_observer(mode: Mode, handler: FileSystemEventHandler, interval: float,
                   say: Callable[[str], None]) -> BaseObserver:
    """A started observer of `mode.folder` (recursive); a native one that hits the kernel's
    limit is replaced by polling, `mode` updated and the fallback said."""
    if not mode.polling:
        from watchdog.observers import Observer

        observer = Observer()
        try:
            observer.schedule(handler, mode.folder, recursive=True)
            observer.start()
            return observer
        except OSError as exc:
            if not is_limit(exc):
                raise
            _stop(observer)
            mode.polling, mode.reason = True, fallback_reason(exc)
            say(f"{mode.folder}: {exc.strerror or exc}: falling back to polling")
    observer = PollingObserver(timeout=interval)
    observer.schedule(handler, mode.folder, recursive=True)
    observer.start()
    return observer


def fallback_reason(error: BaseException) -> str:
    what = getattr(error, "strerror", None) or str(error)
    return f"{what}; raise {watch_limit()} for events"


def _stop(observer: BaseObserver) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join()
    except RuntimeError:  # never started
        pass
