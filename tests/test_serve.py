"""`memeflow serve` when the Flow cannot start: a clear message and a non-zero exit, fast."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MEMES, NO_WEIGHTS_MODEL, Service, free_port, processes_with

MEMEFLOW = str(Path(sys.executable).parent / "memeflow")


def serve(tmp_path: Path, model: str, marker: str, **settings: str
          ) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, MEMEFLOW_MODEL=model, MEMEFLOW_WORKSPACE=str(tmp_path / "ws"),
               MEMEFLOW_GRPC_PORT=str(free_port()), MEMEFLOW_HTTP_PORT=str(free_port()),
               MEMEFLOW_TEST_RUN=marker)
    env.update(settings)
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


def test_a_workspace_of_a_newer_memeflow_is_refused_at_once(tmp_path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "memeflow.json").write_text('{"format": 99}')
    run, seconds = serve(tmp_path, str(NO_WEIGHTS_MODEL), "newer-workspace")
    assert run.returncode != 0
    assert f"workspace {tmp_path / 'ws'} was written by a newer memeflow" in run.stderr
    assert seconds < 30


def test_bad_device_and_precision_settings_exit_at_once(tmp_path) -> None:
    import torch

    run, seconds = serve(tmp_path, str(NO_WEIGHTS_MODEL), "bad-precision",
                         MEMEFLOW_PRECISION="fp8")
    assert run.returncode != 0 and "unknown precision 'fp8'" in run.stderr and seconds < 30
    if not torch.cuda.is_available():
        run, seconds = serve(tmp_path, str(NO_WEIGHTS_MODEL), "no-cuda", MEMEFLOW_DEVICE="cuda")
        assert run.returncode != 0 and seconds < 30
        assert "torch sees no CUDA GPU" in run.stderr and "MEMEFLOW_DEVICE=cpu" in run.stderr


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
    # The last line names the cause, not just "see above": the encoder's own error.
    last = run.stderr.strip().splitlines()[-1]
    assert "could not start: encoder" in last and "could not load CLIP model" in last, last
    assert seconds < 30
    time.sleep(1)
    assert processes_with("MEMEFLOW_TEST_RUN=broken-model-run") == []


@pytest.mark.flow
def test_a_workspace_refuses_a_model_other_than_its_vectors(tmp_path) -> None:
    """Restarting on a workspace with another model (another dimension, or the same one with
    other weights) exits at once naming both models, instead of failing every search or
    mixing the vectors of two models."""
    first = Service(tmp_path / "ws", tmp_path / "serve.log").start()
    try:
        indexed = first.cli("index", str(next(MEMES.rglob("*.jpg"))))
        assert indexed.returncode == 0, indexed.stderr
    finally:
        assert first.stop() == 0
    smaller = tmp_path / "clip-256"
    shutil.copytree(NO_WEIGHTS_MODEL, smaller)
    settings = json.loads((smaller / "config.json").read_text())
    settings["projection_dim"] = 256
    for tower in ("text_config", "vision_config"):
        settings[tower]["projection_dim"] = 256
    (smaller / "config.json").write_text(json.dumps(settings))
    for model, seed, described in [(str(smaller), "0", f"{smaller} (256-d"),
                                   (str(NO_WEIGHTS_MODEL), "1", "512-d, random weights of seed 1")]:
        run, seconds = serve(tmp_path, model, f"other-model-{seed}", MEMEFLOW_RANDOM_SEED=seed)
        assert run.returncode != 0, run.stdout
        last = run.stderr.strip().splitlines()[-1]
        assert f"holds vectors of {NO_WEIGHTS_MODEL} (512-d, random weights of seed 0)" in last
        assert described in last and "MEMEFLOW_WORKSPACE" in last, last
        assert seconds < 30


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
    from memeflow.cli.serve import _child_env

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert _child_env()["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert _child_env()["OMP_WAIT_POLICY"] == "ACTIVE"


def demo(tmp_path: Path, folder: Path, model: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MEMEFLOW_MODEL=model, MEMEFLOW_WORKSPACE=str(tmp_path / "ws"),
               MEMEFLOW_GRPC_PORT=str(free_port()), MEMEFLOW_HTTP_PORT=str(free_port()),
               MEMEFLOW_HOST="", MEMEFLOW_TEST_RUN=f"demo-{tmp_path.name}")
    env["MEMEFLOW_HOST"] = f"grpc://127.0.0.1:{env['MEMEFLOW_GRPC_PORT']}"
    return subprocess.run([sys.executable, "-m", "memeflow.cli.demo", str(folder)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=400, check=False)


@pytest.mark.flow
def test_the_demo_serves_indexes_and_shows_searches(tmp_path) -> None:
    """`make demo`'s last step, on two template folders."""
    folder = tmp_path / "memes"
    for name in ("drake", "doge"):
        shutil.copytree(MEMES / name, folder / name)
    run = demo(tmp_path, folder, str(NO_WEIGHTS_MODEL))
    assert run.returncode == 0, run.stderr[-2000:]
    assert '\nsearch "drake rejecting something":\n  1 ' in run.stdout
    example = run.stdout.split("\nsearch by example ")[1].splitlines()
    assert example[1].split()[:2] == ["1", "1.0000"] and example[1].endswith(example[0][:-1])
    assert (tmp_path / "memeflow-demo.log").read_text().count("memeflow is ready") == 1


@pytest.mark.flow
@pytest.mark.parametrize("model", ["/no/such/model", "broken"])
def test_the_demo_names_why_the_flow_did_not_start(tmp_path, model: str) -> None:
    if model == "broken":
        model = str(tmp_path / "broken-model")
        Path(model).mkdir()
        (Path(model) / "config.json").write_text("{ not json")
    run = demo(tmp_path, MEMES / "drake", model)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "model" in run.stderr.splitlines()[0] and "memeflow-demo.log" in run.stderr


def _bindable(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.flow
def test_the_flow_dies_with_its_supervisor_however_it_dies(tmp_path) -> None:
    """kill -9 of `memeflow serve` (the OOM killer, `timeout -s KILL`): before, the Flow
    kept serving, orphaned, and the next serve failed with PortAlreadyUsed."""
    running = Service(tmp_path / "ws", tmp_path / "serve.log")
    running.env["MEMEFLOW_RUNTIME"] = "torch"  # no model conversion: this is about processes
    try:
        running.start(timeout=600)
        _kill_the_supervisor(running, tmp_path)
    finally:
        for pid in processes_with(running.marker):
            os.kill(pid, signal.SIGKILL)


def _kill_the_supervisor(running: Service, tmp_path: Path) -> None:
    from memeflow.cli.leftovers import lock_holder

    assert running.cli("count").stdout.strip() == "0"
    family = processes_with(running.marker)
    assert running.process and running.process.pid in family
    assert len(family) >= 4  # supervisor, Flow, gateway, encoder, indexer
    killed = time.monotonic()
    running.process.send_signal(signal.SIGKILL)
    running.process.wait(10)
    deadline = killed + 60
    while (left := processes_with(running.marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"still running after the supervisor's death: {left}"
    print(f"{len(family) - 1} Flow processes gone {time.monotonic() - killed:.1f} s after "
          "kill -9 of memeflow serve")
    assert _bindable(running.grpc_port) and _bindable(running.http_port)
    assert lock_holder(tmp_path / "ws") is None
    assert running.cli("count").returncode == 3  # nobody answers


LOOKALIKE = """
import fcntl, os, socket, sys, time
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
lock = open(sys.argv[2], "a+")
fcntl.flock(lock, fcntl.LOCK_EX)
lock.truncate(0)
lock.write(f"process {os.getpid()}\\n")
lock.flush()
print("holding", flush=True)
time.sleep(300)
"""


def test_serve_names_a_leftover_flow_of_a_dead_serve(tmp_path) -> None:
    """A process of a Flow whose `memeflow serve` is gone (as an older memeflow left them)
    holds the port or the workspace: serve says so in one line, with the command to stop
    it, instead of Jina's PortAlreadyUsed or WorkspaceInUseError."""
    from memeflow.cli.leftovers import SUPERVISOR_ENV, find_leftover

    (tmp_path / "ws").mkdir()
    port = free_port()
    for supervisor, holds_port in (("999999999", True), ("999999999", False), (None, True)):
        env = dict(os.environ, **{SUPERVISOR_ENV: supervisor or str(os.getpid())})
        lookalike = subprocess.Popen(  # its command line names the Flow's module, as a Flow's
            [sys.executable, "-c", LOOKALIKE, str(port if holds_port else free_port()),
             str(tmp_path / "ws" / "index.lock"), "memeflow.cli.serve"],
            env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            assert lookalike.stdout and lookalike.stdout.readline() == "holding\n"
            if supervisor is None:  # its parent is the supervisor it names: alive
                assert find_leftover([port], tmp_path / "ws") is None
                continue
            run, seconds = serve(tmp_path, str(NO_WEIGHTS_MODEL), "leftover",
                                 MEMEFLOW_GRPC_PORT=str(port))
            assert run.returncode == 2 and seconds < 30
            assert run.stderr.count("\n") == 1, run.stderr
            held = f"port {port} is" if holds_port else f"the workspace {tmp_path / 'ws'} is"
            assert run.stderr.startswith(
                f"memeflow: cannot start: {held} held by a Flow left running by a `memeflow "
                f"serve` that was killed (process group {lookalike.pid}): stop it with "
                f"`kill -- -{lookalike.pid}`, then start again"), run.stderr
        finally:
            lookalike.kill()
            lookalike.wait()
