"""A write the disk refuses part-way: a clear error, and the log left as it was.

The kill -9 and torn-write cases of the store are in test_store.py.
"""

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from memeflow.store import LOG, Record, StoreWriteError, VectorStore

BATCH, DIM = 100, 512


def batch_vectors(batch: int) -> np.ndarray:
    return np.random.default_rng(batch).standard_normal((BATCH, DIM)).astype(np.float32)


def batch_ids(batch: int) -> list[str]:
    return [f"disk-{batch}-{i}" for i in range(BATCH)]


def test_a_full_disk_mid_record_leaves_the_log_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC after half a record, injected into the store's write: a clear error, the
    store unchanged, the log cut back, and the next write and a reload fine."""
    store = VectorStore(tmp_path)
    blank = [Record(uri=None, tags={})] * BATCH
    store.upsert(batch_ids(0), batch_vectors(0), blank)
    size = (tmp_path / LOG).stat().st_size
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        if fd == store._fd:
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(StoreWriteError, match=r"No space left on device.*nothing from this"):
        store.upsert(batch_ids(1), batch_vectors(1), blank)
    monkeypatch.setattr(os, "write", real_write)
    assert (tmp_path / LOG).stat().st_size == size and len(store) == BATCH
    store.upsert(batch_ids(2), batch_vectors(2), blank)
    store.close()
    again = VectorStore(tmp_path)
    assert len(again) == 2 * BATCH and "disk-1-0" not in again and "disk-2-0" in again
