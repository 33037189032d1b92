"""The CLIP model behind one small interface: images and texts in, unit vectors out.

Everything transformers- and torch-specific stays here, so the encoder executor, the
benchmarks and the notebooks only see numpy arrays.
"""

import logging
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPModel, CLIPProcessor

logger = logging.getLogger(__name__)

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# A Hugging Face id is "name" or "org/name"; anything else that names no folder is a bad path.
HF_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
RANDOM_SEED = 0


class ModelLoadError(RuntimeError):
    """The configured model cannot be loaded; the message says what to change."""


def _random_weights_model(folder: Path) -> CLIPModel:
    """The real architecture with seeded random weights, identical in every process."""
    torch.manual_seed(RANDOM_SEED)
    return CLIPModel(CLIPConfig.from_pretrained(folder))


def check_model_source(name: str, allow_random: bool) -> Path | None:
    """Fail fast, before any process starts, on a model setting that cannot work.

    Returns the local folder, or None for a Hugging Face id.
    """
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelLoadError(
                f"model folder {folder} has no config.json: point MEMEFLOW_MODEL at a folder "
                "saved with CLIPModel.save_pretrained, or at a Hugging Face id"
            )
        if not any((folder / f).is_file() for f in WEIGHT_FILES) and not allow_random:
            raise ModelLoadError(
                f"model folder {folder} has no weights ({', '.join(WEIGHT_FILES[::2])}): "
                "download a checkpoint into it, or set MEMEFLOW_ALLOW_RANDOM_WEIGHTS=1 to run "
                "it with random weights for tests (search results then carry no meaning)"
            )
        return folder
    if name.startswith(("/", ".", "~")) or not HF_ID.match(name):
        raise ModelLoadError(
            f"model folder {name} does not exist: set MEMEFLOW_MODEL to an existing folder "
            "or to a Hugging Face id such as openai/clip-vit-base-patch32"
        )
    return None


class ClipModel:
    """A CLIP checkpoint loaded once; encodes batches into L2-normalised float32 vectors."""

    def __init__(self, name: str, *, allow_random: bool = False, device: str = "cpu") -> None:
        folder = check_model_source(name, allow_random)
        self.name = name
        self.device = torch.device(device)
        self.random_weights = folder is not None and not any(
            (folder / f).is_file() for f in WEIGHT_FILES
        )
        source = str(folder) if folder else name
        try:
            self.processor = CLIPProcessor.from_pretrained(source)
            if self.random_weights:
                logger.warning(
                    "model %s has no weights: using random weights; search results carry "
                    "no meaning (fine for tests and timing only)",
                    source,
                )
                model = _random_weights_model(folder)
            else:
                model = CLIPModel.from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"could not load CLIP model {name!r}: {exc}. Check the name and the network, "
                "or download it once and set MEMEFLOW_MODEL to its folder"
            ) from exc
        self.model = model.to(self.device).eval()
        self.dim: int = self.model.config.projection_dim
        self.max_text_tokens: int = self.model.config.text_config.max_position_embeddings

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Resize, crop and normalise one RGB image; thread-safe, so callers run it in a pool."""
        return self.processor.image_processor(images=image, return_tensors="pt")["pixel_values"][0]

    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        """Embed a (n, 3, H, W) batch of preprocessed images."""
        with torch.inference_mode():
            out = self.model.get_image_features(pixel_values=pixel_values.to(self.device))
        return _unit_rows(out.pooler_output)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """Embed RGB images (convenience for notebooks; the executor pipelines preprocess)."""
        return self.encode_pixels(torch.stack([self.preprocess(im) for im in images]))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts; longer ones are cut at the model's token limit, not rejected."""
        tokens = self.processor.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_text_tokens,
            return_tensors="pt",
        )
        with torch.inference_mode():
            out = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
            )
        return _unit_rows(out.pooler_output)


def _unit_rows(features: torch.Tensor) -> np.ndarray:
    vectors = features.float().cpu().numpy()
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
