"""Settings read from the environment, in one place for the CLI, the client, the gateway and
the executors: every MEMEFLOW_* variable is read here, by a function that says its default.

Executors' own parameters (flow.yml's `uses_with`) are passed in as `configured`; a set
variable overrides them.
"""

import os
from pathlib import Path

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_GRPC_PORT = 51000
DEFAULT_HTTP_PORT = 51001


def configured_model() -> str | None:
    """MEMEFLOW_MODEL as set (a Hugging Face id or a folder), or None when unset."""
    return os.environ.get("MEMEFLOW_MODEL") or None


def model_name(configured: str | None = None) -> str:
    """MEMEFLOW_MODEL overrides the executor's `model` parameter, which defaults to ViT-B/32."""
    return configured_model() or configured or DEFAULT_MODEL


def runtime(configured: str) -> str:
    """MEMEFLOW_RUNTIME (auto, torch, openvino, onnx or int8) overrides the encoder's
    `runtime` parameter (memeflow.encoder.hardware resolves auto)."""
    return os.environ.get("MEMEFLOW_RUNTIME") or configured


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


def random_seed() -> int:
    """MEMEFLOW_RANDOM_SEED: the seed of the random weights of a model folder without weights
    (default 0, the same weights in every process); another seed makes another model."""
    return int(os.environ.get("MEMEFLOW_RANDOM_SEED") or 0)


def workspace(configured: str | None = None) -> Path:
    """Where the index lives: MEMEFLOW_WORKSPACE, the executor's parameter, or a per-user folder."""
    chosen = os.environ.get("MEMEFLOW_WORKSPACE") or configured
    if chosen:
        return Path(chosen).expanduser().resolve()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "memeflow" / "index"


def index(configured: str | None = None) -> str | None:
    """Where the documents live: MEMEFLOW_INDEX, else the indexer's `index` parameter, else
    None (the workspace). A folder: the embedded backend there; http(s)://HOST:PORT or a
    Milvus Lite file (*.db): Milvus (`memeflow.indexer.backends.open_collection`)."""
    return os.environ.get("MEMEFLOW_INDEX") or configured or None


def collection_name(configured: str | None = None) -> str:
    """MEMEFLOW_COLLECTION, else the indexer's `collection` parameter, else "memeflow": the
    name of the collection in a Milvus server (several indexes can share one server)."""
    return os.environ.get("MEMEFLOW_COLLECTION") or configured or "memeflow"


def grpc_port() -> int:
    return int(os.environ.get("MEMEFLOW_GRPC_PORT") or DEFAULT_GRPC_PORT)


def http_port() -> int:
    return int(os.environ.get("MEMEFLOW_HTTP_PORT") or DEFAULT_HTTP_PORT)


def host() -> str:
    """Where clients find the Flow: MEMEFLOW_HOST (host, host:port or grpc://host:port)."""
    return os.environ.get("MEMEFLOW_HOST") or f"grpc://localhost:{grpc_port()}"


DEFAULT_BIND = "127.0.0.1"
DEFAULT_INDEX_BATCH = 32  # files per /index request of the client's `index_paths` and the CLI
# ... and at most this many bytes of files per request (one larger file goes alone): a
# batch of videos would otherwise make a request of gigabytes.
DEFAULT_INDEX_BATCH_BYTES = 64 * 2**20
DEFAULT_POLL_INTERVAL = 5.0  # seconds between two looks of `memeflow watch --poll`


def bind_host() -> str:
    """Where the gateway listens: MEMEFLOW_BIND (e.g. 0.0.0.0 to serve other machines)."""
    return os.environ.get("MEMEFLOW_BIND") or DEFAULT_BIND


def metrics_port() -> int | None:
    """MEMEFLOW_METRICS_PORT turns Prometheus metrics on: the gateway's port; the executors'
    follow it in flow.yml order. Unset: no metrics."""
    value = os.environ.get("MEMEFLOW_METRICS_PORT")
    return int(value) if value else None


DEFAULT_TIMEOUT = 600.0


def request_timeout() -> float:
    """MEMEFLOW_TIMEOUT: seconds one client request may take before the call fails (600)."""
    return float(os.environ.get("MEMEFLOW_TIMEOUT") or DEFAULT_TIMEOUT)


DEFAULT_OCR_WEIGHT = 1.0


def ocr_weight() -> str | float:
    """MEMEFLOW_OCR_WEIGHT as set, else 1.0: the say of the words on memes in text searches
    against the picture's (0: none), where a request does not give `ocr_weight`. Returned
    as set: the indexer checks it with the request's value
    (`memeflow.indexer.search.options`)."""
    return os.environ.get("MEMEFLOW_OCR_WEIGHT") or DEFAULT_OCR_WEIGHT


API_KEY_ENV = "MEMEFLOW_API_KEY"


def api_key() -> str | None:
    """MEMEFLOW_API_KEY: the key the gateway requires and the client sends; None (unset):
    calls are open."""
    return os.environ.get(API_KEY_ENV) or None


ALLOWED_HOSTS_ENV = "MEMEFLOW_ALLOWED_HOSTS"


def allowed_hosts() -> frozenset[str]:
    """MEMEFLOW_ALLOWED_HOSTS: comma-separated names (`name` or `name:port`, lower-case)
    under which HTTP clients may reach the gateway besides localhost and IP addresses, for
    a reverse proxy or a LAN name; `*` allows any. Empty by default
    (memeflow.gateway.hosts)."""
    return frozenset(
        part.strip().lower()
        for part in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",")
        if part.strip()
    )


MAX_REQUEST_BYTES_ENV = "MEMEFLOW_MAX_REQUEST_BYTES"
DEFAULT_MAX_REQUEST_BYTES = 128 * 2**20


def max_request_bytes() -> int:
    """MEMEFLOW_MAX_REQUEST_BYTES: the largest HTTP request body the gateway reads (128 MiB)."""
    return int(os.environ.get(MAX_REQUEST_BYTES_ENV) or DEFAULT_MAX_REQUEST_BYTES)


# What the encoder may read (memeflow.encoder.access): safe defaults, opened by setting.
ROOTS_ENV = "MEMEFLOW_ROOTS"
FETCH_HOSTS_ENV = "MEMEFLOW_FETCH_HOSTS"
FETCH_TIMEOUT_ENV = "MEMEFLOW_FETCH_TIMEOUT"
MAX_DOCS_ENV = "MEMEFLOW_MAX_DOCS"
MAX_IMAGE_BYTES_ENV = "MEMEFLOW_MAX_IMAGE_BYTES"
MAX_PIXELS_ENV = "MEMEFLOW_MAX_PIXELS"
DEFAULT_MAX_DOCS = 1000
DEFAULT_MAX_IMAGE_BYTES = 20 * 2**20
DEFAULT_FETCH_TIMEOUT = 10.0


def _positive_number(name: str, default: float) -> float:
    """The variable `name` as a number > 0, `default` when unset; ValueError naming it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be greater than 0")
    return value


def read_roots() -> tuple[Path, ...]:
    """MEMEFLOW_ROOTS: folders (separated by os.pathsep) under which the encoder reads local
    files, as real, symlink-free paths; none by default (clients send image bytes)."""
    return tuple(
        Path(os.path.realpath(os.path.expanduser(part)))
        for part in os.environ.get(ROOTS_ENV, "").split(os.pathsep)
        if part.strip()
    )


def fetch_hosts() -> frozenset[str]:
    """MEMEFLOW_FETCH_HOSTS: comma-separated `host` or `host:port` entries the encoder may
    fetch http(s) URLs from, lower-case; none by default."""
    return frozenset(
        part.strip().lower()
        for part in os.environ.get(FETCH_HOSTS_ENV, "").split(",")
        if part.strip()
    )


def fetch_timeout() -> float:
    """MEMEFLOW_FETCH_TIMEOUT: seconds the encoder waits for one URL (10)."""
    return _positive_number(FETCH_TIMEOUT_ENV, DEFAULT_FETCH_TIMEOUT)


def max_docs() -> int:
    """MEMEFLOW_MAX_DOCS: the most documents one request may hold (1000)."""
    return int(_positive_number(MAX_DOCS_ENV, DEFAULT_MAX_DOCS))


def max_image_bytes() -> int:
    """MEMEFLOW_MAX_IMAGE_BYTES: the largest image the encoder reads, in bytes (20 MiB)."""
    return int(_positive_number(MAX_IMAGE_BYTES_ENV, DEFAULT_MAX_IMAGE_BYTES))


def max_pixels() -> int | None:
    """MEMEFLOW_MAX_PIXELS: the largest image the encoder decodes, in pixels; None (unset):
    Pillow's decompression-bomb limit."""
    if not os.environ.get(MAX_PIXELS_ENV, "").strip():
        return None
    return int(_positive_number(MAX_PIXELS_ENV, 1))


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


# Animated images and videos (memeflow.encoder.frames): one document with a vector per
# sampled frame. A larger file than an image's limit may be a video.
MAX_FRAMES_ENV = "MEMEFLOW_MAX_FRAMES"
MAX_SECONDS_ENV = "MEMEFLOW_MAX_SECONDS"
MAX_VIDEO_BYTES_ENV = "MEMEFLOW_MAX_VIDEO_BYTES"
DEFAULT_MAX_FRAMES = 16
DEFAULT_MAX_SECONDS = 120.0
DEFAULT_MAX_VIDEO_BYTES = 100 * 2**20


def max_frames(configured: int | None = None) -> int:
    """MEMEFLOW_MAX_FRAMES overrides the encoder's `max_frames`: the most frames of one
    animated image or video that are embedded (16)."""
    return int(_positive_number(MAX_FRAMES_ENV, configured or DEFAULT_MAX_FRAMES))


def max_seconds(configured: float | None = None) -> float:
    """MEMEFLOW_MAX_SECONDS overrides the encoder's `max_seconds`: only the first this many
    seconds of an animated image or video are read (120); the rest is cut (tag
    `frames_cut`)."""
    return _positive_number(MAX_SECONDS_ENV, configured or DEFAULT_MAX_SECONDS)


def max_video_bytes() -> int:
    """MEMEFLOW_MAX_VIDEO_BYTES: the largest video the encoder reads, in bytes (100 MiB)."""
    return int(_positive_number(MAX_VIDEO_BYTES_ENV, DEFAULT_MAX_VIDEO_BYTES))
