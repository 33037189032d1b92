"""transformers dual encoders: CLIP, SigLIP, SigLIP 2 and MetaCLIP 2, through AutoModel.

The checkpoint's own processor does the preprocessing (its resize, crop or not, mean and
std) and its own tokenizer the tokens. How texts are padded differs by family and is what
each was trained with:
- CLIP and MetaCLIP 2 pool the end-of-text token under causal attention, so padding only
  to the longest text of a batch changes no vector (and saves most of the 77 tokens);
- SigLIP and SigLIP 2 pool the last position and were trained on texts padded to the full
  64 tokens (the `padding="max_length"` of transformers' SigLIP documentation), so they
  always get that padding.
SigLIP 2's fixed-resolution checkpoints (google/siglip2-*-patch16-224 and the like) are
SigLIP models with a Gemma tokenizer and are told apart by it. SigLIP 2's NaFlex
checkpoints (`model_type: siglip2`) take patch sequences of varying length and are refused
with a message.
"""

from typing import Any

import torch
from PIL import Image
from transformers import AutoConfig, AutoModel, AutoProcessor, PretrainedConfig

from memeflow.encoder.families.base import DualEncoder
from memeflow.encoder.source import ModelLoadError

# config.json's model_type -> memeflow's family name (SigLIP 2 is told apart by tokenizer).
MODEL_TYPES = {"clip": "clip", "siglip": "siglip", "metaclip_2": "metaclip2"}
FIXED_LENGTH_FAMILIES = ("siglip", "siglip2")


def family_of(config: PretrainedConfig, tokenizer: object) -> str:
    """The family of a transformers checkpoint from its config and tokenizer class; raises
    ModelLoadError for a model type memeflow does not run."""
    model_type = getattr(config, "model_type", None)
    if model_type == "siglip2":
        raise ModelLoadError(
            "SigLIP 2 NaFlex checkpoints (model_type siglip2, variable patch counts) are not "
            "supported: use a fixed-resolution SigLIP 2 checkpoint such as "
            "google/siglip2-base-patch16-224"
        )
    if model_type not in MODEL_TYPES:
        raise ModelLoadError(
            f"model type {model_type!r} is not a dual encoder memeflow runs: use a CLIP, "
            "SigLIP, SigLIP 2 or MetaCLIP 2 checkpoint, or an OpenCLIP one (hf-hub:ORG/NAME "
            "or open_clip:ARCH/PRETRAINED)"
        )
    family = MODEL_TYPES[model_type]
    tokenizer_class = type(tokenizer).__name__
    if family == "siglip" and ("Gemma" in tokenizer_class or "Siglip2" in tokenizer_class):
        return "siglip2"
    return family


class TransformersDualEncoder(DualEncoder):
    """A transformers checkpoint (Hugging Face id or saved folder) with its processor.

    Raises OSError/ValueError from transformers for a source that cannot be read, and
    ModelLoadError for a model type that is not a supported dual encoder.
    """

    text_inputs = ("input_ids", "attention_mask")

    def __init__(self, source: str, random_seed: int | None) -> None:
        config = AutoConfig.from_pretrained(source)
        self.processor = AutoProcessor.from_pretrained(source)
        self.family = family_of(config, self.processor.tokenizer)
        if random_seed is not None:
            torch.manual_seed(random_seed)  # the same weights in every process
            model = AutoModel.from_config(config)
        else:
            model = AutoModel.from_pretrained(source, dtype=torch.float32)
        self._model: Any = model.eval()  # CLIPModel, SiglipModel, MetaClip2Model
        self.module = self._model
        self.config = model.config
        side = self.config.vision_config.image_size
        self.image_size = (side, side)
        self.max_tokens: int = self.config.text_config.max_position_embeddings
        self.padding = "max_length" if self.family in FIXED_LENGTH_FAMILIES else "longest"
        with torch.inference_mode():
            self.dim = int(self.text_features(*self.tokenize(["a"]).values()).shape[-1])

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        out = self.processor.image_processor(images=image, return_tensors="pt")
        return out["pixel_values"][0]

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        tokens = self.processor.tokenizer(
            texts, padding=self.padding, truncation=True, max_length=self.max_tokens,
            return_tensors="pt",
        )
        return {name: tokens[name].long() for name in self.text_inputs}

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._model.get_image_features(pixel_values=pixel_values).pooler_output

    def text_features(self, *tokens: torch.Tensor) -> torch.Tensor:
        input_ids, attention_mask = tokens
        out = self._model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        return out.pooler_output

    def config_json(self) -> str:
        return str(self.config.to_json_string(use_diff=False))
