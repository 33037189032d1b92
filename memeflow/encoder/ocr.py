"""Reading the words written on a meme, with PP-OCRv4 through RapidOCR and ONNX Runtime.

The models ship inside the `rapidocr-onnxruntime` wheel (the `ocr` extra), so nothing is
downloaded. Text detection runs on the image scaled to `max_side` pixels on its longer
side, and the direction classifier is skipped: captions on memes stand upright, and
together the two settings roughly halve the time per meme. Reading is best effort: a
meme whose words cannot be read is still indexed by its picture. In the service the
encoder reads the words from the image it decodes for CLIP (`memeflow.encoding`).
"""

import logging
import threading
from typing import Any

import numpy as np
from PIL import Image

from memeflow.encoder.decode import decode_image

logger = logging.getLogger(__name__)

DEFAULT_MAX_SIDE = 640
DEFAULT_MIN_SCORE = 0.5  # recognition confidence below which a line is dropped as noise


class OcrReader:
    """One loaded OCR engine; `read` is safe to call from several threads (one at a time)."""

    def __init__(
        self,
        max_side: int = DEFAULT_MAX_SIDE,
        min_score: float = DEFAULT_MIN_SCORE,
        threads: int | None = None,
    ) -> None:
        from rapidocr_onnxruntime import RapidOCR  # the optional `ocr` extra

        settings: dict[str, Any] = {
            "det_limit_side_len": max_side,
            "det_limit_type": "max",
            "use_cls": False,
            "text_score": min_score,
        }
        if threads:
            settings["intra_op_num_threads"] = threads
        self._engine = RapidOCR(**settings)
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
