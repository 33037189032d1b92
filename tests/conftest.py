"""Shared test set-up: the no-weights CLIP model, real memes from ../shared, free ports,
a running service, and small HTTP helpers."""

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from memeflow.cli.exposure import free_port_run

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NO_WEIGHTS_MODEL = SHARED / "models" / "clip-vit-base-patch32-noweights"
MEMES = SHARED / "data" / "memes" / "templates"
# Analysis code lives beside the benchmarks and notebooks that use it: captions.py, hub_analysis.py.
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "notebooks")]

# Nothing in the tests may reach a model hub, and Jina must not phone home.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["JINA_OPTOUT_TELEMETRY"] = "1"
os.environ["MEMEFLOW_MODEL"] = str(NO_WEIGHTS_MODEL)
os.environ["MEMEFLOW_ALLOW_RANDOM_WEIGHTS"] = "1"
# Converted models (runtime openvino) go to a folder of this test run, not the user's cache;
# the services the tests start inherit it, so the model is converted once per run.
os.environ["MEMEFLOW_CACHE"] = tempfile.mkdtemp(prefix="memeflow-test-cache-")
atexit.register(shutil.rmtree, os.environ["MEMEFLOW_CACHE"], ignore_errors=True)
# A call whose answer is lost fails with a clear error well before pytest's own timeout.
os.environ.setdefault("MEMEFLOW_TIMEOUT", "240")
# Services compute in float32 whatever the CPU: tests compare their vectors with the model
# run here within 1e-5, and OpenVINO would pick bf16 on CPUs with AVX512_BF16 or AMX.
# The bf16 path has its own agreement tests (test_runtimes.py, which clears this).
os.environ.setdefault("MEMEFLOW_PRECISION", "f32")


def free_port() -> int:
    """A free port for a service a test starts, never one the kernel hands to outgoing
    connections (the gateway binds it seconds later, after the model loads)."""
    return free_port_run(1)


@pytest.fixture(scope="session")
def meme_files() -> list[Path]:
    files = sorted(p for p in MEMES.rglob("*") if p.suffix in {".jpg", ".png", ".gif"})
    assert len(files) == 260, f"expected the 260 shared meme images in {MEMES}"
    return files


@pytest.fixture(scope="session")
def clip_model():
    from memeflow.encoder.model import ClipModel

    return ClipModel(str(NO_WEIGHTS_MODEL), allow_random=True)


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment holds `marker` (inherited by every child)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                status = (proc / "status").read_text()
                if "\nState:\tZ" not in status:  # zombies hold no resources
                    found.append(int(proc.name))
        except OSError:
            continue
    return found


class Service:
    """`memeflow serve` in the background, as a user runs it, on free ports."""

    def __init__(self, workspace: Path, log: Path, serve_args: tuple[str, ...] = ()) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        self.marker = f"MEMEFLOW_TEST_RUN={uuid.uuid4().hex}"
        self.env = dict(
            os.environ,
            MEMEFLOW_WORKSPACE=str(workspace),
            MEMEFLOW_GRPC_PORT=str(self.grpc_port),
            MEMEFLOW_HTTP_PORT=str(self.http_port),
            MEMEFLOW_HOST=f"grpc://127.0.0.1:{self.grpc_port}",
        )
        key, value = self.marker.split("=")
        self.env[key] = value
        self.log_path = log
        self.serve_args = serve_args  # after `memeflow serve`, e.g. ("--watch", FOLDER)
        self.process: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 240) -> "Service":
        log = self.log_path.open("a")
        earlier = log.tell()  # a restart appends: only a new ready line counts (a byte offset:
        # the banner's emoji and box lines make it larger than the count of characters)
        self.process = subprocess.Popen(
            # --verbose: the whole log, start-up included, for the tests that read it.
            [str(Path(sys.executable).parent / "memeflow"), "--verbose", "serve",
             *self.serve_args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        )
        deadline = time.monotonic() + timeout
        while b"memeflow is ready" not in self.log_path.read_bytes()[earlier:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"memeflow serve did not start:\n{self.log_path.read_text()}")
            time.sleep(0.5)
        return self

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as a service manager sends it; returns the exit code."""
        assert self.process
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(Path(sys.executable).parent / "memeflow"), *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )


@contextlib.contextmanager
def serving(folder: Path, serve_args: tuple[str, ...] = (), **env: str) -> Iterator[Service]:
    """`memeflow serve SERVE_ARGS` with a fresh workspace in `folder` and `env` on top;
    stopped after."""
    running = Service(folder / "workspace", folder / "serve.log", serve_args)
    running.env.update(env)
    try:
        running.start()  # inside: a service that does not get ready in time is stopped too
        yield running
    finally:
        if running.process and running.process.poll() is None:
            running.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("service")) as running:
        yield running


def post_json(service: Service, endpoint: str, body: dict) -> dict:
    """What `curl -X POST -H 'Content-Type: application/json' -d BODY URL` does."""
    request = urllib.request.Request(
        f"{service.http}{endpoint}", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=120) as reply:
        return json.loads(reply.read())


def image_uri(path: Path) -> str:
    """An image file as the `data:` URI an HTTP client sends."""
    from memeflow.client import data_uri

    return data_uri(path.read_bytes(), "image/jpeg")


@contextlib.contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """A web server on a free loopback port (yielded) for as long as the block runs."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory) -> Iterator[str]:
    """The URI of a Milvus Lite gRPC server (tests/milvus_lite.py) for the whole session;
    each test uses a collection of its own (`milvus_collection_name`)."""
    from tests.milvus_lite import milvus_lite_server

    folder = tmp_path_factory.mktemp("milvus-lite")
    with milvus_lite_server(folder / "data", free_port(), folder / "server.log") as uri:
        yield uri


@pytest.fixture
def milvus_collection_name() -> str:
    """A collection name no other test uses (letters, digits and `_`, as Milvus wants)."""
    return f"t_{uuid.uuid4().hex}"
