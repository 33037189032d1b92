"""Crash safety of the running service: kill -9 during a 10,000-document /index run, a torn
last write, a write that finds the file can grow no further.

The promise: after a restart every document whose /index call returned success is there,
every request is there whole or not at all, and a failed write corrupts nothing. One Flow
(restarted between scenarios) serves the module; the documents bring their own vectors,
so the run is quick and each one can be checked exactly.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from memeflow.client import MemeClient
from memeflow.documents import MemeDoc
from memeflow.indexer.storage.database import DATABASE
from tests.conftest import REPO, Service, processes_with

BATCH, BATCHES, DIM = 100, 100, 512  # 10,000 documents in 100 /index calls


def batch_vectors(run: str, batch: int) -> np.ndarray:
    seed = sum(run.encode()) * 1000 + batch
    return np.random.default_rng(seed).standard_normal((BATCH, DIM)).astype(np.float32)


def batch_ids(run: str, batch: int) -> list[str]:
    return [f"{run}-{batch}-{i}" for i in range(BATCH)]


def drive(host: str, run: str) -> None:
    """The client side, in its own process, as a user's would be when the service dies:
    index 100 batches one call at a time, print each acknowledged batch."""
    for batch in range(BATCHES):
        ids, vectors = batch_ids(run, batch), batch_vectors(run, batch)
        docs = [MemeDoc(id=i, embedding=v) for i, v in zip(ids, vectors, strict=True)]
        # A connection per call, as separate users make them: Jina's client can wait
        # forever on a channel the server has closed, which is not what this test is about.
        replies = MemeClient(host)._post("/index", docs)
        if len(replies) != BATCH or any(reply.error for reply in replies):
            sys.exit(f"batch {batch} came back with errors")
        print(batch, flush=True)


class IndexRun:
    """`drive` in a child process; `acked` fills as the service acknowledges batches."""

    def __init__(self, service: Service, run: str) -> None:
        self.acked: list[int] = []
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"from tests.test_crash import drive; "
             f"drive({service.env['MEMEFLOW_HOST']!r}, {run!r})"],
            cwd=REPO, env=service.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:  # libraries may print too: count batch numbers only
            if line.strip().isdigit():
                self.acked.append(int(line))

    def wait_for(self, batches: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < batches:
            assert self.process.poll() is None, "the index run stopped early"
            assert time.monotonic() < deadline, f"only {len(self.acked)} batches in {timeout} s"
            time.sleep(0.02)

    def end(self, timeout: float = 300) -> int:
        """Waits for the client to give up (the service is gone); returns its exit code."""
        code = self.process.wait(timeout)
        self.reader.join(10)
        return code


def indexer_pid(service: Service, workspace: Path) -> int:
    """The process holding the index database open: the indexer executor."""
    log = str(workspace / DATABASE)
    for pid in processes_with(service.marker):
        try:
            if any(os.readlink(fd) == log for fd in Path(f"/proc/{pid}/fd").iterdir()):
                return pid
        except OSError:
            continue
    raise AssertionError("no process has the index database open")


def wait_gone(service: Service, timeout: float = 60, ignore: int | None = None) -> None:
    deadline = time.monotonic() + timeout
    while set(processes_with(service.marker)) - {ignore}:
        assert time.monotonic() < deadline, "Flow processes still alive"
        time.sleep(0.2)


def verify(host: str, run: str, acked: list[int]) -> dict[str, int]:
    """Every acknowledged batch is whole; any other batch is whole or absent, with its
    exact vectors. Returns how many batches of the run are stored, and the count."""
    client = MemeClient(host)
    stored = client.stored([i for b in range(BATCHES) for i in batch_ids(run, b)])
    present = {int(doc_id.split("-")[1]) for doc_id in stored}
    assert set(acked) <= present, f"acknowledged batches lost: {sorted(set(acked) - present)}"
    for batch in present:
        assert set(batch_ids(run, batch)) <= set(stored), f"batch {batch} is half there"
    assert max(present) <= max(acked) + 1  # only the call in flight may be there unanswered
    for batch in sorted(present)[:: max(1, len(present) // 5)]:
        vector = batch_vectors(run, batch)[7]
        (hit,) = client.search(MemeDoc(embedding=vector), top_k=1)
        assert hit["id"] == f"{run}-{batch}-7" and abs(hit["score"] - 1.0) < 1e-5
    return {"present": len(present), "count": client.count()}


def index_batch(host: str, run: str, batch: int) -> str | None:
    """Index one batch; the error the call raised, if any."""
    docs = [MemeDoc(id=i, embedding=v)
            for i, v in zip(batch_ids(run, batch), batch_vectors(run, batch), strict=True)]
    try:
        replies = MemeClient(host)._post("/index", docs)
    except Exception as exc:
        return str(exc)
    return next((reply.error for reply in replies if reply.error), None)


def stored_count(host: str, ids: list[str]) -> dict[str, int]:
    client = MemeClient(host)
    return {"count": client.count(), "stored": len(client.stored(ids))}


def in_child(service: Service, function: str, *args: object) -> object:
    """`function(*args)` from this module in a fresh process, its result read as JSON: a
    Jina client in a long-lived process can wait forever on a call after the service it
    talked to was killed and restarted, which is not what these tests are about."""
    code = (f"import json; from tests.test_crash import {function} as f; "
            f"print(json.dumps(f(*{args!r})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=service.env,
                          capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def flow(tmp_path_factory) -> Service:
    folder = tmp_path_factory.mktemp("crash")
    service = Service(folder / "workspace", folder / "serve.log").start()
    yield service
    for pid in processes_with(service.marker):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def workspace(flow: Service) -> Path:
    return Path(flow.env["MEMEFLOW_WORKSPACE"])


@pytest.fixture(scope="module")
def runs() -> dict[str, list[int]]:
    """Acknowledged batches per run, checked again after every later restart."""
    return {}


@pytest.mark.flow
def test_kill_9_the_whole_flow_during_indexing(flow: Service, runs) -> None:
    run = IndexRun(flow, "whole")
    run.wait_for(20)
    for pid in processes_with(flow.marker):  # `memeflow serve`, gateway, encoder, indexer
        if pid != run.process.pid:
            os.kill(pid, signal.SIGKILL)
    assert run.end() != 0 and len(run.acked) < BATCHES, "the run finished before the kill"
    flow.process.wait(10)
    wait_gone(flow, ignore=run.process.pid)
    runs["whole"] = run.acked
    flow.start()
    result = in_child(flow, "verify", flow.env["MEMEFLOW_HOST"], "whole", run.acked)
    print(f"whole Flow killed: {len(run.acked)} batches acknowledged, {result['present']} "
          "present and whole after the restart")
    assert result["count"] == BATCH * result["present"]


@pytest.mark.flow
def test_kill_9_only_the_indexer_during_indexing(flow: Service, workspace: Path, runs) -> None:
    run = IndexRun(flow, "indexer")
    run.wait_for(20)
    os.kill(indexer_pid(flow, workspace), signal.SIGKILL)
    assert run.end() != 0 and len(run.acked) < BATCHES  # an error, not a hang
    runs["indexer"] = run.acked
    flow.stop()
    wait_gone(flow)
    flow.start()
    host = flow.env["MEMEFLOW_HOST"]
    results = {name: in_child(flow, "verify", host, name, acked) for name, acked in runs.items()}
    print(f"indexer killed: {len(run.acked)} batches acknowledged, "
          f"{results['indexer']['present']} present and whole after the restart")
    assert results["indexer"]["count"] == BATCH * sum(r["present"] for r in results.values())


@pytest.mark.flow
def test_a_write_the_disk_refuses_is_a_clear_error_and_changes_nothing(
    flow: Service, workspace: Path, runs
) -> None:
    """RLIMIT_FSIZE on the live indexer: its next database write fails with EFBIG, as the
    same write fails with ENOSPC on a full disk (both an error from write(2) mid-request)."""
    host, ids = flow.env["MEMEFLOW_HOST"], batch_ids("full", 0)
    before = in_child(flow, "stored_count", host, ids)
    pid = indexer_pid(flow, workspace)
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (64 << 10, hard))  # a batch is 200 KB
    try:
        error = in_child(flow, "index_batch", host, "full", 0)
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))
    assert "nothing from this request was stored" in error and "free disk space" in error
    assert in_child(flow, "stored_count", host, ids) == before  # nothing of it stored
    assert in_child(flow, "index_batch", host, "full", 0) is None  # disk back: it works
    runs["full"] = [0]
    assert in_child(flow, "stored_count", host, ids) == {"count": before["count"] + BATCH,
                                                         "stored": BATCH}


@pytest.mark.flow
def test_a_torn_last_write_is_dropped_at_restart(flow: Service, workspace: Path, runs) -> None:
    """The indexer dies with committed transactions in the write-ahead log and a write torn
    after them (power lost mid-write): SQLite's frame checksums drop the torn part."""
    host = flow.env["MEMEFLOW_HOST"]
    count = in_child(flow, "stored_count", host, [])["count"]
    assert in_child(flow, "index_batch", host, "torn", 0) is None
    os.kill(indexer_pid(flow, workspace), signal.SIGKILL)
    flow.stop()
    wait_gone(flow)
    wal = workspace / f"{DATABASE}-wal"
    assert wal.stat().st_size > 0  # the batch is there, not yet checkpointed
    with wal.open("ab") as log:  # a frame that never finished: a header and 2 kB of page
        log.write(os.urandom(24 + 2048))
    flow.start()
    runs["torn"] = [0]
    for name, acked in runs.items():
        assert in_child(flow, "verify", host, name, acked)["count"] == count + BATCH
    assert in_child(flow, "index_batch", host, "after", 0) is None
    assert in_child(flow, "stored_count", host, [])["count"] == count + 2 * BATCH
