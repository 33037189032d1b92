"""The workspace's own description, `memeflow.json` at its root: the format version and the
model its vectors come from.

Format versions (`FORMAT` is the newest; each change adds one migration step to `MIGRATIONS`,
run in order when a workspace is opened, as rclip's `ensure_version` does):

1. snapshot + log (+ HNSW graph, thumbnails/) as the store before the database wrote
   them; no `memeflow.json`. Such a workspace is stamped as version 1 (its files are not
   rewritten).
2. `memeflow.json` names the model of the stored vectors (`model`, see
   `memeflow.encoder.identity`). Migration: a workspace holding vectors gets
   `unknown_model_vectors`, so the first encoder to start adopts its own identity.
3. The documents live in a SQLite database, `index.db` per store (the root, or each
   `shard-I-of-N` folder; `memeflow.indexer.storage.database`). Migration: none here; each indexer
   moves its snapshot + log into its database at its first start
   (`memeflow.indexer.backends.embedded`). The version exists so that an older memeflow, which would
   find no snapshot and start an empty index beside the database, refuses the workspace.

A workspace from a newer memeflow (a larger version) is refused: its files may hold what
this version cannot read, or would damage.

Who writes what: the encoder and the indexer start at the same time and both open the
workspace (whichever comes first migrates it), under an exclusive lock on `.memeflow.lock`,
and the file is replaced atomically. The encoder compares its model with `model` at start
and refuses another one (so a Flow with the wrong model never starts), and leaves its own
identity as `running_model`. The indexer makes that the workspace's `model` when it stores
the first vector, and forgets it at /clear: a workspace is bound to a model only while it
holds vectors.

Why files and not a request: an executor cannot send a request at start, and a check by
`memeflow serve` after the Flow is up would protect only that way of running it (not `jina
flow`, notebooks or tests) and only after it already served. The encoder therefore has to
see the workspace: it does in one machine's Flow (both read MEMEFLOW_WORKSPACE, which
`memeflow serve` always sets), but with executors in separate containers only if the
encoder gets the same volume and MEMEFLOW_WORKSPACE; otherwise no model is recorded. With
the documents in a Milvus server the same keys live in Milvus instead, which every encoder
and indexer reaches (`memeflow.model_record`).
"""

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FORMAT = 3
META_FILE = "memeflow.json"
LOCK_FILE = ".memeflow.lock"
# The files the store of formats 1 and 2 wrote vectors to (not imported: the encoder reads
# this module too, and has no use for faiss).
STORE_FILES = ("snapshot.bin", "log.bin")

Meta = dict[str, Any]


class WorkspaceError(RuntimeError):
    """The workspace cannot be used by this memeflow; the message says what to do."""


def _holds_vectors(root: Path) -> bool:
    """Whether a store in the workspace (its root, or a shard's folder) has written anything."""
    stores = [root, *root.glob("shard-*-of-*")]
    return any((store / name).is_file() and (store / name).stat().st_size > 0
               for store in stores for name in STORE_FILES)


def _add_model_identity(root: Path, meta: Meta) -> Meta:
    """1 -> 2: the model of the stored vectors is unknown; the next encoder adopts its own."""
    return {**meta, "model": None, "running_model": None,
            "unknown_model_vectors": _holds_vectors(root)}


# MIGRATIONS[v] turns a version-v workspace into a version v + 1 one; never edit a step
# once released (workspaces in the wild went through it), add the next.
def _documents_in_sqlite(root: Path, meta: Meta) -> Meta:
    """2 -> 3: nothing to change here; the indexers move their files (see above)."""
    return dict(meta)


MIGRATIONS: dict[int, Callable[[Path, Meta], Meta]] = {
    1: _add_model_identity,
    2: _documents_in_sqlite,
}


def _write(root: Path, meta: Meta) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one."""
    tmp = root / f"{META_FILE}.tmp"
    with open(tmp, "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / META_FILE)
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_meta(root: Path) -> Meta | None:
    """The metadata as it is, without stamping or migrating (None: no file yet), for a look
    before the Flow starts. Raises WorkspaceError for a damaged file or a newer format."""
    path = root / META_FILE
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text())
        version = meta["format"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WorkspaceError(
            f"{path} is damaged ({exc}): restore it from a backup, or move the workspace "
            "away and index your folders again"
        ) from exc
    if not isinstance(version, int) or version < 1:
        raise WorkspaceError(f"{path}: format {version!r} is not a version number")
    if version > FORMAT:
        raise WorkspaceError(
            f"workspace {root} was written by a newer memeflow (format {version}; this one "
            f"reads up to {FORMAT}): upgrade memeflow, or set MEMEFLOW_WORKSPACE to another folder"
        )
    return meta


def _read(root: Path) -> Meta:
    meta = read_meta(root)
    if meta is None:
        meta = {"format": 1}  # written before the file existed
        _write(root, meta)
        logger.info("workspace %s: stamped as format 1", root)
    return meta


def _migrated(root: Path) -> Meta:
    """The metadata at version FORMAT, migrating the workspace step by step first."""
    meta = _read(root)
    while meta["format"] < FORMAT:
        version = meta["format"]
        meta = {**MIGRATIONS[version](root, meta), "format": version + 1}
        _write(root, meta)  # after each step: an interrupted migration resumes where it was
        logger.info("workspace %s: migrated from format %d to %d", root, version, version + 1)
    return meta


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One process at a time reads, migrates or changes the metadata (encoder and indexers)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def open_workspace(root: Path) -> Meta:
    """Creates, stamps and migrates the workspace `root` as needed; returns its metadata.

    Raises WorkspaceError for a workspace of a newer memeflow or a damaged metadata file.
    """
    with _locked(root):
        return _migrated(root)


def update(root: Path, change: Callable[[Meta], Any]) -> Meta:
    """Applies `change` (which edits the dict it is given) to the metadata under the lock and
    writes it back if it changed; returns the result."""
    with _locked(root):
        meta = _migrated(root)
        before = json.dumps(meta, sort_keys=True)
        change(meta)
        if json.dumps(meta, sort_keys=True) != before:
            _write(root, meta)
        return meta


def bind_running_model(meta: Meta) -> None:
    """The index now holds vectors: they are the running model's (the encoder's), or of an
    unknown one when no encoder has started on it (the next encoder adopts its own). A
    change for `update`, or for another record (`memeflow.model_record`)."""
    if meta.get("model") is None:
        if meta.get("running_model") is not None:
            meta["model"] = meta["running_model"]
        else:
            meta["unknown_model_vectors"] = True


def unbind_model(meta: Meta) -> None:
    """The index holds no vectors any more: any model may fill it again."""
    meta["model"] = None
    meta["unknown_model_vectors"] = False


def bind_model(root: Path) -> Meta:
    """`bind_running_model` of the workspace `root`."""
    return update(root, bind_running_model)


def forget_model(root: Path) -> Meta:
    """`unbind_model` of the workspace `root`."""
    return update(root, unbind_model)
