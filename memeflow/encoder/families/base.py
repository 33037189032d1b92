"""What every model family gives the runtimes: the towers, the preprocessing, the tokens."""

from abc import ABC, abstractmethod
from typing import Any

import torch
from PIL import Image


class DualEncoder(ABC):
    """A dual encoder loaded once, in float32 on the CPU.

    - `family`: "clip", "siglip", "siglip2", "metaclip2" or "openclip";
    - `module`: the torch module holding every weight (moved, cast or quantized as a whole);
    - `dim`: the length of an embedding; `image_size`: (height, width) of a preprocessed image;
    - `text_inputs`: the names of the text tower's integer inputs, in call order.
    """

    family: str
    module: torch.nn.Module
    dim: int
    image_size: tuple[int, int]
    text_inputs: tuple[str, ...]
    _model: Any  # the library's model object behind `module`

    @abstractmethod
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB image -> (3, H, W) float32, as the checkpoint's training prepared it."""

    @abstractmethod
    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Texts -> the int64 (n, tokens) tensors named in `text_inputs`; cut at the
        model's limit, padded as the checkpoint expects."""

    @abstractmethod
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) -> (n, dim) unnormalised features."""

    @abstractmethod
    def text_features(self, *tokens: torch.Tensor) -> torch.Tensor:
        """The tensors of `text_inputs`, in that order -> (n, dim) unnormalised features."""

    @abstractmethod
    def config_json(self) -> str:
        """The architecture as text: part of the key of converted-model caches."""

    def drop_weights(self) -> None:
        """Free the torch weights once another runtime holds its own copy; preprocessing
        and tokenizing still work, the torch towers no longer do."""
        self.module = torch.nn.Module()
        self._model = None

    def image_tower(self) -> torch.nn.Module:
        """The image path as a module, for exporters that trace modules."""
        return _ImageTower(self)

    def text_tower(self) -> torch.nn.Module:
        """The text path as a module whose inputs are named as in `text_inputs`."""
        return _TextTower(self)


# Exporters (ONNX, OpenVINO) name a graph's inputs after forward's parameters.
class _ImageTower(torch.nn.Module):
    def __init__(self, encoder: DualEncoder) -> None:
        super().__init__()
        self.model = encoder.module  # registered, so tracers see the weights as parameters
        self._encoder = encoder

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._encoder.image_features(pixel_values)


class _TextTower(torch.nn.Module):
    def __init__(self, encoder: DualEncoder) -> None:
        super().__init__()
        assert encoder.text_inputs in (("input_ids", "attention_mask"), ("input_ids",))
        self.model = encoder.module
        self._encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        if attention_mask is None:
            return self._encoder.text_features(input_ids)
        return self._encoder.text_features(input_ids, attention_mask)
