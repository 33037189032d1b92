"""The model under test: what `memeflow eval` needs of it, and the one function that builds
one from a name (the encoder's own loading path, so eval measures what `serve` would run)."""

from typing import Protocol

import numpy as np
from PIL import Image


class EvalModel(Protocol):
    """Images and texts in, (n, dim) float32 unit vectors out (`ClipModel`'s interface)."""

    name: str
    random_weights: bool

    def embed_images(self, images: list[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...


def build_model(name: str | None) -> EvalModel:
    """The model `name` (None: the configured one, MEMEFLOW_MODEL), with MEMEFLOW_RUNTIME, _DEVICE,
    _PRECISION and MEMEFLOW_ALLOW_RANDOM_WEIGHTS as the encoder reads them, and no text
    cache (every timed text runs the model). Raises ModelLoadError with the fix."""
    from memeflow import config
    from memeflow.encoder.model import load_model

    return load_model(name or config.model_name(), allow_random=config.allow_random_weights(),
                      runtime=config.runtime("auto"), device=config.device(None),
                      precision=config.precision(None), text_cache_size=0)
