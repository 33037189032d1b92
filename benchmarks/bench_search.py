"""Search latency and memory of memeflow's indexer against the usual alternatives.

    .venv/bin/python benchmarks/bench_search.py --size quick   # 10k vectors, about a minute
    .venv/bin/python benchmarks/bench_search.py --size full    # 10k, 100k, 1M: about 15 min
    .venv/bin/python benchmarks/bench_search.py --workspace DIR  # an existing workspace

--size mid runs 10k and 100k. --workspace measures a saved workspace as it is (no
indexing, no graph build): load time and memory in a fresh process, then memeflow's
search against an exact scan of the same matrix (recall@10 and p50), on CLIP-like queries.

Prints markdown tables to stdout (progress goes to stderr). Every time is a median (or a
p99) of `time.perf_counter` measurements taken in this run, after a warm-up; ratios compare
with memeflow's exact search at the same size, measured in the same run.

Vectors are seeded, normalised float32, 512-d. Exact methods do the same work whatever the
vectors, but a graph index does not: isotropic random vectors have no near neighbours (the
top-10 of a query are barely closer than the median vector), the worst case for any graph.
Embeddings have structure, so the vectors here are "CLIP-like": a shared direction, most of
the variance in 48 dimensions, some isotropic noise. One extra row shows the graph on
isotropic vectors.
"""

import argparse
import dataclasses
import gc
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from synthetic import DIM, clip_like, doc_ids, isotropic, rss_bytes

from memeflow.indexer.backends.embedded import GRAPH, EmbeddedCollection, StoredDocument
from memeflow.indexer.storage.database import DATABASE

SIZES = {"quick": [10_000], "mid": [10_000, 100_000], "full": [10_000, 100_000, 1_000_000]}
K, BATCH = 10, 32
METHOD_SECONDS = 12.0  # time budget per method and size for single queries
EF_SWEEP = (64, 128, 192, 256, 320, 384, 512)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- data ------------------------------------------------------------------------------------


def records(ids: Sequence[str]) -> list[StoredDocument]:
    """What `memeflow index` stores per file: its path, and file, folder and sha256 tags."""
    return [
        StoredDocument(
            uri=f"/home/user/memes/batch{i // 1000:04d}/{doc_id[:12]}.jpg",
            tags={
                "file": f"{doc_id[:12]}.jpg",
                "folder": f"batch{i // 1000:04d}",
                "sha256": doc_id * 2,
            },
        )
        for i, doc_id in enumerate(ids)
    ]


# --- timing ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    n: int
    method: str
    build_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    queries: int = 0
    batch_ms: float | None = None
    recall: float | None = None
    note: str = ""


def time_single(search: Callable[[np.ndarray], Any], queries: np.ndarray, cap: int) -> list[float]:
    """Two warm-up queries, then as many as fit in METHOD_SECONDS (10 to `cap`)."""
    search(queries[0])
    started = time.perf_counter()
    search(queries[1])
    count = int(np.clip(METHOD_SECONDS / max(time.perf_counter() - started, 1e-6), 10, cap))
    times = []
    for q in queries[2 : 2 + count]:
        t = time.perf_counter()
        search(q)
        times.append(time.perf_counter() - t)
    return times


def time_batches(search: Callable[[np.ndarray], Any], queries: np.ndarray, batches: int) -> float:
    """Median seconds per batch of BATCH queries, after one warm-up batch."""
    search(queries[:BATCH])
    times = []
    for b in range(batches):
        chunk = queries[(b % 4) * BATCH : (b % 4 + 1) * BATCH]
        t = time.perf_counter()
        search(chunk)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def measure(
    row: Row, single: Callable, batch: Callable | None, queries: np.ndarray, cap: int
) -> Row:
    times = time_single(single, queries, cap)
    row.p50_ms, row.queries = float(np.median(times)) * 1e3, len(times)
    if len(times) >= 100:
        row.p99_ms = float(np.percentile(times, 99)) * 1e3
    if batch is not None:
        per_query = row.p50_ms / 1e3
        batches = int(np.clip(METHOD_SECONDS / max(per_query * BATCH, 1e-6), 3, 50))
        row.batch_ms = time_batches(batch, queries, batches) * 1e3
    log(f"  {row.method}: p50 {row.p50_ms:.2f} ms over {row.queries} queries")
    return row


def measure_store(row: Row, store: EmbeddedCollection, queries: np.ndarray, cap: int) -> Row:
    """A store searched as the indexer does: one query per call, or a batch in one call."""
    single, batch = (lambda q: store.dense_search(q[None], K)), (lambda b: store.dense_search(b, K))
    return measure(row, single, batch, queries, cap)


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    return hits / sum(len(t) for t in truth)


class Captured(logging.Handler):
    """The store's log lines, to report what it did (built or loaded the graph, and when)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def seconds(self, pattern: str) -> float | None:
        for line in reversed(self.lines):
            if re.search(pattern, line):
                return float(re.search(r"in ([\d.]+) s", line).group(1))  # type: ignore[union-attr]
        return None


# --- the methods -----------------------------------------------------------------------------


@dataclasses.dataclass
class Data:
    """One size's vectors, queries and the exact top-10 ids of the first 300 queries."""

    n: int
    vectors: np.ndarray
    ids: list[str]
    queries: np.ndarray
    truth: list[list[str]] = dataclasses.field(default_factory=list)

    @property
    def truth_queries(self) -> np.ndarray:
        return self.queries[:300]


def bench_size(n: int, results: list[Row], extra: dict[str, Any]) -> None:
    log(f"n = {n:,}: generating vectors")
    data = Data(n, clip_like(seed=n, n=n), doc_ids(n), clip_like(seed=n + 1, n=1_200))
    captured = Captured()
    store_logger = logging.getLogger("memeflow.indexer.backends.embedded")
    store_logger.addHandler(captured)
    store_logger.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="bench-ws-", dir=os.environ.get("BENCH_TMP")) as ws:
        results.append(bench_exact(Path(ws), data))
        results.append(bench_rclip(data))
        results.append(bench_faiss_flat(data))
        results.append(bench_docarray(data))
        results.append(bench_ann(Path(ws), data, captured, extra))
    store_logger.removeHandler(captured)
    if n <= 100_000:
        results.append(bench_isotropic(n))


def bench_exact(workspace: Path, data: Data) -> Row:
    """memeflow's exact search: a store that never builds a graph, filled as /index does."""
    log("  memeflow exact: indexing into a workspace")
    store, n = EmbeddedCollection(workspace, exact_max=data.n), data.n
    started = time.perf_counter()
    for s in range(0, n, 10_000):
        ids = data.ids[s : s + 10_000]
        store.upsert(ids, data.vectors[s : s + 10_000], records(ids))
    index_s = time.perf_counter() - started
    data.truth = [[h["id"] for h in hits] for hits in store.dense_search(data.truth_queries, K)]
    row = Row(n, "memeflow exact (float32 matmul + argpartition)", note=f"indexing {index_s:.0f} s")
    measure_store(row, store, data.queries, cap=300)
    store.close()
    return row


def bench_rclip(data: Data) -> Row:
    """What rclip does: a numpy scan, then Python's sorted over every (score, index) pair."""
    vectors, n = data.vectors, data.n

    def rclip(q: np.ndarray) -> list[tuple[Any, int]]:
        similarities = q @ vectors.T
        ranked = sorted(zip(similarities, range(n), strict=True), key=lambda x: x[0], reverse=True)
        return ranked[:K]

    row = measure(Row(n, "numpy scan + Python sorted (rclip)"), rclip, None, data.queries, cap=100)
    found = [[data.ids[i] for _, i in rclip(q)] for q in data.truth_queries[:3]]
    row.recall = recall(found, data.truth[:3])
    return row


def bench_faiss_flat(data: Data) -> Row:
    """faiss's exact inner-product index: its own scan for one query, BLAS for batches."""
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(DIM)
    flat.add(data.vectors)
    row = Row(data.n, "faiss IndexFlatIP", build_s=time.perf_counter() - started)
    measure(row, lambda q: flat.search(q[None], K), lambda b: flat.search(b, K), data.queries, 300)
    found = flat.search(data.truth_queries, K)[1]
    row.recall = recall([[data.ids[i] for i in f] for f in found], data.truth)
    return row


def bench_ann(workspace: Path, data: Data, captured: "Captured", extra: dict[str, Any]) -> Row:
    """The same workspace reopened with exact_max=0: no saved graph, so the store builds one.
    Then a sweep of ef_search on that graph, and a fresh process loading the saved graph."""
    log("  memeflow ANN: building the HNSW graph")
    started = time.perf_counter()
    store = EmbeddedCollection(workspace, exact_max=0)
    open_s = time.perf_counter() - started
    ann = store.graph
    assert ann is not None
    params = ann.params
    name = f"memeflow ANN (HNSW m={params.m}, efC={params.ef_construction}, ef={params.ef_search})"
    row = Row(data.n, name, build_s=captured.seconds(r"built the HNSW graph"))
    row.note = f"open + build {open_s:.0f} s"
    measure_store(row, store, data.queries, cap=1_000)
    found = [[h["id"] for h in hits] for hits in store.dense_search(data.truth_queries, K)]
    row.recall = recall(found, data.truth)

    sweep = []
    for ef in EF_SWEEP:  # the same graph; only the search width changes
        ann.params = dataclasses.replace(params, ef_search=ef)
        times = time_single(lambda q: store.dense_search(q[None], K), data.queries, cap=500)
        found = [[h["id"] for h in hits] for hits in store.dense_search(data.truth_queries, K)]
        sweep.append((ef, float(np.median(times)) * 1e3, recall(found, data.truth)))
    ann.params = params
    extra.setdefault("sweep", {})[data.n] = sweep

    started = time.perf_counter()
    store.close()  # saves the graph
    probe = load_probe(workspace, data.n)
    probe["graph_save_s"] = time.perf_counter() - started - probe.pop("probe_s")
    extra.setdefault("load", {})[data.n] = probe
    return row


def bench_docarray(data: Data) -> Row:
    """docarray's documented in-memory index: find / find_batched on a DocList."""
    from docarray import BaseDoc, DocList
    from docarray.index import InMemoryExactNNIndex
    from docarray.typing import NdArray

    class Doc(BaseDoc):
        embedding: NdArray[DIM]

    log("  docarray: building the DocList")
    started = time.perf_counter()
    pairs = zip(data.ids, data.vectors, strict=True)
    index = InMemoryExactNNIndex[Doc]()
    index.index(DocList[Doc]([Doc(id=doc_id, embedding=v) for doc_id, v in pairs]))
    row = Row(data.n, "docarray InMemoryExactNNIndex", build_s=time.perf_counter() - started)

    def single(q: np.ndarray) -> Any:
        return index.find(q, search_field="embedding", limit=K)

    def batch(b: np.ndarray) -> Any:
        return index.find_batched(b, search_field="embedding", limit=K)

    measure(row, single, batch, data.queries, cap=300)
    found = [list(single(q).documents.id) for q in data.truth_queries[:20]]
    row.recall = recall(found, data.truth[:20])
    return row


def bench_isotropic(n: int) -> Row:
    """The graph's worst case: the same settings on vectors without structure."""
    log("  memeflow ANN on isotropic vectors")
    data, queries = isotropic(seed=n + 7, n=n), isotropic(seed=n + 8, n=1_200)
    ids = doc_ids(n)
    recs = [StoredDocument(uri=None, tags={})] * n
    exact, ann = EmbeddedCollection(exact_max=n), EmbeddedCollection(exact_max=0)
    exact.upsert(ids, data, recs)
    truth = [[h["id"] for h in hits] for hits in exact.dense_search(queries[:300], K)]
    started = time.perf_counter()
    ann.upsert(ids, data, recs)
    name = "memeflow ANN, isotropic vectors (worst case)"
    row = Row(n, name, build_s=time.perf_counter() - started)
    measure_store(row, ann, queries, cap=1_000)
    found = ann.dense_search(queries[:300], K)
    row.recall = recall([[h["id"] for h in hits] for hits in found], truth)
    return row


# --- load time and memory, in a fresh process ------------------------------------------------


def probe_main(workspace: str) -> None:
    """Child process: open the workspace as the indexer does, report time and RSS growth."""
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    store = EmbeddedCollection(workspace, exact_max=0)
    load_s = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    ann = store.graph
    report = {
        "load_s": load_s,
        "rss_growth": after - before,
        "matrix_bytes": len(store) * DIM * 4,
        "graph_loaded": ann is not None and ann.loaded_from is not None,
        "n": len(store),
    }
    print(json.dumps(report))


def load_probe(workspace: Path, n: int) -> dict[str, Any]:
    log("  loading the workspace in a fresh process")
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--probe", str(workspace)],
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    report["probe_s"] = time.perf_counter() - started
    report["graph_file"] = (workspace / GRAPH).stat().st_size
    report["database_file"] = (workspace / DATABASE).stat().st_size
    assert n < 0 or (report["n"] == n and report["graph_loaded"]), report
    return report


# --- output ----------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def print_tables(results: list[Row], extra: dict[str, Any]) -> None:
    print("### Search, top-10, one query at a time and batches of 32\n")
    print(
        "| n | method | build (s) | p50 1 query (ms) | p99 1 query (ms) | queries timed "
        "| p50 batch of 32 (ms) | speed-up vs memeflow exact (p50) | recall@10 vs exact |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    base = {r.n: r.p50_ms for r in results if r.method.startswith("memeflow exact")}
    for r in results:
        ratio = base[r.n] / r.p50_ms if r.p50_ms and base.get(r.n) else None
        note = f" ({r.note})" if r.note else ""
        print(
            f"| {r.n:,} | {r.method}{note} | {fmt(r.build_s, 1)} | {fmt(r.p50_ms)} "
            f"| {fmt(r.p99_ms)} | {r.queries} | {fmt(r.batch_ms, 1)} | {fmt(ratio, 1)}x "
            f"| {fmt(r.recall, 3)} |"
        )
    print("\n### HNSW search width (ef_search) against recall, one query at a time\n")
    print("| n | ef_search | p50 (ms) | recall@10 vs exact |")
    print("|---:|---:|---:|---:|")
    for n, sweep in extra.get("sweep", {}).items():
        for ef, p50, rec in sweep:
            print(f"| {n:,} | {ef} | {p50:.2f} | {rec:.3f} |")
    print("\n### Loading a workspace (fresh process) and memory per vector\n")
    print(
        "| n | load with saved graph (s) | RSS growth per vector (B) | float32 matrix (B) "
        "| graph file (B) | rest (B) | database on disk (MB) "
        "| graph save (s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, p in extra.get("load", {}).items():
        per = p["rss_growth"] / n
        matrix, graph = p["matrix_bytes"] / n, p["graph_file"] / n
        disk = p["database_file"] / 2**20
        print(
            f"| {n:,} | {p['load_s']:.2f} | {per:,.0f} | {matrix:,.0f} | {graph:,.0f} "
            f"| {per - matrix - graph:,.0f} | {disk:,.0f} | {p['graph_save_s']:.1f} |"
        )


def bench_workspace(workspace: Path) -> None:
    """A saved workspace as the indexer opens it: memeflow's search against a numpy exact
    scan of the same matrix (the truth, and the baseline), then load time and memory."""
    probe = load_probe(workspace, n=-1)
    store = EmbeddedCollection(workspace)
    n = len(store)
    matrix = store.vectors(store.find())  # every vector, in row order
    mode = "HNSW" if store.graph is not None else "exact"
    queries = clip_like(seed=n + 1, n=1_200)

    ids = store.find()  # every id, in row order

    def exact_scan(q: np.ndarray) -> list[str]:
        scores = matrix @ q
        top = np.argpartition(scores, -K)[-K:]
        return [ids[i] for i in top[np.argsort(-scores[top])]]

    log(f"  {n:,} vectors ({mode}); exact truth for 300 queries")
    truth = [exact_scan(q) for q in queries[:300]]
    rows = [measure(Row(n, "numpy exact scan (matmul + argpartition)"), exact_scan, None,
                    queries, cap=300)]
    row = measure_store(Row(n, f"memeflow /search as configured ({mode})"), store, queries, 1_000)
    found = store.dense_search(queries[:300], K)
    row.recall = recall([[h["id"] for h in hits] for hits in found], truth)
    rows.append(row)
    store.close()
    probe["graph_save_s"] = 0.0
    print_tables(rows, {"load": {n: probe}})
    print(f"\nworkspace {workspace}: graph reloaded from disk: {probe['graph_loaded']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--workspace", type=Path, help="measure this saved workspace instead")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe_main(args.probe)
        return
    if args.workspace:
        bench_workspace(args.workspace)
        return
    started = time.perf_counter()
    results: list[Row] = []
    extra: dict[str, Any] = {}
    for n in SIZES[args.size]:
        bench_size(n, results, extra)
    print_tables(results, extra)
    print(
        f"\n{os.cpu_count()} CPUs, faiss {faiss.__version__} ({faiss.omp_get_max_threads()} "
        f"threads), numpy {np.__version__}; whole run {time.perf_counter() - started:.0f} s."
    )


if __name__ == "__main__":
    main()
