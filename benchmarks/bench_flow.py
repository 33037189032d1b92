"""Through the real Flow: ingest of pre-embedded documents over gRPC, and text queries over HTTP.

    .venv/bin/python benchmarks/bench_flow.py --size quick   # 20k ingest, 10k index: ~3 min
    .venv/bin/python benchmarks/bench_flow.py --size full    # 100k ingest, 1M index: ~20 min
    .venv/bin/python benchmarks/bench_flow.py --filtered DIR  # filtered searches over HTTP

Ingest: documents that already carry a 512-d embedding (plus a uri and the tags `memeflow
index` stores) go to `/upsert` (straight to the indexer) or `/index` (through the encoder,
which passes them on) with Jina's gRPC client; replies come back without embeddings.
Baseline in the same run: the indexer's own `EmbeddedCollection.upsert` of the same documents in
the same batches, in this process, with no Flow around it.

Queries: the index is a workspace of "CLIP-like" vectors written directly with
`EmbeddedCollection` (cached in --cache between runs: building the HNSW graph of 1M vectors takes
minutes). Text queries go to `POST /search` of the HTTP gateway over one keep-alive
connection. Baselines in the same run: the encoder's text encode (ClipModel) plus the
indexer's search (EmbeddedCollection on the same workspace), both in this process, and the
gateway's round trip for `/count`. Every figure is a median (or p99) over repeats.

Filtered (`--filtered DIR`, a workspace `bench_store.py` wrote, whose documents carry the
tags `folder`, one of 500, and `group`, one of 5): `POST /search` with a query vector
(so the encoder only passes it on) and no filter, `where: {"folder": "folder7"}` (0.2% of
the documents) or `where: {"group": "group3"}` (20%); baseline in the same run: the
indexer's own `search_collection` on the same workspace, in this process, after the Flow.
"""

import os

# The in-process encode baseline waits for work as the Flow's encoder does (memeflow.service
# sets the same): spinning OpenMP threads collapse under load. Read when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import csv
import http.client
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench_search import records
from flowrun import MODEL, SHARED, load, running_flow
from synthetic import clip_like, doc_ids

from memeflow.documents import MemeDoc
from memeflow.indexer.backends.embedded import EmbeddedCollection

CAPTIONS = SHARED / "data" / "flickr8k-1k" / "captions.csv"


@dataclass(frozen=True)
class Size:
    ingest_docs: int
    runs: tuple[tuple[str, int], ...]  # (endpoint, request size)
    rounds: int
    index_size: int
    queries: int


SIZES = {
    "quick": Size(20_000, (("/index", 1_000), ("/upsert", 1_000)), 3, 10_000, 60),
    "full": Size(
        100_000,
        (("/index", 1_000), ("/upsert", 250), ("/upsert", 1_000)),  # MEMEFLOW_MAX_DOCS: 1,000
        3, 1_000_000, 300,
    ),
}


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def query_texts(count: int) -> list[str]:
    """Distinct real captions cut to at most 10 words, as people type queries."""
    with CAPTIONS.open() as f:
        texts = {" ".join(row["caption"].split()[:10]).rstrip(" .") for row in csv.DictReader(f)}
    return sorted(texts)[:count]


# --- ingest ----------------------------------------------------------------------------------


def ingest_docs(n: int, seed: int) -> tuple[list[str], np.ndarray, list]:
    ids = [f"r{seed}-{doc_id}" for doc_id in doc_ids(n)]
    return ids, clip_like(seed, n), records(ids)


def raw_upsert_rate(ids: list[str], vectors: np.ndarray, recs: list, request_size: int) -> float:
    with tempfile.TemporaryDirectory() as workspace:
        store = EmbeddedCollection(workspace)
        started = time.perf_counter()
        for s in range(0, len(ids), request_size):
            store.upsert(ids[s : s + request_size], vectors[s : s + request_size],
                         recs[s : s + request_size])
        rate = len(ids) / (time.perf_counter() - started)
        store.close()
    return rate


def flow_ingest_rate(
    client: Any, ids: list[str], vectors: np.ndarray, recs: list, request_size: int,
    endpoint: str = "/upsert",
) -> float:
    from docarray import DocList

    docs = DocList[MemeDoc](
        MemeDoc(id=i, uri=r["uri"], tags=r["tags"], embedding=v)
        for i, v, r in zip(ids, vectors, recs, strict=True)
    )
    started = time.perf_counter()
    replies = client.post(endpoint, inputs=docs, request_size=request_size,
                          return_type=DocList[MemeDoc])
    rate = len(ids) / (time.perf_counter() - started)
    assert len(replies) == len(ids) and not any(d.error for d in replies), "ingest failed"
    assert all(d.embedding is None for d in replies), "replies must not carry embeddings"
    return rate


def bench_ingest(size: Size, log: Path) -> None:
    from jina import Client

    print(f"\n## Ingest of pre-embedded documents through gRPC ({size.ingest_docs:,} per round, "
          f"{size.rounds} rounds)\n")
    print("| endpoint | request size | Flow docs/s (median) | store.upsert alone docs/s "
          "| Flow / store |")
    print("|---|---:|---:|---:|---:|")
    with running_flow(log) as ports:
        client = Client(host="127.0.0.1", port=ports.grpc, protocol="grpc")
        warm = ingest_docs(2_000, seed=999)
        flow_ingest_rate(client, *warm, request_size=1_000)
        for endpoint, request_size in size.runs:
            flow, raw = [], []
            for round_ in range(size.rounds):
                data = ingest_docs(size.ingest_docs, seed=request_size * 100 + round_)
                flow.append(flow_ingest_rate(client, *data, request_size, endpoint))
                raw.append(raw_upsert_rate(*data, request_size=request_size))
            ratios = [f / r for f, r in zip(flow, raw, strict=True)]
            print(f"| {endpoint} | {request_size:,} | {statistics.median(flow):,.0f} | "
                  f"{statistics.median(raw):,.0f} | {statistics.median(ratios):.2f} |", flush=True)
    print(f"\n({load()})")


# --- queries ---------------------------------------------------------------------------------


def prepared_workspace(cache: Path, n: int) -> Path:
    """A workspace of n vectors with its HNSW graph saved (when n > exact_max), made once."""
    workspace = cache / f"flow-{n}"
    done = workspace / "complete"
    if done.exists():
        print(f"(reusing {workspace})", file=sys.stderr)
        return workspace
    print(f"writing {n:,} vectors to {workspace}", file=sys.stderr, flush=True)
    vectors, ids = clip_like(seed=n, n=n), doc_ids(n)
    store = EmbeddedCollection(workspace, exact_max=n)  # no graph while filling
    for s in range(0, n, 50_000):
        store.upsert(ids[s : s + 50_000], vectors[s : s + 50_000], records(ids[s : s + 50_000]))
    store.close()
    started = time.perf_counter()
    EmbeddedCollection(workspace).close()  # the indexer's own settings: builds and saves the graph
    print(f"graph build + save {time.perf_counter() - started:.0f} s", file=sys.stderr)
    done.touch()
    return workspace


class HttpSearch:
    """POST /search over one keep-alive connection, as a web page or script does."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, endpoint: str, body: dict) -> dict:
        self.conn.request("POST", endpoint, json.dumps(body),
                          {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        payload = json.loads(response.read())
        assert response.status == 200, payload
        return payload

    def search(self, text: str) -> dict:
        reply = self.post("/search", {"data": [{"text": text}], "parameters": {"top_k": 10}})
        assert len(reply["data"][0]["matches"]) == 10, reply["data"][0].get("error")
        return reply


def latencies_ms(fn: Callable[[str], object], texts: Sequence[str]) -> list[float]:
    times = []
    for text in texts:
        started = time.perf_counter()
        fn(text)
        times.append((time.perf_counter() - started) * 1e3)
    return times


def row(name: str, times: Sequence[float]) -> str:
    p50, p99 = statistics.median(times), percentile(times, 99)
    return f"| {name} | {p50:.1f} | {p99:.1f} | {len(times)} |"


def bench_queries(size: Size, log: Path, cache: Path, runtime: str) -> None:
    from memeflow.client import MemeClient
    from memeflow.encoder.model import ClipModel

    n = size.index_size
    workspace = prepared_workspace(cache, n)
    texts = query_texts(size.queries + 20)
    warm, texts = texts[:20], texts[20:]
    print(f"\n## Text query end to end through the HTTP gateway, {n:,} vectors indexed\n")
    print("| what | p50 ms | p99 ms | queries |")
    print("|---|---:|---:|---:|")
    with running_flow(log, workspace=workspace, MEMEFLOW_RUNTIME=runtime) as ports:
        client = HttpSearch(ports.http)
        used = MemeClient(f"grpc://127.0.0.1:{ports.grpc}").status()
        for text in warm:
            client.search(text)
        distinct = latencies_ms(client.search, texts)
        repeated = latencies_ms(client.search, texts)  # the encoder's text cache answers
        count = latencies_ms(lambda _: client.post("/count", {"data": []}), texts)
    # The in-process baseline runs what the Flow's encoder ran.
    settings = {"runtime": used["runtime"], "device": used["device"]}
    model = ClipModel(MODEL, allow_random=True, **settings)
    store = EmbeddedCollection(workspace)
    vectors = {t: model.embed_texts([t])[0] for t in warm + texts}  # also warms the model
    model.text_cache.clear()  # a cold text cache again
    encode = latencies_ms(lambda t: model.embed_texts([t]), texts)
    search = latencies_ms(lambda t: store.dense_search(vectors[t][None], 10), texts)
    store.close()
    print(row("HTTP /search, distinct texts", distinct))
    print(row("HTTP /search, repeated texts (cached encode)", repeated))
    print(row("HTTP /count round trip (gateway + indexer, no work)", count))
    print(row(f"in-process text encode (ClipModel, {used['runtime']} {used['precision']})",
              encode))
    print(row("in-process index search (EmbeddedCollection)", search))
    floor = statistics.median(encode) + statistics.median(search)
    print(f"\nHTTP /search p50 over in-process encode + search p50: "
          f"{statistics.median(distinct) / floor:.2f}x ({load()})")


FILTERS = {"no filter": None, "0.2% tag": {"folder": "folder7"}, "20% tag": {"group": "group3"}}


def bench_filtered(workspace: Path, log: Path, queries: int = 200) -> None:
    from memeflow.indexer.search.pipeline import SearchOptions, search_collection

    vectors = clip_like(seed=77, n=queries)
    print(f"\n## Filtered search through the HTTP gateway, {workspace}\n")
    print("| filter | HTTP /search p50 ms | p99 ms | in-process search p50 ms | queries |")
    print("|---|---:|---:|---:|---:|")
    http: dict[str, list[float]] = {}
    with running_flow(log, workspace=workspace) as ports:
        client = HttpSearch(ports.http)
        for name, where in FILTERS.items():
            def post(i: int, where: Any = where) -> None:
                body = {"data": [{"embedding": vectors[i].tolist()}],
                        "parameters": {"top_k": 10, "where": where}}
                assert len(client.post("/search", body)["data"][0]["matches"]) == 10
            post(0)
            http[name] = latencies_ms(post, range(queries))  # type: ignore[arg-type]
    store = EmbeddedCollection(workspace)
    for name, where in FILTERS.items():
        options = SearchOptions.from_parameters({"top_k": 10, "where": where})
        inside = latencies_ms(lambda i: search_collection(store, vectors[i][None], options),  # noqa: B023
                              range(queries))  # type: ignore[arg-type]
        print(f"| {name} | {statistics.median(http[name]):.1f} | "
              f"{percentile(http[name], 99):.1f} | {statistics.median(inside):.2f} | {queries} |")
    print(f"\n({len(store):,} documents; {load()})")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="quick")
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "memeflow-bench",
                        help="where the prepared query workspace is kept between runs")
    parser.add_argument("--only", choices=["ingest", "queries"])
    parser.add_argument("--filtered", type=Path, metavar="WORKSPACE",
                        help="only filtered searches over HTTP on a bench_store.py workspace")
    parser.add_argument("--runtime", default="auto",
                        help="the encoder's MEMEFLOW_RUNTIME for the query rows (default auto)")
    args = parser.parse_args()
    size = SIZES[args.size]
    log = Path(tempfile.gettempdir()) / "bench_flow.log"
    print(f"bench_flow --size {args.size} ({load()}); Flow log {log}")
    if args.filtered:
        bench_filtered(args.filtered, log)
        return
    if args.only != "queries":
        bench_ingest(size, log)
    if args.only != "ingest":
        bench_queries(size, log, args.cache, args.runtime)
    print(f"\ndone ({load()})")


if __name__ == "__main__":
    main()
