"""Folders that index themselves: `memeflow watch` and `memeflow serve --watch`.

The watcher keeps the index in step with folders as `memeflow index --prune` would, but
on its own: at start (and after the service or the watcher was away) one rescan catches
up (`sync.index_paths`, which encodes only new and changed files and re-files moved ones
by content hash, then `sync.prune`); afterwards the changes the observers report
(`memeflow.client.observers`) gather in `Pending` and go out in batches, once no event
came for `quiet` seconds, a batch is full, or the oldest change has waited `max_wait`
seconds, so a copy of 500 files is a few requests. A service that does not answer is
asked again, less and less often (up to `MAX_RETRY` s), with what it missed kept; when
it answers again a rescan catches up. Each step is one line to `say`.
"""

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import EventsLostEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver

from memeflow import config
from memeflow.client import observers
from memeflow.client.errors import RequestRefused, ServiceError
from memeflow.client.pending import Pending
from memeflow.client.sync import IndexReport, Service, index_paths, prune

TICK = 0.2  # seconds between two looks at what is pending
MAX_RETRY = 30.0  # the longest wait between two tries of a service that does not answer


@dataclass
class Settings:
    """What `memeflow watch` takes: folders (absolute) and how to watch them."""

    folders: list[str]
    poll: bool = False
    interval: float = observers.DEFAULT_INTERVAL  # seconds between two polls
    settle: float = 1.0  # seconds a file must stop changing before it is sent
    quiet: float = 0.5  # seconds without events before a batch goes out
    max_wait: float = 10.0  # seconds the oldest change waits at most while events go on
    batch_files: int = 1000  # settled files that send a batch at once
    batch_size: int = config.DEFAULT_INDEX_BATCH  # files per /index request
    include_hidden: bool = False


class _Handler(FileSystemEventHandler):
    """Hands every event of one root's observer to the watcher's loop."""

    def __init__(self, root: str, events: "queue.SimpleQueue[tuple[str, FileSystemEvent]]"
                 ) -> None:
        self.root, self.events = root, events

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.events.put((self.root, event))


class Watcher:
    """Watches `settings.folders` for `client` until `run`'s stop event is set."""

    def __init__(self, client: Service, settings: Settings, say: Callable[[str], None],
                 host: str = "the service") -> None:
        self.client, self.settings, self.say, self.host = client, settings, say, host
        self.pending = Pending(settings.settle, settings.include_hidden)
        self.events: queue.SimpleQueue[tuple[str, FileSystemEvent]] = queue.SimpleQueue()
        self.modes = {f: observers.choose_mode(f, settings.poll) for f in settings.folders}
        self.observers: dict[str, BaseObserver] = {}
        self.catch_up = True  # a rescan is due: at start, and after the service was away
        self.retry_at = 0.0
        self.retry_wait = 0.0

    def run(self, stop: threading.Event) -> None:
        """Watch until `stop` is set; observers are stopped on the way out. Raises
        RequestRefused (a wrong API key: asking again cannot help)."""
        with observers.LimitAlarm() as alarm:
            try:
                for folder in self.settings.folders:
                    self._observe(folder)
                while not stop.wait(TICK):
                    self._fall_back(alarm.take())
                    self._drain()
                    if time.monotonic() >= self.retry_at:
                        self._step()
            finally:
                for observer in self.observers.values():
                    observer.stop()
                for observer in self.observers.values():
                    observer.join()

    def _observe(self, folder: str) -> None:
        mode = self.modes[folder]
        handler = _Handler(folder, self.events)
        self.observers[folder] = observers.start_observer(mode, handler, self.settings.interval,
                                                          self.say)
        self.say(mode.describe(self.settings.interval))

    def _fall_back(self, refused: list[tuple[str, OSError]]) -> None:
        """Folders whose new subfolders the kernel refused to watch are polled from now on
        (and rescanned: what changed in those subfolders raised no event)."""
        for folder, mode in self.modes.items():
            hit = next((error for path, error in refused
                        if path == folder or path.startswith(folder.rstrip("/") + "/")), None)
            if hit is None or mode.polling:
                continue
            self.say(f"{folder}: {hit.strerror or hit}: falling back to polling")
            self.observers[folder].stop()
            self.observers[folder].join()
            mode.polling, mode.reason = True, observers.fallback_reason(hit)
            self._observe(folder)
            self.catch_up = True

    def _drain(self) -> None:
        while True:
            try:
                root, event = self.events.get_nowait()
            except queue.Empty:
                return
            if isinstance(event, EventsLostEvent):  # the kernel's queue overflowed
                if not self.catch_up:
                    self.say(f"{root}: events were lost (too many at once): rescanning")
                self.catch_up = True
            else:
                self.pending.add(root, event)

    def _step(self) -> None:
        """One look at what is pending: a rescan when due, a batch when one is ready."""
        try:
            if self.catch_up:
                self._rescan()
            self.pending.expand()
            self._send()
        except RequestRefused:
            raise
        except (ConnectionError, TimeoutError, ServiceError) as exc:
            self._away(exc)
        except ValueError as exc:  # a batch the client cannot send: the message names it
            self.say(f"failed: {exc}")
        else:
            if self.retry_wait:
                self.say(f"{self.host} answers again")
            self.retry_wait = 0.0

    def _away(self, error: Exception) -> None:
        """The service did not answer: keep what is pending, try again later, and rescan
        then (it may have restarted from before some of what was sent)."""
        first = not self.retry_wait
        self.retry_wait = min(max(2 * self.retry_wait, 1.0), MAX_RETRY)
        self.retry_at = time.monotonic() + self.retry_wait
        self.catch_up = True
        if first:
            reason = str(error).split("\n")[0] or type(error).__name__
            self.say(f"{self.host} does not answer ({reason}); trying again in "
                     f"{self.retry_wait:g} s, then less and less often")

    def _rescan(self) -> None:
        folders = self.settings.folders
        report = index_paths(self.client, folders, self.settings.batch_size,
                             include_hidden=self.settings.include_hidden)
        report.pruned = prune(self.client, folders)
        self.catch_up = False
        self._tell(report, "caught up")

    def _send(self) -> None:
        """Sends the settled files and removes what went, when the batch is due."""
        pending, settings = self.pending, self.settings
        if not pending:
            return
        ready, changing = pending.settled()
        now = time.monotonic()
        overdue = pending.first is not None and now - pending.first >= settings.max_wait
        due = (now - pending.last_event >= settings.quiet or overdue
               or len(ready) >= settings.batch_files)
        # Gone paths wait for the files still arriving: one of them may be their move.
        with_gone = bool(pending.gone) and (not changing or overdue)
        if not due or not (ready or with_gone):
            return
        files, folders = pending.take(ready, with_gone)
        report = IndexReport()
        if files:
            report = index_paths(self.client, files, settings.batch_size,
                                 include_hidden=settings.include_hidden)
        if folders:
            report.pruned = prune(self.client, folders)
        self._tell(report, "indexed")

    def _tell(self, report: IndexReport, what: str) -> None:
        """One line for the batch (when it changed anything), one per failed file."""
        for file, reason in report.failed:
            self.say(f"failed: {file}: {reason}")
        counts = [(len(report.encoded), "encoded"), (len(report.moved), "moved"),
                  (len(report.copied), "copied"), (len(report.pruned), "removed"),
                  (len(report.failed), "failed")]
        if what == "caught up" or any(n for n, _ in counts):
            unchanged = f", {len(report.unchanged)} unchanged" if what == "caught up" else ""
            self.say(f"{what}: " + ", ".join(f"{n} {name}" for n, name in counts) + unchanged)


def watch_folders(client: Service, settings: Settings, stop: threading.Event,
                  say: Callable[[str], None], host: str = "the service") -> None:
    """Watch until `stop` is set (see the module docstring)."""
    Watcher(client, settings, say, host).run(stop)
    say("stopped watching " + ", ".join(settings.folders))


def folder_errors(folders: list[str]) -> list[str]:
    """One message per given path that is not a folder to watch, naming it and the fix."""
    return [f"not a folder: {f} (watch takes folders; `memeflow index FILE` indexes a file)"
            if Path(f).exists() else f"no such folder: {f} (check the path)" for f in folders
            if not Path(f).is_dir()]
