"""Encoding speed from image files (and query texts) to vectors, on this machine.

    .venv/bin/python benchmarks/bench_encode.py --size quick   # ~3 min
    .venv/bin/python benchmarks/bench_encode.py --size full    # ~12 min, BENCHMARKS.md

Every speed is the median over rounds, and every ratio is the median of per-round
ratios against the naive loop (one image at a time: PIL open -> CLIPProcessor ->
get_image_features) timed in the same round, so load from other processes on the
machine hits both sides alike. The model has random weights unless MEMEFLOW_MODEL
names a real checkpoint: speeds are real, int8 agreement only shows numerical error.
"""

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flowrun import MODEL, SHARED, load, running_flow  # noqa: E402

from memeflow.documents import MemeDoc  # noqa: E402
from memeflow.encoder.model import ClipModel  # noqa: E402
from memeflow.encoder.pipeline import embed_documents  # noqa: E402

MEMES = SHARED / "data" / "memes" / "templates"
FLICKR = SHARED / "data" / "flickr8k-1k"


@dataclass(frozen=True)
class Size:
    images: int  # half memes, half Flickr photos
    rounds: int
    batch_sizes: tuple[int, ...]
    queries: int
    flow_images: int  # of the 260 memes


SIZES = {
    "quick": Size(images=64, rounds=2, batch_sizes=(16,), queries=40, flow_images=64),
    "full": Size(images=256, rounds=3, batch_sizes=(16, 32), queries=200, flow_images=260),
}


@dataclass(frozen=True)
class Pipeline:
    """One setting of memeflow's pipeline: runtime, batch size, thread split."""

    runtime: str
    batch_size: int
    torch_threads: int
    preprocess_threads: int

    @property
    def label(self) -> str:
        return (
            f"pipeline {self.runtime:5} batch {self.batch_size:2} "
            f"torch {self.torch_threads} + preprocess {self.preprocess_threads} threads"
        )


def images(count: int) -> list[Path]:
    memes = sorted(MEMES.glob("*/*.jpg"))
    photos = sorted((FLICKR / "images").glob("*.jpg"))
    return memes[: count // 2] + photos[: count - count // 2]


def queries(count: int) -> list[str]:
    """Distinct Flickr captions cut to at most 10 words, as users type queries."""
    seen: dict[str, None] = {}
    with (FLICKR / "captions.csv").open() as fh:
        for row in csv.DictReader(fh):
            seen[" ".join(row["caption"].rstrip(" .").split()[:10]).lower()] = None
            if len(seen) == count:
                break
    return list(seen)


def naive_loop(model: ClipModel, paths: list[Path]) -> np.ndarray:
    """The typical example: one image at a time, full decode, processor, model."""
    out = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        inputs = model.processor(images=image, return_tensors="pt")
        with torch.no_grad():
            out.append(model.model.get_image_features(**inputs).pooler_output[0].numpy())
    return np.stack(out)


def run_pipeline(
    model: ClipModel, paths: list[Path], pool: ThreadPoolExecutor, batch_size: int
) -> np.ndarray:
    docs = [MemeDoc(uri=str(p)) for p in paths]
    embed_documents(model, docs, pool, batch_size)
    assert all(d.error is None for d in docs), [d.error for d in docs if d.error]
    return np.stack([np.asarray(d.embedding) for d in docs])


def rate(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def bench_images(models: dict[str, ClipModel], size: Size, pipelines: list[Pipeline]) -> None:
    paths = images(size.images)
    pools = {n: ThreadPoolExecutor(n) for n in {p.preprocess_threads for p in pipelines}}
    reference = models["torch"]
    default_threads = torch.get_num_threads()
    for model in models.values():  # warm-up: first calls allocate and pick kernels
        run_pipeline(model, paths[:8], pools[min(pools)], 8)
    naive_rates: list[float] = []
    rates: dict[Pipeline, list[float]] = {p: [] for p in pipelines}
    for _ in range(size.rounds):
        torch.set_num_threads(default_threads)
        naive_rates.append(rate(lambda: naive_loop(reference, paths), len(paths)))
        for p in pipelines:
            torch.set_num_threads(p.torch_threads)
            pool = pools[p.preprocess_threads]
            model = models[p.runtime]
            rates[p].append(
                rate(lambda m=model, pl=pool, b=p.batch_size: run_pipeline(m, paths, pl, b),
                     len(paths))
            )
        print(f"  round done ({load()})", flush=True)
    torch.set_num_threads(default_threads)
    naive = statistics.median(naive_rates)
    print(f"\nImages: {len(paths)} real JPEGs (memes + Flickr photos), {size.rounds} rounds")
    print(f"{'naive loop (batch 1, torch default threads)':58} {naive:6.1f} img/s   1.00x")
    for p, values in rates.items():
        ratio = statistics.median(v / n for v, n in zip(values, naive_rates, strict=True))
        print(f"{p.label:58} {statistics.median(values):6.1f} img/s  {ratio:5.2f}x")
    for pool in pools.values():
        pool.shutdown()


def bench_agreement(models: dict[str, ClipModel], size: Size) -> None:
    paths = images(size.images)
    texts = queries(size.queries)
    print("\nCosine to float32 torch vectors (RANDOM weights: shows numerical error only, "
          "not a real checkpoint's agreement):")
    with ThreadPoolExecutor(1) as pool:
        reference = run_pipeline(models["torch"], paths, pool, 16)
        reference_texts = models["torch"]._run_texts(texts)
        for name in [n for n in models if n != "torch"]:
            image_cos = cosines(reference, run_pipeline(models[name], paths, pool, 16))
            text_cos = cosines(reference_texts, models[name]._run_texts(texts))
            print(f"  {name:5}: images mean {image_cos.mean():.6f} min {image_cos.min():.6f} "
                  f"({len(paths)}); texts mean {text_cos.mean():.6f} min {text_cos.min():.6f} "
                  f"({len(texts)})")


def percentiles(fn: Callable[[str], object], texts: list[str]) -> tuple[float, float]:
    times = []
    for text in texts:
        start = time.perf_counter()
        fn(text)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def bench_texts(models: dict[str, ClipModel], size: Size) -> None:
    texts = queries(size.queries)
    words = [len(t.split()) for t in texts]
    print(f"\nText queries: {len(texts)} Flickr captions cut to <= 10 words "
          f"(median {statistics.median(words):.0f} words), one at a time")
    reference = models["torch"]

    def padded_to_77(text: str) -> None:
        tokens = reference.processor.tokenizer(
            [text], padding="max_length", max_length=77, truncation=True, return_tensors="pt"
        )
        with torch.no_grad():
            reference.model.get_text_features(**tokens)

    padded_to_77(texts[0])
    p50, p99 = percentiles(padded_to_77, texts)
    print(f"{'naive: padded to 77 tokens, no cache':40} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    for name, model in models.items():
        model.text_cache.clear()
        model.embed_texts(["warm up"])
        p50, p99 = percentiles(lambda t, m=model: m.embed_texts([t]), texts)
        print(f"{name + ': real length, cold cache':40} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
        p50, p99 = percentiles(lambda t, m=model: m.embed_texts([t]), texts)
        print(f"{name + ': cached (repeated query)':40} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms")


def bench_flow(size: Size, runtimes: list[str]) -> None:
    from memeflow.client import MemeClient

    memes = sorted(p for p in MEMES.rglob("*") if p.suffix in {".jpg", ".png", ".gif"})
    memes = memes[: size.flow_images]
    warm = images(16)[-8:]  # Flickr photos: the first request pays for lazy set-up
    log = Path(tempfile.gettempdir()) / "bench_encode_flow.log"
    print(f"\nEnd to end through the Flow (gRPC, client batches of 32; log {log}):")
    for runtime in runtimes:
        with running_flow(log, MEMEFLOW_RUNTIME=runtime) as ports:
            client = MemeClient(f"grpc://127.0.0.1:{ports.grpc}")
            client.index_paths(warm)
            start = time.perf_counter()
            report = client.index_paths(memes)
            elapsed = time.perf_counter() - start
        assert not report.failed, report.failed[:3]
        print(f"  {runtime:5}: {len(report.indexed)} memes in {elapsed:5.1f} s = "
              f"{len(report.indexed) / elapsed:5.1f} img/s ({load()})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="quick")
    parser.add_argument("--no-flow", action="store_true", help="skip the end-to-end rows")
    args = parser.parse_args()
    size = SIZES[args.size]
    cores = os.cpu_count() or 1
    print(f"bench_encode --size {args.size}: {cores} cores, torch {torch.__version__}, "
          f"{load()}\nmodel {MODEL}", flush=True)
    runtimes = ["torch", "int8"]
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime is not installed: no onnx rows (pip install -e '.[onnx]')")
    else:
        runtimes.append("onnx")
    models = {rt: ClipModel(MODEL, allow_random=True, runtime=rt) for rt in runtimes}
    pipelines = [Pipeline("torch", b, cores, 1) for b in size.batch_sizes]
    if args.size == "full":
        pipelines += [Pipeline("torch", 16, cores, 2), Pipeline("torch", 16, 1, 1)]
    pipelines += [Pipeline(rt, 16, cores, 1) for rt in runtimes[1:]]
    bench_images(models, size, pipelines)
    bench_agreement(models, size)
    bench_texts(models, size)
    if not args.no_flow:
        bench_flow(size, runtimes)
    print(f"\ndone ({load()})")


if __name__ == "__main__":
    main()
