"""The vectors behind the indexer: exact cosine search in memory, made durable by a
snapshot plus an append-only, checksummed log in a workspace folder.

Both files are sequences of checksummed frames (`memeflow.indexer.journal`), each a JSON
header line followed by raw float32 vectors. Log records carry increasing sequence numbers
and the snapshot holds the last one it includes, so a log left behind by a crash
mid-compaction is skipped on replay instead of re-applied.

Beyond `exact_max` documents a search asks an HNSW graph (`memeflow.indexer.ann`) for
candidates instead of scanning every row, then ranks them exactly as before. The graph is
saved next to the snapshot (at compaction and on close) with the sequence number it
covers, so a restart replays only the log records after it; a missing, stale or damaged
graph is rebuilt.
"""

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from typing_extensions import NotRequired

from memeflow.documents import Hit
from memeflow.indexer import journal
from memeflow.indexer.ann import HnswIndex, HnswParams
from memeflow.indexer.atomic import atomic_write, fsync_dir, temporary_path
from memeflow.indexer.exact import best_rows, near_kth
from memeflow.vectors import unit_rows

logger = logging.getLogger(__name__)

SNAPSHOT, LOG, GRAPH = "snapshot.bin", "log.bin", "hnsw.bin"
MIN_COMPACT_BYTES = 64 << 20
EXACT_MAX = 200_000  # exact search scans 200k 512-d rows in about 20 ms on 2 cores
MAX_ANN_K = 1_000  # a larger top_k is searched exactly: a graph search that wide gains little


class Record(TypedDict):
    """What is stored per document besides its vector; tags must be JSON-serialisable."""

    uri: str | None
    tags: dict[str, Any]
    words: NotRequired[str | None]  # read on the image by OCR; absent in older workspaces


class StoreWriteError(OSError):
    """The log could not be written (a full disk, a file-size limit): nothing was changed."""


class CorruptStoreError(RuntimeError):
    """A workspace file damaged in a way no crash can cause: refuse to guess what it held."""


def _copy(record: Record) -> Record:
    """A record with its own tags dict, and `words` only when there are some."""
    copy = Record(uri=record.get("uri"), tags=dict(record.get("tags") or {}))
    if record.get("words") is not None:
        copy["words"] = record["words"]
    return copy


def _id_list(ids: Sequence[str]) -> list[str]:
    """A str is a Sequence[str] too (of its letters): refuse it rather than store letters."""
    if isinstance(ids, str) or not all(isinstance(doc_id, str) for doc_id in ids):
        raise TypeError(f"ids must be a sequence of strings, got {ids!r:.80}")
    return list(ids)


def _normalised(array: np.ndarray, what: str) -> np.ndarray:
    """Rows scaled to unit length (`unit_rows`), refusing what has no direction: the
    store's vectors and queries must be finite, non-zero (n, dim) arrays."""
    matrix = np.asarray(array, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array (n, dim), got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{what} contain NaN or inf")
    zero = np.flatnonzero(~matrix.any(axis=1))
    if len(zero):
        raise ValueError(f"{what} row {int(zero[0])} has zero norm")
    return unit_rows(matrix)


class VectorStore:
    """Documents by id: a float32 matrix with spare rows, its row ids, and their records."""

    def __init__(
        self,
        workspace: str | os.PathLike | None = None,
        *,
        compact_bytes: int | None = None,
        exact_max: int = EXACT_MAX,
        hnsw: HnswParams | None = None,
    ) -> None:
        """workspace=None: memory only. Otherwise a folder (created if missing) holding the
        snapshot and the log; loads them. compact_bytes: log size that triggers compaction
        (default: max(64 MiB, snapshot size)). exact_max: the most documents searched
        exactly; beyond, an HNSW graph with `hnsw` settings finds the candidates."""
        self.dim: int | None = None
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._records: dict[str, Record] = {}
        self._matrix = np.empty((0, 0), np.float32)
        self._seq = self._log_size = self._snapshot_size = 0
        self._compact_bytes = compact_bytes
        self._exact_max, self._hnsw = exact_max, hnsw or HnswParams()
        self._ann: HnswIndex | None = None
        self._ann_seq = -1  # the seq the saved graph covers
        self._saved_ann: tuple[HnswIndex, int] | None = None  # read at load, awaiting its seq
        self._closed = False
        self._dir: Path | None = None
        self._fd: int | None = None
        if workspace is not None:
            self._dir = Path(workspace)
            self._dir.mkdir(parents=True, exist_ok=True)
            created = not (self._dir / LOG).exists()
            self._fd = os.open(self._dir / LOG, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                if created:
                    fsync_dir(self._dir)
                self._load()
            except BaseException:
                self._ann = None  # half loaded: leave the saved graph as it is
                self.close()
                raise

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._rows

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, records: Sequence[Record]) -> None:
        """Insert or replace by id; within one call the last duplicate wins. Invalid input
        raises ValueError before anything changes; with a workspace, durable on return."""
        self._check_open()
        ids, records, matrix = _id_list(ids), list(records), _normalised(vectors, "vectors")
        if not len(ids) == len(matrix) == len(records):
            raise ValueError(f"got {len(ids)} ids, {len(matrix)} vectors, {len(records)} records")
        dim = matrix.shape[1]
        if self.dim is not None and dim != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got dimension {dim}")
        if not ids:
            return
        keep = list({doc_id: i for i, doc_id in enumerate(ids)}.values())
        ids, matrix = [ids[i] for i in keep], matrix[keep]
        records = [_copy(records[i]) for i in keep]
        self._reserve(len(self._ids) + len(ids), dim)  # a MemoryError here changes nothing
        self._log(
            {"op": "upsert", "dim": dim, "count": len(ids), "ids": ids, "records": records}, matrix
        )
        self._apply_upsert(ids, matrix, records, dim)
        self._maintain_ann()
        self._maybe_compact()

    def delete(self, ids: Sequence[str]) -> int:
        """Removes the given ids; returns how many were present. Durable on return."""
        self._check_open()
        present = [doc_id for doc_id in dict.fromkeys(_id_list(ids)) if doc_id in self._rows]
        if present:
            self._log({"op": "delete", "ids": present})
            self._apply_delete(present)
            self._maintain_ann()
            self._maybe_compact()
        return len(present)

    def clear(self) -> None:
        """Removes everything and forgets the dimension; compacts so the disk is freed too."""
        self._check_open()
        self._log({"op": "clear"})
        self._apply_clear()
        self._maybe_compact(force=True)

    def get(self, ids: Sequence[str]) -> list[Record | None]:
        """Copies of the stored records, None for absent ids."""
        self._check_open()
        found = (self._records.get(doc_id) for doc_id in _id_list(ids))
        return [None if r is None else _copy(r) for r in found]

    def words(self) -> Iterator[tuple[str, str]]:
        """(id, words) of every document that has words: what a text index is built from."""
        self._check_open()
        for doc_id, record in self._records.items():
            if words := record.get("words"):
                yield doc_id, words

    def select(self, keep: Callable[[Record], bool]) -> list[str]:
        """Ids of the documents whose record passes `keep`, in row order: a full scan, for
        look-ups that are rare next to searches (moved files, pruning)."""
        self._check_open()
        return [doc_id for doc_id in self._ids if keep(self._records[doc_id])]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored (normalised) vectors, (n, dim); KeyError for an absent id."""
        self._check_open()
        rows = [self._rows[doc_id] for doc_id in _id_list(ids)]
        return self._matrix[rows].reshape(len(rows), self.dim or 0)

    def rows_where(self, keep: Callable[[Mapping[str, Any]], bool]) -> np.ndarray:
        """The rows whose tags satisfy `keep`, for a search restricted to them."""
        self._check_open()
        return np.array(
            [row for row, doc_id in enumerate(self._ids) if keep(self._records[doc_id]["tags"])],
            dtype=np.int64,
        )

    def search(
        self, queries: np.ndarray, top_k: int, rows: np.ndarray | None = None
    ) -> list[list[Hit]]:
        """The top_k documents per query by cosine similarity, best first, ties by id.

        `rows` (from `rows_where`) restricts the search to those rows, always exactly:
        the top_k is the best of the subset however rare it is.

        One float32 matrix product ranks everything; the documents within its error bound
        of the k-th score are scored again in float64 and those scores decide the order:
        equal vectors are true ties, broken by id (`memeflow.indexer.exact`).

        Beyond exact_max documents the HNSW graph proposes candidates instead (approximate:
        a true top-k document can be missed), ranked by the same float64 scores."""
        self._check_open()
        if top_k <= 0:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        queries = _normalised(queries, "queries")
        if self.dim is not None and queries.shape[1] != self.dim:
            raise ValueError(f"expected queries of dimension {self.dim}, got {queries.shape[1]}")
        n = len(self._ids)
        if n == 0 or (rows is not None and len(rows) == 0):
            return [[] for _ in queries]
        k, matrix = min(top_k, n), self._matrix[:n]
        if rows is not None:  # a filtered search: exact over the subset, even beyond exact_max
            return self._search_rows(queries, matrix, rows, top_k)
        if self._ann is not None and n > self._exact_max and top_k <= MAX_ANN_K:
            candidates = self._ann.search(queries, 2 * k + 10)  # the margin absorbs quantisation
            return [
                self._ranked(matrix, query, found, k)
                for query, found in zip(queries, candidates, strict=True)
            ]
        return self._search_rows(queries, matrix, None, top_k)

    def _search_rows(
        self, queries: np.ndarray, matrix: np.ndarray, rows: np.ndarray | None, top_k: int
    ) -> list[list[Hit]]:
        """Exact search over `rows` (None: all of `matrix`)."""
        scores = queries @ (matrix if rows is None else matrix[rows]).T
        k = min(top_k, scores.shape[1])
        return [
            self._ranked(matrix, query, near if rows is None else rows[near], k)
            for query, near in zip(queries, near_kth(queries, scores, k), strict=True)
        ]

    def close(self) -> None:
        """Saves the HNSW graph if it changed, closes the log; the store refuses further use.
        Safe to call twice."""
        if self._fd is not None:
            if self._ann is not None:
                self._save_ann()
            os.close(self._fd)
            self._fd = None
        self._closed = True

    def _ranked(self, matrix: np.ndarray, query: np.ndarray, rows: np.ndarray, k: int) -> list[Hit]:
        """The best k of `rows` by float64 score, then by id."""
        best, scores = best_rows(matrix, query, rows, k, self._ids)
        return [self._hit(r, s) for r, s in zip(best, scores, strict=True)]

    def _hit(self, row: int, score: float) -> Hit:
        return self.hit(self._ids[row], score)

    def hit(self, doc_id: str, score: float) -> Hit:
        """A stored document as a search hit with `score`; KeyError for an absent id."""
        record = self._records[doc_id]
        score = min(score, 1.0)  # unit vectors: anything above is rounding
        hit = Hit(id=doc_id, score=score, uri=record["uri"], tags=dict(record["tags"]))
        if record.get("words") is not None:
            hit["words"] = record["words"]
        return hit

    def tags(self, doc_id: str) -> dict[str, Any]:
        """The stored tags of one document (not a copy: for reading); KeyError if absent."""
        return self._records[doc_id]["tags"]

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the vector store is closed")

    def _reserve(self, count: int, dim: int) -> None:
        """Grows by doubling, so n single upserts copy O(n) rows in total."""
        capacity, width = self._matrix.shape
        if width != dim:  # only while empty: a first upsert, or after clear()
            self._matrix = np.empty((max(count, 16), dim), np.float32)
        elif count > capacity:
            grown = np.empty((max(count, 2 * capacity), dim), np.float32)
            grown[: len(self._ids)] = self._matrix[: len(self._ids)]
            self._matrix = grown

    def _apply_upsert(
        self, ids: list[str], vectors: np.ndarray, records: list[Record], dim: int
    ) -> None:
        self._reserve(len(self._ids) + len(ids), dim)
        self.dim, rows = dim, []
        for doc_id, record in zip(ids, records, strict=True):
            row = self._rows.setdefault(doc_id, len(self._ids))
            if row == len(self._ids):
                self._ids.append(doc_id)
            self._records[doc_id] = record
            rows.append(row)
        self._matrix[rows] = vectors
        if self._ann is not None:
            try:
                self._ann.add(np.array(rows), vectors)
            except (MemoryError, RuntimeError):  # the store has the change: rebuild later
                logger.exception("adding to the HNSW graph failed; dropping it")
                self._ann = None

    def _apply_delete(self, ids: list[str]) -> None:
        """Moves the last row into each hole: O(1) per id, rows stay contiguous."""
        for doc_id in ids:
            row = self._rows.pop(doc_id, None)
            if row is None:
                continue
            last = self._ids.pop()
            if self._ann is not None:
                self._ann.delete(row, len(self._ids))
            if last != doc_id:
                self._matrix[row] = self._matrix[len(self._ids)]
                self._ids[row], self._rows[last] = last, row
            del self._records[doc_id]

    def _apply_clear(self) -> None:
        self.dim, self._ids, self._rows, self._records = None, [], {}, {}
        self._matrix = np.empty((0, 0), np.float32)
        self._ann = None

    def _log(self, header: dict[str, Any], vectors: np.ndarray | None = None) -> None:
        """Appends one record and fsyncs it: when this returns, the change survives a crash."""
        if self._fd is None:
            return
        assert self._dir is not None  # opened in a workspace: _fd and _dir are set together
        frame = b"".join(journal.frame({"seq": self._seq + 1, **header}, vectors))
        try:
            view = memoryview(frame)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except BaseException as exc:
            with contextlib.suppress(OSError):  # leave no torn record for the next one to follow
                os.ftruncate(self._fd, self._log_size)
            if isinstance(exc, OSError):
                raise StoreWriteError(
                    exc.errno,
                    f"cannot write to {self._dir / LOG} ({exc.strerror or exc}): nothing from "
                    "this request was stored; free disk space, then send it again",
                ) from exc
            raise
        self._seq += 1
        self._log_size += len(frame)

    def _maybe_compact(self, force: bool = False) -> None:
        """The change is already durable, so a failed compaction only warns; the next retries."""
        limit = self._compact_bytes
        if limit is None:
            limit = max(MIN_COMPACT_BYTES, self._snapshot_size)
        if self._fd is not None and (force or self._log_size > limit):
            try:
                self._compact()
            except OSError:
                logger.warning("compacting %s failed", self._dir, exc_info=True)

    def _compact(self) -> None:
        """Writes the state to a new snapshot, swaps it in atomically, then empties the log."""
        assert self._dir is not None and self._fd is not None
        n = len(self._ids)
        header = {"op": "snapshot", "seq": self._seq, "dim": self.dim, "count": n, "ids": self._ids}
        header["records"] = [self._records[doc_id] for doc_id in self._ids]
        parts = journal.frame(header, self._matrix[:n])
        with atomic_write(self._dir / SNAPSHOT) as fh:
            for part in parts:
                fh.write(part)
        self._snapshot_size = sum(len(part) for part in parts)
        os.ftruncate(self._fd, 0)  # a crash before this: the old log's seqs are all skipped
        os.fsync(self._fd)
        self._log_size = 0
        self._save_ann()

    def _maintain_ann(self, why: str = "the store outgrew exact search") -> None:
        """Builds the graph once the store passes exact_max, rebuilds it when tombstones pile
        up, drops it below exact_max / 2 (not at exact_max: no rebuilding back and forth).
        The change is already durable, so a failed build only logs; searches stay exact."""
        n = len(self._ids)
        if n <= self._exact_max // 2:
            self._ann = None
            return
        if self._ann is not None and self._ann.needs_rebuild():
            why = f"{self._ann.tombstones} deleted or replaced vectors in it"
        elif self._ann is not None or n <= self._exact_max:
            return
        started, self._ann = time.perf_counter(), None
        try:
            self._ann = HnswIndex.build(self._matrix[:n], self._hnsw)
        except (MemoryError, RuntimeError):
            logger.exception("building the HNSW graph over %d vectors failed", n)
            return
        took = time.perf_counter() - started
        logger.info("built the HNSW graph over %d vectors in %.1f s (%s)", n, took, why)

    def _save_ann(self) -> None:
        """Writes the graph next to the snapshot unless it is saved already, or removes a
        graph that is no longer kept. It only saves time at the next start, so failing to
        write it warns instead of raising."""
        if self._dir is None:
            return
        path = self._dir / GRAPH
        try:
            if self._ann is None:
                path.unlink(missing_ok=True)
            elif self._ann_seq != self._seq:
                self._ann.save(path, self._seq)
                self._ann_seq = self._seq
        except (OSError, RuntimeError):
            logger.warning("saving the HNSW graph to %s failed", path, exc_info=True)

    def _load(self) -> None:
        assert self._dir is not None and self._fd is not None
        started = time.perf_counter()
        temporary_path(self._dir / SNAPSHOT).unlink(missing_ok=True)  # an unfinished compaction
        temporary_path(self._dir / GRAPH).unlink(missing_ok=True)
        why = self._read_ann()
        snapshot = self._dir / SNAPSHOT
        if snapshot.exists():
            data = snapshot.read_bytes()
            spans, end = journal.frames(data)
            if len(spans) != 1 or end != len(data):
                raise CorruptStoreError(
                    f"{snapshot} is damaged (bad frame at byte {end}); snapshots are only ever "
                    "replaced whole, so restore it from a backup or remove the workspace"
                )
            self._replay(data, spans, snapshot, {"snapshot"})
            self._snapshot_size = len(data)
        log = self._dir / LOG
        data = log.read_bytes()
        spans, end = journal.frames(data)
        if end < len(data):
            if journal.valid_frame_after(data, end):
                raise CorruptStoreError(f"{log} is damaged at byte {end}, before valid records")
            logger.warning("%s: dropping a torn record (%d bytes at the end)", log, len(data) - end)
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
        self._replay(data, spans, log, {"upsert", "delete", "clear"})
        self._log_size = end
        if self._saved_ann is not None:
            why = f"the saved graph (record {self._saved_ann[1]}) does not match the store"
            self._saved_ann = None
        took = time.perf_counter() - started
        graph = "" if self._ann is None else " and its HNSW graph"
        logger.info("loaded %d documents%s from %s in %.2f s", len(self), graph, self._dir, took)
        self._maintain_ann(why or "no saved graph")

    def _read_ann(self) -> str:
        """Reads the saved graph, to attach when the replay reaches the record it covers.
        Returns why there is none, for the log line of a rebuild."""
        assert self._dir is not None
        path = self._dir / GRAPH
        if not path.exists():
            return "no saved graph"
        try:
            self._saved_ann = HnswIndex.load(path, self._hnsw)
        except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            return f"the saved graph is unusable: {exc}"
        return ""

    def _attach_ann(self) -> None:
        """The replay reached the record the saved graph covers: use it if it matches (else
        it stays pending, and the end of the load reports it as stale)."""
        assert self._saved_ann is not None
        ann, seq = self._saved_ann
        if ann.matches(self._matrix[: len(self._ids)]):
            self._ann, self._ann_seq, self._saved_ann = ann, seq, None

    def _replay(self, data: bytes, spans: list[tuple[int, int]], path: Path, ops: set[str]) -> None:
        for start, end in spans:
            try:
                header, vectors = journal.decode(data, start, end)
                op, seq = header["op"], header["seq"]
                if op not in ops:
                    raise ValueError(f"unexpected op {op!r}")
                if op != "snapshot" and seq > self._seq + 1:
                    raise ValueError(f"records {self._seq + 1} to {seq - 1} are missing")
                if op == "snapshot" or seq > self._seq:  # else: the snapshot has it already
                    self._apply(header, vectors)
                    self._seq = seq
                    if self._saved_ann is not None and self._saved_ann[1] == seq:
                        self._attach_ann()
            except (ValueError, KeyError, TypeError) as exc:
                raise CorruptStoreError(f"{path}: bad record at byte {start}: {exc}") from exc

    def _apply(self, header: dict[str, Any], vectors: np.ndarray) -> None:
        op, dim = header["op"], header.get("dim")
        if op in ("snapshot", "clear"):
            self._apply_clear()
        if op == "delete":
            self._apply_delete(header["ids"])
        elif op in ("snapshot", "upsert") and dim is not None:
            if self.dim not in (None, dim):
                raise ValueError(f"record of dimension {dim} in a store of dimension {self.dim}")
            vectors = vectors.reshape(header["count"], dim)
            self._apply_upsert(header["ids"], vectors, header["records"], dim)
