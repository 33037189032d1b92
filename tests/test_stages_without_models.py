"""The indexer, the shard merger and the gateway run where torch and transformers cannot be
imported: only the encoder runs a model, so only its image needs them.

Each stage starts from its own config, as its container runs it (`jina executor --uses
executors/NAME/config.yml`, `jina gateway --uses memeflow/gateway/config.yml`), in a
process whose `sitecustomize` makes importing torch or transformers fail.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.flow

JINA = str(Path(sys.executable).parent / "jina")
BLOCKER = '''
import importlib.abc
import sys


class _NoModelLibraries(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "openvino"):
            raise ImportError(f"{name} is not installed here")
        return None


sys.meta_path.insert(0, _NoModelLibraries())
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that cannot import torch or transformers."""
    site = tmp_path_factory.mktemp("no-models")
    (site / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join([str(site), str(REPO), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path.rstrip(os.pathsep), JINA_OPTOUT_TELEMETRY="1",
                MEMEFLOW_WORKSPACE=str(tmp_path_factory.mktemp("workspace")))


def test_the_blocker_blocks(env) -> None:
    """Without this the other tests would prove nothing."""
    run = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True,
                         text=True, check=False)
    assert run.returncode != 0 and "torch is not installed here" in run.stderr


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], log: Path, ready: str) -> Iterator[None]:
    """A Jina process started as a container would start it, stopped after the block."""
    with log.open("w") as out:
        process = subprocess.Popen([JINA, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=REPO, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while ready not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.3)
        yield
    finally:  # the whole group: `jina executor` runs the executor in a process of its own
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def executor(config: str, port: int, env: dict[str, str], log: Path):
    return running(["executor", "--uses", config, "--port", str(port)], env, log,
                   f"start server bound to 0.0.0.0:{port}")


def test_the_merger_starts_without_model_libraries(env, tmp_path) -> None:
    with executor("executors/shard_merger/config.yml", free_port(), env, tmp_path / "log"):
        pass
    assert "Traceback" not in (tmp_path / "log").read_text(errors="replace")


def test_gateway_and_indexer_serve_without_model_libraries(env, tmp_path) -> None:
    """Documents that bring their own vectors go through the gateway into the indexer and
    are found again: both stages work without torch."""
    from memeflow.client import MemeClient
    from memeflow.documents import MemeDoc

    indexer_port, grpc_port, http_port = free_port(), free_port(), free_port()
    graph = '{"start-gateway": ["indexer"], "indexer": ["end-gateway"]}'
    gateway = ["gateway", "--uses", "memeflow/gateway/config.yml",
               "--graph-description", graph,
               "--deployments-addresses", f'{{"indexer": ["127.0.0.1:{indexer_port}"]}}',
               "--protocol", "grpc", "http", "--port", str(grpc_port), str(http_port)]
    with executor("executors/meme_indexer/config.yml", indexer_port, env, tmp_path / "indexer"), \
            running(gateway, env, tmp_path / "gateway", "start server bound to 0.0.0.0"):
        client = MemeClient(f"grpc://127.0.0.1:{grpc_port}")
        vectors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.8, 0.0]]
        docs = [MemeDoc(id=f"v{i}", uri=f"/memes/{i}.png", embedding=np.array(v))
                for i, v in enumerate(vectors)]
        assert all(doc.error is None for doc in client.upsert(docs))
        assert client.count() == 3
        hits = client.search(MemeDoc(embedding=np.array([0.0, 1.0, 0.0])), top_k=2)
        assert [hit["id"] for hit in hits] == ["v1", "v2"]
    for name in ("indexer", "gateway"):
        assert "Traceback" not in (tmp_path / name).read_text(errors="replace"), name
