"""Starting and stopping the Flow: `memeflow serve`, and a handle for tests and notebooks.

The Flow runs in a child process group watched by a light parent. The parent checks the
settings before anything starts (`memeflow.cli.startup`), prints progress lines while the
Flow starts and the Flow's log once it is ready (all of it with --verbose), names the
cause of a failed start in one line, and stops every process of the group on Ctrl-C or
SIGTERM. It also guards against a Jina 3.34 hang: with gRPC
and HTTP served together, an executor that fails to start leaves the Flow "aborted" but
never exiting, so the parent kills the group as soon as the log says so.

The Flow dies with its parent, however the parent dies (`kill -9`, the OOM killer,
`timeout -s KILL`): the parent holds the write end of a pipe, the lifeline, whose read
end the Flow process watches; when the parent is gone the kernel closes it, the read
returns end-of-file, and the Flow stops its whole group as Ctrl-C would (SIGINT), then
SIGKILL after STOP_GRACE_SECONDS. A pipe rather than Linux's parent-death signal: that
signal follows the parent *thread* that started the child (a notebook's or a test's
worker thread ending would stop the Flow), and a pipe works on every POSIX system. If the
Flow process alone dies, the parent stops what is left of its group. Before starting,
a Flow left running by a dead parent of an older memeflow is recognised by the ports or
the workspace it holds (`memeflow.cli.leftovers`).
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import yaml

from memeflow import config
from memeflow.cli import exposure, leftovers, startup
from memeflow.cli.startup import READY_LINE, StartError
from memeflow.encoder.hardware import check_settings
from memeflow.encoder.identity import preflight_model
from memeflow.encoder.source import ModelLoadError, check_model_source, has_weights
from memeflow.model_record import model_record
from memeflow.moved_workspace import for_serve
from memeflow.uris import terminal_safe
from memeflow.workspace import WorkspaceError

if TYPE_CHECKING:
    from memeflow.client.watch import Settings

LIFELINE_ENV = "MEMEFLOW_LIFELINE_FD"  # the Flow process's read end of the lifeline
ABORTED = "Flow is aborted"
# The gateway polls executors that are still loading their model; Jina's log wraps each
# failed poll over several lines, the first and the last of which say so.
STARTUP_NOISE = ("Getting endpoints failed", "Waiting for another trial")
STOP_GRACE_SECONDS = 20


class ServiceError(RuntimeError):
    """The service could not start; the message says why."""


class FirstError:
    """The first ERROR record of the Flow's log, its wrapped lines joined: what to tell a
    user whose Flow did not start, instead of pointing at a long log."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.done = False

    def feed(self, line: str) -> None:
        if self.done:
            return
        text = re.sub(r"\s*\[\d\d/\d\d/\d\d \d\d:\d\d:\d\d\]\s*$", "", line).strip()
        if not self.lines:
            if line.startswith("ERROR"):
                self.lines.append(text.removeprefix("ERROR").strip())
        elif line[:1].isspace() and text and "--quiet-error" not in text:
            self.lines.append(text)
        else:
            self.done = True

    @property
    def message(self) -> str | None:
        joined = " ".join(self.lines)
        return joined[:1500] if joined else None


FLOW_FILE = Path(__file__).resolve().parents[1] / "flow.yml"  # package data, in the wheel too


def default_flow_file() -> Path:
    """The Flow shipped inside the package (the checkout's flow.yml links to it)."""
    return FLOW_FILE


def _flow_config(flow_file: Path) -> dict:
    """The Flow YAML with the ports from the environment (YAML has no defaulting syntax)."""
    flow = yaml.safe_load(flow_file.read_text())
    flow.setdefault("with", {})["port"] = [config.grpc_port(), config.http_port()]
    return exposure.expose(flow)


def run_flow(flow_file: Path) -> None:
    """Child side: build the Flow and serve until interrupted."""
    import jina.orchestrate.orchestrator as orchestrator
    from jina import Flow
    from jina.excepts import PortAlreadyUsed

    _watch_lifeline()
    # The ready banner looks up the public IP on three web services; never ask them.
    orchestrator.get_public_ip = lambda *args, **kwargs: None
    exposure.metrics_on_loopback()
    exposure.metrics_collect_fix()
    # Paths in the shipped Flow are relative to the folder holding the package; in one of
    # the user's own, relative to that file.
    os.chdir(flow_file.parent.parent if flow_file == FLOW_FILE else flow_file.parent)
    # Jina's banner lists a private address the gateway does not listen on (it binds
    # MEMEFLOW_BIND); the ready line below says where it does.
    Flow._get_summary_table = lambda self, all_panels: None
    try:
        with Flow.load_config(_flow_config(flow_file)) as flow:
            print(startup.ready_message(), flush=True)
            flow.block()
    except PortAlreadyUsed:  # taken since the supervisor's check: say which, and exit
        try:
            startup.check_ports()
        except StartError as exc:
            print(f"{startup.CAUSE_PREFIX}{exc}", flush=True)
            sys.exit(1)
        raise


def _watch_lifeline() -> None:
    """Flow side: stop the whole process group when the parent's end of the lifeline closes
    (see the module docstring). Started before Jina, so no executor holds the variable."""
    fd = os.environ.pop(LIFELINE_ENV, "")
    if not fd.isdigit():
        return  # started by hand (`python -m memeflow.cli.serve`): no parent to follow

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(int(fd), 1):
                pass
        group = os.getpgrp()
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGINT)  # Jina's clean shutdown, as Ctrl-C
        time.sleep(STOP_GRACE_SECONDS)
        os.killpg(group, signal.SIGKILL)  # still here: Jina hung on the way out

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def preflight() -> bool:
    """Refuse a setting that cannot work before spending seconds on Jina start-up: a busy
    port, a missing extra, a bad model source or one the Hub cannot deliver, or a model
    the workspace's vectors cannot come from (its dimension or its random weights differ;
    the encoder compares the weights themselves at start). Returns whether the model is
    to be downloaded. Raises StartError, ModelLoadError, WorkspaceError."""
    startup.check_ports()
    startup.check_extras(config.ocr_enabled(), config.runtime("auto"))
    name = config.model_name()
    folder = check_model_source(name, config.allow_random_weights())
    downloading = folder is None and startup.check_hub_model(name)
    if folder is not None:
        # As the encoder names it: serve passes it the absolute path, links kept as the
        # user reached them (as memeflow keeps file paths).
        folder = Path(os.path.abspath(folder))
        name = str(folder)
    random = folder is not None and not has_weights(folder)
    try:  # the workspace's memeflow.json, or a Milvus server's record (memeflow.model_record)
        record = model_record(config.workspace(), config.index(), config.collection_name())
    except ConnectionError as exc:  # the indexer would fail on it seconds later
        raise StartError(str(exc)) from None
    try:
        preflight_model(record, name, folder, config.random_seed() if random else None)
    finally:
        record.close()
    check_settings(config.device(), config.precision())
    return downloading


def _child_env() -> dict[str, str]:
    """Paths the user gave relative to their folder stay right after the child's chdir."""
    env = dict(
        os.environ,
        JINA_OPTOUT_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
        COLUMNS="200",  # one log record per line, so the parent can read it
        # pydantic's notes about Jina's v1-style models are for Jina's developers.
        PYTHONWARNINGS="ignore::UserWarning:pydantic._internal._config",
    )
    model = config.configured_model()
    if model and Path(model).expanduser().exists():
        env["MEMEFLOW_MODEL"] = os.path.abspath(Path(model).expanduser())
    env["MEMEFLOW_WORKSPACE"] = str(config.workspace())
    # OpenMP threads spin while waiting for work; with the gateway and executors sharing
    # a few cores that spinning starves the others (a text query went from ~50 ms to
    # ~860 ms on 2 busy cores). Passive waiting costs nothing measurable when idle.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # numpy's OpenBLAS keeps its worker threads spinning for 2^28 cycles (~0.1 s) after each
    # call: the indexer's search then held a core while the encoder ran the next text
    # tower. 2^4 cycles, its minimum, lets them sleep: a new text query over HTTP went from
    # 30 to 25 ms p50, the indexer's CPU per query from 36 to 6 ms (three runs of each in
    # turns, BENCHMARKS.md).
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    env.update(exposure.child_env())
    env[leftovers.SUPERVISOR_ENV] = str(os.getpid())  # how a leftover is told from a live one
    return env


@contextlib.contextmanager
def _environment(overrides: dict[str, str]) -> Iterator[None]:
    """os.environ with `overrides`, restored after (the settings are read from it)."""
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class FlowProcess:
    """The Flow's process group, started in the background; also a context manager."""

    def __init__(self, flow_file: Path | None = None, log: IO[str] | None = None,
                 progress: Callable[[str], None] | None = None, quiet_start: bool = False,
                 env: dict[str, str] | None = None) -> None:
        """`log` gets the Flow's log (default stderr); `progress`, if given, one line per
        step of the start ("encoder ready: ..."); `quiet_start` keeps the log's lines back
        until the Flow is ready (the progress lines and the failure's cause say enough).
        `env`: MEMEFLOW_* settings for this Flow only, in place of this process's (a second
        Flow beside a serving one: `memeflow reindex`)."""
        self.env = env or {}
        self.flow_file = (flow_file or default_flow_file()).resolve()
        self.log = log if log is not None else sys.stderr
        self.progress = progress
        self.quiet_start = quiet_start
        self.ready = threading.Event()
        self.aborted = threading.Event()
        self.first_error = FirstError()
        self.startup = startup.StartupLog()
        self.process: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None
        self._lifeline: int | None = None  # the write end, held while the Flow runs

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    def start(self) -> "FlowProcess":
        with _environment(self.env):
            leftover = leftovers.find_leftover([config.grpc_port(), config.http_port()],
                                               config.workspace())
            if leftover is not None:
                raise ServiceError(leftover)
            try:
                downloading = preflight()
            except (WorkspaceError, StartError) as exc:  # a ServiceError, which the demo
                raise ServiceError(str(exc)) from exc  # reports
            model = config.model_name()
            self._say(f"starting: model {model}, workspace {config.workspace()}")
            self._say(f"downloading {model} from Hugging Face (once) and loading it ..."
                      if downloading else "loading the model ...")
            env = _child_env()
        read_end, self._lifeline = os.pipe()  # neither is inherited by other children
        env[LIFELINE_ENV] = str(read_end)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", leftovers.FLOW_MODULE, str(self.flow_file)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # its own process group: one signal reaches every process
                pass_fds=(read_end,),
            )
        except BaseException:
            os.close(self._lifeline)
            self._lifeline = None
            raise
        finally:
            os.close(read_end)
        self.reader = threading.Thread(target=self._watch_output, daemon=True)
        self.reader.start()
        return self

    def _watch_output(self) -> None:
        assert self.process and self.process.stdout
        for line in self.process.stdout:
            starting = not self.ready.is_set()
            if starting and any(noise in line for noise in STARTUP_NOISE):
                continue
            # A log line may quote what a client sent: it must not drive the terminal.
            line = terminal_safe(line.rstrip("\n")) + "\n"
            if starting:
                self.first_error.feed(line)
                for message in self.startup.feed(line):
                    self._say(message)
            if not (starting and self.quiet_start) or line.startswith(READY_LINE):
                self.log.write(line)
                self.log.flush()
            if line.startswith(READY_LINE):
                self.ready.set()
            elif ABORTED in line:
                self.aborted.set()

    def wait_ready(self, timeout: float = 600, cancel: threading.Event | None = None) -> None:
        """Block until the Flow serves; raise ServiceError if it fails or exits first."""
        assert self.process
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.2):
            if cancel is not None and cancel.is_set():
                self.stop()
                raise ServiceError("stopped before the Flow was ready")
            if self.aborted.is_set() or self.process.poll() is not None:
                self.stop()
                if self.reader is not None:  # its last lines: the cause it printed, if any
                    self.reader.join(5)
                raise ServiceError(self.failure())
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"the Flow was not ready after {timeout:.0f} s")

    def failure(self) -> str:
        """One line on why the Flow did not start: the cause its process named, else the
        first error in its log, else the last exception of a traceback in it."""
        if self.startup.cause:
            return self.startup.cause
        error = self.first_error.message
        reason = (startup.tidy_error(error) if error else self.startup.last_exception()
                  or "it exited before it was ready")
        return f"the Flow could not start: {reason}"

    def stop(self) -> None:
        """SIGINT to the whole group (Jina's clean shutdown), SIGKILL to what is left of it
        (all of it when the Flow process does not end; executors whose Flow process died)."""
        if not self.process:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGINT)
                self.process.wait(STOP_GRACE_SECONDS if not self.aborted.is_set() else 1)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        if self._lifeline is not None:  # only now: the Flow must not stop itself twice
            os.close(self._lifeline)
            self._lifeline = None

    def __enter__(self) -> "FlowProcess":
        self.start().wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _progress(message: str) -> None:
    print(startup.progress_line(message), file=sys.stderr, flush=True)


def _follow_moves() -> None:
    """Where `memeflow reindex` moved the workspace to, served with its model (see
    memeflow.moved_workspace): sets this process's MEMEFLOW_WORKSPACE and MEMEFLOW_MODEL,
    which the checks and the Flow read. Raises WorkspaceError (one line) instead."""
    served = for_serve()
    if served.note:
        _progress(served.note)
    if served.moves and served.model is not None:
        os.environ["MEMEFLOW_WORKSPACE"] = str(served.workspace)
        os.environ["MEMEFLOW_MODEL"] = served.model


def serve(flow_file: Path | None = None, ready_timeout: float = 600, verbose: bool = False,
          watch: "Settings | None" = None) -> int:
    """`memeflow serve`: run until Ctrl-C or SIGTERM; non-zero exit if the Flow cannot start.
    It serves where `memeflow reindex` moved the workspace, if it did (`_follow_moves`).
    While it starts, progress lines; the Flow's own log only with `verbose`, or once ready.
    With `watch`, once ready its folders are kept indexed (`memeflow.client.watch`) by a
    thread stopped with the Flow."""
    try:
        _follow_moves()
        flow = FlowProcess(flow_file, progress=_progress, quiet_start=not verbose).start()
    except (ModelLoadError, ServiceError, WorkspaceError) as exc:
        print(f"memeflow: cannot start: {terminal_safe(exc)}", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        flow.wait_ready(ready_timeout, cancel=stopping)
    except ServiceError as exc:
        more = "" if verbose else " (`memeflow --verbose serve` shows the Flow's log)"
        print(f"memeflow: {terminal_safe(exc)}{more}", file=sys.stderr)
        return 1
    watcher = _watch(watch, stopping) if watch is not None else None
    try:
        while not stopping.wait(0.5):
            if flow.process and flow.process.poll() is not None:
                print("memeflow: the Flow exited unexpectedly", file=sys.stderr)
                flow.stop()  # its executors, if they outlived it
                return 1
    finally:
        stopping.set()
        if watcher is not None:
            watcher.join(STOP_GRACE_SECONDS)
    flow.stop()
    return 0


def _watch(settings: "Settings", stopping: threading.Event) -> threading.Thread:
    """The watcher of `serve --watch`, on this Flow's gRPC port."""
    from memeflow.cli.watch_command import in_background
    from memeflow.client import MemeClient

    bind = config.bind_host()
    address = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind
    host = f"grpc://{address}:{config.grpc_port()}"
    return in_background(MemeClient(host), settings, host, stopping)


if __name__ == "__main__":
    run_flow(Path(sys.argv[1]))
