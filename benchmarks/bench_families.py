"""Speed of every model family on this machine, per runtime: model-only images/s and the
p50 of a new text query, beside the naive loop of the same run; and the text tower of a
multilingual family against CLIP's and against a separate multilingual text model.

    .venv/bin/python benchmarks/bench_families.py            # ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_families.py --rounds 1 --families clip,siglip2
    .venv/bin/python benchmarks/bench_families.py --flow --runtimes auto --no-multilingual

Each family is its published architecture with seeded random weights, built offline as
the tests build it (tests/families.py; vocabularies shrunk, which changes no timing but
the memory): speeds are real, vectors meaningless. A real checkpoint runs the same code:
pass `--models NAME=ID_OR_FOLDER,...`.

Every ratio is the median of per-round ratios against the naive loop (one image at a
time: PIL open -> the family's preprocessing -> its image tower in torch) timed in the
same round, so load from other processes hits both sides alike. Model-only rows time
the model on preprocessed batches of 16. Text rows time one new query at a time (no
cache). The multilingual comparison runs the text towers in turns, query by query, so
each one sees the same load. `--flow` also serves each family as users run it (runtime
`auto`): `memeflow index` of the same images through the Flow and new text queries over
HTTP, each round beside the model-only rate of `auto` in this process (the Flow idle).
"""

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# As `memeflow serve` runs the encoder: OpenMP threads that spin while waiting starve
# other processes on a busy machine, and are starved by them (memeflow/cli/serve.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_encode import images, queries  # noqa: E402  (the same images and queries)
from flowrun import SHARED, load  # noqa: E402

from memeflow.encoder import hardware  # noqa: E402
from memeflow.encoder.model import ClipModel, load_model  # noqa: E402
from tests import families  # noqa: E402

NO_WEIGHTS_CLIP = SHARED / "models" / "clip-vit-base-patch32-noweights"
RUNTIMES = ("torch", "onnx", "openvino")
MULTILINGUAL_QUERIES = ["un chat triste", "ein Hund im Park", "una persona feliz",
                        "два человека спорят", "猫が寝ている", "quand le code marche"]


def build_families(root: Path) -> dict[str, str]:
    """Family name -> folder of its published architecture, without weights."""
    built = {"clip": str(NO_WEIGHTS_CLIP),
             "siglip": str(families.siglip_folder(root, shrink_vocab=True)),
             "siglip2": str(families.siglip2_folder(root, shrink_vocab=True)),
             "metaclip2": str(families.metaclip2_folder(root, shrink_vocab=True))}
    try:
        import open_clip  # noqa: F401
    except (ImportError, RuntimeError) as exc:
        print(f"no OpenCLIP rows: {exc}")
    else:
        for arch in families.OPEN_CLIP_FOLDERS:
            built[f"openclip {arch}"] = str(families.open_clip_folder(root, arch))
        # open_clip's own config of the MobileCLIP2-S2 (random weights, no download)
        built["openclip MobileCLIP2-S2"] = "open_clip:MobileCLIP2-S2"
    return built


def xlmr_text_model(root: Path, layers: int, hidden: int, heads: int, name: str) -> Path:
    """A sentence-transformers text model folder (Transformer, mean Pooling, Dense to 512)
    of an XLM-RoBERTa encoder of the given size, random weights: M-CLIP's
    XLM-Roberta-Large-Vit-B-32 is 24 x 1024; clip-ViT-B-32-multilingual-v1's student is a
    6 x 768 DistilBERT, timed here as a 6 x 768 encoder."""
    import json

    from transformers import XLMRobertaConfig, XLMRobertaModel

    folder = root / name
    config = XLMRobertaConfig(vocab_size=2000, hidden_size=hidden, num_hidden_layers=layers,
                              num_attention_heads=heads, intermediate_size=4 * hidden,
                              max_position_embeddings=514)
    torch.manual_seed(0)
    XLMRobertaModel(config).save_pretrained(folder)
    families._t5_tokenizer().save_pretrained(folder)  # any tokenizer: timing only
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True}))
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "config.json").write_text(json.dumps(
        {"in_features": hidden, "out_features": 512, "bias": True,
         "activation_function": "torch.nn.modules.linear.Identity"}))
    dense = torch.nn.Linear(hidden, 512)
    torch.save({"linear.weight": dense.weight, "linear.bias": dense.bias},
               folder / "2_Dense" / "pytorch_model.bin")
    return folder




def rate(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def p50_ms(fn: Callable[[str], object], texts: list[str]) -> float:
    times = []
    for text in texts:
        start = time.perf_counter()
        fn(text)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50))


def naive_loop(model: ClipModel, paths: list[Path]) -> None:
    for path in paths:
        with torch.inference_mode():
            model.encoder.image_features(model.preprocess(Image.open(path).convert("RGB"))[None])


def bench_family(label: str, source: str, args: argparse.Namespace, cache: Path) -> None:
    models = {}
    for runtime in args.runtimes:
        try:
            models[runtime] = load_model(source, allow_random=True, runtime=runtime, cache=cache)
        except Exception as exc:  # a runtime that cannot run this family: say so, go on
            print(f"  {label}: runtime {runtime} failed: {exc}")
    reference = models["torch"]
    paths = images(args.images)
    pixels = torch.stack([reference.preprocess(Image.open(p).convert("RGB")) for p in paths])
    texts = queries(args.queries)
    for model in models.values():  # warm-up
        model.embed_pixels(pixels[:16])
        model._run_texts(["warm up"])
    naive: list[float] = []
    image_rates: dict[str, list[float]] = {r: [] for r in models}
    text_p50: dict[str, list[float]] = {r: [] for r in models}
    for _ in range(args.rounds):
        naive.append(rate(lambda: naive_loop(reference, paths[: len(paths) // 2]),
                          len(paths) // 2))
        for runtime, model in models.items():
            image_rates[runtime].append(rate(
                lambda m=model: [m.embed_pixels(b) for b in pixels.split(16)], len(pixels)))
            text_p50[runtime].append(p50_ms(lambda t, m=model: m._run_texts([t]), texts))
    print(f"\n{label}: {reference.family}, {reference.dim}-d, image "
          f"{reference.encoder.image_size[0]} px ({load()})")
    print(f"  {'naive loop (batch 1, torch)':36} {statistics.median(naive):6.1f} img/s   1.00x")
    for runtime, model in models.items():
        ratio = statistics.median(v / n for v, n in zip(image_rates[runtime], naive, strict=True))
        hw = model.hardware
        print(f"  {f'{runtime} ({hw.precision})':36} {statistics.median(image_rates[runtime]):6.1f}"
              f" img/s  {ratio:5.2f}x   text p50 {statistics.median(text_p50[runtime]):6.1f} ms")


def bench_flow(label: str, source: str, args: argparse.Namespace, tmp: Path) -> None:
    """The family through a running Flow (`runtime: auto`): images/s of `memeflow index` of
    a folder of `--images` memes (cleared before each round, so all are encoded) and the
    p50 of new text queries over HTTP (top 10), beside the model-only images/s of `auto`
    in this process in the same round."""
    import shutil

    from bench_flow import HttpSearch
    from flowrun import running_flow

    from memeflow.client import MemeClient

    folder = tmp / "flow-images"
    if not folder.exists():
        folder.mkdir()
        for number, path in enumerate(images(args.images)):
            shutil.copy(path, folder / f"{number}{path.suffix}")
    model = load_model(source, allow_random=True, runtime="auto", cache=tmp / "cache")
    pixels = torch.stack([model.preprocess(Image.open(p).convert("RGB"))
                          for p in sorted(folder.iterdir())])
    texts = queries(args.queries * (args.rounds + 1))
    flow_rates, model_rates, text_ms = [], [], []
    with running_flow(tmp / "flow.log", MEMEFLOW_MODEL=source) as ports:
        client, http = MemeClient(f"grpc://127.0.0.1:{ports.grpc}"), HttpSearch(ports.http)
        client.index_paths([folder])  # warm-up: model loaded, pages touched
        for text in texts[: args.queries]:
            http.search(text)
        ran_as = client.status()
        for round_ in range(args.rounds):
            client.clear()
            flow_rates.append(rate(lambda: client.index_paths([folder]), len(pixels)))
            assert client.count() == len(pixels), "not every image was indexed"
            model_rates.append(rate(lambda: [model.embed_pixels(b) for b in pixels.split(16)],
                                    len(pixels)))
            start = (round_ + 1) * args.queries
            text_ms.append(p50_ms(http.search, texts[start: start + args.queries]))
    share = statistics.median(f / m for f, m in zip(flow_rates, model_rates, strict=True))
    print(f"  through the Flow ({ran_as.get('runtime')} {ran_as.get('precision', '')}): "
          f"{statistics.median(flow_rates):6.1f} img/s, {share:4.0%} of model-only "
          f"{statistics.median(model_rates):.1f} img/s; HTTP text p50 "
          f"{statistics.median(text_ms):6.1f} ms ({load()})", flush=True)


def bench_multilingual(sources: dict[str, str], root: Path, args: argparse.Namespace,
                       cache: Path) -> None:
    """New-query p50 of each text path, run in turns query by query."""
    from memeflow.encoder.text_model import SentenceTextModel

    paths: dict[str, Callable[[str], object]] = {}
    for runtime in args.multilingual_runtimes.split(","):
        for family in ("clip", "siglip2", "metaclip2"):
            if family in sources:
                model = load_model(sources[family], allow_random=True, runtime=runtime,
                                   cache=cache)
                paths[f"{family} text tower ({runtime})"] = (
                    lambda t, m=model: m._run_texts([t]))
    for layers, hidden, heads, name in ((6, 768, 12, "text model 6 x 768 (torch)"),
                                        (24, 1024, 16, "XLM-R large text model (torch)")):
        text = SentenceTextModel(str(xlmr_text_model(root, layers, hidden, heads,
                                                      name.split(" (")[0].replace(" ", "-"))),
                                 text_cache_size=0)
        paths[name] = lambda t, m=text: m._run([t])
    texts = queries(args.queries) + MULTILINGUAL_QUERIES
    for fn in paths.values():
        fn("warm up")
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for text in texts:
            for name, fn in paths.items():
                start = time.perf_counter()
                fn(text)
                times[name].append((time.perf_counter() - start) * 1000)
    base = float(np.percentile(times["clip text tower (torch)"], 50))
    print(f"\nMultilingual queries: {len(texts)} queries x {args.rounds} rounds, one at a time,"
          f" text paths in turns ({load()})")
    for name, values in times.items():
        p50 = float(np.percentile(values, 50))
        print(f"  {name:40} p50 {p50:7.1f} ms  {p50 / base:5.2f}x CLIP's torch text tower")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--families", default="", help="comma-separated subset (default all)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--models", default="", help="NAME=ID_OR_FOLDER,... instead")
    parser.add_argument("--no-multilingual", action="store_true")
    parser.add_argument("--flow", action="store_true", help="also through a running Flow")
    parser.add_argument("--multilingual-runtimes", default="torch",
                        help="runtimes of the family text towers in the multilingual rows")
    args = parser.parse_args()
    args.runtimes = args.runtimes.split(",")
    flags = " ".join(hardware.cpu_features()) or "none of note"
    print(f"bench_families: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
          f"{load()}\nCPU {hardware.cpu_name()}, flags: {flags}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "models", Path(tmp) / "cache"
        sources = (dict(item.split("=", 1) for item in args.models.split(",")) if args.models
                   else build_families(root))
        chosen = args.families.split(",") if args.families else list(sources)
        if not args.no_multilingual and not args.models:
            bench_multilingual(sources, root, args, cache)
            gc.collect()
        for label in chosen:
            bench_family(label, sources[label], args, cache)
            gc.collect()
            if args.flow:
                bench_flow(label, sources[label], args, Path(tmp))
                gc.collect()
    print(f"\ndone ({load()})")


if __name__ == "__main__":
    main()
