"""Encoding speed from image files (and query texts) to vectors, on this machine, for
every runtime and device it has: torch fp32 (the reference), int8, ONNX Runtime, OpenVINO
(the precision it picks for this CPU; f32 too where that is bf16), torch bf16 where the
CPU has bf16, and torch fp16 on a CUDA GPU when torch sees one.

    .venv/bin/python benchmarks/bench_encode.py --size quick      # ~3 min
    .venv/bin/python benchmarks/bench_encode.py --size standard   # ~7 min, BENCHMARKS.md
    .venv/bin/python benchmarks/bench_encode.py --size full       # ~15 min

Every speed is the median over rounds, and every ratio is the median of per-round
ratios against the naive loop (one image at a time: PIL open -> CLIPProcessor ->
get_image_features) timed in the same round, so load from other processes on the
machine hits both sides alike. Model-only rows time the model on preprocessed batches;
pipeline rows go from file to vector; Flow rows index the files through a running Flow,
which shows where the time goes between the model, decoding and the Flow's hops. The
model has random weights unless MEMEFLOW_MODEL names a real checkpoint: speeds are real,
agreement with fp32 only shows numerical error.
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
from memeflow.encoder import hardware  # noqa: E402
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
    agree_images: int  # images and captions for the agreement with torch fp32
    agree_texts: int


SIZES = {
    "quick": Size(images=64, rounds=2, batch_sizes=(16,), queries=40, flow_images=64,
                  agree_images=64, agree_texts=40),
    "standard": Size(images=128, rounds=3, batch_sizes=(16,), queries=200, flow_images=128,
                     agree_images=256, agree_texts=200),
    "full": Size(images=256, rounds=3, batch_sizes=(16, 32), queries=200, flow_images=260,
                 agree_images=256, agree_texts=200),
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
            f"pipeline {self.runtime:13} batch {self.batch_size:2} "
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
        with torch.no_grad():
            pixels = model.encoder.preprocess(image)[None]
            out.append(model.encoder.image_features(pixels)[0].numpy())
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


def bench_images(models: dict[str, ClipModel], size: Size, pipelines: list[Pipeline]
                 ) -> list[float]:
    """Prints file-to-vector rates; returns the naive loop's rate per round."""
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
    print(f"{'naive loop (batch 1, torch default threads)':66} {naive:6.1f} img/s   1.00x")
    for p, values in rates.items():
        ratio = statistics.median(v / n for v, n in zip(values, naive_rates, strict=True))
        print(f"{p.label:66} {statistics.median(values):6.1f} img/s  {ratio:5.2f}x")
    for pool in pools.values():
        pool.shutdown()
    return naive_rates


def bench_model_only(models: dict[str, ClipModel], size: Size) -> dict[str, float]:
    """images/s of the model alone on preprocessed batches (no file, no decode)."""
    reference = models["torch"]
    pixels = torch.stack([reference.preprocess(Image.open(p).convert("RGB"))
                          for p in images(64)])
    rates: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():
        batch = hardware.default_batch_size(model.device.type)
        model.embed_pixels(pixels[:batch])  # warm-up
    for _ in range(size.rounds):
        for name, model in models.items():
            batch = hardware.default_batch_size(model.device.type)
            chunks = pixels.split(batch)
            rates[name].append(rate(lambda m=model, c=chunks: [m.embed_pixels(x) for x in c],
                                    len(pixels)))
    print(f"\nModel only: {len(pixels)} preprocessed images, batches per device, "
          f"{size.rounds} rounds")
    medians = {}
    for name, values in rates.items():
        medians[name] = statistics.median(values)
        print(f"  {name:13} {describe(models[name]):34} {medians[name]:6.1f} img/s")
    return medians


def describe(model: ClipModel) -> str:
    hw = model.hardware
    return f"({hw.runtime} {hw.precision} on {hw.device})"


def bench_agreement(models: dict[str, ClipModel], size: Size) -> None:
    paths = images(size.agree_images)
    texts = queries(size.agree_texts)
    print("\nCosine to float32 torch vectors (RANDOM weights: shows numerical error only, "
          "not a real checkpoint's agreement):")
    with ThreadPoolExecutor(1) as pool:
        reference = run_pipeline(models["torch"], paths, pool, 16)
        reference_texts = models["torch"]._run_texts(texts)
        for name in [n for n in models if n != "torch"]:
            image_cos = cosines(reference, run_pipeline(models[name], paths, pool, 16))
            text_cos = cosines(reference_texts, models[name]._run_texts(texts))
            eligible = min(image_cos.mean(), text_cos.mean()) >= 0.999
            print(f"  {name:13}: images mean {image_cos.mean():.6f} min {image_cos.min():.6f} "
                  f"({len(paths)}); texts mean {text_cos.mean():.6f} min {text_cos.min():.6f} "
                  f"({len(texts)}); mean >= 0.999: {'yes' if eligible else 'NO'}")


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
        tokens = reference.encoder.processor.tokenizer(
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
    print(f"{'any runtime: cached (repeated query)':40} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms")


def bench_flow(size: Size, runtimes: list[str], naive_rates: list[float],
               model_only: dict[str, float]) -> None:
    """`memeflow index` of memes through the Flow per runtime setting, against the naive
    loop and the model alone measured earlier in this run."""
    from memeflow.client import MemeClient

    memes = sorted(p for p in MEMES.rglob("*") if p.suffix in {".jpg", ".png", ".gif"})
    memes = memes[: size.flow_images]
    warm = images(16)[-8:]  # Flickr photos: the first request pays for lazy set-up
    log = Path(tempfile.gettempdir()) / "bench_encode_flow.log"
    naive = statistics.median(naive_rates)
    print(f"\nEnd to end through the Flow (gRPC, client batches of 32, default encoder "
          f"settings but MEMEFLOW_RUNTIME; log {log}):")
    for runtime in runtimes:
        with running_flow(log, MEMEFLOW_RUNTIME=runtime) as ports:
            client = MemeClient(f"grpc://127.0.0.1:{ports.grpc}")
            client.index_paths(warm)
            chosen = client.status()
            start = time.perf_counter()
            report = client.index_paths(memes)
            elapsed = time.perf_counter() - start
        assert not report.failed, report.failed[:3]
        speed = len(report.indexed) / elapsed
        used = f"{chosen['runtime']} {chosen['precision']} on {chosen['device']}"
        alone = model_only.get(chosen["runtime"] if runtime == "auto" else runtime)
        share = f", {speed / alone:4.0%} of its model-only rate" if alone else ""
        print(f"  {runtime:8} ({used}): {len(report.indexed)} memes in {elapsed:5.1f} s = "
              f"{speed:5.1f} img/s, {speed / naive:4.2f}x the naive loop{share} ({load()})",
              flush=True)


def cpu_line() -> str:
    flags = " ".join(hardware.cpu_features()) or "none of note"
    return f"CPU {hardware.cpu_name()}, {os.cpu_count()} cores, flags: {flags}"


def model_specs() -> dict[str, dict[str, str]]:
    """The runtimes and devices this machine can run, by row name."""
    specs = {"torch": {}, "int8": {"runtime": "int8"}}
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime is not installed: no onnx rows (pip install -e '.[onnx]')")
    else:
        specs["onnx"] = {"runtime": "onnx"}
    features = set(hardware.cpu_features())
    if hardware.openvino_installed():
        specs["openvino"] = {"runtime": "openvino"}
        if features & {"avx512_bf16", "amx_bf16"}:
            specs["openvino-f32"] = {"runtime": "openvino", "precision": "f32"}
    if features & {"avx512_bf16", "amx_bf16"}:
        specs["torch-bf16"] = {"precision": "bf16"}
    if torch.cuda.is_available():
        specs["cuda-fp16"] = {"device": "cuda"}
        specs["cuda-fp32"] = {"device": "cuda", "precision": "f32"}
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="quick")
    parser.add_argument("--no-flow", action="store_true", help="skip the end-to-end rows")
    parser.add_argument("--flow-runtimes", nargs="*", default=["auto", "torch"],
                        help="MEMEFLOW_RUNTIME settings to run the Flow with")
    args = parser.parse_args()
    size = SIZES[args.size]
    cores = os.cpu_count() or 1
    versions = f"torch {torch.__version__}"
    if hardware.openvino_installed():
        import openvino

        versions += f", OpenVINO {openvino.__version__.split('-')[0]}"
    print(f"bench_encode --size {args.size}: {versions}, {load()}\n{cpu_line()}\n"
          f"model {MODEL}", flush=True)
    specs = model_specs()
    models = {name: ClipModel(MODEL, allow_random=True, **spec) for name, spec in specs.items()}
    auto = hardware.resolve_runtime("auto", hardware.resolve_device("auto"))
    print(f"runtime auto here: {auto}; loaded: "
          + ", ".join(f"{n} {describe(m)}" for n, m in models.items()), flush=True)
    pipelines = [Pipeline("torch", b, cores, 1) for b in size.batch_sizes]
    if args.size == "full":
        pipelines += [Pipeline("torch", 16, cores, 2), Pipeline("torch", 16, 1, 1)]
    pipelines += [Pipeline(name, hardware.default_batch_size(models[name].device.type), cores,
                           hardware.default_decode_threads(models[name].device.type))
                  for name in models if name != "torch"]
    model_only = bench_model_only(models, size)
    naive_rates = bench_images(models, size, pipelines)
    bench_agreement(models, size)
    bench_texts(models, size)
    for model in models.values():
        model.text_cache.clear()
    del models  # the Flow loads its own
    if not args.no_flow:
        bench_flow(size, args.flow_runtimes, naive_rates, model_only)
    print(f"\ndone ({load()})")


if __name__ == "__main__":
    main()
