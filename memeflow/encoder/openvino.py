"""A dual encoder's two towers in OpenVINO: fused kernels, and bf16 where the CPU has it.

OpenVINO picks the precision for the CPU it compiles for: bf16 on CPUs with AVX512_BF16
or AMX (about twice torch fp32's images/s there, mean cosine to fp32 above 0.9999),
f32 elsewhere. `precision` can ask for another; what was compiled is reported either way.

Converting the torch model takes tens of seconds, so the converted model (OpenVINO IR,
float32 weights) is kept on disk under the cache folder (MEMEFLOW_CACHE), one folder
per model, config, weights file and OpenVINO version: a restart only reads and compiles
it. The precision is a compile setting and does not change the IR, so it is not part of
the key. Files are written to a temporary folder and renamed into place, so processes
starting together never read a half-written model.
"""

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from memeflow.encoder.families import DualEncoder

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'openvino==2026.4.1'  (or: pip install -e '.[openvino]')"
# OpenVINO's names for the element types it may compile to -> memeflow's.
PRECISION_NAMES = {"f32": "f32", "bf16": "bf16", "f16": "f16", "float32": "f32",
                   "bfloat16": "bf16", "float16": "f16"}


def cache_key(name: str, config_json: str, weights_id: str, ov_version: str) -> str:
    """A folder name that changes whenever the converted model would: the model's name or
    path, its config (`DualEncoder.config_json`), `weights_id` (see
    `memeflow.encoder.model.weights_id`) and the OpenVINO version."""
    digest = hashlib.sha256()
    for part in (name, config_json, weights_id, ov_version):
        digest.update(part.encode())
        digest.update(b"\0")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name or name)[-48:]
    return f"{slug}-{digest.hexdigest()[:16]}"


def _convert(encoder: DualEncoder, folder: Path) -> None:
    """Both towers as OpenVINO IR in `folder` (image.xml, text.xml and their weights)."""
    import openvino as ov

    height, width = encoder.image_size
    tokens = encoder.tokenize(["a photo", "a photo of a cat"])
    dynamic_tokens = ov.PartialShape([-1, -1])
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The tracer notes shape-dependent branches that always go the same way here.
        warnings.simplefilter("ignore")
        image = ov.convert_model(
            encoder.image_tower().eval(),
            example_input=(torch.zeros(2, 3, height, width),),
            input=[("pixel_values", ov.PartialShape([-1, 3, height, width]), ov.Type.f32)],
        )
        text = ov.convert_model(
            encoder.text_tower().eval(),
            example_input=tuple(tokens.values()),
            input=[(name, dynamic_tokens, ov.Type.i64) for name in encoder.text_inputs],
        )
    # float32 weights: OpenVINO's default fp16 compression would change f32 vectors.
    ov.save_model(image, folder / "image.xml", compress_to_fp16=False)
    ov.save_model(text, folder / "text.xml", compress_to_fp16=False)


def converted(encoder: DualEncoder, cache: Path, key: str) -> Path:
    """The folder of the converted towers: from the cache, or converted now and cached."""
    folder = cache / "openvino" / key
    if (folder / "image.xml").is_file() and (folder / "text.xml").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    logger.info("converting the model to OpenVINO once (cached in %s)", folder)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    try:
        _convert(encoder, staging)
        try:
            os.rename(staging, folder)
        except OSError:  # another process finished first: its copy is as good
            if not (folder / "text.xml").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def precision_name(element_type: object) -> str:
    text = str(getattr(element_type, "get_type_name", lambda: element_type)()).lower()
    return PRECISION_NAMES.get(text, text)


class OpenVinoClip:
    """Both towers compiled for the CPU; numpy in, unnormalised features out.

    `precision` "auto" leaves the choice to OpenVINO; "f32", "bf16" or "f16" ask for one
    (a CPU without it falls back to f32, with a warning). `self.precision` is what was
    compiled. Calls are serialised per tower: one compiled request each.
    """

    def __init__(self, encoder: DualEncoder, *, name: str, weights_id: str,
                 cache: Path, precision: str = "auto", threads: int | None = None) -> None:
        import openvino as ov  # optional dependency: imported only when chosen

        core = ov.Core()
        self.folder = converted(encoder, cache, cache_key(name, encoder.config_json(),
                                                          weights_id, ov.__version__))
        # Unpinned: the encoder's decode threads and the Flow's other stages share the
        # cores, and a pinned thread cannot leave a core another process holds (pinned
        # was ~15% slower under load here).
        settings: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
        if threads:
            settings["INFERENCE_NUM_THREADS"] = threads
        if precision != "auto":
            settings["INFERENCE_PRECISION_HINT"] = precision
        self.image = core.compile_model(core.read_model(self.folder / "image.xml"), "CPU",
                                        settings)
        self.text = core.compile_model(core.read_model(self.folder / "text.xml"), "CPU",
                                       settings)
        self.precision = precision_name(self.image.get_property("INFERENCE_PRECISION_HINT"))
        if precision not in ("auto", self.precision):
            logger.warning("OpenVINO runs %s: this CPU has no %s kernels", self.precision,
                           precision)
        self.version = ov.__version__.split("-")[0]
        self._image_request = self.image.create_infer_request()
        self._text_request = self.text.create_infer_request()
        self._image_lock, self._text_lock = threading.Lock(), threading.Lock()

    def image_features(self, pixel_values: np.ndarray) -> np.ndarray:
        with self._image_lock:
            out = self._image_request.infer([np.ascontiguousarray(pixel_values, np.float32)])
            return np.array(out[0], dtype=np.float32)  # a copy: the request reuses its memory

    def text_features(self, *tokens: np.ndarray) -> np.ndarray:
        """The arrays of the encoder's `text_inputs`, in that order."""
        with self._text_lock:
            out = self._text_request.infer([t.astype(np.int64) for t in tokens])
            return np.array(out[0], dtype=np.float32)
