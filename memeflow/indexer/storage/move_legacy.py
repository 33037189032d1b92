"""The once-only move of a workspace written before the database (snapshot + log,
`memeflow.indexer.storage.legacy`) into it: the database commits first, remembering the
files it came from, then the old files go; a crash between leaves them to remove at the
next start."""

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from memeflow.indexer.backends.base import StoredDocument
from memeflow.indexer.backends.checks import tag_json, unit_vectors
from memeflow.indexer.indexes.graph import GRAPH
from memeflow.indexer.storage import database, documents, legacy
from memeflow.indexer.storage.atomic import fsync_path
from memeflow.indexer.storage.database import get_meta, set_meta
from memeflow.indexer.storage.legacy import CorruptStoreError

logger = logging.getLogger(__name__)

CHUNK = 1_024  # documents per insert: 2 MB of vectors at 512-d


def move_legacy_store(conn: sqlite3.Connection, folder: Path,
                      writing: Callable[[int], AbstractContextManager[sqlite3.Connection]]
                      ) -> None:
    """Moves the snapshot + log store in `folder` into the (empty) database `conn`, in one
    transaction opened by `writing(generation)` (the old store's sequence number: its saved
    HNSW graph, moved too, names it). Raises CorruptStoreError when the database already
    holds documents, or documents moved from other files."""
    moved = get_meta(conn, "moved_from_snapshot")
    if moved is not None:
        if moved != legacy.file_stamps(folder):
            raise CorruptStoreError(
                f"{folder} holds a snapshot or log beside {database.DATABASE}, which "
                "already holds the documents moved from others: move them away"
            )
        _remove_legacy_files(folder)  # a move cut short before the old files went
        return
    if conn.execute("SELECT count(*) FROM documents").fetchone()[0]:
        raise CorruptStoreError(
            f"{folder} holds both {database.DATABASE} with documents and the snapshot "
            "and log of an older memeflow: move one of them away"
        )
    started = time.perf_counter()
    old = legacy.read_legacy_store(folder)
    ids = old.ids  # in the old store's rows: its saved graph fits them
    with writing(old.seq) as write:
        set_meta(write, "dim", old.dim)
        set_meta(write, "moved_from_snapshot", legacy.file_stamps(folder))
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            stored = [StoredDocument(**old.records[doc_id]) for doc_id in chunk]  # type: ignore[typeddict-item]
            matrix = unit_vectors(np.stack([old.vectors[doc_id] for doc_id in chunk]), "vectors")
            documents.insert(write, list(range(start, start + len(chunk))), chunk, stored,
                             tag_json(stored), matrix)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    graph = folder / legacy.GRAPH
    if graph.exists():  # checked against the vectors as it is loaded
        os.replace(graph, folder / GRAPH)
    _remove_legacy_files(folder)
    logger.info("moved %d documents from the snapshot and log of %s into %s in %.1f s",
                len(ids), folder, database.DATABASE, time.perf_counter() - started)


def _remove_legacy_files(folder: Path) -> None:
    for name in legacy.FILES:
        (folder / name).unlink(missing_ok=True)
    fsync_path(folder)
