"""The model wrapper: what it refuses, and the vectors it makes."""

import numpy as np
import pytest
from PIL import Image

from memeflow.encoder.model import ClipModel
from memeflow.encoder.source import ModelLoadError, check_model_source
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
    with pytest.raises(ModelLoadError, match=r"could not load model 'openai/not-a-real-clip'"):
        ClipModel("openai/not-a-real-clip")


def test_random_weights_warn_and_are_the_same_in_every_load(clip_model, caplog) -> None:
    assert clip_model.random_weights
    again = ClipModel(str(NO_WEIGHTS_MODEL), allow_random=True)
    assert "carry no meaning" in caplog.text
    texts = ["drake rejecting something", "a cat at a dinner table"]
    np.testing.assert_allclose(clip_model.embed_texts(texts), again.embed_texts(texts), atol=1e-6)


def test_vectors_are_unit_length_float32(clip_model) -> None:
    image = Image.open(MEMES / "drake" / "default.jpg").convert("RGB")
    vectors = np.vstack([clip_model.embed_images([image]), clip_model.embed_texts(["drake"])])
    assert vectors.dtype == np.float32 and vectors.shape == (2, clip_model.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_long_text_is_truncated_not_rejected(clip_model) -> None:
    long_text = "a meme about something " * 200  # ~800 tokens, far past 77
    cut = " ".join(long_text.split()[:100])  # still past 77 tokens
    vectors = clip_model.embed_texts([long_text, cut])
    assert vectors.shape == (2, clip_model.dim)
    # The first 77 tokens decide the vector: a prefix longer than that gives the same one.
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)


# Speed-ups must not change the vectors: batching, padding, the cache (the runtimes:
# tests/test_runtimes.py).

SHORT_AND_LONG = [
    "drake",
    "a cat sitting at a dinner table refusing to eat a salad",
    "distracted boyfriend",
]
FOUR_MEMES = [MEMES / name / "default.jpg" for name in ("drake", "aag", "ackbar", "afraid")]


def _images(paths) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in paths]


def test_a_batch_gives_each_image_its_single_image_vector(clip_model) -> None:
    images = _images(FOUR_MEMES)
    batch = clip_model.embed_images(images)
    alone = np.vstack([clip_model.embed_images([im]) for im in images])
    np.testing.assert_allclose(batch, alone, atol=2e-5)


def test_texts_pad_to_the_longest_in_the_batch_not_to_77(clip_model, monkeypatch) -> None:
    lengths = []
    run = clip_model.model.get_text_features

    def spy(**inputs):
        lengths.append(inputs["input_ids"].shape[1])
        return run(**inputs)

    monkeypatch.setattr(clip_model.model, "get_text_features", spy)
    clip_model.text_cache.clear()
    clip_model.embed_texts(SHORT_AND_LONG)
    longest = len(clip_model.encoder.processor.tokenizer(SHORT_AND_LONG[1])["input_ids"])
    assert lengths == [longest] and longest < clip_model.encoder.max_tokens


def test_texts_of_different_lengths_get_their_own_vector_in_a_batch(clip_model) -> None:
    clip_model.text_cache.clear()
    batch = clip_model._run_texts(SHORT_AND_LONG)
    alone = np.vstack([clip_model._run_texts([t]) for t in SHORT_AND_LONG])
    np.testing.assert_allclose(batch, alone, atol=2e-5)
    assert not np.allclose(batch[0], batch[2], atol=1e-3)  # the padding did not win


def test_cache_gives_identical_vectors_and_never_runs_the_model_twice(monkeypatch) -> None:
    model = ClipModel(str(NO_WEIGHTS_MODEL), allow_random=True, text_cache_size=2)
    calls = []
    run = model._run_texts
    monkeypatch.setattr(model, "_run_texts", lambda texts: calls.append(texts) or run(texts))
    first = model.embed_texts(["drake", "drake", "doge"])  # a repeat inside one batch
    again = model.embed_texts(["doge", "drake"])
    assert calls == [["drake", "doge"]]
    np.testing.assert_array_equal(first[0], first[1])
    np.testing.assert_array_equal(again, first[[2, 0]])
    again[:] = 0  # callers own what they get; the cache keeps its copy
    np.testing.assert_array_equal(model.embed_texts(["drake"])[0], first[0])


def test_cache_is_bounded_and_drops_the_least_recently_used(clip_model) -> None:
    from memeflow.encoder.model import TextVectorCache

    cache = TextVectorCache(2)
    for text in ("a", "b"):
        cache.put(text, np.full(3, ord(text), dtype=np.float32))
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", np.zeros(3, dtype=np.float32))
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") is not None
    off = TextVectorCache(0)
    off.put("a", np.zeros(3, dtype=np.float32))
    assert len(off) == 0


def test_unknown_runtime_is_refused_by_name() -> None:
    with pytest.raises(ModelLoadError, match=r"unknown runtime 'tensorrt'.*torch, int8, onnx"):
        ClipModel(str(NO_WEIGHTS_MODEL), allow_random=True, runtime="tensorrt")
