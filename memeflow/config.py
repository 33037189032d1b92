"""Settings read from the environment, in one place for the CLI, the client and the executors."""

import os
from pathlib import Path

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_GRPC_PORT = 51000
DEFAULT_HTTP_PORT = 51001


def model_name(configured: str | None = None) -> str:
    """MEMEFLOW_MODEL overrides the executor's `model` parameter, which defaults to ViT-B/32."""
    return os.environ.get("MEMEFLOW_MODEL") or configured or DEFAULT_MODEL


def text_model(configured: str | None = None) -> str | None:
    """MEMEFLOW_TEXT_MODEL overrides the encoder's `text_model`: a separate query text
    encoder (a sentence-transformers-style folder); None embeds texts with CLIP."""
    return os.environ.get("MEMEFLOW_TEXT_MODEL") or configured or None


def ocr_enabled(configured: bool = False) -> bool:
    """MEMEFLOW_OCR=1/0 overrides the encoder's `ocr` parameter (off by default)."""
    value = os.environ.get("MEMEFLOW_OCR", "").strip().lower()
    if not value:
        return configured
    return value in {"1", "true", "yes", "on"}


def ocr_engine(configured: str | None = None) -> str:
    """MEMEFLOW_OCR_ENGINE overrides the encoder's `ocr_engine`: auto (OpenVINO when
    installed), onnxruntime or openvino."""
    return os.environ.get("MEMEFLOW_OCR_ENGINE") or configured or "auto"


def allow_random_weights() -> bool:
    """Opt-in for a model folder without weights: fine for tests and timing, useless for search."""
    return os.environ.get("MEMEFLOW_ALLOW_RANDOM_WEIGHTS", "").lower() in {"1", "true", "yes"}


def workspace(configured: str | None = None) -> Path:
    """Where the index lives: MEMEFLOW_WORKSPACE, the executor's parameter, or a per-user folder."""
    chosen = os.environ.get("MEMEFLOW_WORKSPACE") or configured
    if chosen:
        return Path(chosen).expanduser().resolve()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "memeflow" / "index"


def grpc_port() -> int:
    return int(os.environ.get("MEMEFLOW_GRPC_PORT") or DEFAULT_GRPC_PORT)


def http_port() -> int:
    return int(os.environ.get("MEMEFLOW_HTTP_PORT") or DEFAULT_HTTP_PORT)


def host() -> str:
    """Where clients find the Flow: MEMEFLOW_HOST (host, host:port or grpc://host:port)."""
    return os.environ.get("MEMEFLOW_HOST") or f"grpc://localhost:{grpc_port()}"


DEFAULT_BIND = "127.0.0.1"


def bind_host() -> str:
    """Where the gateway listens: MEMEFLOW_BIND (e.g. 0.0.0.0 to serve other machines)."""
    return os.environ.get("MEMEFLOW_BIND") or DEFAULT_BIND


def metrics_port() -> int | None:
    """MEMEFLOW_METRICS_PORT turns Prometheus metrics on: the gateway's port; the executors'
    follow it in flow.yml order. Unset: no metrics."""
    value = os.environ.get("MEMEFLOW_METRICS_PORT")
    return int(value) if value else None


def device(configured: str | None = None) -> str:
    """MEMEFLOW_DEVICE overrides the encoder's `device`: auto (a CUDA GPU when torch sees
    one, else the CPU), cpu, cuda or cuda:N."""
    return os.environ.get("MEMEFLOW_DEVICE") or configured or "auto"


def precision(configured: str | None = None) -> str:
    """MEMEFLOW_PRECISION overrides the encoder's `precision`: auto (fp16 on a GPU, what
    OpenVINO picks for the CPU, f32 for torch on a CPU), f32, f16 or bf16."""
    return os.environ.get("MEMEFLOW_PRECISION") or configured or "auto"


def cache_dir() -> Path:
    """Where converted models are kept between starts: MEMEFLOW_CACHE, else
    $XDG_CACHE_HOME/memeflow, else ~/.cache/memeflow."""
    chosen = os.environ.get("MEMEFLOW_CACHE")
    if chosen:
        return Path(chosen).expanduser().resolve()
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "memeflow"
