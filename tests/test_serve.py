"""`memeflow serve` when the Flow cannot start: a clear message and a non-zero exit, fast."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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
                         timeout=150, check=False)
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
    # One line of cause after the progress lines: the Flow's log and tracebacks stay back.
    assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) <= 4, run.stderr
    assert "--verbose" in run.stderr
    # The last line names the cause, not just "see above": the encoder's own error.
    last = run.stderr.strip().splitlines()[-1]
    assert "could not start: encoder" in last and "could not load model" in last, last
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
        assert "Traceback" not in run.stderr, run.stderr
        assert f"holds vectors of {NO_WEIGHTS_MODEL} (512-d, random weights of seed 0)" in last
        assert described in last and "MEMEFLOW_WORKSPACE" in last, last
        # Another dimension is refused before the Flow starts; other weights of the same
        # architecture only once the encoder has loaded them, well before serving.
        assert seconds < (30 if seed == "0" else 120)


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
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    assert _child_env()["OPENBLAS_THREAD_TIMEOUT"] == "4"  # BLAS threads sleep, not spin
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "28")
    assert _child_env()["OPENBLAS_THREAD_TIMEOUT"] == "28"


def test_executor_ports_come_from_outside_the_ephemeral_range(monkeypatch) -> None:
    """Jina binds an executor's port seconds after choosing it; an outgoing connection
    given that port in between aborted the Flow (PortAlreadyUsed). Executors' ports come
    from where the kernel never hands out outgoing ones."""
    from memeflow.cli import exposure
    from memeflow.cli.serve import _child_env

    assert exposure.executor_port_range((32768, 60999)) == (61000, 65535)
    assert exposure.executor_port_range((40000, 65535)) == (1024, 39999)
    assert exposure.executor_port_range((1500, 65000)) is None  # no room: Jina's own choice
    assert exposure.executor_port_range(None) is None
    monkeypatch.delenv("JINA_RANDOM_PORT_MIN", raising=False)
    monkeypatch.delenv("JINA_RANDOM_PORT_MAX", raising=False)
    monkeypatch.setattr(exposure, "_ephemeral_range", lambda: (32768, 60999))
    env = _child_env()
    assert (env["JINA_RANDOM_PORT_MIN"], env["JINA_RANDOM_PORT_MAX"]) == ("61000", "65535")
    monkeypatch.setenv("JINA_RANDOM_PORT_MIN", "30000")  # the user's own choice stands
    env = _child_env()
    assert env["JINA_RANDOM_PORT_MIN"] == "30000" and "JINA_RANDOM_PORT_MAX" not in env


def demo(tmp_path: Path, folder: Path, model: str) -> subprocess.CompletedProcess:
    """The demo as a user with an index of their own runs it: MEMEFLOW_WORKSPACE and
    MEMEFLOW_HOST name the user's index and service, which the demo must leave alone."""
    env = dict(os.environ, MEMEFLOW_MODEL=model, MEMEFLOW_WORKSPACE=str(tmp_path / "my-index"),
               XDG_DATA_HOME=str(tmp_path / "data"),
               MEMEFLOW_GRPC_PORT=str(free_port()), MEMEFLOW_HTTP_PORT=str(free_port()),
               MEMEFLOW_HOST=f"grpc://127.0.0.1:{free_port()}",
               MEMEFLOW_TEST_RUN=f"demo-{tmp_path.name}")
    return subprocess.run([sys.executable, "-m", "memeflow.cli.demo", str(folder)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=400, check=False)


@pytest.mark.flow
def test_the_demo_serves_indexes_and_shows_searches(tmp_path) -> None:
    """`make demo`'s last step, on two template folders."""
    folder = tmp_path / "memes"
    for name in ("drake", "doge"):
        shutil.copytree(MEMES / name, folder / name)
    mine = tmp_path / "my-index"  # the user's index: not touched
    mine.mkdir()
    (mine / "memeflow.json").write_text('{"format": 3}')
    before = sorted(p.name for p in mine.iterdir())
    # The demo's workspace from an earlier run with a 256-d model: emptied, not refused.
    demo_workspace = tmp_path / "data" / "memeflow" / "demo"
    demo_workspace.mkdir(parents=True)
    (demo_workspace / "memeflow.json").write_text(json.dumps(
        {"format": 3, "model": {"name": "an-older-model", "dim": 256, "random_seed": None}}))
    run = demo(tmp_path, folder, str(NO_WEIGHTS_MODEL))
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in mine.iterdir()) == before
    assert (mine / "memeflow.json").read_text() == '{"format": 3}'
    assert (demo_workspace / "index.db").is_file()
    assert f"a workspace of its own, {demo_workspace}" in run.stdout
    assert f"emptying {demo_workspace}" in run.stdout
    assert f"memeflow serve --workspace {demo_workspace}" in run.stdout
    # Progress while the Flow starts, before the first result.
    steps = [line for line in run.stdout.splitlines() if line.startswith("memeflow: ")]
    assert any("encoder ready" in line for line in steps), run.stdout
    assert any("indexer ready" in line for line in steps), run.stdout
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


def test_a_busy_port_is_one_line_naming_it_and_the_flag(tmp_path) -> None:
    """Checked before the Flow starts: no Jina traceback, the port and how to change it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flags, named in ([["--port", str(port)], f"port {port} (gRPC)"],
                             [["--port", str(free_port()), "--http-port", str(port)],
                              f"port {port} (HTTP)"]):
            started = time.monotonic()
            run = subprocess.run([MEMEFLOW, "serve", *flags], capture_output=True, text=True,
                                 timeout=60, check=False,
                                 env=dict(os.environ, MEMEFLOW_WORKSPACE=str(tmp_path / "ws")))
            assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
            assert named in run.stderr and flags[-2] in run.stderr, run.stderr
            assert time.monotonic() - started < 30
    assert not (tmp_path / "ws").exists()


def test_a_missing_extra_names_the_pip_command(tmp_path, monkeypatch, capsys) -> None:
    from memeflow.cli.main import main

    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # as if not installed
    monkeypatch.setenv("MEMEFLOW_OCR", "1")
    for variable in ("WORKSPACE", "GRPC_PORT", "HTTP_PORT"):  # the flags set these: restore
        monkeypatch.setenv(f"MEMEFLOW_{variable}", "")
    assert main(["serve", "--workspace", str(tmp_path / "ws"), "--port", str(free_port())]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "MEMEFLOW_OCR=1" in error, error
    assert "pip install 'memeflow[ocr]'" in error


def hub_run(tmp_path: Path, **settings: str) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, MEMEFLOW_WORKSPACE=str(tmp_path / "ws"), HF_HOME=str(tmp_path / "hf"))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE"):
        env.pop(name, None)
    env.update(settings)
    started = time.monotonic()
    run = subprocess.run([MEMEFLOW, "serve", "--model", "memeflow-tests/no-such-model",
                          "--port", str(free_port())], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    return run, time.monotonic() - started


def test_a_model_the_hub_cannot_deliver_points_at_the_offline_recipe(tmp_path) -> None:
    """Without access to Hugging Face (or with HF_HUB_OFFLINE), a model that is not
    downloaded fails at once with the local-folder recipe, not after minutes of retries."""
    closed = free_port()  # nothing listens there
    for settings, cause in ([{"HF_ENDPOINT": f"http://127.0.0.1:{closed}"},
                             f"Hugging Face (http://127.0.0.1:{closed}) did not answer"],
                            [{"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"]):
        run, seconds = hub_run(tmp_path, **settings)
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert "memeflow-tests/no-such-model" in run.stderr and cause in run.stderr, run.stderr
        assert "MEMEFLOW_MODEL" in run.stderr and "#offline-and-local-models" in run.stderr
        assert seconds < 30


def test_a_downloaded_model_needs_no_hub(tmp_path) -> None:
    """A model in the Hugging Face cache starts offline (the encoder reads the cache)."""
    repo = tmp_path / "hf" / "hub" / "models--memeflow-tests--cached-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    code = ("from memeflow.cli.startup import check_hub_model; "
            "print(check_hub_model('memeflow-tests/cached-model'), "
            "check_hub_model('memeflow-tests/cached-model', timeout=0.1))")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HF_HUB_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0 and run.stdout.split() == ["False", "False"], run.stderr


@pytest.mark.parametrize("bind, page, grpc, note", [
    ("127.0.0.1", "http://127.0.0.1:52001/", "grpc://127.0.0.1:52000", ""),
    ("0.0.0.0", "http://localhost:52001/", "grpc://localhost:52000", "listening on 0.0.0.0"),
    ("::1", "http://[::1]:52001/", "grpc://[::1]:52000", ""),
])
def test_the_ready_line_names_the_page_and_the_bound_address(monkeypatch, bind, page, grpc,
                                                              note) -> None:
    from memeflow.cli.startup import ready_message

    monkeypatch.setenv("MEMEFLOW_BIND", bind)
    monkeypatch.setenv("MEMEFLOW_GRPC_PORT", "52000")
    monkeypatch.setenv("MEMEFLOW_HTTP_PORT", "52001")
    line = ready_message()
    assert line.startswith(f"memeflow is ready: {page} (search page), {grpc}"), line
    assert note in line and "--host " + grpc in line


@pytest.mark.flow
def test_serve_flags_progress_and_a_second_serve_on_the_same_port(tmp_path) -> None:
    """`memeflow serve --workspace --model --port --http-port`: progress lines while it starts,
    then the ready line with the page; none of Jina's start-up log or banner. A second serve
    on the same port is refused in one line."""
    grpc_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEMEFLOW_") or k == "MEMEFLOW_ALLOW_RANDOM_WEIGHTS"}
    env.update(MEMEFLOW_TEST_RUN=f"serve-flags-{tmp_path.name}")
    flags = ["--workspace", str(tmp_path / "ws"), "--model", str(NO_WEIGHTS_MODEL),
             "--port", str(grpc_port), "--http-port", str(http_port)]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        first = subprocess.Popen([MEMEFLOW, "serve", *flags], env=env, stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while "memeflow is ready" not in log.read_text():
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        time.sleep(0.5)
        lines = log.read_text().splitlines()
        assert lines[0] == (f"memeflow: starting: model {NO_WEIGHTS_MODEL}, "
                            f"workspace {tmp_path / 'ws'}"), lines
        assert lines[1] == "memeflow: loading the model ...", lines
        steps = sorted(lines[2:4])
        assert steps[0].startswith(f"memeflow: encoder ready: {NO_WEIGHTS_MODEL} (512-d, random "
                                   "weights of seed 0)") and "no meaning" in steps[0], lines
        assert steps[1] == "memeflow: indexer ready: 0 documents", lines
        assert lines[4].startswith(f"memeflow is ready: http://127.0.0.1:{http_port}/ (search "
                                   f"page), grpc://127.0.0.1:{grpc_port}"), lines
        assert len(lines) == 5, lines  # nothing of Jina's (its banner's private address)
        assert (tmp_path / "ws" / "index.db").is_file()
        status = subprocess.run([MEMEFLOW, "--host", f"grpc://127.0.0.1:{grpc_port}", "status",
                                 "--json"], env=env, capture_output=True, text=True, timeout=120)
        assert json.loads(status.stdout)["workspace"] == str(tmp_path / "ws"), status.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=60) as page:
            assert page.status == 200
        second = subprocess.run([MEMEFLOW, "serve", "--port", str(grpc_port)], env=env,
                                capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f"port {grpc_port} (gRPC) on 127.0.0.1 is in use" in second.stderr
        assert "--port N or MEMEFLOW_GRPC_PORT" in second.stderr
    finally:
        first.terminate()
        assert first.wait(60) == 0


def test_a_port_taken_after_the_check_is_named_by_the_flow_process(tmp_path) -> None:
    """The Flow's own process (what `memeflow serve` runs after its checks) names a port
    taken in between, in the line the supervisor reports, rather than a traceback."""
    from memeflow.cli.serve import default_flow_file

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(os.environ, MEMEFLOW_GRPC_PORT=str(port), MEMEFLOW_HTTP_PORT=str(free_port()),
                   MEMEFLOW_WORKSPACE=str(tmp_path / "ws"))
        run = subprocess.run([sys.executable, "-m", "memeflow.cli.serve",
                              str(default_flow_file())], env=env, capture_output=True,
                             text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.strip().splitlines()[-1] == (
        f"memeflow cannot start: port {port} (gRPC) on 127.0.0.1 is in use, perhaps by another "
        "`memeflow serve`: stop that, or choose another port with --port N or MEMEFLOW_GRPC_PORT")
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
