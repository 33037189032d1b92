"""Reading a store written before the SQLite database (workspace format 2 and older): a
snapshot plus an append-only log of checksummed frames (`memeflow.indexer.storage.journal`), so
that `EmbeddedCollection` can move it into the database once.

The rules are the ones that store replayed by: log records carry increasing sequence
numbers and the snapshot the last one it includes (a log left by a crash mid-compaction is
skipped, not applied twice); a torn last record is dropped (a crash tears only the last
write); damage before valid records, or in the snapshot, is refused.
"""

from pathlib import Path
from typing import Any

import numpy as np

from memeflow.indexer.storage import journal

SNAPSHOT, LOG, GRAPH = "snapshot.bin", "log.bin", "hnsw.bin"  # GRAPH: labelled by `seq`
FILES = (SNAPSHOT, LOG, GRAPH, f"{SNAPSHOT}.tmp", f"{GRAPH}.tmp")


class CorruptStoreError(RuntimeError):
    """A workspace file damaged in a way no crash can cause: refuse to guess what it held."""


class LegacyStore:
    """The documents of a snapshot + log store, in the rows that store kept them in (`ids`:
    a deleted row's place taken by the last one), so its saved HNSW graph still fits."""

    def __init__(self) -> None:
        self.dim: int | None = None
        self.seq = 0
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.vectors: dict[str, np.ndarray] = {}
        self.records: dict[str, dict[str, Any]] = {}

    def apply(self, header: dict[str, Any], flat: np.ndarray) -> None:
        op, dim = header["op"], header.get("dim")
        if op in ("snapshot", "clear"):
            self.ids, self.rows, self.vectors, self.records = [], {}, {}, {}
            if op == "clear":
                self.dim = None
        if op == "delete":
            for doc_id in header["ids"]:
                row = self.rows.pop(doc_id, None)
                if row is None:
                    continue
                last = self.ids.pop()
                if last != doc_id:
                    self.ids[row], self.rows[last] = last, row
                del self.vectors[doc_id], self.records[doc_id]
        elif op in ("snapshot", "upsert") and dim is not None:
            if self.dim not in (None, dim):
                raise ValueError(f"record of dimension {dim} in a store of dimension {self.dim}")
            self.dim = dim
            matrix = flat.reshape(header["count"], dim)
            for doc_id, vector, record in zip(header["ids"], matrix, header["records"],
                                              strict=True):
                if doc_id not in self.rows:
                    self.rows[doc_id] = len(self.ids)
                    self.ids.append(doc_id)
                self.vectors[doc_id], self.records[doc_id] = vector, record


def file_stamps(folder: Path) -> dict[str, list[int]]:
    """[size, mtime in ns] of each of the store's files in `folder`: which files a move read."""
    stamps = {}
    for name in (SNAPSHOT, LOG):
        if (folder / name).exists():
            stat = (folder / name).stat()
            stamps[name] = [stat.st_size, stat.st_mtime_ns]
    return stamps


def has_legacy_store(folder: Path) -> bool:
    return (folder / SNAPSHOT).is_file() or (folder / LOG).is_file()


def read_legacy_store(folder: Path) -> LegacyStore:
    """What the snapshot and log in `folder` hold. Raises CorruptStoreError for damage no
    crash can cause."""
    store = LegacyStore()
    snapshot = folder / SNAPSHOT
    if snapshot.exists():
        data = snapshot.read_bytes()
        spans, end = journal.frames(data)
        if len(spans) != 1 or end != len(data):
            raise CorruptStoreError(
                f"{snapshot} is damaged (bad frame at byte {end}); restore it from a backup "
                "or remove the workspace"
            )
        _replay(store, data, spans, snapshot, {"snapshot"})
    log = folder / LOG
    if log.exists():
        data = log.read_bytes()
        spans, end = journal.frames(data)
        if end < len(data) and journal.valid_frame_after(data, end):
            raise CorruptStoreError(f"{log} is damaged at byte {end}, before valid records")
        _replay(store, data, spans, log, {"upsert", "delete", "clear"})
    return store


def _replay(store: LegacyStore, data: bytes, spans: list[tuple[int, int]], path: Path,
            ops: set[str]) -> None:
    for start, end in spans:
        try:
            header, vectors = journal.decode(data, start, end)
            op, seq = header["op"], header["seq"]
            if op not in ops:
                raise ValueError(f"unexpected op {op!r}")
            if op != "snapshot" and seq > store.seq + 1:
                raise ValueError(f"records {store.seq + 1} to {seq - 1} are missing")
            if op == "snapshot" or seq > store.seq:  # else: the snapshot has it already
                store.apply(header, vectors)
                store.seq = seq
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptStoreError(f"{path}: bad record at byte {start}: {exc}") from exc
