"""Where the milliseconds of a new text query, and of an indexed image, go in the Flow.

    .venv/bin/python benchmarks/bench_flow_path.py [--queries 60] [--images 128] [--runtime auto]

One Flow on a 10,000-vector workspace, with Prometheus metrics on (MEMEFLOW_METRICS_PORT):
each stage's own timers are read before and after each kind of request, so the time a
request spends in the gateway, in each executor's function and in memeflow's own code is
measured inside the Flow, not inferred. Kinds: `/count`; `/search` with the query vector
given (the encoder passes it on: the hops and the search, no model); `/search` with a new
text; the same texts again (the encoder's text cache answers). In the same run, in this
process: the text tower back to back, and with an idle pause before each call as the
Flow's encoder has between requests. Prints means per request (Prometheus summaries give
sums and counts) and end-to-end p50.

Images (`--images N`): N memes indexed as `memeflow index` does (client batches of 32,
gRPC) into a fresh workspace of the same Flow, with each stage's timers read around it;
in the same run, in this process: the model alone on the same images preprocessed
(`embed_pixels`, batches of 16) and the thumbnail and perceptual hash of each image.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the Flow runs (memeflow serve)

import argparse
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

from bench_flow import HttpSearch, latencies_ms, prepared_workspace, query_texts
from flowrun import MODEL, load, running_flow

from memeflow.cli.exposure import free_port_run

SAMPLE = re.compile(r'^(\w+?)_(sum|count)\{(.*)\} ([0-9.e+-]+)$')


def scrape(base: int) -> dict[str, float]:
    """`name{labels}_sum` / `_count` of every *seconds metric of the gateway (base), the
    encoder (base + 1) and the indexer (base + 2)."""
    values: dict[str, float] = {}
    for offset, stage in enumerate(("gateway", "encoder", "indexer")):
        with urllib.request.urlopen(f"http://127.0.0.1:{base + offset}/", timeout=30) as r:
            for line in r.read().decode().splitlines():
                match = SAMPLE.match(line)
                if match and "seconds" in match[1]:
                    labels = ",".join(part for part in match[3].split(",")
                                      if part.startswith(("executor_endpoint", "endpoint",
                                                          "runtime_name")))
                    values[f"{stage} {match[1]}{{{labels}}} {match[2]}"] = float(match[4])
    return values


def _listening_inodes() -> dict[str, int]:
    """Inode of each listening TCP socket -> its port (/proc/net/tcp, tcp6)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    found[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def stage_cpu(base: int) -> dict[str, float]:
    """CPU seconds (user + system, all threads) used so far by each Flow process, named by
    the metrics port it listens on (gateway: base, encoder: base + 1, indexer: base + 2);
    the Flow's other processes (its parent) as "other". CPU time, unlike wall time, is
    barely changed by other work on the machine."""
    names = {base: "gateway", base + 1: "encoder", base + 2: "indexer"}
    marker = f"MEMEFLOW_METRICS_PORT={base}".encode()
    ports = _listening_inodes()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu: dict[str, float] = defaultdict(float)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker not in (proc / "environ").read_bytes():
                continue
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            inodes = [os.readlink(fd)[8:-1] for fd in (proc / "fd").iterdir()
                      if os.readlink(fd).startswith("socket:")]
        except OSError:
            continue
        stage = next((names[ports[i]] for i in inodes if ports.get(i) in names), "other")
        cpu[stage] += (int(stat[11]) + int(stat[12])) / ticks
    cpu["client (this process)"] = time.process_time()
    return cpu


def cpu_per(before: dict[str, float], after: dict[str, float], count: int) -> str:
    """CPU milliseconds per item of each stage between two readings, largest first."""
    used = {k: (after[k] - before.get(k, 0.0)) / count * 1e3 for k in after}
    return ", ".join(f"{k} {v:.1f}" for k, v in sorted(used.items(), key=lambda kv: -kv[1]))


def per_request(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean milliseconds per observation of each metric observed between two scrapes."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, float] = defaultdict(float)
    for key, value in after.items():
        name, kind = key.rsplit(" ", 1)
        delta = value - before.get(key, 0.0)
        (sums if kind == "sum" else counts)[name] += delta
    return {name: sums[name] / counts[name] * 1e3 for name in sums if counts[name] > 0}


def index_memes(grpc_port: int, base: int, count: int) -> dict[str, object]:
    """Index `count` memes through the Flow after 8 of warm-up; wall time and stage timers."""
    from flowrun import SHARED

    from memeflow.client import MemeClient

    memes = sorted(p for p in (SHARED / "data" / "memes" / "templates").rglob("*")
                   if p.suffix in {".jpg", ".png"})[:count + 8]
    folder = Path(tempfile.mkdtemp(prefix="memeflow-bench-memes-"))
    for path in memes:  # links: the client reads each file, the encoder gets its bytes
        (folder / f"{path.parent.name}-{path.name}").symlink_to(path)
    links = sorted(folder.iterdir())
    client = MemeClient(f"grpc://127.0.0.1:{grpc_port}")
    client.clear()
    client.index_paths([str(p) for p in links[:8]])
    before, cpu_before = scrape(base), stage_cpu(base)
    started = time.perf_counter()
    report = client.index_paths([str(p) for p in links[8:]])
    seconds = time.perf_counter() - started
    metrics = per_request(before, scrape(base))
    cpu = cpu_per(cpu_before, stage_cpu(base), len(report.encoded))
    done = len(report.encoded)
    print(f"\n## Indexing {done} memes through the Flow: {done / seconds:.2f} memes/s "
          f"({seconds:.1f} s; {load()})")
    for metric, ms in sorted(metrics.items()):
        print(f"    {ms:8.2f} ms  {metric}")
    print(f"    CPU ms per meme: {cpu}")
    in_flight(grpc_port, memes[8:])
    return {"paths": memes[8:], "rate": done / seconds}


def in_flight(grpc_port: int, paths: list[Path], batch: int = 32) -> None:
    """The same images as /index requests of `batch`, one at a time and two at a time (one
    client per thread): whether the encoder waits for the rest of the Flow between them."""
    from concurrent.futures import ThreadPoolExecutor

    from memeflow.client import MemeClient
    from memeflow.documents import MemeDoc

    data = [p.read_bytes() for p in paths]
    for threads in (1, 2, 1, 2):
        clients = [MemeClient(f"grpc://127.0.0.1:{grpc_port}") for _ in range(threads)]
        clients[0].clear()
        batches = [[MemeDoc(id=f"{threads}-{i}", blob=d, uri=str(p))
                    for i, (p, d) in enumerate(zip(paths, data, strict=True))][s:s + batch]
                   for s in range(0, len(paths), batch)]
        started = time.perf_counter()
        def send(job: tuple[int, list[MemeDoc]], clients: list[MemeClient] = clients) -> int:
            return len(clients[job[0] % len(clients)].index(job[1]))

        with ThreadPoolExecutor(threads) as pool:
            done = sum(pool.map(send, enumerate(batches)))
        rate = done / (time.perf_counter() - started)
        print(f"    /index requests of {batch}, {threads} in flight: {rate:.2f} memes/s "
              f"({load()})")


def image_baselines(model: object, run: dict[str, object]) -> None:
    """The model alone and the index-time extras on the same images, in this process."""
    import torch
    from PIL import Image

    from memeflow.encoder.decode import central_crop
    from memeflow.encoder.phash import perceptual_hash
    from memeflow.encoder.thumbnail import make_thumbnail

    paths = run["paths"]
    assert isinstance(paths, list)
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    from memeflow.encoder.decode import decode_image

    data = [path.read_bytes() for path in paths]
    cpu_started = time.process_time()
    for blob in data:
        decode_image(blob)
    decode = (time.process_time() - cpu_started) / len(images) * 1e3
    started, cpu_started = time.perf_counter(), time.process_time()
    pixels = [model.preprocess(central_crop(image)) for image in images]  # type: ignore[attr-defined]
    preprocess = (time.perf_counter() - started) / len(images) * 1e3
    preprocess_cpu = (time.process_time() - cpu_started) / len(images) * 1e3
    model.embed_pixels(torch.stack(pixels[:16]))  # type: ignore[attr-defined]  # warm-up
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(pixels), 16):
        model.embed_pixels(torch.stack(pixels[start:start + 16]))  # type: ignore[attr-defined]
    model_only = len(pixels) / (time.perf_counter() - started)
    model_cpu = (time.process_time() - cpu_started) / len(pixels) * 1e3
    started, cpu_started = time.perf_counter(), time.process_time()
    for image in images:
        make_thumbnail(image)
        perceptual_hash(image)
    extras = (time.perf_counter() - started) / len(images) * 1e3
    extras_cpu = (time.process_time() - cpu_started) / len(images) * 1e3
    rate = float(run["rate"])  # type: ignore[arg-type]
    print(f"\nin-process model alone (embed_pixels, batches of 16): {model_only:.2f} img/s; "
          f"the Flow indexed at {rate:.2f} memes/s = {rate / model_only:.0%} of it")
    print(f"in-process per image: preprocess {preprocess:.2f} ms, thumbnail + perceptual "
          f"hash {extras:.2f} ms ({load()})")
    print(f"in-process CPU ms per image: model {model_cpu:.1f}; decode {decode:.1f}, "
          f"preprocess {preprocess_cpu:.1f}, thumbnail + perceptual hash {extras_cpu:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--idle-ms", type=float, default=15.0,
                        help="pause before each in-process call, as between Flow requests")
    args = parser.parse_args()
    texts = query_texts(args.queries + 20)
    warm, texts = texts[:20], texts[20:]
    base = free_port_run(3)
    cache = Path(tempfile.mkdtemp(prefix="memeflow-bench-"))
    workspace = prepared_workspace(cache, 10_000)
    log = cache / "flow.log"
    results: dict[str, tuple[list[float], dict[str, float]]] = {}
    with running_flow(log, workspace=workspace, MEMEFLOW_RUNTIME=args.runtime,
                      MEMEFLOW_METRICS_PORT=str(base)) as ports:
        client = HttpSearch(ports.http)
        for text in warm:
            client.search(text)
        vector = client.post("/search", {"data": [{"text": warm[0]}], "parameters": {
            "top_k": 1, "return_embeddings": True}})["data"][0]["embedding"]
        kinds = {
            "/count": lambda t: client.post("/count", {"data": []}),
            "/search, vector given": lambda t: client.post("/search", {
                "data": [{"embedding": vector}], "parameters": {"top_k": 10}}),
            "/search, new text": client.search,
            "/search, repeated text": client.search,
        }
        cpu: dict[str, str] = {}
        for name, call in kinds.items():
            before, cpu_before = scrape(base), stage_cpu(base)
            times = latencies_ms(call, texts)
            cpu[name] = cpu_per(cpu_before, stage_cpu(base), len(texts))
            results[name] = (times, per_request(before, scrape(base)))
        status = client.post("/status", {"data": []})["data"][0]["tags"]
        image_run = index_memes(ports.grpc, base, args.images) if args.images else None
    print(f"# runtime {status['runtime']} {status['precision']} on {status['cpu']} "
          f"({', '.join(status['cpu_features'])}); {load()}\n")
    for name, (times, metrics) in results.items():
        print(f"## HTTP {name}: p50 {statistics.median(times):.2f} ms, "
              f"mean {statistics.fmean(times):.2f} ms ({len(times)} requests)")
        for metric, ms in sorted(metrics.items()):
            print(f"    {ms:8.2f} ms  {metric}")
        print(f"    CPU ms per request: {cpu[name]}")
    from memeflow.encoder.model import ClipModel

    model = ClipModel(MODEL, allow_random=True, runtime=status["runtime"],
                      device=status["device"], text_cache_size=0)
    for text in warm:
        model.embed_texts([text])
    hot = latencies_ms(lambda t: model.embed_texts([t]), texts)

    def after_pause(text: str) -> None:
        time.sleep(args.idle_ms / 1e3)

    idle = []
    for text in texts:
        after_pause(text)
        started = time.perf_counter()
        model.embed_texts([text])
        idle.append((time.perf_counter() - started) * 1e3)
    print(f"\nin-process text tower, back to back: p50 {statistics.median(hot):.2f} ms, "
          f"mean {statistics.fmean(hot):.2f} ms")
    print(f"in-process text tower, {args.idle_ms:g} ms idle before each: "
          f"p50 {statistics.median(idle):.2f} ms, mean {statistics.fmean(idle):.2f} ms "
          f"({load()})")
    if image_run is not None:
        image_baselines(model, image_run)
    print(f"(flow log: {log})", file=sys.stderr)


if __name__ == "__main__":
    main()
