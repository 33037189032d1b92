"""The measurements of `memeflow eval`: zero-shot top-1, text-to-image and image-to-image
recall@k, images per second and text latency, each as one function of a model and a dataset.

Speeds are the model's alone, in this process (no service): images/s counts preprocessing
and the model over batches of `BATCH` already-decoded images, the first batch left out as a
warm-up; text p50 is the median time to embed one text, first call left out.
"""

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from memeflow.evaluation import metrics
from memeflow.evaluation.datasets import Captions, DatasetError, Labelled, Variants
from memeflow.evaluation.models import EvalModel

PROMPT = "a photo of a {}"
KS = (1, 5, 10)
BATCH = 16
TEXT_TIMINGS = 50


@dataclass
class Speed:
    """Wall-clock seconds of image batches (with their sizes) and of single texts."""

    image_batches: list[tuple[int, float]] = field(default_factory=list)
    texts: list[float] = field(default_factory=list)

    def images_per_second(self) -> float:
        timed = self.image_batches[1:] or self.image_batches  # the first one warms up
        seconds = sum(s for _, s in timed)
        return sum(n for n, _ in timed) / seconds if seconds > 0 else float("nan")

    def text_p50_ms(self) -> float:
        return metrics.percentile_ms(self.texts[1:] or self.texts)


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.seek(0)  # an animated image: its first frame, as the encoder takes it
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc


def _batches(paths: Sequence[Path]) -> Iterator[list[Image.Image]]:
    for start in range(0, len(paths), BATCH):
        yield [_open(p) for p in paths[start:start + BATCH]]


def embed_images(model: EvalModel, paths: Sequence[Path], speed: Speed,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """(n, dim) vectors of the images at `paths`, timing each batch into `speed`."""
    parts = []
    for images in _batches(paths):
        started = time.perf_counter()
        parts.append(model.embed_images(images))
        speed.image_batches.append((len(images), time.perf_counter() - started))
        if progress:
            progress(len(images))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def time_texts(model: EvalModel, texts: Sequence[str], speed: Speed) -> None:
    """Embeds up to TEXT_TIMINGS distinct texts one at a time, timing each."""
    for text in list(dict.fromkeys(texts))[:TEXT_TIMINGS + 1]:
        started = time.perf_counter()
        model.embed_texts([text])
        speed.texts.append(time.perf_counter() - started)


def zero_shot(model: EvalModel, data: Labelled, speed: Speed,
              progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Top-1 accuracy with the prompt "a photo of a {class}", and its chance level."""
    images = embed_images(model, data.images, speed, progress)
    prompts = model.embed_texts([PROMPT.format(name) for name in data.classes])
    return {"top1": metrics.top1_accuracy(images @ prompts.T, data.labels),
            "chance": metrics.chance_top1(len(data.classes)),
            "images": len(data.images), "classes": len(data.classes)}


def text_to_image(model: EvalModel, data: Captions, speed: Speed,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Recall@1/5/10 of each caption's image among all the images, and chance levels."""
    images = embed_images(model, data.images, speed, progress)
    texts = np.concatenate([model.embed_texts(data.captions[i:i + 256])
                            for i in range(0, len(data.captions), 256)])
    time_texts(model, data.captions, speed)
    relevant = np.zeros((len(data.captions), len(data.images)), dtype=bool)
    relevant[np.arange(len(data.captions)), data.caption_image] = True
    scores = texts @ images.T
    n = len(data.images)
    return {"recall": {k: metrics.recall_at_k(scores, relevant, k) for k in KS},
            "chance": {k: metrics.chance_recall_at_k(k, n) for k in KS},
            "images": n, "captions": len(data.captions)}


def image_to_image(model: EvalModel, data: Variants, speed: Speed,
                   progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Recall@1/5/10 of an image's variants among all the other images; an image alone in
    its group is a candidate only. Chance levels from each query's group size."""
    vectors = embed_images(model, data.images, speed, progress)
    groups = np.asarray(data.groups)
    sizes = np.bincount(groups)
    queries = np.flatnonzero(sizes[groups] > 1)
    scores = vectors[queries] @ vectors.T
    scores[np.arange(len(queries)), queries] = -np.inf  # an image is not its own variant
    relevant = groups[queries][:, None] == groups[None, :]
    relevant[np.arange(len(queries)), queries] = False
    candidates = [len(data.images) - 1] * len(queries)
    relevant_counts = [int(sizes[groups[q]]) - 1 for q in queries]
    return {"recall": {k: metrics.recall_at_k(scores, relevant, k) for k in KS},
            "chance": {k: metrics.mean_chance_recall_at_k(k, candidates, relevant_counts)
                       for k in KS},
            "images": len(data.images), "queries": len(queries)}
