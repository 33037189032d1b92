"""`memeflow eval`: measure models on this machine, side by side, in this process (no
service): zero-shot top-1, text-to-image and image-to-image recall@k, images/s, text p50."""

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parser is built on every command: numpy and torch load on use
    from memeflow.evaluation.models import EvalModel

# Texts to time when no captions are given (what people type into a meme search).
SAMPLE_QUERIES = ("drake rejecting something", "surprised cat", "distracted boyfriend",
                  "this is fine dog in a burning room", "success kid on a beach",
                  "two buttons sweating", "a man pointing at a butterfly", "change my mind")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", metavar="A,B,...",
                        help="models to compare, comma-separated Hugging Face ids or folders "
                        "(default: the configured one, MEMEFLOW_MODEL)")
    parser.add_argument("--labelled", metavar="FOLDER", type=Path,
                        help="zero-shot top-1 on a CLASS/*.jpg folder (e.g. CIFAR-10's test/)")
    parser.add_argument("--captions", metavar="CSV", type=Path,
                        help="text-to-image recall@1/5/10 on an image,caption CSV (Flickr8k's "
                        "format; images beside it or in images/)")
    parser.add_argument("--variants", metavar="FOLDER", type=Path,
                        help="image-to-image recall@1/5/10 on a GROUP/*.jpg folder: each "
                        "image's variants are the other images of its group")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="sample N images (N groups for --variants) of each dataset, "
                        "the same ones for every model")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _datasets(args: argparse.Namespace) -> dict[str, Any]:
    from memeflow.evaluation import datasets

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    loaded: dict[str, Any] = {}
    if args.labelled:
        loaded["zero_shot"] = datasets.load_labelled(args.labelled, args.limit)
    if args.captions:
        loaded["text_to_image"] = datasets.load_captions(args.captions, args.limit)
    if args.variants:
        loaded["image_to_image"] = datasets.load_variants(args.variants, args.limit)
    if not loaded:
        raise ValueError("give at least one dataset: --labelled FOLDER, --captions CSV or "
                         "--variants FOLDER")
    return loaded


def evaluate(model: "EvalModel", loaded: dict[str, Any], quiet: bool = True) -> dict[str, Any]:
    """One model on every loaded dataset: a JSON-ready result."""
    from tqdm import tqdm

    from memeflow.evaluation import tasks
    from memeflow.evaluation.report import RANDOM_WEIGHTS_NOTE

    runs: dict[str, Callable[..., dict[str, Any]]] = {
        "zero_shot": tasks.zero_shot, "text_to_image": tasks.text_to_image,
        "image_to_image": tasks.image_to_image}

    speed = tasks.Speed()
    result: dict[str, Any] = {"model": model.name, "random_weights": model.random_weights}
    total = sum(len(data.images) for data in loaded.values())
    with tqdm(total=total, unit="img", desc=model.name[-40:], disable=quiet,
              file=sys.stderr) as bar:
        for task, data in loaded.items():
            result[task] = runs[task](model, data, speed, bar.update)
    if "text_to_image" not in loaded:
        zero = loaded.get("zero_shot")
        tasks.time_texts(model, [tasks.PROMPT.format(c) for c in zero.classes] if zero
                         else list(SAMPLE_QUERIES), speed)
    result["images_per_second"] = speed.images_per_second()
    result["text_p50_ms"] = speed.text_p50_ms()
    result["sizes"] = _sizes(result)
    if model.random_weights:
        result["note"] = RANDOM_WEIGHTS_NOTE
    return result


def _sizes(result: dict[str, Any]) -> dict[str, str]:
    """What each measurement ran on, in words, for the table's footer."""
    sizes = {}
    if zero := result.get("zero_shot"):
        sizes["top-1"] = f"{zero['images']} images, {zero['classes']} classes"
    if t2i := result.get("text_to_image"):
        sizes["T>I"] = f"{t2i['captions']} captions of {t2i['images']} images"
    if i2i := result.get("image_to_image"):
        sizes["I>I"] = f"{i2i['queries']} queries among {i2i['images']} images"
    return sizes


def run(args: argparse.Namespace) -> int:
    """Raises ValueError (a bad flag, a dataset that cannot be read) or ModelLoadError."""
    from memeflow.evaluation.models import build_model
    from memeflow.evaluation.report import RANDOM_WEIGHTS_NOTE, table

    loaded = _datasets(args)
    names: list[str | None] = ([n.strip() for n in args.models.split(",") if n.strip()]
                               if args.models else [None])
    results = []
    for name in names:
        model = build_model(name)
        if model.random_weights and not args.quiet:
            print(f"memeflow: {model.name}: {RANDOM_WEIGHTS_NOTE}", file=sys.stderr)
        results.append(evaluate(model, loaded, quiet=args.quiet))
        del model
    if args.json:
        print(json.dumps(results, default=str))
    else:
        print(table(results))
    return 0
