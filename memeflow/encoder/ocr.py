"""Reading the words written on a meme, with PP-OCRv4 through RapidOCR and ONNX Runtime.

The models ship inside the `rapidocr-onnxruntime` wheel (the `ocr` extra), so nothing is
downloaded. Text detection runs on the image scaled to `max_side` pixels on its longer
side, and the direction classifier is skipped: captions on memes stand upright, and
together the two settings roughly halve the time per meme. Reading is best effort: a
meme whose words cannot be read is still indexed by its picture. In the service the
encoder reads the words from the image it decodes for CLIP (`memeflow.encoding`).

`engine` runs the same two ONNX models in ONNX Runtime ("onnxruntime") or in OpenVINO
("openvino"; the `rapidocr-openvino` flavour pins an OpenVINO from 2024 that conflicts
with the encoder's, so memeflow swaps OpenVINO sessions into the onnxruntime flavour,
which is all that flavour does). BENCHMARKS.md, "Words on memes", compares the two.
"""

import importlib.util
import logging
import threading
from typing import Any

import numpy as np
from PIL import Image

from memeflow.encoder.decode import decode_image

logger = logging.getLogger(__name__)

DEFAULT_MAX_SIDE = 640
DEFAULT_MIN_SCORE = 0.5  # recognition confidence below which a line is dropped as noise
ENGINES = ("onnxruntime", "openvino")
# auto: OpenVINO when installed (the same words, about 1.5x the memes/s on these AVX2
# cores; BENCHMARKS.md, "Words on memes"), else ONNX Runtime.
DEFAULT_ENGINE = "auto"


INSTALL_HINT = "pip install 'memeflow[ocr]' (in a clone: pip install -e '.[ocr]')"


def resolve_engine(engine: str) -> str:
    if engine == "auto":
        return "openvino" if importlib.util.find_spec("openvino") else "onnxruntime"
    if engine not in ENGINES:
        raise ValueError(f"unknown OCR engine {engine!r}: choose auto, {', '.join(ENGINES)}")
    return engine


class _OpenVinoSession:
    """What RapidOCR calls an inference session (array in, list of outputs out), compiled by
    OpenVINO from the ONNX model RapidOCR ships. Callers hold OcrReader's lock."""

    def __init__(self, model_path: str, threads: int | None) -> None:
        import openvino as ov

        core = ov.Core()
        settings: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
        if threads:
            settings["INFERENCE_NUM_THREADS"] = threads
        self._request = core.compile_model(core.read_model(model_path), "CPU",
                                           settings).create_infer_request()

    def __call__(self, input_content: np.ndarray) -> list[np.ndarray]:
        self._request.infer([np.ascontiguousarray(input_content, dtype=np.float32)])
        return [np.array(self._request.get_output_tensor(0).data)]


def _use_openvino(engine: Any, threads: int | None) -> None:
    """Swap OpenVINO sessions for the detector's and the recogniser's (the character list
    was read from the onnxruntime session's metadata at start)."""
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml, update_model_path

    paths = update_model_path(read_yaml(DEFAULT_CFG_PATH))
    engine.text_det.infer = _OpenVinoSession(paths["Det"]["model_path"], threads)
    engine.text_rec.session = _OpenVinoSession(paths["Rec"]["model_path"], threads)


class OcrReader:
    """One loaded OCR engine; `read` is safe to call from several threads (one at a time).

    `engine`: "auto", "onnxruntime" or "openvino" (the same models; see the module
    docstring). Raises ValueError for another engine name.
    """

    def __init__(
        self,
        max_side: int = DEFAULT_MAX_SIDE,
        min_score: float = DEFAULT_MIN_SCORE,
        threads: int | None = None,
        engine: str = DEFAULT_ENGINE,
    ) -> None:
        engine = resolve_engine(engine)
        try:
            from rapidocr_onnxruntime import RapidOCR  # the optional `ocr` extra
        except ImportError as exc:
            raise ModuleNotFoundError(f"reading the words on memes needs the `ocr` extra: "
                                      f"{INSTALL_HINT}") from exc

        settings: dict[str, Any] = {
            "det_limit_side_len": max_side,
            "det_limit_type": "max",
            "use_cls": False,
            "text_score": min_score,
        }
        if threads:
            settings["intra_op_num_threads"] = threads
        self._engine = RapidOCR(**settings)
        if engine == "openvino":
            _use_openvino(self._engine, threads)
        self.engine = engine
        self._lock = threading.Lock()
        self.max_side = max_side

    def read_image(self, rgb: np.ndarray) -> str:
        """The lines of text found in an RGB image, top to bottom, joined by newlines."""
        with self._lock:
            result, _ = self._engine(np.ascontiguousarray(rgb[..., ::-1]))  # it expects BGR
        lines = [str(line[1]).strip() for line in result or []]
        return "\n".join(line for line in lines if line)

    def read(self, data: bytes, source: str = "image") -> str:
        """The words on an encoded image (any format `memeflow.images` decodes)."""
        image = decode_image(data, source=source, min_side=self.max_side)
        return self.read_image(np.asarray(image))


def read_words(reader: OcrReader, image: Image.Image, source: str = "image") -> str | None:
    """The words on a decoded image, or None when the engine fails on it: the picture is
    still worth indexing without its words."""
    try:
        return reader.read_image(np.asarray(image.convert("RGB")))
    except Exception as exc:
        logger.warning("%s: could not read its words (%s); indexing the picture only",
                       source, exc)
        return None
