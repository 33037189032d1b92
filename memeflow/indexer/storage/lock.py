"""One process per workspace: an exclusive lock on the folder for the store's life."""

import fcntl
import os
from pathlib import Path
from typing import Any

LOCK = "index.lock"


class WorkspaceInUseError(RuntimeError):
    """Another process has the workspace open: one store per workspace at a time."""


def lock(folder: Path) -> Any:
    """The open lock file of `folder`, held until it is closed: two processes writing one
    database would number new rows alike and overwrite each other's. Raises
    WorkspaceInUseError naming the holder and the fix."""
    handle = open(folder / LOCK, "a+")  # noqa: SIM115  # held until the caller closes it
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
