"""Crash safety of the running service: kill -9 during a 10,000-document /index run, a torn
last write, a write that finds the file can grow no further.

The promise: after a restart every document whose /index call returned success is there,
every request is there whole or not at all, and a failed write corrupts nothing. One Flow
(restarted between scenarios) serves the module; the documents bring their own vectors,
so the run is quick and each one can be checked exactly.
"""

import errno
import os
import resource
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from memeflow.client import MemeClient
from memeflow.docs import MemeDoc
from memeflow.store import FRAME, LOG, MAGIC, Record, StoreWriteError, VectorStore
from tests.conftest import Service, processes_with

BATCH, BATCHES, DIM = 100, 100, 512  # 10,000 documents in 100 /index calls


def batch_vectors(run: str, batch: int) -> np.ndarray:
    seed = sum(run.encode()) * 1000 + batch
    return np.random.default_rng(seed).standard_normal((BATCH, DIM)).astype(np.float32)


def batch_ids(run: str, batch: int) -> list[str]:
    return [f"{run}-{batch}-{i}" for i in range(BATCH)]


class IndexRun(threading.Thread):
    """Indexes 100 batches one call at a time; remembers the batches the service acknowledged."""

    def __init__(self, host: str, run: str) -> None:
        super().__init__(daemon=True)
        self.host, self.run_name = host, run
        self.acked: list[int] = []
        self.failure: str | None = None

    def run(self) -> None:
        client = MemeClient(self.host)
        for batch in range(BATCHES):
            vectors = batch_vectors(self.run_name, batch)
            docs = [MemeDoc(id=i, embedding=v) for i, v in zip(batch_ids(self.run_name, batch),
                                                                vectors, strict=True)]
            try:
                replies = client._post("/index", docs)
            except Exception as exc:  # the service was killed: the run ends here
                self.failure = repr(exc)
                return
            if len(replies) != BATCH or any(reply.error for reply in replies):
                self.failure = f"batch {batch} came back with errors"
                return
            self.acked.append(batch)

    def wait_for(self, batches: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < batches:
            assert self.failure is None, self.failure
            assert time.monotonic() < deadline, f"only {len(self.acked)} batches in {timeout} s"
            time.sleep(0.02)


def indexer_pid(service: Service, workspace: Path) -> int:
    """The process holding the index log open: the indexer executor."""
    log = str(workspace / LOG)
    for pid in processes_with(service.marker):
        try:
            if any(os.readlink(fd) == log for fd in Path(f"/proc/{pid}/fd").iterdir()):
                return pid
        except OSError:
            continue
    raise AssertionError("no process has the index log open")


def wait_gone(service: Service, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while processes_with(service.marker):
        assert time.monotonic() < deadline, "Flow processes still alive"
        time.sleep(0.2)


def verify(client: MemeClient, run: str, acked: list[int]) -> int:
    """Every acknowledged batch is whole; any other batch is whole or absent, with its
    exact vectors. Returns how many batches of the run are stored."""
    stored = client.stored([i for b in range(BATCHES) for i in batch_ids(run, b)])
    present = {int(doc_id.split("-")[1]) for doc_id in stored}
    assert set(acked) <= present, f"acknowledged batches lost: {sorted(set(acked) - present)}"
    for batch in present:
        assert set(batch_ids(run, batch)) <= set(stored), f"batch {batch} is half there"
    assert max(present) <= max(acked) + 1  # only the call in flight may be there unanswered
    for batch in sorted(present)[:: max(1, len(present) // 5)]:
        vector = batch_vectors(run, batch)[7]
        (hit,) = client.search(MemeDoc(embedding=vector), top_k=1)
        assert hit["id"] == f"{run}-{batch}-7" and hit["score"] == pytest.approx(1.0, abs=1e-5)
    print(f"{run}: {len(acked)} batches acknowledged, {len(present)} present, whole")  # -s
    return len(present)


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
    run = IndexRun(flow.env["MEMEFLOW_HOST"], "whole")
    run.start()
    run.wait_for(20)
    for pid in processes_with(flow.marker):  # `memeflow serve`, gateway, encoder, indexer
        os.kill(pid, signal.SIGKILL)
    run.join(120)
    flow.process.wait(10)
    wait_gone(flow)
    assert run.failure and len(run.acked) < BATCHES, "the run finished before the kill"
    runs["whole"] = run.acked
    flow.start()
    client = MemeClient(flow.env["MEMEFLOW_HOST"])
    present = verify(client, "whole", run.acked)
    assert client.count() == BATCH * present


@pytest.mark.flow
def test_kill_9_only_the_indexer_during_indexing(flow: Service, workspace: Path, runs) -> None:
    run = IndexRun(flow.env["MEMEFLOW_HOST"], "indexer")
    run.start()
    run.wait_for(20)
    os.kill(indexer_pid(flow, workspace), signal.SIGKILL)
    run.join(300)
    assert not run.is_alive(), "the client hung after the indexer died"
    assert run.failure and len(run.acked) < BATCHES
    runs["indexer"] = run.acked
    flow.stop()
    wait_gone(flow)
    flow.start()
    client = MemeClient(flow.env["MEMEFLOW_HOST"])
    present = {name: verify(client, name, acked) for name, acked in runs.items()}
    assert client.count() == BATCH * sum(present.values())


@pytest.mark.flow
def test_a_write_the_disk_refuses_is_a_clear_error_and_changes_nothing(
    flow: Service, workspace: Path, runs
) -> None:
    """RLIMIT_FSIZE on the live indexer: its next log write fails with EFBIG, as the same
    write fails with ENOSPC on a full disk (both an OSError from write(2) mid-record)."""
    client = MemeClient(flow.env["MEMEFLOW_HOST"])
    count, size = client.count(), (workspace / LOG).stat().st_size
    pid = indexer_pid(flow, workspace)
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    vectors = batch_vectors("full", 0)
    docs = [MemeDoc(id=i, embedding=v) for i, v in zip(batch_ids("full", 0), vectors, strict=True)]
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (size + 4096, hard))  # room for a torn piece
    try:
        with pytest.raises(Exception, match="nothing from this request was stored") as info:
            client._post("/index", docs)
        assert "File too large" in str(info.value)
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))
    assert (workspace / LOG).stat().st_size == size  # the torn piece was cut off again
    assert client.count() == count
    assert not client.stored(batch_ids("full", 0))
    assert not [d.error for d in client._post("/index", docs) if d.error]  # disk back: works
    runs["full"] = [0]
    assert client.count() == count + BATCH


@pytest.mark.flow
def test_a_torn_last_write_is_dropped_at_restart(flow: Service, workspace: Path, runs) -> None:
    client = MemeClient(flow.env["MEMEFLOW_HOST"])
    count = client.count()
    flow.stop()
    wait_gone(flow)
    with (workspace / LOG).open("ab") as log:  # a record cut short by a power loss
        log.write(FRAME.pack(MAGIC, 300_000, 12345) + b'{"seq": 999999, "op": "upsert"')
    flow.start()
    client = MemeClient(flow.env["MEMEFLOW_HOST"])
    assert client.count() == count
    for name, acked in runs.items():
        verify(client, name, acked)
    assert "dropping a torn record" in flow.log_path.read_text()
    client._post("/index", [MemeDoc(id="after", embedding=batch_vectors("after", 0)[0])])
    assert client.count() == count + 1


def test_a_full_disk_mid_record_leaves_the_log_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC after half a record, injected into the store's write: a clear error, the
    store unchanged, the log cut back, and the next write and a reload fine."""
    store = VectorStore(tmp_path)
    vectors = batch_vectors("disk", 0)
    store.upsert(batch_ids("disk", 0), vectors, [Record(uri=None, tags={})] * BATCH)
    size = (tmp_path / LOG).stat().st_size
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        if fd == store._fd:
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    blank = [Record(uri=None, tags={})] * BATCH
    with pytest.raises(StoreWriteError, match=r"No space left on device.*nothing from this"):
        store.upsert(batch_ids("disk", 1), batch_vectors("disk", 1), blank)
    monkeypatch.setattr(os, "write", real_write)
    assert (tmp_path / LOG).stat().st_size == size and len(store) == BATCH
    store.upsert(batch_ids("disk", 2), batch_vectors("disk", 2), blank)
    store.close()
    again = VectorStore(tmp_path)
    assert len(again) == 2 * BATCH and "disk-1-0" not in again and "disk-2-0" in again
