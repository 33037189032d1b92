"""`memeflow serve` when the Flow cannot start: a clear message and a non-zero exit, fast."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import NO_WEIGHTS_MODEL, free_port, processes_with

MEMEFLOW = str(Path(sys.executable).parent / "memeflow")


def serve(tmp_path: Path, model: str, marker: str) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, MEMEFLOW_MODEL=model, MEMEFLOW_WORKSPACE=str(tmp_path / "ws"),
               MEMEFLOW_GRPC_PORT=str(free_port()), MEMEFLOW_HTTP_PORT=str(free_port()),
               MEMEFLOW_TEST_RUN=marker)
    started = time.monotonic()
    run = subprocess.run([MEMEFLOW, "serve"], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    return run, time.monotonic() - started


def test_missing_model_folder_exits_at_once(tmp_path) -> None:
    run, seconds = serve(tmp_path, "/no/such/model", "missing-model")
    assert run.returncode != 0
    assert "model folder /no/such/model does not exist" in run.stderr
    assert seconds < 30


def test_folder_without_weights_needs_the_opt_in(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MEMEFLOW_ALLOW_RANDOM_WEIGHTS")
    run, _ = serve(tmp_path, str(NO_WEIGHTS_MODEL), "no-weights")
    assert run.returncode != 0
    assert "MEMEFLOW_ALLOW_RANDOM_WEIGHTS=1" in run.stderr


@pytest.mark.flow
def test_executor_that_fails_to_start_does_not_hang_the_flow(tmp_path) -> None:
    """A model folder that passes the quick check but breaks inside the encoder."""
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        (broken / name).write_bytes((NO_WEIGHTS_MODEL / name).read_bytes())
    run, seconds = serve(tmp_path, str(broken), "broken-model-run")
    assert run.returncode != 0, run.stdout
    assert "could not start" in run.stderr
    assert seconds < 30
    time.sleep(1)
    assert processes_with("MEMEFLOW_TEST_RUN=broken-model-run") == []


@pytest.mark.flow
def test_plain_jina_flow_serves_the_same_flow(tmp_path) -> None:
    """`jina flow --uses flow.yml` works too (on flow.yml's own ports, 51000 and 51001)."""
    from memeflow.client import MemeClient
    from tests.conftest import REPO

    env = dict(os.environ, MEMEFLOW_WORKSPACE=str(tmp_path / "ws"), MEMEFLOW_TEST_RUN="jina-flow")
    log = tmp_path / "flow.log"
    with log.open("w") as out:
        flow = subprocess.Popen([str(Path(sys.executable).parent / "jina"), "flow", "--uses",
                                 "flow.yml"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Flow is ready to serve" not in log.read_text():
            assert flow.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        client = MemeClient("grpc://127.0.0.1:51000")
        assert client.count() == 0
        assert len(client.search_text("anything")) == 0
    finally:
        os.killpg(flow.pid, signal.SIGINT)
        flow.wait(30)


def test_flow_threads_wait_passively_unless_the_user_chose(monkeypatch) -> None:
    from memeflow.service import _child_env

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert _child_env()["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert _child_env()["OMP_WAIT_POLICY"] == "ACTIVE"
