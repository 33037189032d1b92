"""Model families: one checkpoint's two towers and the preprocessing it defines.

A family class only encodes (images and token ids in, unnormalised features out); the
runtimes (`memeflow.encoder.model`, `.onnx`, `.openvino`) and the executor decide device,
threads and batching. The family is read from the checkpoint's own config, never guessed
from its name: `config.json`'s `model_type` for transformers checkpoints (CLIP, SigLIP,
SigLIP 2, MetaCLIP 2), `open_clip_config.json` or an `hf-hub:` / `open_clip:` name for
OpenCLIP checkpoints (`memeflow.encoder.source.model_format`).
"""

from pathlib import Path

from memeflow.encoder.families.base import DualEncoder
from memeflow.encoder.families.torchvision_ops import allow_import_without_compiled_ops
from memeflow.encoder.source import ModelLoadError, model_format

# Before any family imports transformers or open_clip: both import torchvision when it is
# installed, and PyPI's torchvision beside a CPU-only torch fails at import without this.
allow_import_without_compiled_ops()

__all__ = ["DualEncoder", "build_encoder"]


def build_encoder(name: str, folder: Path | None, random_seed: int | None) -> DualEncoder:
    """The checkpoint `name` (a Hugging Face id, `hf-hub:`/`open_clip:` name or the local
    `folder`), with seeded random weights when `random_seed` is not None. Raises
    ModelLoadError naming the fix."""
    if model_format(name, folder) == "open_clip":
        from memeflow.encoder.families.openclip import OpenClipEncoder

        return OpenClipEncoder(name, folder, random_seed)
    from memeflow.encoder.families.transformers_dual import TransformersDualEncoder

    try:
        return TransformersDualEncoder(str(folder) if folder else name, random_seed)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"could not load model {name!r}: {exc}. Check the name and the network, or "
            "download it once and set MEMEFLOW_MODEL to its folder"
        ) from exc
