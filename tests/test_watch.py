"""`memeflow watch` and `memeflow serve --watch` against a running service: new, changed,
moved and deleted files and folders, a restart that catches up, polling, the fall-back
when the kernel refuses inotify watches, and a service that comes up after the watcher.

Real files, real watchdog observers; one service for the module (the last test starts
its own, to watch with `serve --watch`).
"""

import hashlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from memeflow.client.files import file_id
from tests.conftest import MEMES, Service, free_port, serving

pytestmark = pytest.mark.flow

RUNNER = "import sys; from memeflow.cli.main import main; sys.exit(main())"
# The watch command with the kernel refusing inotify watches on folders whose name holds
# sys.argv[1], as it does when fs.inotify.max_user_watches is used up.
REFUSING = """
import ctypes, errno, os, sys
import watchdog.observers.inotify_c as inotify_c
real, refused = inotify_c.inotify_add_watch, sys.argv.pop(1).encode()
def add_watch(fd, path, mask):
    if refused in os.path.basename(path):
        ctypes.set_errno(errno.ENOSPC)
        return -1
    return real(fd, path, mask)
inotify_c.inotify_add_watch = add_watch
""" + RUNNER


class Watch:
    """`memeflow watch ...` in the background, its stderr in a file."""

    def __init__(self, service: Service, log: Path, *args: str, code: str = RUNNER) -> None:
        self.log = log
        with log.open("a") as out:
            self.start = out.tell()
            self.process = subprocess.Popen([sys.executable, "-c", code, *args], env=service.env,
                                            stdout=out, stderr=subprocess.STDOUT)

    def lines(self) -> list[str]:
        return self.log.read_bytes()[self.start:].decode().splitlines()

    def wait_line(self, part: str, timeout: float = 90) -> str:
        found = wait_for(lambda: next((line for line in self.lines() if part in line), None),
                         timeout, lambda: f"no line with {part!r} in:\n" + "\n".join(self.lines()))
        assert isinstance(found, str)
        return found

    def stop(self) -> None:
        """Ctrl-C: a clean stop, exit code 0."""
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(30) == 0, "\n".join(self.lines())
        assert any("stopped watching" in line for line in self.lines())


@contextmanager
def watching(service: Service, log: Path, *args: str, code: str = RUNNER) -> Iterator[Watch]:
    watch = Watch(service, log, *args, code=code)
    try:
        yield watch
    finally:
        if watch.process.poll() is None:
            watch.process.kill()
            watch.process.wait()


def wait_for(check: Callable[[], object], timeout: float = 90,
             explain: Callable[[], str] = lambda: "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.3)
    raise AssertionError(f"not so after {timeout} s. {explain()}")


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Service, Watch, Path, Path]]:
    """The module's service, `memeflow serve --watch FIRST`, started after a `memeflow
    watch SECOND` that found nothing serving on its port: (service, that watcher, FIRST,
    SECOND)."""
    tmp = tmp_path_factory.mktemp("served")
    first, second = tmp / "first", tmp / "second"
    first.mkdir()
    second.mkdir()
    shutil.copy(meme("drake"), first / "drake.jpg")
    shutil.copy(meme("aag"), second / "aag.jpg")
    port = free_port()
    env = {"MEMEFLOW_GRPC_PORT": str(port), "MEMEFLOW_HOST": f"grpc://127.0.0.1:{port}"}
    nothing = Service(tmp / "unused", tmp / "unused.log")
    nothing.env.update(env)
    with watching(nothing, tmp / "early.log", "watch", str(second)) as early:
        early.wait_line("does not answer")  # nothing serves yet: it waits, and retries
        with serving(tmp, ("--watch", str(first)), **env) as service:
            yield service, early, first, second


@pytest.fixture(scope="module")
def service(served) -> Service:
    return served[0]


@pytest.fixture(scope="module")
def client(service):
    from memeflow.client import MemeClient

    return MemeClient(service.env["MEMEFLOW_HOST"])


def indexed(client, folder: Path) -> dict[str, str]:
    """uri -> stored sha256 of the documents under `folder`."""
    docs = client.documents([doc_id for doc_id, _ in client.documents_under(folder)])
    return {doc["uri"]: doc["tags"]["sha256"] for doc in docs.values()}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def on_disk(folder: Path) -> dict[str, str]:
    return {str(p): sha(p) for p in folder.rglob("*.jpg") if not any(
        part.startswith(".") for part in p.relative_to(folder).parts)}


def in_step(client, folder: Path, timeout: float = 90) -> None:
    """Wait until the index holds exactly the folder's images, each with its bytes' hash."""
    wait_for(lambda: indexed(client, folder) == on_disk(folder), timeout,
             lambda: f"index {indexed(client, folder)} vs disk {on_disk(folder)}")


def meme(name: str, style: str = "default.jpg") -> Path:
    return MEMES / name / style


def test_new_changed_moved_and_deleted_files_follow(service, client, tmp_path) -> None:
    root = tmp_path / "memes"
    root.mkdir()
    shutil.copy(meme("drake"), root / "drake.jpg")
    shutil.copy(meme("aag"), root / "aag.jpg")
    (root / ".hidden.jpg").write_bytes(meme("ackbar").read_bytes())
    with watching(service, tmp_path / "watch.log", "watch", str(root)) as watch:
        assert watch.wait_line("watching ").endswith(f"watching {root} by file system events")
        watch.wait_line("caught up")
        in_step(client, root)

        shutil.copy(meme("afraid"), root / "afraid.jpg")  # new
        in_step(client, root)
        hits = client.search_image(root / "afraid.jpg", top_k=10)
        assert str(root / "afraid.jpg") in {h["uri"] for h in hits if h["score"] > 0.99}

        (root / "aag.jpg").write_bytes(meme("agnes").read_bytes())  # changed
        in_step(client, root)

        before = len(watch.lines())
        (root / "sub").mkdir()
        (root / "drake.jpg").rename(root / "sub" / "renamed.jpg")  # moved: not encoded again
        in_step(client, root)
        # The service holds the move before `watch` has printed its line about it.
        wait_for(lambda: "indexed: 0 encoded, 1 moved" in "\n".join(watch.lines()[before:]),
                 30, lambda: "\n".join(watch.lines()[before:]))

        (root / "afraid.jpg").unlink()  # deleted
        in_step(client, root)

        # A file written slowly is sent once complete, not half-written.
        data = meme("ams").read_bytes()
        with (root / "slow.jpg").open("wb") as out:
            for start in range(0, len(data), len(data) // 6 + 1):
                out.write(data[start : start + len(data) // 6 + 1])
                out.flush()
                time.sleep(0.4)
        in_step(client, root)
        assert not any("watch: failed:" in line for line in watch.lines())
        assert str(root / ".hidden.jpg") not in indexed(client, root)
        watch.stop()


def test_whole_folders_in_and_out_and_a_copy_in_few_requests(service, client, tmp_path) -> None:
    root, outside = tmp_path / "memes", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    copies = [p for p in sorted(MEMES.glob("*/default.jpg")) if not p.parent.name.startswith("_")]
    with watching(service, tmp_path / "watch.log", "watch", str(root)) as watch:
        watch.wait_line("caught up")
        shutil.copytree(MEMES / "awesome", outside / "awesome")
        (outside / "awesome").rename(root / "awesome")  # a folder moved in
        in_step(client, root)
        (root / "awesome").rename(outside / "awesome")  # and out again
        in_step(client, root)
        assert indexed(client, root) == {}

        before = len(watch.lines())
        for image in copies[:40]:  # a copy of many files at once: a few batches, not 40
            shutil.copy(image, root / f"{image.parent.name}.jpg")
        in_step(client, root)
        watch.stop()  # every line written: the service can hold a batch before its line
        batches = [line for line in watch.lines()[before:] if "indexed:" in line]
        assert 1 <= len(batches) <= 3, batches


def test_a_restart_catches_up_without_encoding_again(service, client, tmp_path) -> None:
    root = tmp_path / "memes"
    root.mkdir()

    def add(name: str) -> None:
        """The meme with bytes no other test's file has (after the JPEG's end): not a move or
        copy of a document whose file another test indexed and then deleted."""
        (root / f"{name}.jpg").write_bytes(meme(name).read_bytes() + b"test_a_restart")

    for name in ("drake", "aag", "ackbar"):
        add(name)
    log = tmp_path / "watch.log"
    with watching(service, log, "watch", str(root)) as watch:
        watch.wait_line("caught up")
        in_step(client, root)
        watch.stop()
    (root / "drake.jpg").rename(root / "drake-renamed.jpg")  # while nobody watches
    (root / "aag.jpg").unlink()
    add("afraid")
    with watching(service, log, "watch", str(root)) as watch:
        line = watch.wait_line("caught up")
        counts = {name: int(n) for n, name in re.findall(r"(\d+) (\w+)", line)}
        assert counts == {"encoded": 1, "moved": 1, "copied": 0, "removed": 1, "failed": 0,
                          "unchanged": 1}, line
        in_step(client, root)
        watch.stop()


def test_polling_mode(service, client, tmp_path) -> None:
    root = tmp_path / "memes"
    (root / "a").mkdir(parents=True)
    with watching(service, tmp_path / "watch.log", "watch", str(root), "--poll",
                  "--interval", "0.5") as watch:
        assert watch.wait_line("watching ").endswith(
            f"watching {root} by polling every 0.5 s (--poll)")
        watch.wait_line("caught up")
        shutil.copy(meme("drake"), root / "a" / "drake.jpg")
        in_step(client, root)
        (root / "a" / "drake.jpg").rename(root / "drake.jpg")
        in_step(client, root)
        (root / "drake.jpg").unlink()
        in_step(client, root)
        watch.stop()


def test_falls_back_to_polling_at_the_inotify_limit(service, client, tmp_path) -> None:
    root = tmp_path / "memes"
    (root / "limit-a").mkdir(parents=True)
    shutil.copy(meme("drake"), root / "limit-a" / "drake.jpg")
    # At start: a subfolder cannot be watched.
    with watching(service, tmp_path / "start.log", "limit", "watch", str(root),
                  "--interval", "0.5", code=REFUSING) as watch:
        watch.wait_line("inotify watch limit reached: falling back to polling")
        assert "by polling every 0.5 s (inotify watch limit reached; raise " \
            "fs.inotify.max_user_watches=" in watch.wait_line("watching ")
        shutil.copy(meme("aag"), root / "limit-a" / "aag.jpg")
        in_step(client, root)
        watch.stop()
    # Later: a new subfolder cannot be watched; its files are found by polling.
    with watching(service, tmp_path / "later.log", "late", "watch", str(root),
                  "--interval", "0.5", code=REFUSING) as watch:
        assert watch.wait_line("watching ").endswith("by file system events")
        watch.wait_line("caught up")
        (root / "late").mkdir()
        shutil.copy(meme("ackbar"), root / "late" / "ackbar.jpg")
        watch.wait_line("inotify watch limit reached: falling back to polling")
        in_step(client, root)
        shutil.copy(meme("afraid"), root / "late" / "afraid.jpg")
        in_step(client, root)
        watch.stop()


def test_a_missing_folder_is_refused_in_one_line(service, tmp_path) -> None:
    run = service.cli("watch", str(tmp_path / "missing"))
    assert run.returncode == 2
    assert run.stderr.strip() == f"memeflow: no such folder: {tmp_path / 'missing'} " \
        "(check the path)"


def test_thousand_folders_are_watched(service, client, tmp_path) -> None:
    """10,000 files in 1,000 folders: watched by events within the kernel's limit, or
    polled with a line saying why; either way a file deep inside is found."""
    root = tmp_path / "memes"
    for i in range(1000):
        folder = root / f"{i // 100:02}" / f"{i:03}"
        folder.mkdir(parents=True)
        for j in range(10):
            (folder / f"note-{j}.txt").write_text("not an image")
    with watching(service, tmp_path / "watch.log", "watch", str(root), "--interval", "1"
                  ) as watch:
        line = watch.wait_line("watching ")
        assert line.endswith("by file system events") or "inotify" in line, line
        watch.wait_line("caught up")
        shutil.copy(meme("drake"), root / "09" / "999" / "drake.jpg")
        in_step(client, root)
        watch.stop()


def test_serve_watch_and_a_watcher_waiting_for_the_service(served, client) -> None:
    service, early, first, second = served
    in_step(client, first)  # serve --watch caught up with its folder once ready
    early.wait_line("answers again")  # and the watcher that waited caught up with its own
    in_step(client, second)
    shutil.copy(meme("ackbar"), first / "ackbar.jpg")
    in_step(client, first)
    hits = client.search_image(first / "ackbar.jpg", top_k=10)  # other tests' copies too
    assert file_id(first / "ackbar.jpg") in {h["id"] for h in hits if h["score"] > 0.99}
    assert f"memeflow: watch: watching {first} by file system events" in \
        service.log_path.read_text()
    assert service.stop() == 0  # SIGTERM stops the Flow and its watcher: the last test
    assert f"memeflow: watch: stopped watching {first}" in service.log_path.read_text()
    assert early.process.poll() is None  # a service gone does not stop a watcher
    early.stop()
