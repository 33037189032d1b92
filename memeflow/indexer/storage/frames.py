"""The `frames` table (schema version 2): the sampled frames of each document of several
frames, one row per document keyed by its id; writes inside the caller's transaction."""

import json
import sqlite3
from collections.abc import Sequence

import numpy as np

from memeflow.indexer.backends.base import Frames
from memeflow.indexer.storage.documents import json_list


def put(conn: sqlite3.Connection, ids: Sequence[str], frames: Sequence[Frames | None]) -> None:
    """Stores each id's frames (unit vectors), replacing its old ones; None removes them."""
    forget(conn, ids)
    conn.executemany(
        "INSERT INTO frames(id, ms, vectors) VALUES (?, ?, ?)",
        [(doc_id, json.dumps(entry.ms), entry.vectors.astype("<f4").tobytes())
         for doc_id, entry in zip(ids, frames, strict=True) if entry is not None])


def forget(conn: sqlite3.Connection, ids: Sequence[str]) -> None:
    """Removes the frames of the given ids (deleted documents, or stored again as stills)."""
    conn.execute("DELETE FROM frames WHERE id IN (SELECT value FROM json_each(?))",
                 (json_list(ids),))


def clear(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM frames")


def read_all(conn: sqlite3.Connection, dim: int) -> tuple[list[int], list[Frames | None]]:
    """The frames of every document that has some, by its row: (rows, frames)."""
    found = conn.execute("SELECT documents.row, frames.ms, frames.vectors FROM frames "
                         "JOIN documents ON documents.id = frames.id ORDER BY documents.row")
    rows: list[int] = []
    entries: list[Frames | None] = []
    for row, ms, data in found:
        rows.append(row)
        entries.append(_frames(ms, data, dim))
    return rows, entries


def _frames(ms: str, data: bytes, dim: int) -> Frames:
    vectors = np.frombuffer(data, "<f4").astype(np.float32).reshape(-1, dim)
    return Frames(vectors, json.loads(ms))
