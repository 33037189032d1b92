"""A separate text encoder for queries, e.g. a multilingual CLIP text model, trained to
map texts into the image model's space (sentence-transformers'
`clip-ViT-B-32-multilingual-v1` for ViT-B/32).

Such a model is a folder in sentence-transformers' layout: `modules.json` listing a
Transformer (any Hugging Face encoder, in the folder itself or a subfolder), a Pooling
module and optionally a Dense projection to the image space. It is read here with plain
transformers and torch (no sentence-transformers dependency): token embeddings, pooled
(mean over real tokens, CLS or max), projected, L2-normalised.
"""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memeflow.encoder.model import DEFAULT_TEXT_CACHE_SIZE, ClipModel, TextVectorCache
from memeflow.encoder.source import ModelLoadError
from memeflow.vectors import unit_rows

ACTIVATIONS = {
    "torch.nn.modules.linear.Identity": torch.nn.Identity,
    "torch.nn.modules.activation.Tanh": torch.nn.Tanh,
}


def _module(folder: Path, modules: list[dict[str, Any]], kind: str) -> Path | None:
    found = [m for m in modules if str(m.get("type", "")).endswith(kind)]
    return folder / found[0].get("path", "") if found else None


def _dense(path: Path) -> torch.nn.Sequential:
    """sentence-transformers' Dense module: a Linear layer and an activation."""
    config = json.loads((path / "config.json").read_text())
    activation = config.get("activation_function", "torch.nn.modules.linear.Identity")
    if activation not in ACTIVATIONS:
        raise ModelLoadError(f"{path}: unsupported activation {activation}: use one of "
                             f"{', '.join(ACTIVATIONS)}")
    linear = torch.nn.Linear(config["in_features"], config["out_features"],
                             bias=config.get("bias", True))
    if (path / "model.safetensors").is_file():
        from safetensors.torch import load_file

        state = load_file(path / "model.safetensors")
    else:
        state = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
    return torch.nn.Sequential(linear, ACTIVATIONS[activation]()).eval()


class SentenceTextModel:
    """Texts to unit vectors through a sentence-transformers-style folder."""

    def __init__(self, folder: str | Path, text_cache_size: int = DEFAULT_TEXT_CACHE_SIZE
                 ) -> None:
        self.folder = Path(folder).expanduser()
        if not (self.folder / "modules.json").is_file():
            raise ModelLoadError(
                f"text model {self.folder} has no modules.json: point MEMEFLOW_TEXT_MODEL at a "
                "folder in sentence-transformers' layout (Transformer, Pooling, Dense)"
            )
        modules = json.loads((self.folder / "modules.json").read_text())
        transformer = _module(self.folder, modules, "Transformer") or self.folder
        pooling = _module(self.folder, modules, "Pooling")
        dense = _module(self.folder, modules, "Dense")
        pool_config = json.loads((pooling / "config.json").read_text()) if pooling else {}
        self.pooling = ("cls" if pool_config.get("pooling_mode_cls_token")
                        else "max" if pool_config.get("pooling_mode_max_tokens") else "mean")
        settings = transformer / "sentence_bert_config.json"
        self.max_tokens = (json.loads(settings.read_text()).get("max_seq_length", 128)
                           if settings.is_file() else 128)
        from transformers import AutoModel, AutoTokenizer  # after memeflow.encoder.families

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(transformer)
            self.encoder = AutoModel.from_pretrained(transformer).eval()
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"could not load text model {self.folder}: {exc}") from exc
        self.projection = _dense(dense) if dense else torch.nn.Identity()
        # With `dense` the projection is _dense's Sequential, its [0] the Linear layer.
        self.dim: int = (self.projection[0].out_features if dense  # type: ignore[index,assignment]
                         else self.encoder.config.hidden_size)
        self.text_cache = TextVectorCache(text_cache_size)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, one per text; repeated texts come from the cache."""
        return self.text_cache.embed(texts, self._run, self.dim)

    def _run(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts, padding=True, truncation=True,
                                max_length=self.max_tokens, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.encoder(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            elif self.pooling == "max":
                pooled = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
            else:
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            projected = self.projection(pooled).float().numpy()
        return unit_rows(projected)


class QueryTextModel:
    """CLIP for images, a separate model for texts: what the encoder uses when
    MEMEFLOW_TEXT_MODEL is set. Anything but `embed_texts` is CLIP's."""

    def __init__(self, clip: ClipModel, text: SentenceTextModel) -> None:
        if text.dim != clip.dim:
            raise ModelLoadError(
                f"text model {text.folder} makes {text.dim}-d vectors but {clip.name} makes "
                f"{clip.dim}-d ones: use a text model trained for this image model"
            )
        self.clip, self.text = clip, text

    def __getattr__(self, name: str) -> Any:
        return getattr(self.clip, name)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.text.embed_texts(texts)


# What the encoder embeds with: CLIP alone, or CLIP behind a separate text model.
EncoderModel = ClipModel | QueryTextModel


def with_text_model(clip: ClipModel, text_model: str | None) -> ClipModel | QueryTextModel:
    """The model the encoder uses: CLIP alone, or CLIP with a separate text model."""
    return QueryTextModel(clip, SentenceTextModel(text_model)) if text_model else clip
