"""The model wrapper: what it refuses, and the vectors it makes."""

import numpy as np
import pytest
from PIL import Image

from memeflow.model import ClipModel, ModelLoadError, check_model_source
from tests.conftest import MEMES, NO_WEIGHTS_MODEL


def test_folder_without_weights_is_refused_unless_allowed() -> None:
    with pytest.raises(ModelLoadError, match="MEMEFLOW_ALLOW_RANDOM_WEIGHTS=1"):
        check_model_source(str(NO_WEIGHTS_MODEL), allow_random=False)
    assert check_model_source(str(NO_WEIGHTS_MODEL), allow_random=True) == NO_WEIGHTS_MODEL


def test_missing_folder_names_the_path_and_the_fix() -> None:
    expected = r"model folder /no/such/model does not exist.*MEMEFLOW_MODEL"
    with pytest.raises(ModelLoadError, match=expected):
        check_model_source("/no/such/model", allow_random=True)


def test_folder_without_config_is_refused(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        check_model_source(str(tmp_path), allow_random=True)


def test_unreachable_hub_id_gives_a_clear_error() -> None:
    # HF_HUB_OFFLINE=1 (conftest) makes the hub unreachable without touching the network.
    with pytest.raises(ModelLoadError, match=r"could not load CLIP model 'openai/not-a-real-clip'"):
        ClipModel("openai/not-a-real-clip")


def test_random_weights_warn_and_are_the_same_in_every_load(clip_model, caplog) -> None:
    assert clip_model.random_weights
    again = ClipModel(str(NO_WEIGHTS_MODEL), allow_random=True)
    assert "carry no meaning" in caplog.text
    texts = ["drake rejecting something", "a cat at a dinner table"]
    np.testing.assert_allclose(clip_model.encode_texts(texts), again.encode_texts(texts), atol=1e-6)


def test_vectors_are_unit_length_float32(clip_model) -> None:
    image = Image.open(MEMES / "drake" / "default.jpg").convert("RGB")
    vectors = np.vstack([clip_model.encode_images([image]), clip_model.encode_texts(["drake"])])
    assert vectors.dtype == np.float32 and vectors.shape == (2, clip_model.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_long_text_is_truncated_not_rejected(clip_model) -> None:
    long_text = "a meme about something " * 200  # ~800 tokens, far past 77
    cut = " ".join(long_text.split()[:100])  # still past 77 tokens
    vectors = clip_model.encode_texts([long_text, cut])
    assert vectors.shape == (2, clip_model.dim)
    # The first 77 tokens decide the vector: a prefix longer than that gives the same one.
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)
