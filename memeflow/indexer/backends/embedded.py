"""The documents behind the indexer: every document in a SQLite database
(`memeflow.indexer.storage.database`), and in memory only what a search scans: the float32 matrix
of their vectors (row i = the document whose `row` is i) and, beyond `exact_max`
documents, an HNSW graph over it.

A write goes to the database first, in one transaction that has committed (and synced its
log) when the call returns; only then does the matrix change, so a failed write changes
nothing. A search ranks rows in memory and reads only its hits' ids, uris and tags from
the database. A restart reads the vectors in bulk, in row order, with no per-document
parsing.

Beyond `exact_max` documents a search asks an HNSW graph (`memeflow.indexer.indexes.ann`) for
candidates instead of scanning every row, then ranks them exactly as before. The graph is
saved next to the database on close with the store's generation (the count of committed
writes), so a restart reuses it when nothing changed since. After a crash, the rows that
changed since it was saved are added to it again (`HnswIndex.repair`); a missing or
damaged graph, or one that too much changed since, is rebuilt.

A workspace written before the database (snapshot + log, `memeflow.indexer.storage.legacy`) is
moved into it once, at the first start: the database commits first, then the old files go.
"""

import errno
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from memeflow.documents import Hit
from memeflow.indexer.backends.base import Collection, LexicalMatch, Selection, StoredDocument
from memeflow.indexer.backends.checks import id_list, tag_json, unit_vectors, valid_text
from memeflow.indexer.filters import Where
from memeflow.indexer.indexes import where_sql, words
from memeflow.indexer.indexes.ann import DamagedGraphError, HnswIndex, HnswParams
from memeflow.indexer.indexes.exact import exact_scores, near_kth
from memeflow.indexer.storage import database, legacy
from memeflow.indexer.storage.atomic import fsync_dir, temporary_path
from memeflow.indexer.storage.database import DocumentRow, get_meta, set_meta, transaction
from memeflow.indexer.storage.legacy import CorruptStoreError

logger = logging.getLogger(__name__)

GRAPH = "index.hnsw"
LOCK = "index.lock"
EXACT_MAX = 200_000  # exact search scans 200k 512-d rows in about 20 ms on 2 cores
MAX_ANN_K = 1_000  # a larger top_k is searched exactly: a graph search that wide gains little
READ_CHUNK = 1_024  # vectors per fetch when loading: 2 MB at 512-d

__all__ = [
    "EXACT_MAX",
    "CorruptStoreError",
    "EmbeddedCollection",
    "StoreWriteError",
    "StoredDocument",
    "WorkspaceInUseError",
]




class WorkspaceInUseError(RuntimeError):
    """Another process has the workspace open: one store per workspace at a time."""


class StoreWriteError(OSError):
    """The database could not be written (a full disk, a file-size limit): nothing changed."""


def _record(row: DocumentRow) -> StoredDocument:
    record = StoredDocument(uri=row["uri"], tags=row["tags"])
    if row["words"] is not None:
        record["words"] = row["words"]
    return record


def _json_list(values: Iterable[Any]) -> str:
    """An SQL argument for `IN (SELECT value FROM json_each(?))`: any number of values."""
    return json.dumps(list(values))


class RowSelection(Selection):
    """The rows (sorted int64) a `where` selects, from the tag indexes; None: every row."""

    def __init__(self, where: Where | None, rows: np.ndarray | None) -> None:
        super().__init__(where, empty=rows is not None and len(rows) == 0)
        self.rows = rows


class EmbeddedCollection(Collection):
    """Documents by id: rows of a SQLite database, and their vectors as a float32 matrix."""

    def __init__(
        self,
        workspace: str | os.PathLike | None = None,
        *,
        exact_max: int = EXACT_MAX,
        hnsw: HnswParams | None = None,
    ) -> None:
        """workspace=None: memory only (nothing is written). Otherwise a folder (created if
        missing) holding `index.db`; moves a snapshot + log store in it into the database.
        exact_max: the most documents searched exactly; beyond, an HNSW graph with `hnsw`
        settings finds the candidates. Raises CorruptStoreError for a damaged workspace."""
        self._dim: int | None = None
        self._count = 0
        self._matrix = np.empty((0, 0), np.float32)
        self._generation = 0  # committed writes so far: a saved graph names the one it covers
        self._exact_max, self._hnsw = exact_max, hnsw or HnswParams()
        self._ann: HnswIndex | None = None
        self._ann_generation = -1  # the generation the saved graph covers
        self._closed = False
        self._dir = None if workspace is None else Path(workspace)
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)
        self.path = None if self._dir is None else self._dir / database.DATABASE
        self._lock = None if self._dir is None else _lock(self._dir)
        self._loaded = False
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

    @property
    def dim(self) -> int | None:
        return self._dim

    @dim.setter
    def dim(self, value: int | None) -> None:
        self._dim = value

    @property
    def location(self) -> str:
        return str(self.path or "memory")

    def count(self) -> int:
        return self._count

    def __len__(self) -> int:
        return self._count

    def __contains__(self, doc_id: object) -> bool:
        self._check_open()
        found = self._conn.execute("SELECT 1 FROM documents WHERE id = ?", (doc_id,))
        return found.fetchone() is not None

    def select(self, where: Where | None) -> RowSelection:
        return RowSelection(where, None if where is None else self.rows_where(where))

    def dense_search(self, queries: np.ndarray, top_k: int,
                     selection: Selection | None = None) -> list[list[Hit]]:
        rows = selection.rows if isinstance(selection, RowSelection) else None
        return self.search(queries, top_k, rows=rows)

    def has_lexical(self) -> bool:
        return self.has_words()

    def lexical_search(self, text: str, top_k: int, selection: Selection | None = None
                       ) -> tuple[list[LexicalMatch], bool]:
        rows = selection.rows if isinstance(selection, RowSelection) else None
        found, done = self.search_words(text, top_k, rows)
        return [LexicalMatch(*match) for match in found], done

    def model(self) -> dict[str, Any] | None:
        self._check_open()
        return get_meta(self._conn, "model")

    # --- writes ------------------------------------------------------------------------

    def upsert(self, ids: Sequence[str], vectors: np.ndarray,
               records: Sequence[StoredDocument]) -> None:
        """Insert or replace by id; within one call the last duplicate wins. Invalid input
        raises ValueError before anything changes; committed to the database on return."""
        self._check_open()
        ids, records, matrix = id_list(ids), list(records), unit_vectors(vectors, "vectors")
        if not len(ids) == len(matrix) == len(records):
            raise ValueError(f"got {len(ids)} ids, {len(matrix)} vectors, {len(records)} records")
        dim = matrix.shape[1]
        if self.dim is not None and dim != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got dimension {dim}")
        if not ids:
            return
        keep = list({doc_id: i for i, doc_id in enumerate(ids)}.values())
        ids, matrix, records = [ids[i] for i in keep], matrix[keep], [records[i] for i in keep]
        tags = tag_json(records)
        valid_text(ids, records)
        known = self._rows_of(ids)
        new = [doc_id for doc_id in ids if doc_id not in known]
        rows_of = {**known, **{doc_id: self._count + i for i, doc_id in enumerate(new)}}
        rows = [rows_of[doc_id] for doc_id in ids]
        self._reserve(self._count + len(new), dim)  # a MemoryError here changes nothing
        with self._writing() as conn:
            if known:
                conn.execute("DELETE FROM tag_values WHERE row IN "
                             "(SELECT value FROM json_each(?))", (_json_list(known.values()),))
            _insert(conn, rows, ids, records, tags, matrix)
            if self.dim is None:
                set_meta(conn, "dim", dim)
        self.dim, self._count = dim, self._count + len(new)
        self._matrix[rows] = matrix
        if self._ann is not None:
            try:
                self._ann.add(np.array(rows), matrix)
            except (MemoryError, RuntimeError):  # the store has the change: rebuild later
                logger.exception("adding to the HNSW graph failed; dropping it")
                self._ann = None
        self._maintain_ann()

    def delete(self, ids: Sequence[str]) -> int:
        """Removes the given ids; returns how many were present. Committed on return.
        Each deleted row's place takes the last row, so rows stay 0..n-1."""
        self._check_open()
        rows_of = self._rows_of(list(dict.fromkeys(id_list(ids))))
        if not rows_of:
            return 0
        moves: list[tuple[int, int]] = []
        count = self._count
        with self._writing() as conn:
            for doc_id in list(rows_of):
                row, last = rows_of.pop(doc_id), count - 1
                conn.execute("DELETE FROM documents WHERE row = ?", (row,))
                conn.execute("DELETE FROM tag_values WHERE row = ?", (row,))
                words.delete_words(conn, [row])
                if row != last:
                    (moved,) = conn.execute("SELECT id FROM documents WHERE row = ?",
                                            (last,)).fetchone()
                    conn.execute("UPDATE documents SET row = ? WHERE row = ?", (row, last))
                    conn.execute("UPDATE tag_values SET row = ? WHERE row = ?", (row, last))
                    words.move_words(conn, last, row)
                    if moved in rows_of:
                        rows_of[moved] = row
                moves.append((row, last))
                count -= 1
        for row, last in moves:
            if self._ann is not None:
                self._ann.delete(row, last)
            self._matrix[row] = self._matrix[last]
        self._count = count
        self._maintain_ann()
        return len(moves)

    def clear(self) -> None:
        """Removes everything and forgets the dimension, and gives the disk space back."""
        self._check_open()
        with self._writing() as conn:
            for table in ("documents", "tag_values"):
                conn.execute(f"DELETE FROM {table}")
            words.clear_words(conn)
            set_meta(conn, "dim", None)
        self.dim, self._count, self._ann = None, 0, None
        self._matrix = np.empty((0, 0), np.float32)
        if self.path is not None:
            try:
                self._conn.execute("VACUUM")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:  # the documents are gone; only the space is not back yet
                logger.warning("giving the space of %s back failed", self.path, exc_info=True)
            self._save_ann()

    def set_model(self, model: dict[str, Any] | None) -> None:
        """Keeps a copy of the workspace's model identity (`memeflow.json`) in the database,
        so the database alone says which model its vectors come from."""
        self._check_open()
        try:
            with transaction(self._conn):
                set_meta(self._conn, "model", model)
        except sqlite3.Error:  # memeflow.json holds the identity that counts
            logger.warning("keeping a copy of the model identity in %s failed", self.path,
                           exc_info=True)

    # --- reads -------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[StoredDocument | None]:
        """The stored records, None for absent ids."""
        self._check_open()
        ids = id_list(ids)
        found = database.documents_by(self._conn, "id", ids)
        return [None if doc_id not in found else _record(found[doc_id]) for doc_id in ids]

    def find(self, tag: str | None = None, values: Sequence[Any] = (),
             uri_prefix: str | None = None) -> list[str]:
        """Ids, in row order, of the documents whose tag `tag` equals one of `values` (a
        string, number or bool; when `tag` is given) and whose uri starts with `uri_prefix`
        (when given): look-ups in the tag and uri indexes, for recognising moved files and
        pruning a folder."""
        self._check_open()
        sql, args = ["SELECT id, uri FROM documents WHERE 1"], []
        if tag is not None:
            wanted = [v for v in values if where_sql.indexable(v)]
            sql.append("AND row IN (SELECT row FROM tag_values WHERE tag = ? AND element = 0 "
                       "AND value IN (SELECT value FROM json_each(?)))")
            args += [tag, _json_list(wanted)]
        if uri_prefix is not None:
            sql.append("AND uri >= ? AND uri < ?")
            args += [uri_prefix, uri_prefix + "\U0010ffff"]
        found = self._conn.execute(" ".join([*sql, "ORDER BY row"]), args)
        return [doc_id for doc_id, uri in found
                if uri_prefix is None or (uri or "").startswith(uri_prefix)]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored (normalised) vectors, (n, dim) float32; KeyError for an absent id."""
        self._check_open()
        ids = id_list(ids)
        rows_of = self._rows_of(ids)
        missing = next((doc_id for doc_id in ids if doc_id not in rows_of), None)
        if missing is not None:
            raise KeyError(missing)
        rows = [rows_of[doc_id] for doc_id in ids]
        return self._matrix[rows].reshape(len(rows), self.dim or 0)

    def rows_where(self, where: Where) -> np.ndarray:
        """The rows (sorted int64) whose tags pass `where`, from the tag indexes
        (`memeflow.indexer.indexes.where_sql`), for a search restricted to them."""
        self._check_open()
        return where_sql.matching_rows(self._conn, where, self._count)

    def has_words(self) -> bool:
        """Whether any document has words read on it (a text query then matches them too)."""
        self._check_open()
        return words.count_words(self._conn) > 0

    def search_words(self, text: str, top_k: int, rows: np.ndarray | None = None
                     ) -> tuple[list[tuple[str, float, bool]], bool]:
        """(id, words score, whole phrase) of the best `top_k` documents by the words on
        them (`memeflow.indexer.indexes.words`) among `rows` (all when None; sorted, as `rows_where`
        gives them); and whether there are no more such matches beyond them."""
        self._check_open()
        keep = None if rows is None else lambda row: _sorted_contains(rows, row)
        found, done = words.search_words(self._conn, text, top_k, keep=keep)
        ids = self._ids_of([hit.row for hit in found])
        return [(ids[hit.row], hit.score, hit.phrase) for hit in found], done

    def hits(self, ids: Sequence[str], scores: Sequence[float]) -> list[Hit]:
        """Stored documents as search hits with the given scores; KeyError for an absent id."""
        self._check_open()
        found = database.documents_by(self._conn, "id", ids)
        return [_hit(found[doc_id], score) for doc_id, score in zip(ids, scores, strict=True)]

    def search(
        self, queries: np.ndarray, top_k: int, rows: np.ndarray | None = None
    ) -> list[list[Hit]]:
        """The top_k documents per query ((q, dim)) by cosine similarity, best first, ties
        by id.

        `rows` (from `rows_where`) restricts the search to those rows, always exactly:
        the top_k is the best of the subset however rare it is.

        One float32 matrix product ranks everything; the documents within its error bound
        of the k-th score are scored again in float64 and those scores decide the order:
        equal vectors are true ties, broken by id (`memeflow.indexer.indexes.exact`).

        Beyond exact_max documents the HNSW graph proposes candidates instead (approximate:
        a true top-k document can be missed), ranked by the same float64 scores."""
        self._check_open()
        if top_k <= 0:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        queries = unit_vectors(queries, "queries")
        if self.dim is not None and queries.shape[1] != self.dim:
            raise ValueError(f"expected queries of dimension {self.dim}, got {queries.shape[1]}")
        n = self._count
        if n == 0 or (rows is not None and len(rows) == 0):
            return [[] for _ in queries]
        k, matrix = min(top_k, n), self._matrix[:n]
        if rows is None and self._ann is not None and n > self._exact_max and top_k <= MAX_ANN_K:
            candidates = self._ann.search(queries, 2 * k + 10)  # the margin absorbs quantisation
            return [self._ranked(matrix, query, found, k)
                    for query, found in zip(queries, candidates, strict=True)]
        # exact: everything, or a filtered subset however large (even beyond exact_max)
        scores = queries @ (matrix if rows is None else matrix[rows]).T
        k = min(top_k, scores.shape[1])
        return [self._ranked(matrix, query, near if rows is None else rows[near], k)
                for query, near in zip(queries, near_kth(queries, scores, k), strict=True)]

    def close(self) -> None:
        """Saves the HNSW graph if it changed (or removes one no longer kept), closes the
        database and lets another process open the workspace; the store refuses further
        use. Safe to call twice."""
        if not self._closed:
            if self._loaded:
                self._save_ann()
            self._conn.close()
            self._release()
        self._closed = True

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    # --- internals ---------------------------------------------------------------------

    def _ranked(self, matrix: np.ndarray, query: np.ndarray, rows: np.ndarray, k: int) -> list[Hit]:
        """The best k of `rows` by float64 score, then by id: only the rows that can be in
        the top k (score >= the k-th best) are read from the database."""
        exact = exact_scores(matrix, rows, query)
        if len(rows) > k:
            kth = np.partition(exact, len(exact) - k)[len(exact) - k]
            rows, exact = rows[exact >= kth], exact[exact >= kth]
        found = database.documents_by(self._conn, "row", rows.tolist())
        order = sorted(range(len(rows)), key=lambda i: (-exact[i], found[int(rows[i])]["id"]))
        return [_hit(found[int(rows[i])], float(exact[i])) for i in order[:k]]

    def _rows_of(self, ids: Sequence[str]) -> dict[str, int]:
        """Row by id of the given ids that are stored."""
        found = self._conn.execute("SELECT id, row FROM documents WHERE id IN "
                                   "(SELECT value FROM json_each(?))", (_json_list(ids),))
        return dict(found.fetchall())

    def _ids_of(self, rows: Sequence[int]) -> dict[int, str]:
        found = self._conn.execute("SELECT row, id FROM documents WHERE row IN "
                                   "(SELECT value FROM json_each(?))", (_json_list(rows),))
        return dict(found.fetchall())

    def _remove_legacy_files(self) -> None:
        assert self._dir is not None
        for name in legacy.FILES:
            (self._dir / name).unlink(missing_ok=True)
        fsync_dir(self._dir)

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed and synced when the block ends, or rolled back;
        a disk that refuses the write becomes a StoreWriteError naming the fix."""
        try:
            with transaction(self._conn) as conn:
                yield conn
                set_meta(conn, "generation", self._generation + 1)
        except sqlite3.OperationalError as exc:
            name = getattr(exc, "sqlite_errorname", "")
            if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):
                raise StoreWriteError(
                    errno.ENOSPC if name == "SQLITE_FULL" else errno.EIO,
                    f"cannot write to {self.path} ({exc}): nothing from this request was "
                    "stored; free disk space, then send it again",
                ) from exc
            raise
        self._generation += 1

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
            grown[: self._count] = self._matrix[: self._count]
            self._matrix = grown

    def _maintain_ann(self, why: str = "the store outgrew exact search") -> None:
        """Builds the graph once the store passes exact_max, rebuilds it when tombstones pile
        up, drops it below exact_max / 2 (not at exact_max: no rebuilding back and forth).
        The change is already committed, so a failed build only logs; searches stay exact."""
        n = self._count
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
        """Writes the graph next to the database unless it is saved already, or removes a
        graph that is no longer kept. It only saves time at the next start, so failing to
        write it warns instead of raising."""
        if self._dir is None:
            return
        path = self._dir / GRAPH
        try:
            if self._ann is None:
                path.unlink(missing_ok=True)
            elif self._ann_generation != self._generation:
                self._ann.save(path, self._generation)
                self._ann_generation = self._generation
        except (OSError, RuntimeError):
            logger.warning("saving the HNSW graph to %s failed", path, exc_info=True)

    def _load(self) -> None:
        started = time.perf_counter()
        if self._dir is not None and legacy.has_legacy_store(self._dir):
            self._migrate_legacy()
        conn = self._conn
        self.dim, self._generation = get_meta(conn, "dim"), get_meta(conn, "generation") or 0
        count, last = conn.execute("SELECT count(*), max(row) FROM documents").fetchone()
        if count and (last != count - 1 or self.dim is None):
            raise CorruptStoreError(
                f"{self.path}: rows are not 0..{count - 1} (the last is {last}); restore the "
                "workspace from a backup, or index your folders again into a new one"
            )
        if count:
            assert self.dim is not None
            self._matrix = np.empty((count, self.dim), np.float32)
            cursor, filled = conn.execute("SELECT vector FROM documents ORDER BY row"), 0
            while chunk := cursor.fetchmany(READ_CHUNK):
                block = np.frombuffer(b"".join(v for (v,) in chunk), "<f4")
                self._matrix[filled : filled + len(chunk)] = block.reshape(len(chunk), self.dim)
                filled += len(chunk)
        self._count = count
        why = self._read_ann()
        took = time.perf_counter() - started
        graph = "" if self._ann is None else " and its HNSW graph"
        logger.info("loaded %d documents%s from %s in %.2f s", count, graph,
                    self.path or "memory", took)
        self._maintain_ann(why)

    def _read_ann(self) -> str:
        """Uses the saved graph if it covers the database as it is. Returns why not."""
        if self._dir is None:
            return "no saved graph"
        temporary_path(self._dir / GRAPH).unlink(missing_ok=True)
        path = self._dir / GRAPH
        if not path.exists() or self._count <= self._exact_max // 2:
            return "no saved graph"
        try:
            ann, generation = HnswIndex.load(path, self._hnsw)
        except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            return f"the saved graph is unusable: {exc}"
        if generation > self._generation:
            return f"the saved graph (change {generation}) is newer than the database"
        if generation < self._generation:  # a crash: changes after the save are missing
            try:
                repaired = ann.repair(self._matrix[: self._count])
            except DamagedGraphError as exc:
                return f"the saved graph (change {generation}) is out of date: {exc}"
            logger.info("%s: %d rows changed since the graph was saved; added them again",
                        path, repaired)
        elif not ann.matches(self._matrix[: self._count]):
            return f"the saved graph (change {generation}) does not match the database"
        self._ann, self._ann_generation = ann, generation
        return ""

    def _migrate_legacy(self) -> None:
        """Moves a snapshot + log store into the (empty) database, then removes its files.
        The database remembers the move in the same commit, so a crash before the files
        are gone only leaves them to remove at the next start."""
        assert self._dir is not None
        moved = get_meta(self._conn, "moved_from_snapshot")
        if moved is not None:
            if moved != legacy.file_stamps(self._dir):
                raise CorruptStoreError(
                    f"{self._dir} holds a snapshot or log beside {database.DATABASE}, which "
                    "already holds the documents moved from others: move them away"
                )
            self._remove_legacy_files()  # a move cut short before the old files went
            return
        if self._conn.execute("SELECT count(*) FROM documents").fetchone()[0]:
            raise CorruptStoreError(
                f"{self._dir} holds both {database.DATABASE} with documents and the snapshot "
                "and log of an older memeflow: move one of them away"
            )
        started = time.perf_counter()
        old = legacy.read_legacy_store(self._dir)
        ids = old.ids  # in the old store's rows: its saved graph fits them
        self._generation = old.seq - 1  # the move's commit then names the old graph's seq
        with self._writing() as conn:
            set_meta(conn, "dim", old.dim)
            set_meta(conn, "moved_from_snapshot", legacy.file_stamps(self._dir))
            for start in range(0, len(ids), READ_CHUNK):
                chunk = ids[start : start + READ_CHUNK]
                records = [StoredDocument(**old.records[doc_id]) for doc_id in chunk]  # type: ignore[typeddict-item]
                matrix = unit_vectors(np.stack([old.vectors[doc_id] for doc_id in chunk]),
                                      "vectors")
                _insert(conn, list(range(start, start + len(chunk))), chunk, records,
                        tag_json(records), matrix)
        if self.path is not None:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        graph = self._dir / legacy.GRAPH
        if graph.exists():  # checked against the vectors as it is loaded (`_read_ann`)
            os.replace(graph, self._dir / GRAPH)
        self._remove_legacy_files()
        logger.info("moved %d documents from the snapshot and log of %s into %s in %.1f s",
                    len(ids), self._dir, database.DATABASE, time.perf_counter() - started)


def _lock(folder: Path) -> Any:
    """An exclusive lock on the workspace folder for the store's life: two processes
    writing one database would number new rows alike and overwrite each other's."""
    handle = open(folder / LOCK, "a+")  # noqa: SIM115  # held until close()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise WorkspaceInUseError(
            f"{folder} is in use by {holder}: stop that memeflow (`memeflow status` shows "
            "where it serves), or give this one another workspace (MEMEFLOW_WORKSPACE)"
        ) from None
    handle.truncate(0)
    handle.write(f"process {os.getpid()}\n")
    handle.flush()
    return handle


def _insert(conn: sqlite3.Connection, rows: Sequence[int], ids: Sequence[str],
            records: Sequence[StoredDocument], tags: Sequence[str], matrix: np.ndarray) -> None:
    """Writes documents at their rows (replacing what was there), their tag rows and words;
    the caller has removed the old tag rows of replaced documents."""
    texts = [record.get("words") for record in records]
    conn.executemany(
        "INSERT OR REPLACE INTO documents(row, id, uri, tags, words, vector) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(row, doc_id, record.get("uri"), tag_text, text, vector.astype("<f4").tobytes())
         for row, doc_id, record, tag_text, text, vector
         in zip(rows, ids, records, tags, texts, matrix, strict=True)],
    )
    conn.executemany(
        "INSERT INTO tag_values(row, tag, element, value, number) VALUES (?, ?, ?, ?, ?)",
        [tag_row for row, record in zip(rows, records, strict=True)
         for tag_row in where_sql.tag_rows(row, record.get("tags") or {})],
    )
    words.put_words(conn, rows, texts)


def _hit(row: DocumentRow, score: float) -> Hit:
    hit = Hit(id=row["id"], score=min(score, 1.0), uri=row["uri"], tags=row["tags"])
    if row["words"] is not None:  # unit vectors: a score above 1 is rounding
        hit["words"] = row["words"]
    return hit


def _sorted_contains(rows: np.ndarray, row: int) -> bool:
    at = int(np.searchsorted(rows, row))
    return at < len(rows) and int(rows[at]) == row
