"""The model behind one small interface: images and texts in, unit vectors out.

`load_model` is the one entry point that builds a model from a Hugging Face id, an
OpenCLIP name or a local folder, for the encoder, `memeflow eval` and the benchmarks. The
family (CLIP, SigLIP, SigLIP 2, MetaCLIP 2, OpenCLIP; memeflow.encoder.families) brings
the checkpoint's preprocessing and tokenizer; this module runs it on a runtime (torch,
int8, ONNX Runtime, OpenVINO) and device, so the executor, the benchmarks and the
notebooks only see numpy arrays.
"""

import contextlib
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from memeflow import config
from memeflow.encoder.families import DualEncoder, build_encoder
from memeflow.encoder.hardware import (
    Hardware,
    check_precision,
    resolve_device,
    resolve_runtime,
)
from memeflow.encoder.source import (
    OPEN_CLIP_WEIGHT_FILES,
    WEIGHT_FILES,
    ModelLoadError,
    check_model_source,
    has_weights,
)
from memeflow.vectors import unit_rows

if TYPE_CHECKING:
    from memeflow.encoder.onnx import OnnxClip
    from memeflow.encoder.openvino import OpenVinoClip

logger = logging.getLogger(__name__)

DEFAULT_TEXT_CACHE_SIZE = 1024


def set_torch_threads(threads: int | None, interop_threads: int | None = None) -> None:
    """Size torch's thread pools (process-wide); None leaves a pool as torch chose it.

    The inter-op pool can only be sized before torch first uses it; later attempts are
    ignored with a debug message rather than failing a model load.
    """
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    if interop_threads is not None and torch.get_num_interop_threads() != interop_threads:
        try:
            torch.set_num_interop_threads(max(1, interop_threads))
        except RuntimeError as exc:
            logger.debug("inter-op threads stay at %d: %s", torch.get_num_interop_threads(), exc)


def _quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 Linear layers (weights int8, activations quantized per call).

    On AVX2 without VNNI this roughly doubles image throughput at a small numerical cost.
    """
    with warnings.catch_warnings():
        # torch points eager quantization users to torchao; the API still works and is
        # the one that needs no extra dependency.
        warnings.filterwarnings("ignore", message=".*quantiz", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )


def _onnx_runtime(encoder: DualEncoder, threads: int | None) -> "OnnxClip":
    """Both towers exported to ONNX Runtime, or a ModelLoadError saying what to install."""
    try:
        from memeflow.encoder.onnx import INSTALL_HINT, OnnxClip
    except ImportError as exc:  # pragma: no cover - the module itself imports no extras
        raise ModelLoadError(f"runtime 'onnx' is unavailable: {exc}") from exc
    try:
        return OnnxClip(encoder, threads)
    except ImportError as exc:
        raise ModelLoadError(
            f"runtime 'onnx' needs ONNX Runtime and onnx ({exc}): {INSTALL_HINT}"
        ) from exc


def _openvino_runtime(encoder: DualEncoder, **options: Any) -> "OpenVinoClip":
    """Both towers compiled by OpenVINO, or a ModelLoadError saying what to install."""
    try:
        from memeflow.encoder.openvino import OpenVinoClip
        return OpenVinoClip(encoder, **options)
    except ImportError as exc:
        from memeflow.encoder.openvino import INSTALL_HINT

        raise ModelLoadError(f"runtime 'openvino' needs OpenVINO ({exc}): {INSTALL_HINT}") from exc


def weights_id(folder: Path | None, random_seed: int | None, model: torch.nn.Module) -> str:
    """What identifies the weights, for caches of converted models: the seed of random
    weights, a local weights file's path, size and time, or the hub revision."""
    if random_seed is not None:
        return f"random-seed-{random_seed}"
    if folder is not None:
        for name in WEIGHT_FILES + OPEN_CLIP_WEIGHT_FILES:
            if (folder / name).is_file():
                stat = (folder / name).stat()
                return f"{(folder / name).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return str(getattr(getattr(model, "config", None), "_commit_hash", None) or "hub")


def _torch_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "f16" if device.type == "cuda" else "f32"
    if precision == "f16" and device.type != "cuda":
        raise ModelLoadError("precision f16 with torch needs a CUDA GPU: on a CPU use "
                             "runtime openvino, or precision bf16 or f32")
    return precision


class TextVectorCache:
    """A bounded LRU map from query text to its vector: users repeat queries.

    Thread-safe, since the executor may serve requests from more than one thread.
    """

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, text: str) -> np.ndarray | None:
        with self._lock:
            vector = self._vectors.get(text)
            if vector is not None:
                self._vectors.move_to_end(text)
            return vector

    def put(self, text: str, vector: np.ndarray) -> None:
        if not self.size:
            return
        frozen = vector.copy()
        frozen.flags.writeable = False  # callers get copies; the cached one never changes
        with self._lock:
            self._vectors[text] = frozen
            self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()

    def embed(self, texts: Sequence[str], run: Callable[[list[str]], np.ndarray], dim: int
               ) -> np.ndarray:
        """Vectors for `texts`: cached ones from here, the rest from one `run` call on the
        distinct missing texts (which are then cached)."""
        vectors = np.empty((len(texts), dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for row, text in enumerate(texts):
            cached = self.get(text)
            if cached is None:
                missing.setdefault(text, []).append(row)
            else:
                vectors[row] = cached
        if missing:
            fresh = run(list(missing))
            for (text, rows), vector in zip(missing.items(), fresh, strict=True):
                vectors[rows] = vector
                self.put(text, vector)
        return vectors


class ClipModel:
    """A dual-encoder checkpoint loaded once; embeds batches into L2-normalised float32
    vectors. Build it with `load_model` (the same arguments).

    `name`: a Hugging Face id, `hf-hub:ORG/NAME` or `open_clip:ARCH/PRETRAINED` (OpenCLIP),
    or a local folder; its family (CLIP, SigLIP, SigLIP 2, MetaCLIP 2, OpenCLIP) is read
    from its config. `runtime` picks how it runs: "torch" (the reference; float32 on a CPU,
    fp16 on a GPU), "int8" (torch with dynamic int8 Linear layers: faster on CPU, vectors
    close but not equal), "onnx" (float32 in ONNX Runtime: the same vectors; the `onnx`
    extra), "openvino" (OpenVINO, bf16 where the CPU has it, else f32) or "auto" (see
    memeflow.encoder.hardware). With onnx and openvino `model` is None: their sessions hold
    the weights. `device`: "cpu", "cuda", "cuda:N" or "auto"; only torch runs on a GPU.
    `precision`: "auto", "f32", "f16" (GPU or OpenVINO) or "bf16". `cache` is where
    converted models are kept (default: config.cache_dir()). `torch_threads` /
    `interop_threads` size torch's pools (process-wide; None keeps torch's choice of one
    thread per core). `text_cache_size` bounds the LRU cache of query texts (0 turns it
    off). Raises ModelLoadError with the fix for any bad setting.
    """

    def __init__(
        self,
        name: str,
        *,
        allow_random: bool = False,
        device: str = "cpu",
        runtime: str = "torch",
        precision: str = "auto",
        cache: Path | None = None,
        torch_threads: int | None = None,
        interop_threads: int | None = 1,
        text_cache_size: int = DEFAULT_TEXT_CACHE_SIZE,
    ) -> None:
        resolved_device = resolve_device(device)
        runtime = resolve_runtime(runtime, resolved_device)
        precision = check_precision(precision)
        if runtime == "torch":
            precision = _torch_precision(precision, torch.device(resolved_device))
        elif precision not in ("auto", "f32") and runtime != "openvino":
            raise ModelLoadError(f"runtime {runtime!r} has one precision: set precision auto")
        folder = check_model_source(name, allow_random)
        set_torch_threads(torch_threads, interop_threads)
        self.name = name
        self.runtime = runtime
        self.device = torch.device(resolved_device)
        # A folder without weights, or an OpenCLIP architecture named without a pretrained
        # tag, runs random weights (only with allow_random; check_model_source refuses else).
        self.random_weights = (not has_weights(folder)) if folder is not None else (
            allow_random and name.startswith("open_clip:") and "/" not in name)
        # Random weights are a model of their own per seed (MEMEFLOW_RANDOM_SEED).
        self.random_seed: int | None = config.random_seed() if self.random_weights else None
        if self.random_weights:
            logger.warning(
                "model %s has no weights: using random weights; search results carry "
                "no meaning (fine for tests and timing only)", folder or name,
            )
        encoder = build_encoder(name, folder, self.random_seed)
        self.encoder = encoder
        self.family = encoder.family
        self.dim: int = encoder.dim
        self._onnx: OnnxClip | None = None
        self._openvino: OpenVinoClip | None = None
        self.model: torch.nn.Module | None = encoder.module
        self._autocast: torch.dtype | None = None
        if runtime == "torch":
            self.precision = precision
            if self.precision == "f16":
                encoder.module.half()
            elif self.precision == "bf16":  # autocast keeps norms and softmax in f32
                self._autocast = torch.bfloat16
            self.model = encoder.module.to(self.device)
        elif runtime == "int8":
            self.model, self.precision = _quantize_int8(encoder.module), "int8"
        elif runtime == "onnx":
            self._onnx = _onnx_runtime(encoder, torch_threads)
            self.model, self.precision = None, "f32"
        else:
            self._openvino = _openvino_runtime(
                encoder, name=name,
                weights_id=weights_id(folder, self.random_seed, encoder.module),
                cache=cache or config.cache_dir(), precision=precision, threads=torch_threads,
            )
            self.model, self.precision = None, self._openvino.precision
        if self.model is None:  # ONNX Runtime or OpenVINO holds the weights now
            encoder.drop_weights()
        gpu = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else ""
        self.hardware = Hardware(runtime=runtime, precision=self.precision,
                                 device=resolved_device, gpu=gpu)
        self.text_cache = TextVectorCache(text_cache_size)

    def _inference(self) -> contextlib.AbstractContextManager[object]:
        if self._autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Resize, crop and normalise one RGB image as the checkpoint defines it, into a
        (3, H, W) float32 tensor; thread-safe, so callers run it in a pool."""
        return self.encoder.preprocess(image)

    def embed_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        """Embed a (n, 3, H, W) batch of preprocessed images -> (n, dim) unit rows."""
        if self._openvino is not None:
            return unit_rows(self._openvino.image_features(pixel_values.numpy()))
        if self._onnx is not None:
            return unit_rows(self._onnx.image_features(pixel_values.numpy()))
        dtype = torch.float16 if self.precision == "f16" else torch.float32
        pixel_values = pixel_values.to(self.device, dtype, non_blocking=True)
        with torch.inference_mode(), self._inference():
            out = self.encoder.image_features(pixel_values)
        return unit_rows(out.float().cpu().numpy())

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """Embed RGB images (convenience for notebooks; the executor pipelines preprocess)."""
        return self.embed_pixels(torch.stack([self.preprocess(im) for im in images]))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts -> (n, dim) unit rows; repeated ones come from the LRU cache, the
        rest run as one batch. Longer texts are cut at the model's token limit, not rejected.
        """
        return self.text_cache.embed(texts, self._run_texts, self.dim)

    def _run_texts(self, texts: list[str]) -> np.ndarray:
        """The model on texts, tokenized and padded as the family defines (CLIP-like
        families only to the longest text of the batch: causal attention plus the mask
        keep each vector independent of the padding)."""
        tokens = list(self.encoder.tokenize(texts).values())
        runtime = self._openvino or self._onnx
        if runtime is not None:
            return unit_rows(runtime.text_features(*(t.numpy() for t in tokens)))
        with torch.inference_mode(), self._inference():
            out = self.encoder.text_features(*(t.to(self.device) for t in tokens))
        return unit_rows(out.float().cpu().numpy())


def load_model(name: str, **options: Any) -> ClipModel:
    """The one way to build a model from a Hugging Face id, an OpenCLIP name
    (`hf-hub:ORG/NAME`, `open_clip:ARCH/PRETRAINED`) or a local folder; `options` are
    ClipModel's keyword arguments (allow_random, device, runtime, precision, cache,
    torch_threads, interop_threads, text_cache_size). Raises ModelLoadError with the fix."""
    return ClipModel(name, **options)
