"""Milvus Lite's local gRPC server (`milvus-lite server`, from the milvus-lite package) for
the tests of the Milvus backend: the real client talks to it over the network, as to
Milvus Standalone. One server per test session; each test names its own collection."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

MILVUS_LITE = Path(sys.executable).parent / "milvus-lite"


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def milvus_lite_server(data_dir: Path, port: int, log: Path, timeout: float = 60
                       ) -> Iterator[str]:
    """Starts the server on 127.0.0.1:`port` with its data in `data_dir`; yields its URI.
    Stopped after with SIGTERM, then SIGKILL if it lingers (it may ignore SIGINT)."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(MILVUS_LITE), "server", "--data-dir", str(data_dir), "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    try:
        deadline = time.monotonic() + timeout
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"milvus-lite server did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def stop(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM to the server's process group, SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(grace)
