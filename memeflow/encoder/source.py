"""Where a model comes from: a Hugging Face id, an OpenCLIP name or a local folder, checked
before any process starts. Imports no model library, so `memeflow serve` can check a
setting fast.
"""

import re
from pathlib import Path

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# What open_clip looks for in a folder beside open_clip_config.json.
OPEN_CLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_PREFIX = "open_clip:"  # open_clip:ARCH/PRETRAINED, a tag of open_clip's list
HF_HUB_PREFIX = "hf-hub:"  # hf-hub:ORG/NAME, an OpenCLIP checkpoint on the Hugging Face Hub
# A Hugging Face id is "name" or "org/name"; anything else that names no folder is a bad path.
HF_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


class ModelLoadError(RuntimeError):
    """The configured model cannot be loaded; the message says what to change."""


def model_format(name: str, folder: Path | None) -> str:
    """"open_clip" for an OpenCLIP name or folder (open_clip_config.json), else
    "transformers" (config.json; its model_type names the family)."""
    if folder is not None:
        if not (folder / OPEN_CLIP_CONFIG).is_file():
            return "transformers"
        if not (folder / "config.json").is_file():
            return "open_clip"
        # Both configs (some hub repositories ship both): the one whose weights are there.
        open_clip_weights = any((folder / f).is_file() for f in OPEN_CLIP_WEIGHT_FILES)
        hf_weights = any((folder / f).is_file() for f in WEIGHT_FILES)
        return "open_clip" if open_clip_weights and not hf_weights else "transformers"
    return "open_clip" if name.startswith((OPEN_CLIP_PREFIX, HF_HUB_PREFIX)) else "transformers"


def has_weights(folder: Path) -> bool:
    """Whether a model folder holds weights (transformers' or open_clip's file names)."""
    return any((folder / f).is_file() for f in WEIGHT_FILES + OPEN_CLIP_WEIGHT_FILES)


def check_model_source(name: str, allow_random: bool) -> Path | None:
    """Fail fast, before any process starts, on a model setting that cannot work.

    Returns the local folder, or None for a Hugging Face id or an OpenCLIP name
    (`hf-hub:ORG/NAME`, `open_clip:ARCH/PRETRAINED`).
    """
    if name.startswith((OPEN_CLIP_PREFIX, HF_HUB_PREFIX)):
        if not name.partition(":")[2].strip("/"):
            raise ModelLoadError(f"model {name!r} names no checkpoint: write hf-hub:ORG/NAME "
                                 "or open_clip:ARCH/PRETRAINED (e.g. open_clip:ViT-B-32-256/"
                                 "datacomp_s34b_b86k)")
        return None
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file() and not (folder / OPEN_CLIP_CONFIG).is_file():
            raise ModelLoadError(
                f"model folder {folder} has no config.json (nor {OPEN_CLIP_CONFIG}): point "
                "MEMEFLOW_MODEL at a folder saved with save_pretrained (CLIP, SigLIP, SigLIP 2, "
                "MetaCLIP 2), an OpenCLIP folder, or a Hugging Face id"
            )
        if not has_weights(folder) and not allow_random:
            raise ModelLoadError(
                f"model folder {folder} has no weights ({', '.join(WEIGHT_FILES[::2])}, "
                f"{OPEN_CLIP_WEIGHT_FILES[0]}): "
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
