"""The `documents` table and the tables that follow its rows (tag values, words): writes
inside the caller's transaction, and look-ups by id and row.

Rows stay 0..n-1: a deleted row's place takes the last row (swap-delete), so a row is
also the document's place in the in-memory matrix of vectors.
"""

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from memeflow.indexer.backends.base import StoredDocument
from memeflow.indexer.indexes import where_sql, words


def json_list(values: Iterable[Any]) -> str:
    """An SQL argument for `IN (SELECT value FROM json_each(?))`: any number of values."""
    return json.dumps(list(values))


def rows_of(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, int]:
    """Row by id of the given ids that are stored."""
    found = conn.execute("SELECT id, row FROM documents WHERE id IN "
                         "(SELECT value FROM json_each(?))", (json_list(ids),))
    return dict(found.fetchall())


def ids_of(conn: sqlite3.Connection, rows: Sequence[int]) -> dict[int, str]:
    """Id by row of the given rows."""
    found = conn.execute("SELECT row, id FROM documents WHERE row IN "
                         "(SELECT value FROM json_each(?))", (json_list(rows),))
    return dict(found.fetchall())


def insert(conn: sqlite3.Connection, rows: Sequence[int], ids: Sequence[str],
           documents: Sequence[StoredDocument], tags: Sequence[str], matrix: np.ndarray) -> None:
    """Writes documents at their rows (replacing what was there), their tag rows and words;
    the caller has removed the old tag rows of replaced documents (`forget_tags`)."""
    texts = [document.get("words") for document in documents]
    conn.executemany(
        "INSERT OR REPLACE INTO documents(row, id, uri, tags, words, vector) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(row, doc_id, document.get("uri"), tag_text, text, vector.astype("<f4").tobytes())
         for row, doc_id, document, tag_text, text, vector
         in zip(rows, ids, documents, tags, texts, matrix, strict=True)],
    )
    conn.executemany(
        "INSERT INTO tag_values(row, tag, element, value, number) VALUES (?, ?, ?, ?, ?)",
        [tag_row for row, document in zip(rows, documents, strict=True)
         for tag_row in where_sql.tag_rows(row, document.get("tags") or {})],
    )
    words.put_words(conn, rows, texts)


def forget_tags(conn: sqlite3.Connection, rows: Iterable[int]) -> None:
    """Removes the tag rows of documents about to be replaced."""
    conn.execute("DELETE FROM tag_values WHERE row IN (SELECT value FROM json_each(?))",
                 (json_list(rows),))


def delete(conn: sqlite3.Connection, rows_by_id: dict[str, int], count: int
           ) -> list[tuple[int, int]]:
    """Deletes the documents (id -> row) of a table of `count` rows; each deleted row's
    place takes the last row. Returns the (row, last) moves in order: what the in-memory
    matrix and graph must repeat."""
    rows_by_id = dict(rows_by_id)
    moves: list[tuple[int, int]] = []
    for doc_id in list(rows_by_id):
        row, last = rows_by_id.pop(doc_id), count - 1
        conn.execute("DELETE FROM documents WHERE row = ?", (row,))
        conn.execute("DELETE FROM tag_values WHERE row = ?", (row,))
        words.delete_words(conn, [row])
        if row != last:
            (moved,) = conn.execute("SELECT id FROM documents WHERE row = ?", (last,)).fetchone()
            conn.execute("UPDATE documents SET row = ? WHERE row = ?", (row, last))
            conn.execute("UPDATE tag_values SET row = ? WHERE row = ?", (row, last))
            words.move_words(conn, last, row)
            if moved in rows_by_id:
                rows_by_id[moved] = row
        moves.append((row, last))
        count -= 1
    return moves


def clear(conn: sqlite3.Connection) -> None:
    """Removes every document, its tag rows and words."""
    for table in ("documents", "tag_values"):
        conn.execute(f"DELETE FROM {table}")
    words.clear_words(conn)


def find(conn: sqlite3.Connection, tag: str | None, values: Sequence[Any],
         uri_prefix: str | None) -> list[str]:
    """Ids, in row order, of the documents whose tag `tag` equals one of `values` (when
    `tag` is given; through the tag index) and whose uri starts with `uri_prefix`."""
    sql, args = ["SELECT id, uri FROM documents WHERE 1"], []
    if tag is not None:
        wanted = [v for v in values if where_sql.indexable(v)]
        sql.append("AND row IN (SELECT row FROM tag_values WHERE tag = ? AND element = 0 "
                   "AND value IN (SELECT value FROM json_each(?)))")
        args += [tag, json_list(wanted)]
    if uri_prefix is not None:
        sql.append("AND uri >= ? AND uri < ?")
        args += [uri_prefix, uri_prefix + "\U0010ffff"]
    found = conn.execute(" ".join([*sql, "ORDER BY row"]), args)
    return [doc_id for doc_id, uri in found
            if uri_prefix is None or (uri or "").startswith(uri_prefix)]


def read_vectors(conn: sqlite3.Connection, count: int, dim: int, chunk: int = 1_024
                 ) -> np.ndarray:
    """Every stored vector in row order, (count, dim) float32, read in bulk (`chunk` rows
    at a time: 2 MB at 512-d), with no per-document parsing."""
    matrix = np.empty((count, dim), np.float32)
    cursor, filled = conn.execute("SELECT vector FROM documents ORDER BY row"), 0
    while block := cursor.fetchmany(chunk):
        data = np.frombuffer(b"".join(v for (v,) in block), "<f4")
        matrix[filled : filled + len(block)] = data.reshape(len(block), dim)
        filled += len(block)
    return matrix


def vectors_by_row(conn: sqlite3.Connection, rows: np.ndarray, dim: int) -> np.ndarray:
    """The stored vectors of `rows`, in their order, (len(rows), dim) float32: what a search
    rescores exactly when the vectors are not in memory. KeyError for a row not stored.

    `row` is the rowid, so each vector is read by SQLite's incremental blob I/O where Python
    has it (3.11+): 0.13 ms for the 30 candidates of a top-10 search at 1M documents,
    against 0.61 ms for one `IN (...)` query (BENCHMARKS.md)."""
    wanted = np.asarray(rows).tolist()
    if not hasattr(conn, "blobopen"):
        return _vectors_by_query(conn, wanted, dim)
    data = bytearray()
    for row in wanted:
        try:
            with conn.blobopen("documents", "vector", row, readonly=True) as blob:
                data += blob.read()
        except sqlite3.OperationalError as exc:
            if "no such rowid" not in str(exc):
                raise  # a disk or lock error is not a missing row
            raise KeyError(row) from exc
    return np.frombuffer(data, "<f4").astype(np.float32).reshape(len(wanted), dim)


def _vectors_by_query(conn: sqlite3.Connection, rows: list[int], dim: int) -> np.ndarray:
    """`vectors_by_row` in one query (Python 3.10 has no blob I/O)."""
    found = dict(conn.execute("SELECT row, vector FROM documents WHERE row IN "
                              "(SELECT value FROM json_each(?))", (json_list(rows),)))
    data = b"".join(found[row] for row in rows)
    return np.frombuffer(data, "<f4").astype(np.float32).reshape(len(rows), dim)
