"""Every model family loads its published architecture (random weights), prepares images
and texts as its checkpoint defines, and runs on every CPU runtime in agreement with torch.

Checkpoints are built offline (tests/families.py). Random weights: the agreement measured
is numerical error only; no quality is measured here.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from memeflow.encoder.families.transformers_dual import family_of
from memeflow.encoder.model import ClipModel, load_model
from memeflow.encoder.source import ModelLoadError, check_model_source, model_format
from tests import families
from tests.conftest import NO_WEIGHTS_MODEL
from tests.test_runtimes import AUTO_MIN_MEAN, _captions

TRANSFORMERS_FAMILIES = {"siglip": families.siglip_folder, "siglip2": families.siglip2_folder,
                         "metaclip2": families.metaclip2_folder}
SHORT_AND_LONG = ["drake", "a cat sitting at a dinner table refusing to eat a salad",
                  "un chat sur une table"]


@pytest.fixture(scope="module")
def samples(meme_files) -> tuple[list[Image.Image], list[str]]:
    images = [Image.open(p).convert("RGB") for p in meme_files[:: len(meme_files) // 8][:8]]
    return images, [*_captions(8), "Ein Hund im Park", "una persona feliz"]


@pytest.fixture(scope="module")
def small_vocab(tmp_path_factory) -> Path:
    """The published architectures with the small tokenizers' vocabulary (runtimes, Flow)."""
    root = tmp_path_factory.mktemp("families")
    for build in TRANSFORMERS_FAMILIES.values():
        build(root, shrink_vocab=True)
    for arch in families.OPEN_CLIP_FOLDERS:
        families.open_clip_folder(root, arch)
    return root


def _folder(root: Path, family: str) -> Path:
    names = {"siglip": "siglip-base-patch16-224", "siglip2": "siglip2-base-patch16-224",
             "metaclip2": "metaclip-2-mt5-worldwide-b32"}
    return root / names.get(family, family)


# The published configs, vocabularies included: one test per family.
EXPECTED = {  # family -> (dimension, image side, pixel value of a white image per channel)
    "siglip": (768, 224, (1.0, 1.0, 1.0)),  # mean and std 0.5: [0, 1] -> [-1, 1]
    "siglip2": (768, 224, (1.0, 1.0, 1.0)),
    "metaclip2": (512, 224, tuple((1 - m) / s for m, s in zip(families.OPENAI_MEAN,
                                                              families.OPENAI_STD,
                                                              strict=True))),
}


@pytest.mark.parametrize("family", list(TRANSFORMERS_FAMILIES))
def test_published_architecture_loads_and_embeds(family, tmp_path, samples) -> None:
    folder = TRANSFORMERS_FAMILIES[family](tmp_path)
    model = load_model(str(folder), allow_random=True)
    dim, side, white = EXPECTED[family]
    assert (model.family, model.dim, model.random_weights) == (family, dim, True)
    pixels = model.preprocess(Image.new("RGB", (400, 300), "white"))
    assert pixels.shape == (3, side, side)
    np.testing.assert_allclose(pixels.mean(dim=(1, 2)).numpy(), white, atol=1e-3)
    images, texts = samples
    vectors = np.vstack([model.embed_images(images[:2]), model.embed_texts(texts[:3])])
    assert vectors.dtype == np.float32 and vectors.shape == (5, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("family", list(TRANSFORMERS_FAMILIES))
def test_texts_get_the_same_vector_alone_or_in_a_batch(family, small_vocab) -> None:
    """CLIP-like families pad to the longest text, SigLIP's to its fixed 64 tokens: either
    way a text's vector never depends on the others in its batch."""
    model = load_model(str(_folder(small_vocab, family)), allow_random=True)
    batch = model._run_texts(SHORT_AND_LONG)
    alone = np.vstack([model._run_texts([t]) for t in SHORT_AND_LONG])
    np.testing.assert_allclose(batch, alone, atol=2e-5)
    assert not np.allclose(batch[0], batch[1], atol=1e-3)
    long_text = "a meme about something " * 60  # past 64 and 77 tokens: cut, not refused
    assert model.embed_texts([long_text]).shape == (1, model.dim)
    tokens = model.encoder.tokenize(SHORT_AND_LONG)["input_ids"]
    fixed = family in ("siglip", "siglip2")
    assert (tokens.shape[1] == model.encoder.max_tokens) == fixed


def _agreement(model: ClipModel, reference: ClipModel, samples) -> tuple[np.ndarray, ...]:
    images, texts = samples
    pixels = torch.stack([reference.preprocess(im) for im in images])
    image_cos = np.sum(model.embed_pixels(pixels) * reference.embed_pixels(pixels), axis=1)
    text_cos = np.sum(model._run_texts(texts) * reference._run_texts(texts), axis=1)
    return image_cos, text_cos


@pytest.fixture(scope="module")
def torch_models() -> dict[str, ClipModel]:
    """Each family's torch model, loaded once for the runtimes to be compared with."""
    return {}


def _reference(torch_models, small_vocab, family) -> ClipModel:
    if family not in torch_models:
        torch_models[family] = load_model(str(_folder(small_vocab, family)), allow_random=True)
    return torch_models[family]


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
@pytest.mark.parametrize("family", [*TRANSFORMERS_FAMILIES, *families.OPEN_CLIP_FOLDERS])
def test_every_runtime_agrees_with_torch(family, runtime, small_vocab, torch_models, samples,
                                         tmp_path) -> None:
    pytest.importorskip("onnxruntime" if runtime == "onnx" else "openvino")
    if family in families.OPEN_CLIP_FOLDERS:
        families.open_clip_or_skip()
    reference = _reference(torch_models, small_vocab, family)
    model = load_model(str(_folder(small_vocab, family)), allow_random=True, runtime=runtime,
                       cache=tmp_path)
    assert model.family == reference.family and model.dim == reference.dim
    images, texts = _agreement(model, reference, samples)
    assert images.mean() >= AUTO_MIN_MEAN and texts.mean() >= AUTO_MIN_MEAN, (
        images.min(), texts.min())


@pytest.mark.parametrize("arch", list(families.OPEN_CLIP_FOLDERS))
def test_open_clip_checkpoints_load_with_their_preprocessing(arch, small_vocab, samples
                                                             ) -> None:
    families.open_clip_or_skip()
    model = load_model(str(small_vocab / arch), allow_random=True)
    assert (model.family, model.dim, model.encoder.image_size) == ("openclip", 512, (256, 256))
    preprocess = families.OPEN_CLIP_FOLDERS[arch]["preprocess_cfg"]
    white = [(1 - m) / s for m, s in zip(preprocess["mean"], preprocess["std"], strict=True)]
    pixels = model.preprocess(Image.new("RGB", (400, 300), "white"))
    assert pixels.shape == (3, 256, 256)
    np.testing.assert_allclose(pixels.mean(dim=(1, 2)).numpy(), white, atol=1e-3)
    tokens = model.encoder.tokenize(["a photo of a cat"])["input_ids"]
    assert tokens[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]  # CLIP's BPE
    images, texts = samples
    vectors = np.vstack([model.embed_images(images[:2]), model.embed_texts(texts[:3])])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    batch = model._run_texts(SHORT_AND_LONG)
    alone = np.vstack([model._run_texts([t]) for t in SHORT_AND_LONG])
    np.testing.assert_allclose(batch, alone, atol=2e-5)


# The family comes from the checkpoint's config, not its name.

def test_family_is_read_from_the_config_not_the_name(small_vocab, tmp_path) -> None:
    renamed = tmp_path / "clip-vit-base-patch32"  # a SigLIP 2 checkpoint under a CLIP name
    shutil.copytree(_folder(small_vocab, "siglip2"), renamed)
    assert load_model(str(renamed), allow_random=True).family == "siglip2"
    assert model_format(str(small_vocab / "ViT-B-32-256"), small_vocab / "ViT-B-32-256") == \
        "open_clip"
    assert model_format(str(NO_WEIGHTS_MODEL), NO_WEIGHTS_MODEL) == "transformers"
    assert model_format("hf-hub:timm/MobileCLIP2-S2-OpenCLIP", None) == "open_clip"
    assert model_format("google/siglip2-base-patch16-224", None) == "transformers"


def test_a_folder_with_both_configs_uses_the_one_whose_weights_are_there(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "open_clip_config.json").write_text("{}")
    (tmp_path / "open_clip_model.safetensors").write_bytes(b"")
    assert model_format(str(tmp_path), tmp_path) == "open_clip"
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert model_format(str(tmp_path), tmp_path) == "transformers"


def test_unsupported_model_types_are_refused_with_the_supported_ones(tmp_path) -> None:
    from transformers import BertConfig, Siglip2Config

    with pytest.raises(ModelLoadError, match="CLIP, SigLIP, SigLIP 2 or MetaCLIP 2"):
        family_of(BertConfig(), object())
    with pytest.raises(ModelLoadError, match=r"NaFlex.*google/siglip2-base-patch16-224"):
        family_of(Siglip2Config(), object())


def test_open_clip_names_are_checked_before_start() -> None:
    assert check_model_source("open_clip:ViT-B-32-256/datacomp_s34b_b86k", False) is None
    assert check_model_source("hf-hub:timm/MobileCLIP2-S2-OpenCLIP", False) is None
    with pytest.raises(ModelLoadError, match="names no checkpoint"):
        check_model_source("hf-hub:", False)


def test_an_open_clip_folder_without_weights_needs_random_weights_allowed(small_vocab) -> None:
    with pytest.raises(ModelLoadError, match=r"has no weights.*open_clip_model\.safetensors"):
        check_model_source(str(small_vocab / "ViT-B-32-256"), allow_random=False)
    config = json.loads((small_vocab / "ViT-B-32-256" / "open_clip_config.json").read_text())
    assert config["model_cfg"]["vision_cfg"]["image_size"] == 256


def test_torchvision_imports_whether_or_not_its_compiled_operators_load() -> None:
    """PyPI's torchvision beside a CPU-only torch cannot load its operators and would fail
    at import (and with it transformers' image processors and open_clip); memeflow defines
    the two schemas it needs exactly when the operators are missing, and never otherwise."""
    pytest.importorskip("torchvision", reason="the optional `openclip` extra is not installed")
    families.open_clip_or_skip()
    script = (
        "from memeflow.encoder.families.torchvision_ops import "
        "allow_import_without_compiled_ops as allow\n"
        "acted = allow()\n"
        "import torchvision, torchvision.transforms, open_clip, transformers\n"
        "from transformers import AutoProcessor\n"
        "print(acted, torchvision.extension._has_ops())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    acted, has_ops = done.stdout.split()
    assert acted == str(has_ops == "False")
