"""Load test: concurrent clients mixing text searches, image searches and /index calls.

Starts its own Flow on free loopback ports with a throw-away workspace (or uses one already
running on this machine with --host), seeds it, then runs N concurrent clients (coroutines
on one event loop) for a fixed time and stops by itself. Reports requests/s, p50/p99
latency per endpoint, errors, and the resident memory of the Flow's processes after
warm-up and at the end.

    python benchmarks/load.py            # 32 clients, 60 s after a 15 s warm-up
    python benchmarks/load.py --quick    # 4 clients, 10 s: a smoke run
"""

import argparse
import asyncio
import io
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from docarray import DocList
from PIL import Image

from memeflow.cli.exposure import free_port_run
from memeflow.client import MemeClient, parse_host
from memeflow.documents import MemeDoc
from memeflow.protocol import client_headers

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WORDS = [
    "cat", "dog", "drake", "distracted", "boyfriend", "success", "kid", "surprised", "pikachu",
    "doge", "stonks", "galaxy", "brain", "fine", "woman", "yelling", "table", "crying",
    "laughing", "monday", "coffee", "code", "bug", "deploy", "friday", "cheems", "wojak",
    "chad", "rejecting", "approving", "two", "buttons", "sweating", "expanding", "mind",
]
MIX = (("text", 0.5), ("image", 0.3), ("index", 0.2))  # share of calls per kind


@dataclass
class Tally:
    """Latencies (s) per endpoint and the errors seen, for one phase of the run."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            if error is None:
                self.latencies[kind].append(seconds)
            else:
                self.errors.append(f"{kind}: {error}")


def make_images(count: int, seed: int = 0) -> list[bytes]:
    """Distinct JPEGs (smooth colour fields with noise), so no two searches are the same."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        base = rng.integers(0, 256, (8, 8, 3), np.uint8)
        img = Image.fromarray(base).resize((320, 240), Image.Resampling.BICUBIC)
        noisy = np.clip(np.asarray(img, np.int16) + rng.integers(-20, 21, (240, 320, 3)), 0, 255)
        buffer = io.BytesIO()
        Image.fromarray(noisy.astype(np.uint8)).save(buffer, "JPEG", quality=85)
        images.append(buffer.getvalue())
    return images


def flow_rss(pgid: int) -> dict[int, int]:
    """Resident bytes of every process in the Flow's process group."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            group = int(stat.rsplit(")", 1)[1].split()[2])
            if group == pgid:
                pages = int((proc / "statm").read_text().split()[1])
                found[int(proc.name)] = pages * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    return found


async def call(client: Any, endpoint: str, doc: MemeDoc, **parameters: Any) -> str | None:
    """One request of one document; the error it came back with, if any."""
    key = tuple(client_headers().items())  # MEMEFLOW_API_KEY, if the Flow wants one
    async for docs in client.post(endpoint, inputs=DocList[MemeDoc]([doc]), metadata=key,
                                  parameters=parameters, return_type=DocList[MemeDoc]):
        return docs[0].error
    return "no reply"


async def client_loop(client: Any, number: int, images: list[bytes], stop: asyncio.Event,
                      tally: list[Tally]) -> None:
    """One client: picks a call by MIX, times it, until `stop`; `tally[0]` is the phase."""
    rng, sent = random.Random(number), 0
    kinds, weights = zip(*MIX, strict=True)
    while not stop.is_set():
        kind = rng.choices(kinds, weights)[0]
        started = time.perf_counter()
        try:
            if kind == "text":
                query = MemeDoc(text=" ".join(rng.sample(WORDS, 4)))
                error = await call(client, "/search", query, top_k=10)
            elif kind == "image":
                error = await call(client, "/search", MemeDoc(blob=rng.choice(images)), top_k=10)
            else:
                sent += 1
                doc = MemeDoc(id=f"load-{number}-{sent}", blob=rng.choice(images),
                              tags={"client": number})
                error = await call(client, "/index", doc)
        except Exception as exc:
            error = repr(exc)[:200]
        tally[0].add(kind, time.perf_counter() - started, error)


def summary(tally: Tally, seconds: float) -> dict[str, object]:
    endpoints = {}
    for kind, values in sorted(tally.latencies.items()):
        ms = np.array(values) * 1000
        endpoints[kind] = {"calls": len(values), "per_s": round(len(values) / seconds, 2),
                           "p50_ms": round(float(np.percentile(ms, 50)), 1),
                           "p99_ms": round(float(np.percentile(ms, 99)), 1)}
    total = sum(len(v) for v in tally.latencies.values())
    return {"seconds": round(seconds, 1), "requests": total,
            "requests_per_s": round(total / seconds, 2), "errors": len(tally.errors),
            "first_errors": tally.errors[:5], "endpoints": endpoints}


async def clients(host: str, pgid: int | None, count: int, seconds: float,
                  warmup: float) -> tuple[Tally, float, dict[int, int], dict[int, int], Tally]:
    """`count` concurrent clients on one event loop (Jina's client is not thread-safe)."""
    from jina import Client

    protocol, hostname, port = parse_host(host)
    client = Client(host=hostname, port=port, protocol=protocol, asyncio=True)
    images = make_images(64)
    stop, warm, measured = asyncio.Event(), Tally(), Tally()
    phase = [warm]
    tasks = [asyncio.create_task(client_loop(client, n, images, stop, phase))
             for n in range(count)]
    await asyncio.sleep(warmup)
    rss_warm = flow_rss(pgid) if pgid else {}
    phase[0] = measured
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait(tasks, timeout=120)
    elapsed = time.perf_counter() - started
    return measured, elapsed, rss_warm, flow_rss(pgid) if pgid else {}, warm


def run(host: str, pgid: int | None, count: int, seconds: float, warmup: float) -> dict:
    seeder = MemeClient(host)
    vectors = np.random.default_rng(1).standard_normal((5000, 512)).astype(np.float32)
    seeder._post("/index", [MemeDoc(id=f"seed-{i}", embedding=v) for i, v in enumerate(vectors)])
    images = make_images(64)
    seeder._post("/index", [MemeDoc(id=f"seed-image-{i}", blob=b) for i, b in enumerate(images)])
    measured, elapsed, rss_warm, rss_end, warm = asyncio.run(
        clients(host, pgid, count, seconds, warmup))
    report = summary(measured, elapsed)
    report.update(clients=count, warmup_s=warmup, warmup_errors=len(warm.errors),
                  count_after=seeder.count(), load_average=os.getloadavg())
    if rss_warm:
        before, after = sum(rss_warm.values()), sum(rss_end.values())
        report.update(rss_after_warmup_mb=round(before / 2**20, 1),
                      rss_end_mb=round(after / 2**20, 1), rss_ratio=round(after / before, 3),
                      processes=len(rss_end))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--quick", action="store_true", help="4 clients for 10 s (3 s warm-up)")
    parser.add_argument("--host", help="a Flow already running on this machine (loopback only); "
                                       "memory is then not measured")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds, args.warmup = 4, 10, 3
    if args.host:
        if (urlparse(args.host if "://" in args.host else f"grpc://{args.host}").hostname
                not in LOOPBACK):
            parser.error("--host must be on this machine (localhost, 127.0.0.1 or ::1)")
        report = run(args.host, None, args.clients, args.seconds, args.warmup)
    else:
        from memeflow.cli.serve import FlowProcess

        grpc_port, http_port = free_port_run(1), free_port_run(1)
        os.environ.update(MEMEFLOW_GRPC_PORT=str(grpc_port), MEMEFLOW_HTTP_PORT=str(http_port))
        with tempfile.TemporaryDirectory() as workspace:
            os.environ["MEMEFLOW_WORKSPACE"] = workspace
            log = Path(workspace).with_suffix(".log")
            with log.open("w") as sink, FlowProcess(log=sink) as flow:
                report = run(f"grpc://127.0.0.1:{grpc_port}", flow.process.pid,
                             args.clients, args.seconds, args.warmup)
            log.unlink()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
