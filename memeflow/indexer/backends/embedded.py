"""The embedded backend: every document in a SQLite database in the workspace
(`memeflow.indexer.storage`), and in memory only what a search scans: up to `exact_max`
documents, the float32 matrix of their vectors (`memeflow.indexer.indexes.matrix`), ranked
exactly; beyond, an HNSW graph over 8-bit copies of them (`memeflow.indexer.indexes.graph`)
and no float32 copy: the graph (or, for a filtered search, a bounded scan of its 8-bit
copies) proposes candidates, rescored exactly from the vectors in the database, so the
scores are exact float32 cosines either way. The frames of animated images and videos
are always in memory (`memeflow.indexer.indexes.frames`) and scanned exactly: a document
scores its best frame, whichever index proposed it.

A write goes to the database first, in one transaction that has committed (and synced its
log) when the call returns; only then do the matrix and the graph change, so a failed
write changes nothing. A search ranks rows in memory and reads only its hits' ids, uris
and tags from the database. A workspace written before the database (snapshot + log) is
moved into it once, at the first start (`memeflow.indexer.storage.move_legacy`).
"""

import errno
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from memeflow.documents import Hit
from memeflow.indexer.backends.base import (
    Collection,
    Frames,
    LexicalMatch,
    Selection,
    StoredDocument,
)
from memeflow.indexer.backends.checks import (
    id_list,
    tag_json,
    unit_frames,
    unit_vectors,
    valid_text,
)
from memeflow.indexer.filters import Where
from memeflow.indexer.indexes import where_sql, words
from memeflow.indexer.indexes.ann import HnswIndex, HnswParams
from memeflow.indexer.indexes.exact import exact_scores, near_kth, within_bound
from memeflow.indexer.indexes.frames import BestFrames, FrameIndex
from memeflow.indexer.indexes.graph import EXACT_MAX, GRAPH, MAX_ANN_K, GraphKeeper
from memeflow.indexer.indexes.matrix import VectorMatrix
from memeflow.indexer.storage import database, documents, legacy
from memeflow.indexer.storage import frames as frame_table
from memeflow.indexer.storage.database import DocumentRow, get_meta, set_meta, transaction
from memeflow.indexer.storage.legacy import CorruptStoreError
from memeflow.indexer.storage.lock import LOCK, WorkspaceInUseError, lock
from memeflow.indexer.storage.move_legacy import move_legacy_store

logger = logging.getLogger(__name__)

__all__ = [
    "EXACT_MAX",
    "GRAPH",
    "LOCK",
    "MAX_ANN_K",
    "CorruptStoreError",
    "EmbeddedCollection",
    "RowSelection",
    "StoreWriteError",
    "StoredDocument",
    "WorkspaceInUseError",
]


class StoreWriteError(OSError):
    """The database could not be written (a full disk, a file-size limit): nothing changed."""


class RowSelection(Selection):
    """The rows (sorted int64) a `where` selects, from the tag indexes; None: every row."""

    def __init__(self, where: Where | None, rows: np.ndarray | None) -> None:
        super().__init__(where, empty=rows is not None and len(rows) == 0)
        self.rows = rows


class EmbeddedCollection(Collection):
    """Documents by id: rows of a SQLite database, and their vectors as a float32 matrix."""

    def __init__(self, workspace: str | os.PathLike | None = None, *,
                 exact_max: int = EXACT_MAX, hnsw: HnswParams | None = None) -> None:
        """workspace=None: memory only (nothing is written). Otherwise a folder (created if
        missing) holding `index.db`; moves a snapshot + log store in it into the database.
        exact_max: the most documents searched exactly; beyond, an HNSW graph with `hnsw`
        settings finds the candidates. Raises CorruptStoreError for a damaged workspace,
        WorkspaceInUseError when another process has it open."""
        self._dim: int | None = None
        self._count = 0
        self._matrix: VectorMatrix | None = VectorMatrix()  # None while the graph serves
        self._frames = FrameIndex()
        self._generation = 0  # committed writes so far: a saved graph names the one it covers
        self._closed = self._loaded = False
        self._dir = None if workspace is None else Path(workspace)
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)
        self._graph = GraphKeeper(self._dir, exact_max, hnsw or HnswParams())
        self.path = None if self._dir is None else self._dir / database.DATABASE
        self._lock = None if self._dir is None else lock(self._dir)
        try:
            self._conn = database.connect(self.path)
        except BaseException:
            self._release()
            raise
        try:
            self._load()
            self._loaded = True
        except BaseException:
            self.close()  # half loaded: leaves the saved graph as it is
            raise

    # --- what it holds -------------------------------------------------------------------

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def location(self) -> str:
        return str(self.path or "memory")

    @property
    def graph(self) -> HnswIndex | None:
        """The HNSW graph unfiltered searches ask, None while they scan every row."""
        return self._graph.graph

    @property
    def vectors_in_memory(self) -> bool:
        """Whether the float32 vectors are in memory (up to exact_max documents), or only
        the graph's 8-bit copies (beyond, while the graph serves the searches)."""
        return self._matrix is not None

    def count(self) -> int:
        return self._count

    def __contains__(self, doc_id: object) -> bool:
        self._check_open()
        found = self._conn.execute("SELECT 1 FROM documents WHERE id = ?", (doc_id,))
        return found.fetchone() is not None

    # --- writes --------------------------------------------------------------------------

    def upsert(self, ids: Sequence[str], vectors: np.ndarray,
               documents_: Sequence[StoredDocument],
               frames: Sequence[Frames | None] | None = None) -> None:
        """Insert or replace by id; within one call the last duplicate wins. Invalid input
        raises ValueError before anything changes; committed to the database on return."""
        self._check_open()
        ids, stored, matrix = id_list(ids), list(documents_), unit_vectors(vectors, "vectors")
        if not len(ids) == len(matrix) == len(stored):
            raise ValueError(f"got {len(ids)} ids, {len(matrix)} vectors, {len(stored)} records")
        dim = matrix.shape[1]
        if self._dim is not None and dim != self._dim:
            raise ValueError(f"expected vectors of dimension {self._dim}, got dimension {dim}")
        framed = unit_frames(frames, ids, dim)
        if not ids:
            return
        keep = list({doc_id: i for i, doc_id in enumerate(ids)}.values())
        ids, matrix, stored = [ids[i] for i in keep], matrix[keep], [stored[i] for i in keep]
        framed = [framed[i] for i in keep]
        tags = tag_json(stored)
        valid_text(ids, stored)
        known = documents.rows_of(self._conn, ids)
        count = self._count
        new = [doc_id for doc_id in ids if doc_id not in known]
        rows_of = {**known, **{doc_id: count + i for i, doc_id in enumerate(new)}}
        rows = [rows_of[doc_id] for doc_id in ids]
        if self._matrix is not None:  # a MemoryError here changes nothing
            self._matrix.reserve(count + len(new), dim)
        with self._writing() as conn:
            if known:
                documents.forget_tags(conn, known.values())
            documents.insert(conn, rows, ids, stored, tags, matrix)
            frame_table.put(conn, ids, framed)
            if self._dim is None:
                set_meta(conn, "dim", dim)
        self._dim, self._count = dim, count + len(new)
        if self._matrix is not None:
            self._matrix.put(rows, matrix, self._count)
        self._frames.put(rows, framed)
        self._graph.add(np.array(rows), matrix)
        self._settle()

    def delete(self, ids: Sequence[str]) -> int:
        """Removes the given ids; returns how many were present. Committed on return.
        Each deleted row's place takes the last row, so rows stay 0..n-1."""
        self._check_open()
        rows_of = documents.rows_of(self._conn, list(dict.fromkeys(id_list(ids))))
        if not rows_of:
            return 0
        with self._writing() as conn:
            frame_table.forget(conn, list(rows_of))
            moves = documents.delete(conn, rows_of, self._count)
        self._count -= len(moves)
        self._frames.move(moves)
        self._graph.delete(moves)
        if self._matrix is not None:
            self._matrix.move(moves)
        self._settle()
        return len(moves)

    def clear(self) -> None:
        """Removes everything and forgets the dimension, and gives the disk space back."""
        self._check_open()
        with self._writing() as conn:
            documents.clear(conn)
            frame_table.clear(conn)
            set_meta(conn, "dim", None)
        self._dim, self._count, self._graph.graph = None, 0, None
        self._frames.clear()
        self._matrix = VectorMatrix()
        if self.path is not None:
            try:
                self._conn.execute("VACUUM")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:  # the documents are gone; only the space is not back yet
                logger.warning("giving the space of %s back failed", self.path, exc_info=True)
            self._graph.save(self._generation)

    def set_model(self, model: dict[str, Any] | None) -> None:
        self._check_open()
        try:
            with transaction(self._conn):
                set_meta(self._conn, "model", model)
        except sqlite3.Error:  # memeflow.json holds the identity that counts
            logger.warning("keeping a copy of the model identity in %s failed", self.path,
                           exc_info=True)

    def model(self) -> dict[str, Any] | None:
        self._check_open()
        return get_meta(self._conn, "model")

    # --- reads ---------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[StoredDocument | None]:
        self._check_open()
        ids = id_list(ids)
        found = database.documents_by(self._conn, "id", ids)
        return [None if doc_id not in found else _stored(found[doc_id]) for doc_id in ids]

    def frames(self, ids: Sequence[str]) -> list[Frames | None]:
        self._check_open()
        ids = id_list(ids)
        rows_of = documents.rows_of(self._conn, ids)
        found = [None if doc_id not in rows_of else self._frames.get(rows_of[doc_id])
                 for doc_id in ids]
        return [None if entry is None else Frames(entry.vectors.copy(), list(entry.ms))
                for entry in found]

    def find(self, tag: str | None = None, values: Sequence[Any] = (),
             uri_prefix: str | None = None) -> list[str]:
        """In row order: the order documents were stored in, but for deletes (each moves
        the last row into the deleted one's place)."""
        self._check_open()
        return documents.find(self._conn, tag, values, uri_prefix)

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        self._check_open()
        ids = id_list(ids)
        rows_of = documents.rows_of(self._conn, ids)
        missing = next((doc_id for doc_id in ids if doc_id not in rows_of), None)
        if missing is not None:
            raise KeyError(missing)
        rows = np.array([rows_of[doc_id] for doc_id in ids], np.int64)
        return self._vectors_of(rows).reshape(len(rows), self._dim or 0)

    # --- searches ------------------------------------------------------------------------

    def select(self, where: Where | None) -> RowSelection:
        """The rows whose tags pass `where`, from the tag indexes (`where_sql`)."""
        self._check_open()
        if where is None:
            return RowSelection(None, None)
        return RowSelection(where, where_sql.matching_rows(self._conn, where, self.count()))

    def dense_search(self, queries: np.ndarray, top_k: int,
                     selection: Selection | None = None) -> list[list[Hit]]:
        """A selection is always ranked exactly: the top_k is the best of the subset however
        rare it is. Unfiltered, one float32 matrix product ranks every row; the rows within
        its error bound of the k-th score are scored again in float64 and those scores
        decide the order: equal vectors are true ties, broken by id
        (`memeflow.indexer.indexes.exact`). Beyond exact_max documents the HNSW graph
        proposes candidates instead (approximate: a true top-k document can be missed),
        ranked by the same float64 scores. Either way the frames are scanned exactly too:
        the documents whose best frame can be in the top k join the candidates."""
        self._check_open()
        if top_k <= 0:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        queries = unit_vectors(queries, "queries")
        if self._dim is not None and queries.shape[1] != self._dim:
            raise ValueError(f"expected queries of dimension {self._dim}, got {queries.shape[1]}")
        rows = selection.rows if isinstance(selection, RowSelection) else None
        n = self._count
        if n == 0 or (rows is not None and len(rows) == 0):
            return [[] for _ in queries]
        k = min(top_k, n if rows is None else len(rows))
        framed = self._frames.candidates(queries, k, rows)
        graph = self._graph.graph
        if rows is None and self._graph.serves(n, top_k):
            assert graph is not None  # serves() says so
            candidates = graph.search(queries, 2 * k + 10)  # the margin absorbs quantisation
            return [self._ranked(query, np.union1d(found, extra), k)
                    for query, found, extra in zip(queries, candidates, framed, strict=True)]
        if self._matrix is None:  # the graph's 8-bit copies, then exact rescoring
            assert graph is not None  # the matrix goes only while the graph serves
            chosen = np.arange(n, dtype=np.int64) if rows is None else rows
            found = []
            for query, extra in zip(queries, framed, strict=True):
                approximate, errors = graph.approximate(chosen, query)
                near = within_bound(approximate, errors, k, queries.shape[1])
                found.append(self._ranked(query, np.union1d(chosen[near], extra), k))
            return found
        matrix = self._matrix.view()
        scores = queries @ (matrix if rows is None else matrix[rows]).T
        return [self._ranked(query, np.union1d(near if rows is None else rows[near], extra), k)
                for query, near, extra in zip(queries, near_kth(queries, scores, k), framed,
                                              strict=True)]

    def has_lexical(self) -> bool:
        self._check_open()
        return words.count_words(self._conn) > 0

    def lexical_search(self, text: str, top_k: int, selection: Selection | None = None
                       ) -> tuple[list[LexicalMatch], bool]:
        """BM25 over character trigrams of the words (`memeflow.indexer.indexes.words`)."""
        self._check_open()
        rows = selection.rows if isinstance(selection, RowSelection) else None
        keep = None if rows is None else lambda row: _sorted_contains(rows, row)
        found, done = words.search_words(self._conn, text, top_k, keep=keep)
        ids = documents.ids_of(self._conn, [hit.row for hit in found])
        return [LexicalMatch(ids[hit.row], hit.score, hit.phrase) for hit in found], done

    # --- life ----------------------------------------------------------------------------

    def close(self) -> None:
        """Saves the HNSW graph if it changed (or removes one no longer kept), closes the
        database and lets another process open the workspace. Safe to call twice."""
        if not self._closed:
            if self._loaded:
                self._graph.save(self._generation)
            self._conn.close()
            self._release()
        self._closed = True

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the vector store is closed")

    # --- internals -----------------------------------------------------------------------

    def _ranked(self, query: np.ndarray, rows: np.ndarray, k: int) -> list[Hit]:
        """The best k of `rows` by float64 score (a document with frames: its best frame,
        or its vector if that scores higher), then by id: only the rows that can be in the
        top k (score >= the k-th best) are read from the database."""
        rows = np.asarray(rows, np.int64)
        best = self._frames.best(rows, query)
        exact = np.maximum(exact_scores(self._vectors_of, rows, query), best.scores)
        if len(rows) > k:
            kth = np.partition(exact, len(exact) - k)[len(exact) - k]
            near = exact >= kth
            rows, exact = rows[near], exact[near]
            best = BestFrames(best.has[near], best.scores[near], best.ms[near])
        found = database.documents_by(self._conn, "row", rows.tolist())
        order = sorted(range(len(rows)), key=lambda i: (-exact[i], found[int(rows[i])]["id"]))
        hits = []
        for i in order[:k]:
            hit = _hit(found[int(rows[i])], float(exact[i]))
            if best.has[i]:
                hit["frame_ms"] = int(best.ms[i])
            hits.append(hit)
        return hits

    @contextmanager
    def _writing(self, generation: int | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction, the next generation (or `generation`): committed and
        synced when the block ends, or rolled back; a disk that refuses the write becomes a
        StoreWriteError naming the fix."""
        after = self._generation + 1 if generation is None else generation
        try:
            with transaction(self._conn) as conn:
                yield conn
                set_meta(conn, "generation", after)
        except sqlite3.OperationalError as exc:
            name = getattr(exc, "sqlite_errorname", "")
            if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):
                raise StoreWriteError(
                    errno.ENOSPC if name == "SQLITE_FULL" else errno.EIO,
                    f"cannot write to {self.path} ({exc}): nothing from this request was "
                    "stored; free disk space, then send it again",
                ) from exc
            raise
        self._generation = after

    def _load(self) -> None:
        started = time.perf_counter()
        if self._dir is not None and legacy.has_legacy_store(self._dir):
            move_legacy_store(self._conn, self._dir, self._writing)
        conn = self._conn
        self._dim, self._generation = get_meta(conn, "dim"), get_meta(conn, "generation") or 0
        count, last = conn.execute("SELECT count(*), max(row) FROM documents").fetchone()
        if count and (last != count - 1 or self._dim is None):
            raise CorruptStoreError(
                f"{self.path}: rows are not 0..{count - 1} (the last is {last}); restore the "
                "workspace from a backup, or index your folders again into a new one"
            )
        self._count, self._matrix = count, None
        if count:
            self._frames.put(*frame_table.read_all(conn, self._dim or 0))
        why = self._graph.load(count, self._vectors_of, self._all_vectors, self._generation)
        self._settle(why or "the store outgrew exact search")
        graph = "" if self._graph.graph is None else " and its HNSW graph"
        kept = "" if self._matrix is None else ", vectors in memory"
        logger.info("loaded %d documents%s%s from %s in %.2f s", count, graph, kept,
                    self.path or "memory", time.perf_counter() - started)

    def _settle(self, why: str = "the store outgrew exact search") -> None:
        """After a change: the graph built, rebuilt or dropped as the count asks; then the
        float32 matrix dropped while the graph serves every search, or read back from the
        database when it no longer does."""
        self._graph.maintain(self._count, self._all_vectors, why)
        if self._graph.in_use(self._count):
            self._matrix = None
        elif self._matrix is None:
            self._matrix = VectorMatrix(self._all_vectors())

    def _vectors_of(self, rows: np.ndarray) -> np.ndarray:
        """The float32 vectors of `rows`, (len(rows), dim): from memory, or the database."""
        if self._matrix is not None:
            return self._matrix.view()[rows]
        return documents.vectors_by_row(self._conn, rows, self._dim or 0)

    def _all_vectors(self) -> np.ndarray:
        """Every vector, (count, dim) float32, in row order."""
        if self._matrix is not None:
            return self._matrix.view()
        if not self._count:
            return np.empty((0, self._dim or 0), np.float32)
        return documents.read_vectors(self._conn, self._count, self._dim or 0)


def _stored(row: DocumentRow) -> StoredDocument:
    document = StoredDocument(uri=row["uri"], tags=row["tags"])
    if row["words"] is not None:
        document["words"] = row["words"]
    return document


def _hit(row: DocumentRow, score: float) -> Hit:
    hit = Hit(id=row["id"], score=min(score, 1.0), uri=row["uri"], tags=row["tags"])
    if row["words"] is not None:  # unit vectors: a score above 1 is rounding
        hit["words"] = row["words"]
    return hit


def _sorted_contains(rows: np.ndarray, row: int) -> bool:
    at = int(np.searchsorted(rows, row))
    return at < len(rows) and int(rows[at]) == row
