"""Runtimes, devices and precisions: each runtime's vectors against torch fp32, what `auto`
resolves to, and the refusals a user sees on a machine without the hardware asked for.

The model has random weights: the agreement measured here is numerical error only
(kernels, fusion, precision), not a real checkpoint's agreement, which must be measured
again with its weights (benchmarks/bench_encode.py).
"""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from memeflow import config
from memeflow.encoder import hardware
from memeflow.encoder.hardware import AUTO_ELIGIBLE, cpu_features, resolve_device, resolve_runtime
from memeflow.encoder.model import ClipModel
from memeflow.encoder.source import ModelLoadError
from tests.conftest import NO_WEIGHTS_MODEL, SHARED

CAPTIONS = SHARED / "data" / "flickr8k-1k" / "captions.csv"
IMAGES = 64  # of the 260 memes, spread over them: the benchmark measures 256
TEXTS = 200
# A runtime `auto` may pick must keep search results: mean cosine to torch fp32 >= 0.999.
AUTO_MIN_MEAN = 0.999
has_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")


def _captions(count: int) -> list[str]:
    with CAPTIONS.open() as fh:
        distinct = dict.fromkeys(row["caption"].rstrip(" .") for row in csv.DictReader(fh))
    return list(distinct)[:count]


@pytest.fixture(scope="module")
def samples(meme_files, clip_model) -> tuple[torch.Tensor, list[str]]:
    """Preprocessed memes (every fourth) and Flickr captions, shared by every runtime."""
    paths = meme_files[:: len(meme_files) // IMAGES][:IMAGES]
    pixels = torch.stack([clip_model.preprocess(Image.open(p).convert("RGB")) for p in paths])
    return pixels, _captions(TEXTS)


@pytest.fixture(scope="module")
def reference(clip_model, samples) -> tuple[np.ndarray, np.ndarray]:
    pixels, texts = samples
    return _vectors(clip_model, pixels, texts)


def _vectors(model: ClipModel, pixels: torch.Tensor, texts: list[str]
             ) -> tuple[np.ndarray, np.ndarray]:
    images = np.vstack([model.embed_pixels(batch) for batch in pixels.split(16)])
    texts_out = [model._run_texts(texts[i : i + 16]) for i in range(0, len(texts), 16)]
    return images, np.vstack(texts_out)


def _agreement(model: ClipModel, samples, reference) -> tuple[np.ndarray, np.ndarray]:
    """Cosines to torch fp32 of each image and text; also checks that one image alone (the
    batch axis is not fixed) and a text past the token limit (cut, not refused) work."""
    pixels, texts = samples
    long_text = "a meme about something " * 40
    assert model._run_texts([long_text]).shape == (1, model.dim)
    np.testing.assert_allclose(model.embed_pixels(pixels[:1])[0] @ reference[0][0], 1.0,
                               atol=0.01)
    images, texts = _vectors(model, *samples)
    assert images.dtype == np.float32 and images.shape == reference[0].shape
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    return np.sum(images * reference[0], 1), np.sum(texts * reference[1], 1)


@pytest.fixture(scope="module")
def openvino_cache():
    """The test run's cache (conftest: a temporary folder): the services the other tests
    start use it too, so the model is converted once per run."""
    return config.cache_dir()


@pytest.fixture(scope="module")
def openvino_model(openvino_cache) -> ClipModel:
    pytest.importorskip("openvino", reason="OpenVINO is not installed")
    return ClipModel(str(NO_WEIGHTS_MODEL), allow_random=True, runtime="openvino")


def test_openvino_agrees_with_torch_fp32(openvino_model, samples, reference) -> None:
    images, texts = _agreement(openvino_model, samples, reference)
    assert "openvino" in AUTO_ELIGIBLE
    assert images.mean() >= AUTO_MIN_MEAN and texts.mean() >= AUTO_MIN_MEAN, (
        images.min(), texts.min())


def test_openvino_runs_the_precision_of_the_cpu(openvino_model) -> None:
    has_bf16 = {"avx512_bf16", "amx_bf16"} & set(cpu_features())
    assert openvino_model.precision == ("bf16" if has_bf16 else "f32")
    assert openvino_model.hardware.precision == openvino_model.precision
    assert openvino_model.model is None  # the compiled model holds the weights


def test_openvino_converts_once_and_reads_the_cache(openvino_model, openvino_cache, samples,
                                                    monkeypatch) -> None:
    from memeflow.encoder import openvino

    assert openvino_model._openvino.folder.parent == openvino_cache / "openvino"
    assert (openvino_model._openvino.folder / "image.xml").is_file()

    def no_conversion(*args) -> None:
        raise AssertionError("converted again although the cache holds the model")

    monkeypatch.setattr(openvino, "_convert", no_conversion)
    again = ClipModel(str(NO_WEIGHTS_MODEL), allow_random=True, runtime="openvino",
                      cache=openvino_cache)
    pixels, texts = samples
    np.testing.assert_array_equal(again.embed_pixels(pixels[:4]),
                                  openvino_model.embed_pixels(pixels[:4]))
    np.testing.assert_array_equal(again._run_texts(texts[:3]), openvino_model._run_texts(texts[:3]))


def test_cache_key_changes_with_the_openvino_version_and_the_weights(clip_model) -> None:
    from memeflow.encoder.openvino import cache_key

    config_json = clip_model.encoder.config_json()
    key = cache_key("m", config_json, "random-seed-0", "2026.4.1")
    assert key == cache_key("m", config_json, "random-seed-0", "2026.4.1")
    assert key != cache_key("m", config_json, "random-seed-0", "2026.5.0")
    assert key != cache_key("m", config_json, "/w/model.safetensors:1:2", "2026.4.1")


def test_onnx_agrees_with_torch_fp32(samples, reference) -> None:
    pytest.importorskip("onnxruntime", reason="the optional `onnx` extra is not installed")
    model = ClipModel(str(NO_WEIGHTS_MODEL), allow_random=True, runtime="onnx")
    images, texts = _agreement(model, samples, reference)
    assert images.min() >= AUTO_MIN_MEAN and texts.min() >= AUTO_MIN_MEAN  # the same f32 maths


def test_int8_is_close_but_not_picked_by_auto(samples, reference) -> None:
    model = ClipModel(str(NO_WEIGHTS_MODEL), allow_random=True, runtime="int8")
    images, texts = _agreement(model, samples, reference)
    assert images.mean() >= 0.99 and texts.mean() >= 0.99
    assert "int8" not in AUTO_ELIGIBLE and model.precision == "int8"


def test_auto_picks_openvino_on_a_cpu_and_torch_on_a_gpu(monkeypatch) -> None:
    monkeypatch.setattr(hardware, "openvino_installed", lambda: True)
    assert resolve_runtime("auto", "cpu") == "openvino"
    assert resolve_runtime("auto", "cuda:0") == "torch"
    monkeypatch.setattr(hardware, "openvino_installed", lambda: False)
    assert resolve_runtime("auto", "cpu") == "torch"
    assert set(AUTO_ELIGIBLE) <= set(hardware.RUNTIMES)


def test_device_auto_is_the_gpu_when_torch_sees_one() -> None:
    assert resolve_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert resolve_device("CPU") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_is_refused_with_the_fix_when_torch_sees_none() -> None:
    for setting in ("cuda", "cuda:1"):
        with pytest.raises(ModelLoadError, match=r"torch sees no CUDA GPU.*MEMEFLOW_DEVICE=cpu"):
            ClipModel(str(NO_WEIGHTS_MODEL), allow_random=True, device=setting)


def test_bad_device_settings_say_what_is_accepted() -> None:
    with pytest.raises(ModelLoadError, match="choose auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    with pytest.raises(ModelLoadError, match="cuda:N"):
        resolve_device("cuda:first")


def test_cpu_only_runtimes_say_so_when_asked_for_a_gpu() -> None:
    for runtime in ("openvino", "onnx", "int8"):
        with pytest.raises(ModelLoadError, match=rf"runtime '{runtime}' runs on the CPU only"):
            resolve_runtime(runtime, "cuda:0")


def test_f16_with_torch_needs_a_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ModelLoadError, match="f16 with torch needs a CUDA GPU"):
        ClipModel(str(NO_WEIGHTS_MODEL), allow_random=True, precision="f16")


def test_device_and_precision_settings_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("MEMEFLOW_DEVICE", raising=False)
    monkeypatch.delenv("MEMEFLOW_PRECISION", raising=False)
    assert config.device() == "auto" and config.device("cpu") == "cpu"
    assert config.precision() == "auto"
    monkeypatch.setenv("MEMEFLOW_DEVICE", "cuda:1")
    monkeypatch.setenv("MEMEFLOW_PRECISION", "f32")
    assert config.device("cpu") == "cuda:1" and config.precision("bf16") == "f32"


def test_cache_folder_follows_the_settings(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MEMEFLOW_CACHE", str(tmp_path / "mine"))
    assert config.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("MEMEFLOW_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.cache_dir() == tmp_path / "xdg" / "memeflow"


@has_cuda
def test_cuda_runs_torch_fp16_in_agreement_with_fp32(samples, reference) -> None:
    model = ClipModel(str(NO_WEIGHTS_MODEL), allow_random=True, device="auto", runtime="auto")
    assert (model.runtime, model.precision, model.device.type) == ("torch", "f16", "cuda")
    images, texts = _agreement(model, samples, reference)
    assert images.mean() >= AUTO_MIN_MEAN and texts.mean() >= AUTO_MIN_MEAN, (
        images.min(), texts.min())
