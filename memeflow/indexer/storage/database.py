"""The indexer's SQLite database: one file per workspace (per shard), its schema, and one
migration step per schema version (`PRAGMA user_version`), as rclip's `db.py` keeps it.

Durability. The database runs in WAL mode with `synchronous=FULL`: every commit syncs
the write-ahead log before it returns, so whatever `/index`, `/upsert`, `/delete` or
`/clear` acknowledged survives a power cut. SQLite's documentation
(https://sqlite.org/pragma.html#pragma_synchronous) says that with the `NORMAL` setting "a
transaction committed in WAL mode might roll back following a power loss or system
crash": fine for a cache, not for a service that has already said "stored". The cost is
one fsync per request, which a request of hundreds of documents shares.

Tables (open the file with `sqlite3` to look; `select count(*) from documents` is the
count `memeflow count` gives):

- `documents`: one row per document. `row` is the row of its vector in the indexer's
  in-memory matrix (0..n-1, kept contiguous: a deleted row's place takes the last row);
  `vector` is the unit-length float32 vector, little-endian; `tags` a JSON object.
- `tag_values`: the tags again, one row per (document, tag) and one per element of a list
  tag, so that filters are index look-ups (`memeflow.indexer.indexes.where_sql`).
- `words`: the words read on the memes, in FTS5 (`memeflow.indexer.indexes.words`).
- `frames` (schema version 2): the sampled frames of each animated image or video, one
  row per document, keyed by its id (so a swap-delete moves nothing here): `ms`, the
  frames' times as a JSON list, and `vectors`, their unit float32 vectors, little-endian,
  one after another (`memeflow.indexer.storage.frames`). A still has no row.
- `meta`: `dim`, the vectors' dimension; `generation`, a count of committed writes (the
  saved HNSW graph names the one it covers); `model`, a copy of the model identity kept in
  `memeflow.json`; `moved_from_snapshot`, the files a workspace of the older store was
  moved from (`memeflow.indexer.storage.legacy`).
"""

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypedDict

from memeflow.indexer.indexes import words

logger = logging.getLogger(__name__)

DATABASE = "index.db"
PAGE_SIZE = 16_384
SCHEMA = (
    """CREATE TABLE documents (
        row INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        uri TEXT,
        tags TEXT NOT NULL,
        words TEXT,
        vector BLOB NOT NULL
    )""",
    "CREATE INDEX documents_by_uri ON documents(uri)",
    # `value` has no declared type: SQLite then compares '1' and 1 as different, as Python does.
    """CREATE TABLE tag_values (
        row INTEGER NOT NULL,
        tag TEXT NOT NULL,
        element INTEGER NOT NULL,
        value,
        number REAL
    )""",
    "CREATE INDEX tag_values_by_value ON tag_values(tag, value, row, element)",
    "CREATE INDEX tag_values_by_number ON tag_values(tag, number, row) WHERE number IS NOT NULL",
    "CREATE INDEX tag_values_by_row ON tag_values(row)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
    *words.SCHEMA,
)


class DocumentRow(TypedDict):
    """A `documents` row as the store reads it back (the vector apart)."""

    row: int
    id: str
    uri: str | None
    tags: dict[str, Any]
    words: str | None


def _create(conn: sqlite3.Connection) -> None:
    """0 -> 1: the tables of a new database."""
    for statement in SCHEMA:
        conn.execute(statement)


def _add_frames(conn: sqlite3.Connection) -> None:
    """1 -> 2: the frames of documents of several frames (animated images, videos)."""
    conn.execute("""CREATE TABLE frames (
        id TEXT PRIMARY KEY,
        ms TEXT NOT NULL,
        vectors BLOB NOT NULL
    )""")


# MIGRATIONS[v] turns a version-v database into a version v + 1 one, inside one transaction;
# never edit a released step (databases in the wild went through it), add the next. SCHEMA
# (and words.SCHEMA) is version 1's: a later version changes tables in its own step.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _create, 1: _add_frames}
VERSION = len(MIGRATIONS)


class NewerDatabaseError(RuntimeError):
    """The database was written by a newer memeflow: its tables may mean something else."""


def connect(path: Path | None) -> sqlite3.Connection:
    """The open database at `path` (None: in memory, nothing written to disk), migrated to
    VERSION. Autocommit mode: the store opens each transaction itself (`transaction`).

    Raises NewerDatabaseError for a database of a newer memeflow, sqlite3.DatabaseError for
    a file that is not a database."""
    conn = sqlite3.connect(":memory:" if path is None else path, isolation_level=None,
                           check_same_thread=False)  # Jina calls from its worker threads
    try:
        # Before the first table: a 2 KB vector plus its row fits once in a 4 KB page (half
        # of it wasted) and seven times in 16 KB. Ignored for an existing database.
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        if path is not None:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise sqlite3.OperationalError(f"{path}: cannot use WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous=FULL")
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path | None) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > VERSION:
        raise NewerDatabaseError(
            f"{path} has schema version {version}, and this memeflow reads up to {VERSION}: "
            "upgrade memeflow, or use another workspace"
        )
    while version < VERSION:
        with transaction(conn):
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        if version:  # creating a new database is not news
            logger.info("%s: migrated the schema from version %d to %d", path, version,
                        version + 1)
        version += 1


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the body or the commit raises: either
    the whole change is stored, or none of it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def get_meta(conn: sqlite3.Connection, key: str) -> Any:
    """A `meta` value (JSON-decoded), None when unset."""
    found = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if found is None else json.loads(found[0])


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, json.dumps(value)))


def documents_by(conn: sqlite3.Connection, key: Literal["id", "row"], values: Iterable[Any]
                 ) -> dict[Any, DocumentRow]:
    """The stored documents whose `key` column is one of `values` (any number of them,
    through `json_each`), by that key, tags decoded; absent ones are left out."""
    found = conn.execute(
        f"SELECT row, id, uri, tags, words FROM documents WHERE {key} IN "
        "(SELECT value FROM json_each(?))", (json.dumps(list(values)),))
    documents = (DocumentRow(row=row, id=doc_id, uri=uri, tags=json.loads(tags), words=text)
                 for row, doc_id, uri, tags, text in found)
    return {document[key]: document for document in documents}
