"""Where a workspace's index went after `memeflow reindex`, so that `memeflow serve` follows.

When the serving Flow switches (memeflow.switch commit), the indexer writes a move record
beside the workspace it served: `<parent>/<name>.moved.json`, e.g.
`~/.local/share/memeflow/index.moved.json`, holding the new workspace and its model. Beside
the folder, not in it, so that removing the old workspace keeps the record. The old
workspace itself is left as it was at the switch.

`memeflow serve` starts from the workspace it is given (MEMEFLOW_WORKSPACE, --workspace,
or the default one) and follows the records (`follow`), a workspace named or not: a user's
settings keep naming the folder they first chose. With no model named (MEMEFLOW_MODEL,
--model), or the new model named, it serves the new workspace with the new model. Another
model named (the old one, from settings written before the move) is refused with one line
naming both and the fix: serving the old index silently would undo the move, and mixing
models is impossible. Going back to the old index means removing the record.

Nothing here imports Jina or a model library: the indexer writes, the supervisor reads.
"""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from memeflow import config
from memeflow.indexer.storage.atomic import fsync_path, write_bytes
from memeflow.workspace import WorkspaceError

RECORD_SUFFIX = ".moved.json"
MAX_MOVES = 64  # a chain longer than this is a loop someone made by hand


def record_path(workspace: Path) -> Path:
    """The move record of `workspace`: beside it, `<name>.moved.json`."""
    return workspace.parent / f"{workspace.name}{RECORD_SUFFIX}"


@dataclass(frozen=True)
class Move:
    """One switch: the workspace it moved from, the new one, its model, and when (UTC)."""

    source: Path
    workspace: Path
    model: str
    at: str


def record_move(old: Path, new: Path, model: str) -> Path:
    """Writes (atomically, durably) that `old` moved to `new` with `model`, and drops any
    record of `new` (it serves now; a record left from an earlier move would loop).
    Returns the record's path. Raises OSError (e.g. a read-only or full disk). Both paths
    are resolved, as `follow` looks them up: a workspace reached through a link is found."""
    old, new = old.resolve(), new.resolve()
    path = record_path(old)
    body = {"workspace": str(new), "model": model,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "by": "memeflow reindex"}
    write_bytes(path, (json.dumps(body, indent=1) + "\n").encode())
    stale = record_path(new)
    if stale.exists():
        stale.unlink()
        fsync_path(stale.parent)
    return path


def read_move(workspace: Path) -> Move | None:
    """The move record of `workspace`, None when it did not move. WorkspaceError for a
    damaged record, naming it and the fix."""
    path = record_path(workspace)
    try:
        body = json.loads(path.read_text())
        return Move(workspace, Path(body["workspace"]), str(body["model"]), str(body.get("at")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WorkspaceError(f"{path} is damaged ({exc}): remove it to serve {workspace} "
                             "itself, or rewrite it") from exc


def same_model(a: str, b: str) -> bool:
    """Whether two model names mean the same model: folders compared as absolute paths."""

    def norm(name: str) -> str:
        folder = Path(name).expanduser()
        return os.path.abspath(folder) if folder.exists() else name

    return norm(a) == norm(b)


@dataclass(frozen=True)
class Served:
    """What `serve` is to run: the model (None: as configured) and workspace, the moves
    followed to get there (none: as given) and a line telling the user about them."""

    model: str | None
    workspace: Path
    moves: tuple[Move, ...] = ()
    note: str | None = None


def follow(workspace: Path, model: str | None) -> Served:
    """Where `serve` goes from `workspace` with `model` (None: no model named); see the
    module docstring. Raises WorkspaceError, one line naming the cause and the fix: another
    model named on a workspace that moved on, a record pointing at a workspace that is
    gone, records that make a loop."""
    workspace = workspace.resolve()  # as the indexer that wrote the record named it
    moves: list[Move] = []
    seen = {workspace}
    while (move := read_move(moves[-1].workspace if moves else workspace)) is not None:
        moves.append(move)
        if move.workspace in seen or len(moves) > MAX_MOVES:
            raise WorkspaceError(f"the move records from {workspace} make a loop at "
                                 f"{record_path(move.source)}: remove the wrong one")
        seen.add(move.workspace)
    if not moves:
        return Served(model, workspace)
    last, record = moves[-1], record_path(moves[-1].source)
    moved = (f"workspace {workspace} moved to {last.workspace} with model {last.model} "
             f"(`memeflow reindex`, {last.at})")
    if model is not None and not same_model(model, last.model):
        raise WorkspaceError(
            f"MEMEFLOW_MODEL (or --model) names {model}, but {moved}: unset it (or name "
            f"{last.model}) to serve the new index, or remove {record} to serve the old "
            f"index with {model}")
    if not last.workspace.is_dir():
        raise WorkspaceError(f"{moved}, which is gone: remove {record} to serve "
                             f"{last.source} itself")
    return Served(last.model, last.workspace, tuple(moves), f"{moved}: serving that")


def for_serve() -> Served:
    """`follow` from what this process's settings name: MEMEFLOW_WORKSPACE (else the default
    workspace) and MEMEFLOW_MODEL."""
    return follow(config.workspace(), config.configured_model())
