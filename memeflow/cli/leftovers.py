"""What a `memeflow serve` that died without stopping its Flow may have left running.

A Flow started by this memeflow stops when its supervisor dies (`memeflow.cli.serve`:
the lifeline pipe). One started by an older memeflow, or one whose supervisor and Flow
process were both killed while the executors lived on, keeps the ports and the
workspace's lock, and a new `memeflow serve` would fail deep inside Jina
(`PortAlreadyUsed`, `WorkspaceInUseError`). Before starting, `serve` asks here who holds
its ports and its workspace's lock; a holder that is a memeflow Flow whose supervisor is
gone is named, with the command that stops it, in one line.

Linux only (it reads /proc); elsewhere nothing is found and Jina's own error stands.
"""

import contextlib
import fcntl
import os
from pathlib import Path

from memeflow.indexer.storage.lock import LOCK as LOCK_FILE  # in the workspace or a shard's

FLOW_MODULE = "memeflow.cli.serve"  # the Flow process runs `python -m` this module
SUPERVISOR_ENV = "MEMEFLOW_SUPERVISOR_PID"  # set by serve in the Flow's environment
PROC = Path("/proc")
LISTEN = "0A"  # the TCP state column of /proc/net/tcp


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on `port` (IPv4 and IPv6)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == LISTEN and \
                        int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def port_holders(port: int) -> set[int]:
    """Pids of this user's processes with a socket listening on `port`."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    holders: set[int] = set()
    if not wanted:
        return holders
    for proc in PROC.iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        holders.add(int(proc.name))
                        break
    return holders


def lock_holder(workspace: Path) -> int | None:
    """The pid recorded in a workspace's index lock when a live process holds the lock."""
    for lock in [workspace / LOCK_FILE, *workspace.glob(f"shard-*/{LOCK_FILE}")]:
        try:
            handle = lock.open("r")
        except OSError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # held: by whom?
                words = handle.read().split()
                if len(words) == 2 and words[1].isdigit():
                    return int(words[1])
                continue
            fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def orphan_group(pid: int) -> int | None:
    """The process group of `pid` when it is a memeflow Flow whose supervisor is gone."""
    try:
        group = os.getpgid(pid)
    except OSError:
        return None
    leader = PROC / str(group)
    command = _read(leader / "cmdline")
    if not command:  # the Flow process itself was killed; its executors lived on
        return group if _started_by_a_flow(pid) else None
    if FLOW_MODULE.encode() not in command:
        return None
    environ = dict(item.split(b"=", 1) for item in _read(leader / "environ").split(b"\0")
                   if b"=" in item)
    supervisor = environ.get(SUPERVISOR_ENV.encode(), b"").decode()
    status = _read(leader / "status").decode(errors="replace")
    parent = next((line.split()[1] for line in status.splitlines()
                   if line.startswith("PPid:")), "")
    if supervisor:
        return None if parent == supervisor else group
    return group if parent == "1" else None  # a Flow of an older memeflow


def _started_by_a_flow(pid: int) -> bool:
    """A process started by a Flow carries the Flow's environment, with its marker."""
    return SUPERVISOR_ENV.encode() + b"=" in _read(PROC / str(pid) / "environ")


def find_leftover(ports: list[int], workspace: Path) -> str | None:
    """One line naming a dead `memeflow serve`'s Flow that holds one of `ports` or the
    workspace, and how to stop it; None when there is none."""
    for port in ports:
        for pid in sorted(port_holders(port)):
            if (group := orphan_group(pid)) is not None:
                return (f"port {port} is held by a Flow left running by a `memeflow serve` "
                        f"that was killed (process group {group}): stop it with "
                        f"`kill -- -{group}`, then start again")
    locker = lock_holder(workspace)
    if locker is not None and (group := orphan_group(locker)) is not None:
        return (f"the workspace {workspace} is held by a Flow left running by a `memeflow "
                f"serve` that was killed (process group {group}): stop it with "
                f"`kill -- -{group}`, then start again")
    return None
