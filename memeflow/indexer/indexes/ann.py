"""Approximate nearest neighbours for large stores: a faiss HNSW graph kept in step with the
store's rows, and saved to a single checksummed file so a restart does not rebuild it.

The graph holds 8-bit scalar-quantised copies of the vectors (a quarter of float32), and for
each the length of its quantisation error, `||x - decoded(x)||`: a bound on how far a
quantised score can be from the exact one (Cauchy-Schwarz, unit queries), so a filtered
search can rank the quantised copies and rescore exactly only the rows that can still be
in the top k. While the graph serves searches, the store keeps no float32 copy in memory:
candidates are rescored from the database.
faiss cannot remove a vector from an HNSW graph: a replaced or deleted row's label becomes a
tombstone, filtered out during the search, and the store rebuilds the graph when tombstones
pile up.

File layout: `faiss index bytes | meta payload | FOOTER`, where the meta payload is one JSON
line followed by the label -> row table (int64 LE) and the label -> error table (float32
LE), and FOOTER is
`magic | faiss length (u64) | meta length (u64) | crc32 of everything before it (u32)`.
"""

import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

from memeflow.indexer.storage.atomic import atomic_write

MAGIC = b"MFh2"
MAGIC_WITHOUT_ERRORS = b"MFh1"  # no error table: measured again from the vectors at load
FOOTER = struct.Struct("<4sQQI")
TOMBSTONE = -1
CHUNK = 16 << 20


@dataclass(frozen=True)
class HnswParams:
    """Chosen by measurement on 1M 512-d vectors (BENCHMARKS.md): ef_search 256 missed
    recall@10 0.98 there, 384 reached 0.994-0.995, 448 0.9975 for 4% more time, 512 0.998
    for 17% more (2026-12-07, 200 queries); a larger ef_construction would need a smaller
    ef_search but costs minutes more to build on 2 cores. m and ef_construction shape the
    graph (a saved graph built with others is rebuilt); ef_search is how many candidates a
    search keeps: more is slower and finds more."""

    m: int = 32
    ef_construction: int = 40
    ef_search: int = 448
    rebuild_fraction: float = 0.3  # rebuild when tombstones exceed this share of the labels


class DamagedGraphError(RuntimeError):
    """A saved graph that cannot be trusted: the caller rebuilds it."""


class HnswIndex:
    """A faiss HNSW graph over store rows. Rows are what the store calls them (0..n-1,
    the last one moved into a deleted row's place); labels are faiss's, append-only."""

    def __init__(self, dim: int, params: HnswParams) -> None:
        self.dim, self.params = dim, params
        # faiss's stubs want a ScalarQuantizer here; the C++ takes its QT_* type code.
        self.index = faiss.IndexHNSWSQ(
            dim, faiss.ScalarQuantizer.QT_8bit, params.m, faiss.METRIC_INNER_PRODUCT  # type: ignore[arg-type]
        )
        self.index.hnsw.efConstruction = params.ef_construction
        self._label_row = np.empty(0, np.int64)  # per label: its row, or TOMBSTONE
        self._row_label = np.empty(0, np.int64)  # per row: its label
        self._label_error = np.empty(0, np.float32)  # per label: ||x - decoded(x)||
        self._rows = 0
        self._live_bits: np.ndarray | None = None  # bitmap of live labels, while searching
        self.loaded_from: Path | None = None  # where it was read from, None if built here

    @classmethod
    def build(cls, matrix: np.ndarray, params: HnswParams) -> "HnswIndex":
        """A graph over every row of `matrix` (label i = row i). The quantiser learns each
        dimension's range from a sample; later vectors outside it are clipped, which only
        blurs navigation: results are re-scored exactly."""
        ann = cls(matrix.shape[1], params)
        sample = matrix[:: max(1, len(matrix) // 100_000)]
        ann.index.train(np.ascontiguousarray(sample))
        ann.add(np.arange(len(matrix)), matrix)
        return ann

    def __len__(self) -> int:
        """Live rows."""
        return self._rows

    @property
    def tombstones(self) -> int:
        return self.index.ntotal - self._rows

    def needs_rebuild(self) -> bool:
        return self.tombstones > self.params.rebuild_fraction * max(self.index.ntotal, 1)

    def add(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Vectors for `rows` (distinct): rows beyond the last are new, the others replaced."""
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return
        replaced = rows[rows < self._rows]
        self._label_row[self._row_label[replaced]] = TOMBSTONE
        start = self.index.ntotal
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        labels = np.arange(start, self.index.ntotal, dtype=np.int64)
        self._rows = max(self._rows, int(rows.max()) + 1)
        self._label_row = _grown(self._label_row, self.index.ntotal)
        self._row_label = _grown(self._row_label, self._rows)
        self._label_error = _grown(self._label_error, self.index.ntotal)
        self._label_row[labels], self._row_label[rows] = rows, labels
        decoded = self._storage().reconstruct_n(start, len(labels))
        self._label_error[labels] = np.linalg.norm(
            np.asarray(vectors, np.float64) - decoded, axis=1)
        self._live_bits = None

    def delete(self, row: int, last: int) -> None:
        """Mirrors the store: `row` is deleted, and row `last` (the last one) moves into it."""
        self._label_row[self._row_label[row]] = TOMBSTONE
        if last != row:
            label = self._row_label[last]
            self._row_label[row], self._label_row[label] = label, row
        self._rows -= 1
        self._live_bits = None

    def search(self, queries: np.ndarray, k: int) -> list[np.ndarray]:
        """Candidate rows per query, at most k, best first by the quantised score. Tombstones
        are skipped inside faiss (a bitmap of live labels); if a query still finds fewer than
        k live rows, it is searched again with a doubled ef."""
        k = min(k, self._rows)
        if k <= 0:
            return [np.empty(0, np.int64) for _ in queries]
        results: list[np.ndarray] = [np.empty(0, np.int64)] * len(queries)
        todo, ef = np.arange(len(queries)), max(self.params.ef_search, k)
        while len(todo):
            # SearchParametersHNSW is missing from faiss's stubs.
            params = faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]
            if self.tombstones:
                if self._live_bits is None:
                    live = self._label_row[: self.index.ntotal] != TOMBSTONE
                    self._live_bits = np.packbits(live, bitorder="little")
                bits = faiss.swig_ptr(self._live_bits)
                selector = faiss.IDSelectorBitmap(self.index.ntotal, bits)
                params.sel = selector  # params hold a raw pointer: `selector` must stay alive
            _, labels = self.index.search(np.ascontiguousarray(queries[todo]), k, params=params)
            short = []
            for i, found in zip(todo, labels, strict=True):
                rows = self._label_row[found[found >= 0]]
                results[i] = rows[rows != TOMBSTONE]
                if len(results[i]) < k and ef < self.index.ntotal:
                    short.append(i)
            todo, ef = np.array(short, np.int64), ef * 2
        return results

    @property
    def knows_errors(self) -> bool:
        """False for a graph saved without its error table (by an older memeflow)."""
        return not np.isnan(self._label_error[: self.index.ntotal]).any()

    def measure_errors(self, matrix: np.ndarray, chunk: int = 65_536) -> None:
        """Measures the quantisation error of every live row from its vectors (`matrix`,
        row i = row i), as `add` does for new ones."""
        storage = self._storage()
        for start in range(0, self._rows, chunk):
            labels = self._row_label[start : min(start + chunk, self._rows)]
            decoded = storage.reconstruct_batch(np.ascontiguousarray(labels))
            self._label_error[labels] = np.linalg.norm(
                matrix[start : start + len(labels)].astype(np.float64) - decoded, axis=1)

    def approximate(self, rows: np.ndarray, query: np.ndarray, chunk: int = 65_536
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(quantised scores, error bounds) of `rows` against a unit `query` ((dim,)): each
        exact score lies within its bound of its quantised one (plus the float32 rounding of
        an exact score, dim * eps). The bound is the row's quantisation error plus the
        rounding of the float32 sum over codes: at most dim * eps times the sum of its
        terms' sizes, |offset| + sum_d |q_d| vdiff_d (Higham, "Accuracy and Stability of
        Numerical Algorithms", 2nd ed., section 3.1), below 1e-3 for unit queries."""
        labels = self._row_label[np.asarray(rows, np.int64)]
        codes, weights, offset = self._code_scoring(np.asarray(query, np.float64))
        scores = np.concatenate([
            codes[labels[i : i + chunk]].astype(np.float32) @ weights + offset
            for i in range(0, len(labels), chunk)] or [np.empty(0, np.float32)])
        terms = abs(float(offset)) + 255 * float(np.abs(weights.astype(np.float64)).sum())
        rounding = np.float32(2 * (self.dim + 1) * np.finfo(np.float32).eps * terms)
        return scores, self._label_error[labels] + rounding

    def _code_scoring(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.float32]:
        """(codes, weights, offset) such that `codes[labels] @ weights + offset` are the
        quantised scores of those labels, without decoding them: faiss's 8-bit quantiser
        decodes component d of code c as vmin_d + (c + 0.5) / 255 * vdiff_d (its
        `Codec8bit` and non-uniform `QuantizerTemplate`, `trained` = vmin then vdiff), so
        q . decoded = sum_d q_d (vmin_d + 0.5 vdiff_d / 255) + sum_d (q_d vdiff_d / 255) c_d.
        6x faster than decoding for a selection of 2,000 rows (BENCHMARKS.md)."""
        storage = self._storage()
        trained = faiss.vector_to_array(storage.sq.trained).astype(np.float64)
        vmin, vdiff = trained[: self.dim], trained[self.dim :]
        codes = faiss.rev_swig_ptr(storage.codes.data(), storage.codes.size())
        weights = (query * vdiff / 255).astype(np.float32)
        offset = np.float32(query @ (vmin + 0.5 * vdiff / 255))
        return codes.reshape(-1, storage.code_size), weights, offset

    def matches(self, count: int, vectors_of: Callable[[np.ndarray], np.ndarray],
                samples: int = 64) -> bool:
        """Whether the graph's vectors are the store's `count` rows (`vectors_of(rows)` gives
        their float32 vectors): a sample of rows, quantised, must give exactly the codes
        stored for their labels. Catches a graph file that belongs to another state of the
        workspace."""
        if self._rows != count:
            return False
        if not self._rows:
            return True
        rows = np.linspace(0, self._rows - 1, min(samples, self._rows)).astype(np.int64)
        sample = vectors_of(rows)
        if sample.shape[1] != self.dim:
            return False
        storage = faiss.downcast_index(self.index.storage)
        expected = storage.sa_decode(storage.sa_encode(np.ascontiguousarray(sample)))
        stored = np.stack([self.index.reconstruct(int(label)) for label in self._row_label[rows]])
        return bool(np.array_equal(expected, stored))

    def repair(self, matrix: np.ndarray, chunk: int = 65_536) -> int:
        """Brings a saved graph up to date with the store's rows after changes it missed (a
        crash before it was saved again): rows past the end are dropped, and every row whose
        quantised vector differs from the graph's, or that the graph lacks, is added again.
        Returns how many rows were added. Cheaper than a rebuild while few rows changed:
        the comparison is one quantisation of the matrix, in C. DamagedGraphError when the
        graph has another dimension, or so many rows changed that a rebuild is due."""
        n = len(matrix)
        if matrix.shape[1] != self.dim:
            raise DamagedGraphError(f"the graph is {self.dim}-d, the store {matrix.shape[1]}-d")
        for row in range(n, self._rows):
            self._label_row[self._row_label[row]] = TOMBSTONE
        self._rows = min(self._rows, n)
        storage = faiss.downcast_index(self.index.storage)
        size = self.index.ntotal * storage.code_size  # type: ignore[attr-defined]
        codes = faiss.rev_swig_ptr(storage.codes.data(), size)  # type: ignore[attr-defined]
        codes = np.asarray(codes).reshape(self.index.ntotal, -1)  # a view: no copy
        changed = [np.arange(self._rows, n, dtype=np.int64)]
        for start in range(0, self._rows, chunk):
            stop = min(start + chunk, self._rows)
            expected = storage.sa_encode(np.ascontiguousarray(matrix[start:stop]))
            differ = (codes[self._row_label[start:stop]] != expected).any(axis=1)
            changed.append(start + np.flatnonzero(differ))
        rows = np.sort(np.concatenate(changed))
        self._live_bits = None
        limit = self.params.rebuild_fraction * max(self.index.ntotal, 1) - self.tombstones
        if len(rows) > limit:  # adding them would leave a graph due for a rebuild anyway
            raise DamagedGraphError(f"{len(rows)} rows changed since the graph was saved")
        if len(rows):
            self.add(rows, matrix[rows])
        return len(rows)

    def _storage(self) -> Any:
        """The quantised vectors by label (a faiss IndexScalarQuantizer)."""
        return faiss.downcast_index(self.index.storage)

    def save(self, path: Path, seq: int) -> None:
        """Replaces `path` atomically (`atomic_write`): a crash leaves the old file or the
        new one, never half of one. `seq`: the store's generation (its count of committed
        writes) that the graph covers."""
        meta: dict[str, Any] = {
            "seq": seq,
            "dim": self.dim,
            "rows": self._rows,
            "ntotal": self.index.ntotal,
            "params": asdict(self.params),
        }
        table = np.ascontiguousarray(self._label_row[: self.index.ntotal], dtype="<i8")
        errors = np.ascontiguousarray(self._label_error[: self.index.ntotal], dtype="<f4")
        with atomic_write(path) as fh:
            crc, faiss_len = 0, 0

            def write(data: bytes) -> int:
                nonlocal crc, faiss_len
                crc, faiss_len = zlib.crc32(data, crc), faiss_len + len(data)
                return fh.write(data)

            # PyCallbackIOWriter is missing from faiss's stubs.
            faiss.write_index(self.index, faiss.PyCallbackIOWriter(write))  # type: ignore[attr-defined]
            payload = json.dumps(meta, separators=(",", ":")).encode() + b"\n"
            for part in (payload, table.data.cast("B"), errors.data.cast("B")):
                crc = zlib.crc32(part, crc)
                fh.write(part)
            fh.write(FOOTER.pack(MAGIC, faiss_len, len(payload) + table.nbytes + errors.nbytes,
                                 crc))

    @classmethod
    def load(cls, path: Path, params: HnswParams) -> tuple["HnswIndex", int]:
        """The saved graph and the store's generation it covers (`seq`).
        DamagedGraphError if the file is damaged or was built with other m / ef_construction
        (it would not be what the settings ask for); OSError if it cannot be read."""
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < FOOTER.size:
                raise DamagedGraphError(f"{path} is too short")
            fh.seek(size - FOOTER.size)
            magic, faiss_len, meta_len, crc = FOOTER.unpack(fh.read(FOOTER.size))
            if magic not in (MAGIC, MAGIC_WITHOUT_ERRORS) \
                    or faiss_len + meta_len + FOOTER.size != size:
                raise DamagedGraphError(f"{path} has a bad footer")
            fh.seek(0)
            actual, left = 0, size - FOOTER.size
            while left:
                chunk = fh.read(min(CHUNK, left))
                actual, left = zlib.crc32(chunk, actual), left - len(chunk)
            if actual != crc:
                raise DamagedGraphError(f"{path} fails its checksum")
            fh.seek(0)
            # PyCallbackIOReader is missing from faiss's stubs.
            index = faiss.read_index(faiss.PyCallbackIOReader(fh.read))  # type: ignore[attr-defined]
            fh.seek(faiss_len)
            meta_bytes = fh.read(meta_len)
        newline = meta_bytes.index(b"\n")
        meta = json.loads(meta_bytes[:newline])
        ntotal = int(meta["ntotal"])
        table = np.frombuffer(meta_bytes, "<i8", count=ntotal, offset=newline + 1).astype(np.int64)
        errors = (np.full(ntotal, np.nan, np.float32) if magic == MAGIC_WITHOUT_ERRORS else
                  np.frombuffer(meta_bytes, "<f4", offset=newline + 1 + 8 * ntotal).astype(
                      np.float32))
        saved = HnswParams(**meta["params"])
        if (saved.m, saved.ef_construction) != (params.m, params.ef_construction):
            raise DamagedGraphError(f"{path} was built with {saved}, not {params}")
        if (index.ntotal != ntotal or len(table) != ntotal or len(errors) != ntotal
                or index.d != meta["dim"]):
            raise DamagedGraphError(f"{path}: the graph and its table disagree")
        ann = cls.__new__(cls)
        # read_index returns the concrete class (faiss downcasts it); the stubs say Index.
        ann.dim, ann.params, ann.index = meta["dim"], params, cast(faiss.IndexHNSWSQ, index)
        ann.index.hnsw.efConstruction = params.ef_construction
        ann._label_row, ann._label_error, ann._rows = table, errors, meta["rows"]
        live = np.flatnonzero(table != TOMBSTONE)
        ann._row_label = np.empty(ann._rows, np.int64)
        if len(live) != ann._rows or not np.array_equal(np.sort(table[live]), np.arange(ann._rows)):
            raise DamagedGraphError(f"{path}: the label table is not a permutation of the rows")
        ann._row_label[table[live]] = live
        ann._live_bits, ann.loaded_from = None, path
        return ann, meta["seq"]


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    """At least `size` entries, growing by doubling so appends cost O(1) amortised."""
    if len(array) >= size:
        return array
    grown = np.full(max(size, 2 * len(array), 1024), TOMBSTONE, array.dtype)
    grown[: len(array)] = array
    return grown
