"""`memeflow eval`: the metric formulas by hand, known-answer and scrambled models on
generated datasets (recall 1.0 / chance), and the real random-weights model end to end on
CIFAR-10 and Flickr8k from ../shared."""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memeflow.cli.eval_command import evaluate
from memeflow.cli.main import main
from memeflow.evaluation import datasets, metrics
from memeflow.evaluation.report import table

from . import families
from .conftest import NO_WEIGHTS_MODEL, SHARED

CIFAR = SHARED / "data" / "cifar10-test" / "test"
FLICKR = SHARED / "data" / "flickr8k-1k" / "captions.csv"
MEMES = SHARED / "data" / "memes" / "templates"
DIM = 512


# --- the formulas, checked by hand and by enumeration -------------------------------------

def test_top1_counts_the_argmax_class_and_breaks_ties_to_the_first() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.7, 0.3]])
    assert metrics.top1_accuracy(scores, [0, 1, 1, 1]) == pytest.approx(0.5)
    assert math.isnan(metrics.top1_accuracy(np.zeros((0, 3)), []))
    with pytest.raises(ValueError):
        metrics.top1_accuracy(scores, [0, 1])


def test_recall_at_k_is_the_share_of_queries_with_a_relevant_candidate_in_the_top_k() -> None:
    scores = np.array([[0.9, 0.8, 0.1],   # relevant ranked 2nd
                       [0.1, 0.2, 0.3],   # relevant ranked 1st
                       [0.5, 0.4, 0.3]])  # relevant ranked 3rd
    relevant = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=bool)
    assert metrics.ranks_of_first_relevant(scores, relevant).tolist() == [2, 1, 3]
    assert [metrics.recall_at_k(scores, relevant, k) for k in (1, 2, 3)] == pytest.approx(
        [1 / 3, 2 / 3, 1.0])
    none_relevant = np.zeros((1, 3), dtype=bool)
    assert metrics.recall_at_k(scores[:1], none_relevant, 3) == 0.0


def test_chance_recall_matches_counting_every_k_subset() -> None:
    for n, r, k in [(6, 1, 2), (7, 2, 3), (5, 3, 1), (4, 2, 4)]:
        subsets = list(itertools.combinations(range(n), k))
        hits = sum(any(c < r for c in subset) for subset in subsets)  # 0..r-1 are relevant
        assert metrics.chance_recall_at_k(k, n, r) == pytest.approx(hits / len(subsets))
    assert metrics.chance_recall_at_k(10, 1000) == pytest.approx(0.01)
    assert metrics.chance_top1(10) == pytest.approx(0.1)


def test_binomial_interval_is_z_standard_deviations_wide() -> None:
    low, high = metrics.binomial_interval(0.1, 100, z=2)
    assert (low, high) == pytest.approx((0.04, 0.16))
    assert metrics.binomial_interval(0.0, 10) == (0.0, 0.0)


# --- models whose answers are known -------------------------------------------------------

def _write(path: Path, key: int, serial: int) -> None:
    """A 4x4 PNG whose top-left pixel carries its key and a serial number (exact in PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (4, 4), (40, 90, 160))
    image.putpixel((0, 0), (key % 256, key // 256, serial % 256))
    image.putpixel((1, 0), (serial // 256, 0, 0))
    image.save(path)


def _pixel_key(image: Image.Image) -> tuple[int, int]:
    r, g, b = image.getpixel((0, 0))
    return r + 256 * g, b + 256 * image.getpixel((1, 0))[0]


class KnownAnswerModel:
    """Images and texts map to the one-hot vector of the key they carry: the right answer
    always scores 1 and every other 0, so recall@1 and top-1 must be 1.0."""

    random_weights = False

    def __init__(self, text_keys: dict[str, int], name: str = "known-answer") -> None:
        self.text_keys, self.name = text_keys, name

    def _one_hot(self, keys: list[int]) -> np.ndarray:
        vectors = np.zeros((len(keys), DIM), np.float32)
        vectors[np.arange(len(keys)), keys] = 1.0
        return vectors

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return self._one_hot([_pixel_key(im)[0] for im in images])

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self._one_hot([self.text_keys[t] for t in texts])


class ScrambledModel(KnownAnswerModel):
    """Texts as the known-answer model, each image a seeded random unit vector of its own:
    the ranking of any query is uniform, so every metric should sit at chance."""

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        rows = []
        for image in images:
            key, serial = _pixel_key(image)
            vector = np.random.default_rng([key, serial]).standard_normal(DIM)
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, np.float32)


CLASSES = [f"class_{c}" for c in range(10)]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, object]:
    """A labelled folder (10 classes x 30), a captions CSV (200 images x 2 captions) and a
    variants folder (60 groups of 3 plus 20 loners)."""
    root = tmp_path_factory.mktemp("eval-data")
    serial = itertools.count()
    for c, name in enumerate(CLASSES):
        for i in range(30):
            _write(root / "labelled" / name / f"{i}.png", c, next(serial))
    lines = ["image,caption"]
    captions: dict[str, int] = {}
    for i in range(200):
        _write(root / "captions" / "images" / f"{i}.png", i, next(serial))
        for j in range(2):
            captions[f"picture {i}, said the {j}th way"] = i
            lines.append(f"{i}.png,\"picture {i}, said the {j}th way\"")
    (root / "captions" / "captions.csv").write_text("\n".join(lines) + "\n")
    for g in range(80):
        for i in range(3 if g < 60 else 1):
            _write(root / "variants" / f"g{g}" / f"{i}.png", g, next(serial))
    prompts = {f"a photo of a {name.replace('_', ' ')}": c for c, name in enumerate(CLASSES)}
    return {"text_keys": {**captions, **prompts},
            "loaded": {"zero_shot": datasets.load_labelled(root / "labelled"),
                       "text_to_image": datasets.load_captions(root / "captions" / "captions.csv"),
                       "image_to_image": datasets.load_variants(root / "variants")}}


def test_the_known_answer_model_scores_one_everywhere(generated) -> None:
    result = evaluate(KnownAnswerModel(generated["text_keys"]), generated["loaded"])
    assert result["zero_shot"]["top1"] == 1.0
    assert result["zero_shot"]["images"] == 300 and result["zero_shot"]["classes"] == 10
    assert result["text_to_image"]["recall"] == {1: 1.0, 5: 1.0, 10: 1.0}
    assert result["text_to_image"]["captions"] == 400
    assert result["image_to_image"]["recall"] == {1: 1.0, 5: 1.0, 10: 1.0}
    assert result["image_to_image"]["queries"] == 180  # the 20 loners are distractors only
    assert result["images_per_second"] > 0 and result["text_p50_ms"] >= 0
    assert "note" not in result


def test_the_scrambled_model_scores_within_chance_bounds(generated) -> None:
    result = evaluate(ScrambledModel(generated["text_keys"]), generated["loaded"])
    zero = result["zero_shot"]
    assert zero["chance"] == pytest.approx(0.1)
    low, high = metrics.binomial_interval(zero["chance"], zero["images"])
    assert low <= zero["top1"] <= high
    t2i = result["text_to_image"]
    for k in (1, 5, 10):
        assert t2i["chance"][k] == pytest.approx(k / 200)
        # The two captions of an image share its ranking: 200 independent trials.
        low, high = metrics.binomial_interval(t2i["chance"][k], t2i["images"])
        assert low <= t2i["recall"][k] <= high, (k, t2i)
    i2i = result["image_to_image"]
    for k in (1, 5, 10):
        assert i2i["chance"][k] == pytest.approx(metrics.chance_recall_at_k(k, 199, 2))
        low, high = metrics.binomial_interval(i2i["chance"][k], 60)  # one trial per group
        assert low <= i2i["recall"][k] <= high, (k, i2i)


def test_the_table_puts_models_side_by_side_under_a_chance_row(generated) -> None:
    known = evaluate(KnownAnswerModel(generated["text_keys"], "known"), generated["loaded"])
    scrambled = evaluate(ScrambledModel(generated["text_keys"], "scrambled"), generated["loaded"])
    lines = table([known, scrambled]).splitlines()
    assert lines[0].split()[:3] == ["model", "top-1", "T>I"]
    assert lines[1].split()[:3] == ["chance", "0.100", "0.005"]
    assert lines[2].split()[:8] == ["known", *["1.000"] * 7]
    assert lines[3].split()[0] == "scrambled"
    assert "random weights" not in "\n".join(lines)


def test_dataset_layouts_are_refused_with_the_fix(tmp_path) -> None:
    (tmp_path / "only").mkdir()
    _write(tmp_path / "only" / "a.png", 1, 1)
    with pytest.raises(datasets.DatasetError, match="at least two class folders"):
        datasets.load_labelled(tmp_path)
    with pytest.raises(datasets.DatasetError, match="no group has two images"):
        datasets.load_variants(tmp_path)
    bad = tmp_path / "c.csv"
    bad.write_text("file,text\na.png,x\n")
    with pytest.raises(datasets.DatasetError, match="image,caption"):
        datasets.load_captions(bad)
    bad.write_text("image,caption\nmissing.png,x\n")
    with pytest.raises(datasets.DatasetError, match=r"missing\.png"):
        datasets.load_captions(bad)


def test_limit_samples_the_same_images_every_time(generated) -> None:
    csv_path = generated["loaded"]["text_to_image"].images[0].parents[1] / "captions.csv"
    first, again = (datasets.load_captions(csv_path, limit=7) for _ in range(2))
    assert first == again and len(first.images) == 7 and len(first.captions) == 14


# --- the real model, end to end on ../shared -----------------------------------------------

def test_eval_runs_end_to_end_on_cifar10_and_flickr8k_and_says_random_weights_mean_nothing(
        tmp_path, capsys) -> None:
    families.open_clip_or_skip()
    other = families.open_clip_folder(tmp_path, "MobileCLIP2-S0")  # another family
    common = ["--labelled", str(CIFAR), "--captions", str(FLICKR), "--variants", str(MEMES),
              "--limit", "40", "-q"]
    assert main(["eval", *common]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].split()[0] == "model" and lines[1].split()[0] == "chance"
    assert lines[2].startswith(str(NO_WEIGHTS_MODEL)) and " * " in lines[2]
    assert "chance-level noise and say nothing about any model" in lines[-1]
    assert "on top-1: 40 images, 10 classes, T>I: 200 captions of 40 images" in out.out

    assert main(["eval", *common, "--json", "--models", f"{NO_WEIGHTS_MODEL},{other}"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in results] == [str(NO_WEIGHTS_MODEL), str(other)]
    for result in results:
        assert result["random_weights"] is True
        assert "say nothing about any model" in result["note"]
        assert result["images_per_second"] > 0 and result["text_p50_ms"] > 0
        zero, t2i = result["zero_shot"], result["text_to_image"]
        # Random weights land near chance (a loose bound: the towers are random, not a
        # uniform ranking).
        low, high = metrics.binomial_interval(zero["chance"], zero["images"], z=5)
        assert low <= zero["top1"] <= high
        low, high = metrics.binomial_interval(t2i["chance"]["10"], t2i["images"], z=5)
        assert low <= t2i["recall"]["10"] <= high


def test_eval_errors_are_one_line_with_the_fix(tmp_path, capsys) -> None:
    assert main(["eval"]) == 2
    assert "give at least one dataset" in capsys.readouterr().err
    assert main(["eval", "--labelled", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not a folder" in err
