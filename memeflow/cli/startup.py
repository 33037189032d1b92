"""What `memeflow serve` tells the user while the Flow starts: quick checks that name the
cause of a start that cannot work (a busy port, a missing extra, a model that cannot be
fetched), progress lines read from the Flow's log, the ready line, and the one-line cause
of a start that failed anyway.

Nothing here imports Jina or a model library: the checks run in the supervisor, in
milliseconds, before the Flow's processes spend seconds starting.
"""

import ast
import importlib.util
import re
import socket
from collections import deque

from memeflow import config

READY_LINE = "memeflow is ready"
# A line the Flow's process prints, before exiting, for a failure it understood.
CAUSE_PREFIX = "memeflow cannot start: "
OFFLINE_RECIPE = ("point MEMEFLOW_MODEL (or `memeflow serve --model`) at a local model folder "
                  "(README, \"Offline and local models\": "
                  "README.md#offline-and-local-models)")
# Optional extras a setting needs: (setting that asks for it, importable module, pip extra).
EXTRAS = (
    ("MEMEFLOW_OCR=1", "rapidocr_onnxruntime", "ocr"),
    ("MEMEFLOW_RUNTIME=onnx", "onnxruntime", "onnx"),
)


# A Hugging Face repository id, "org/name" (a name alone is a legacy id of the Hub).
HF_REPO = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


class StartError(RuntimeError):
    """A start that cannot work; the message is one line naming the cause and the fix."""


def bound_host(bind: str) -> tuple[str, str]:
    """(host to put in URLs, a note on where it listens) for the gateway's bind address:
    a wildcard address is reached as localhost here."""
    if bind in ("0.0.0.0", "::", ""):
        return "localhost", f"; listening on {bind or '0.0.0.0'} (every network interface)"
    return (f"[{bind}]" if ":" in bind else bind), ""


def ready_message() -> str:
    """The ready line: the page and gRPC addresses the gateway actually listens on."""
    host, note = bound_host(config.bind_host())
    grpc, http = config.grpc_port(), config.http_port()
    other = "" if grpc == config.DEFAULT_GRPC_PORT else (
        f"; other commands: --host grpc://{host}:{grpc} (or MEMEFLOW_HOST)")
    return (f"{READY_LINE}: http://{host}:{http}/ (search page), grpc://{host}:{grpc}{note}"
            f"{other}; Ctrl-C stops it")


def _port_in_use(host: str, port: int) -> bool:
    """Whether something listens on host:port (SO_REUSEADDR: a port in TIME_WAIT is free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def check_ports() -> None:
    """Refuse to start when a port the gateway needs is taken, naming it and how to change
    it. Raises StartError."""
    bind = config.bind_host()
    ports = [(config.grpc_port(), "gRPC", "--port N or MEMEFLOW_GRPC_PORT"),
             (config.http_port(), "HTTP", "--http-port N or MEMEFLOW_HTTP_PORT")]
    metrics = config.metrics_port()
    if metrics is not None:
        ports.append((metrics, "metrics", "MEMEFLOW_METRICS_PORT"))
    for port, what, setting in ports:
        if _port_in_use(bind, port):
            raise StartError(
                f"port {port} ({what}) on {bind} is in use, perhaps by another `memeflow "
                f"serve`: stop that, or choose another port with {setting}")


def check_extras(ocr: bool, runtime: str) -> None:
    """Refuse a setting whose optional extra is not installed, naming the pip command.
    Raises StartError."""
    wanted = {"MEMEFLOW_OCR=1": ocr, "MEMEFLOW_RUNTIME=onnx": runtime.strip().lower() == "onnx"}
    for setting, module, extra in EXTRAS:
        if wanted[setting] and importlib.util.find_spec(module) is None:
            raise StartError(
                f"{setting} needs the `{extra}` extra, which is not installed: "
                f"pip install 'memeflow[{extra}]' (in a clone: pip install -e '.[{extra}]')")


def progress_line(message: str) -> str:
    """A progress line as the supervisor prints it."""
    return f"memeflow: {message}"


# A Flow log record: "INFO  encoder/rep-0@123 message   [date]" (Jina's console format).
RECORD = re.compile(r"^(?P<level>[A-Z]+)\s+(?P<name>[\w-]+)/rep-\d+@\d+\s+(?P<text>.*?)\s*"
                    r"(\[\d\d/\d\d/\d\d \d\d:\d\d:\d\d\])?\s*$")
EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?(?P<name>\w*(?:Error|Exception|Exit|Used|Failed\w*))"
                            r"(?::\s*(?P<text>.*))?$")


class StartupLog:
    """Reads the Flow's log while it starts: turns the executors' own start-up records into
    progress lines ("indexer ready (260 documents)"), and keeps what explains a failure."""

    def __init__(self) -> None:
        self.details: dict[str, str] = {}
        self.cause: str | None = None
        self.recent: deque[str] = deque(maxlen=400)

    def feed(self, line: str) -> list[str]:
        """One line of the log -> the progress messages it makes (usually none)."""
        text = line.rstrip("\n")
        self.recent.append(text)
        if text.startswith(CAUSE_PREFIX):
            self.cause = text.removeprefix(CAUSE_PREFIX).strip()
            return []
        record = RECORD.match(text)
        if not record:
            return []
        name, message = record["name"], record["text"]
        if name == "indexer" and (count := re.search(r": (\d+) documents$", message)):
            self.details[name] = f"{count[1]} document" + ("" if count[1] == "1" else "s")
        elif name == "encoder" and message.startswith("loaded "):
            loaded = message.removeprefix("loaded ").split("; ")[0].split(" (CPU ")[0]
            if "random weights" in loaded:
                loaded += " (random weights: search results carry no meaning)"
            self.details[name] = loaded
        elif message.startswith("start server bound to") and name != "gateway":
            detail = self.details.get(name)
            return [f"{name} ready" + (f": {detail}" if detail else "")]
        elif record["level"] == "WARNING":
            return [f"{name}: warning: {message}"]
        return []

    def last_exception(self) -> str | None:
        """The last exception line of a traceback in the log ("PortAlreadyUsed: port:...")."""
        for line in reversed(self.recent):
            found = EXCEPTION_LINE.match(line.strip())
            if found:
                return line.strip()
        return None



def _cached(repo: str) -> bool:
    """Whether the Hugging Face cache holds the repository's config (a model fetched before)."""
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo, name), str)
               for name in ("config.json", "open_clip_config.json"))


def check_hub_model(name: str, timeout: float = 10) -> bool:
    """For a Hugging Face id not in the local cache: make sure the Hub answers before the
    encoder tries to download it (without it, the download retries for minutes and then
    fails far from the cause). Returns whether the model will be downloaded; raises
    StartError naming the offline recipe when the Hub cannot be reached or is turned off
    (HF_HUB_OFFLINE), or when it has no such model."""
    repo = name.removeprefix("hf-hub:")
    if not HF_REPO.match(repo) or _cached(repo):
        return False
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    if constants.HF_HUB_OFFLINE:
        raise StartError(f"model {name} is not downloaded and HF_HUB_OFFLINE is set: "
                         f"{OFFLINE_RECIPE}")
    try:
        get_hf_file_metadata(hf_hub_url(repo, "config.json"), timeout=timeout)
    except OfflineModeIsEnabled as exc:
        raise StartError(f"model {name} is not downloaded and the Hub is off: "
                         f"{OFFLINE_RECIPE}") from exc
    except RepositoryNotFoundError as exc:
        raise StartError(f"Hugging Face has no model {name} (or it needs a login): check "
                         f"MEMEFLOW_MODEL, or {OFFLINE_RECIPE}") from exc
    except EntryNotFoundError:
        return True  # not a config.json layout; the encoder decides
    except Exception as exc:  # the HTTP library's connection errors, a timeout, a 5xx
        raise StartError(
            f"cannot download model {name}: Hugging Face ({constants.ENDPOINT}) did not "
            f"answer ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"on a machine without access, {OFFLINE_RECIPE}") from exc
    return True


# Jina's record of an executor that failed to start: "encoder/rep-0@12 ModelLoadError('...')
# during 'WorkerRuntime' initialization ...".
EXECUTOR_FAILED = re.compile(r"^(?P<name>[\w-]+)/rep-\d+@\d+\s+\w+\((?P<message>(?P<q>['\"]).*"
                             r"(?P=q))\) during '\w+' initialization")


def tidy_error(record: str) -> str:
    """A failed executor's record as "encoder: MESSAGE" (the exception's own message, not
    its repr); anything else unchanged."""
    found = EXECUTOR_FAILED.match(record)
    if not found:
        return record
    try:
        message = ast.literal_eval(found["message"])
    except (ValueError, SyntaxError):
        return record
    return f"{found['name']}: {message}" if isinstance(message, str) else record
