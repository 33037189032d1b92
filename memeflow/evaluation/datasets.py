"""The three layouts `memeflow eval` reads, as lists of file paths with their answers.

- labelled folder: `CLASS/*.jpg` (one sub-folder per class, its name the class, `_` read as
  a space), e.g. CIFAR-10's `test/airplane/0001.jpg`;
- captions CSV: a header `image,caption` and one row per caption (Flickr8k's format); an
  image is looked up beside the CSV, then in an `images/` folder beside it;
- variants folder: `GROUP/*.jpg`, one sub-folder per group of variants of one picture
  (crops, re-encodings, styles of a meme template); each image's relevant set is the other
  images of its group, and images alone in their group only act as distractors.

`limit` samples with a fixed seed, so two runs (and two models of one run) see the same
images. Any image format memeflow reads is accepted, not only JPEG.
"""

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from memeflow.formats import IMAGE_SUFFIXES

SAMPLE_SEED = 0


class DatasetError(ValueError):
    """A dataset path or file that cannot be read as its layout; the message says why."""


@dataclass(frozen=True)
class Labelled:
    """Images with class indices into `classes`."""

    classes: list[str]
    images: list[Path]
    labels: list[int]


@dataclass(frozen=True)
class Captions:
    """Distinct images and captions; `caption_image[j]` is the index of caption j's image."""

    images: list[Path]
    captions: list[str]
    caption_image: list[int]


@dataclass(frozen=True)
class Variants:
    """Images with the index of their group."""

    images: list[Path]
    groups: list[int]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file()
                  and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _sub_folders(root: Path, layout: str) -> list[Path]:
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder: give a folder laid out as {layout}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"{root} has no sub-folders: lay it out as {layout}")
    return folders


def _sample(count: int, limit: int | None) -> list[int]:
    """Indices of a seeded sample of `limit` out of `count`, in their original order."""
    if limit is None or limit >= count:
        return list(range(count))
    return sorted(random.Random(SAMPLE_SEED).sample(range(count), limit))


def load_labelled(root: Path, limit: int | None = None) -> Labelled:
    """A `CLASS/*.jpg` folder; `limit` samples that many images across all classes."""
    classes: list[str] = []
    images: list[Path] = []
    labels: list[int] = []
    for folder in _sub_folders(root, "CLASS/*.jpg"):
        files = _images_in(folder)
        if files:
            labels += [len(classes)] * len(files)
            images += files
            classes.append(folder.name.replace("_", " "))
    if len(classes) < 2:
        raise DatasetError(f"{root}: zero-shot classification needs at least two class folders "
                           "with images in them")
    keep = _sample(len(images), limit)
    return Labelled(classes, [images[i] for i in keep], [labels[i] for i in keep])


def _image_path(csv_path: Path, name: str) -> Path:
    for folder in (csv_path.parent, csv_path.parent / "images"):
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(f"{csv_path}: image {name!r} is neither beside the CSV nor in "
                       f"{csv_path.parent / 'images'}")


def load_captions(csv_path: Path, limit: int | None = None) -> Captions:
    """An `image,caption` CSV; `limit` samples that many images, each with all its captions."""
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DatasetError(f"cannot read captions {csv_path}: {exc.strerror or exc}") from exc
    if not rows or not {"image", "caption"} <= set(rows[0]):
        raise DatasetError(f"{csv_path}: expected a header `image,caption` and one row per "
                           "caption (Flickr8k's captions.txt format)")
    by_image: dict[str, list[str]] = {}
    for row in rows:
        if row["image"] and row["caption"]:
            by_image.setdefault(row["image"], []).append(row["caption"].strip())
    names = list(by_image)
    names = [names[i] for i in _sample(len(names), limit)]
    images, captions, caption_image = [], [], []
    for index, name in enumerate(names):
        images.append(_image_path(csv_path, name))
        captions += by_image[name]
        caption_image += [index] * len(by_image[name])
    return Captions(images, captions, caption_image)


def load_variants(root: Path, limit: int | None = None) -> Variants:
    """A `GROUP/*.jpg` folder; `limit` samples that many groups (all their images)."""
    groups = [files for folder in _sub_folders(root, "GROUP/*.jpg")
              if (files := _images_in(folder))]
    if not any(len(files) > 1 for files in groups):
        raise DatasetError(f"{root}: no group has two images or more, so no image has a "
                           "variant to find")
    images, group_of = [], []
    for index, position in enumerate(_sample(len(groups), limit)):
        images += groups[position]
        group_of += [index] * len(groups[position])
    return Variants(images, group_of)
