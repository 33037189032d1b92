"""Where a CLIP model comes from: a Hugging Face id or a local folder, checked before any
process starts. Imports no model library, so `memeflow serve` can check a setting fast.
"""

import re
from pathlib import Path

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# A Hugging Face id is "name" or "org/name"; anything else that names no folder is a bad path.
HF_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
class ModelLoadError(RuntimeError):
    """The configured model cannot be loaded; the message says what to change."""


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
