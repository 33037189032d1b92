"""OpenCLIP checkpoints through open_clip_torch: `hf-hub:ORG/NAME`, `open_clip:ARCH/PRETRAINED`
(a tag of open_clip's pretrained list) or a local folder with `open_clip_config.json` and
its weights. Covers, among others, DataComp's ViT-B-32-256 and Apple's MobileCLIP2.

open_clip builds the architecture, its preprocessing (size, resize mode, interpolation,
mean and std from the checkpoint's `preprocess_cfg`) and its tokenizer (CLIP's BPE, shipped
in the wheel, or the one the config names). Texts are padded to the full context length:
some towers (MobileCLIP2's, with `no_causal_mask`) attend to every position.

open_clip needs torchvision for its transforms. PyPI's torchvision beside a CPU-only torch
cannot load its compiled operators; `torchvision_ops` (run when this package is imported)
lets its transforms import anyway.
"""

import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from memeflow.encoder.families.base import DualEncoder
from memeflow.encoder.source import OPEN_CLIP_PREFIX, ModelLoadError

INSTALL_HINT = "pip install 'memeflow[openclip]' (in a clone: pip install -e '.[openclip]')"


def _open_clip() -> Any:
    try:
        import open_clip
    except (ImportError, RuntimeError) as exc:
        # RuntimeError: a torchvision whose operators are built differently from torch's
        # (another version) fails at import.
        raise ModelLoadError(f"OpenCLIP checkpoints need open_clip_torch ({exc}): "
                             f"{INSTALL_HINT}") from exc
    return open_clip


def _arch_and_tag(name: str) -> tuple[str, str | None]:
    """`open_clip:ARCH/PRETRAINED` -> (ARCH, PRETRAINED); `open_clip:ARCH` -> (ARCH, None)."""
    arch, _, tag = name.removeprefix(OPEN_CLIP_PREFIX).partition("/")
    return arch, tag or None


class OpenClipEncoder(DualEncoder):
    """An OpenCLIP checkpoint; raises ModelLoadError naming the fix."""

    family = "openclip"
    text_inputs = ("input_ids",)

    def __init__(self, name: str, folder: Path | None, random_seed: int | None) -> None:
        open_clip = _open_clip()
        if folder is not None:
            model_name, pretrained = f"local-dir:{folder}", None
            self._config = json.loads((folder / "open_clip_config.json").read_text())
        elif name.startswith(OPEN_CLIP_PREFIX):
            model_name, pretrained = _arch_and_tag(name)
            self._config = {"model_cfg": open_clip.get_model_config(model_name)}
            if pretrained is None and random_seed is None:
                raise ModelLoadError(
                    f"model {name!r} names an architecture without weights: write "
                    f"open_clip:{model_name}/PRETRAINED, one of "
                    f"{open_clip.list_pretrained_tags_by_model(model_name)}"
                )
        else:
            model_name, pretrained = name, None  # hf-hub:ORG/NAME
            self._config = {"name": name}
        if random_seed is not None:
            torch.manual_seed(random_seed)
            pretrained = None
        try:
            model, _, transform = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, load_weights=random_seed is None)
            self._tokenizer = open_clip.get_tokenizer(model_name)
        except (OSError, RuntimeError, ValueError) as exc:
            raise ModelLoadError(
                f"could not load OpenCLIP model {name!r}: {exc}. Check the name and the "
                "network, or download it once and set MEMEFLOW_MODEL to its folder"
            ) from exc
        self._model: Any = model.eval()  # open_clip's CLIP / CustomTextCLIP
        self.module = self._model
        self._transform = transform
        size = self._model.visual.preprocess_cfg["size"]
        self.image_size = (size, size) if isinstance(size, int) else (size[0], size[1])
        with torch.inference_mode():
            self.dim = int(self.text_features(self.tokenize(["a"])["input_ids"]).shape[-1])

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        tensor: torch.Tensor = self._transform(image)
        return tensor

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return {"input_ids": self._tokenizer(texts).long()}

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self._model.encode_image(pixel_values)
        return features

    def text_features(self, *tokens: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self._model.encode_text(tokens[0])
        return features

    def config_json(self) -> str:
        return json.dumps(self._config, sort_keys=True)
