"""The indexer's store at scale: ingest, restart, memory and filtered search, for this checkout
and, with --baseline, another one (e.g. the store before SQLite) in the same run.

    .venv/bin/python benchmarks/bench_store.py --sizes 100000 1000000 --baseline /tmp/before

Each tree's code runs in its own child processes (PYTHONPATH=TREE), on the same documents:
512-d CLIP-like unit vectors (`bench_search.clip_like`), ids like memeflow's, a uri, and
the tags `folder` (one of 500: each held by 0.2% of the documents), `group` (one of 5:
20% each) and `name`. A build process upserts them in requests of 1,000 (`upsert docs/s`
is the median request's rate; a request that builds the HNSW graph is left out) and
closes the store; a fresh probe process then opens it as the indexer does (restart time,
RSS growth after loading and at its peak, per document) and times one query at a time
through `memeflow.indexer.search.pipeline.search_collection`, the indexer's own `/search`
path: top 10, no filter, `where: {"folder": "folder7"}` (0.2%) and
`where: {"group": "group3"}` (20%).
Recall@10 of the unfiltered searches is against exact search over the stored vectors.
`--exact-max N` lowers the size beyond which the store searches through its HNSW graph, so
that the graph's memory per document shows at a size this machine builds in minutes.
Workspaces (and their build reports) are kept in --workdir and reused by later runs.
"""

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import clip_like, doc_ids, rss_bytes

BATCH, FOLDERS, GROUPS = 1_000, 500, 5
FILTERS: dict[str, dict[str, Any] | None] = {
    "none": None, "0.2%": {"folder": "folder7"}, "20%": {"group": "group3"}}
QUERY_SECONDS = 10.0  # per filter: as many single queries as fit, at most 300


def records(ids: list[str], start: int) -> list[dict[str, Any]]:
    return [{"uri": f"/memes/folder{(start + i) % FOLDERS}/{doc_id[:12]}.jpg",
             "tags": {"folder": f"folder{(start + i) % FOLDERS}",
                      "group": f"group{(start + i) % GROUPS}", "name": f"meme {start + i}"}}
            for i, doc_id in enumerate(ids)]


def settings() -> dict[str, Any]:
    """The store's settings for this run (--exact-max reaches the children through the
    environment)."""
    exact_max = os.environ.get("BENCH_EXACT_MAX")
    return {"exact_max": int(exact_max)} if exact_max else {}


def exact_top(workspace: str, queries: Any, k: int) -> list[list[str]]:
    """The exact top k ids per query, from the vectors in the database (brute force)."""
    import sqlite3

    import numpy as np

    conn = sqlite3.connect(f"file:{workspace}/index.db?mode=ro", uri=True)
    ids, blobs = zip(*conn.execute("SELECT id, vector FROM documents ORDER BY row"),
                     strict=True)
    conn.close()
    matrix = np.frombuffer(b"".join(blobs), "<f4").reshape(len(ids), -1)
    scores = queries @ matrix.T
    return [[ids[i] for i in np.argsort(-row, kind="stable")[:k]] for row in scores]


def build(workspace: str, n: int) -> dict[str, Any]:
    """Child: upsert n documents into a new store at `workspace`, in requests of BATCH."""
    from memeflow.indexer.backends.embedded import EmbeddedCollection

    store, ids, rates, graph_s = EmbeddedCollection(workspace, **settings()), doc_ids(n), [], 0.0
    for chunk in range(0, n, 100_000):
        vectors = clip_like(1000 + chunk, min(100_000, n - chunk))
        for start in range(0, len(vectors), BATCH):
            at = chunk + start
            had_graph = store.graph is not None
            began = time.perf_counter()
            store.upsert(ids[at : at + BATCH], vectors[start : start + BATCH],
                         records(ids[at : at + BATCH], at))  # type: ignore[arg-type]
            took = time.perf_counter() - began
            if store.graph is not None and not had_graph:
                graph_s = took  # this request built the graph
            else:
                rates.append(BATCH / took)
    began = time.perf_counter()
    store.close()
    return {"upsert_docs_s": statistics.median(rates), "graph_build_s": graph_s,
            "close_s": time.perf_counter() - began}


def probe(workspace: str, n: int) -> dict[str, Any]:
    """Child: open the store as the indexer does, then time searches."""
    from memeflow.indexer.backends.embedded import EmbeddedCollection
    from memeflow.indexer.search.pipeline import SearchOptions, search_collection

    gc.collect()
    before, peak_before = rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    store = EmbeddedCollection(workspace, **settings())
    report: dict[str, Any] = {"load_s": time.perf_counter() - began, "n": len(store)}
    gc.collect()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report["rss_per_doc"] = (rss_bytes() - before) / n
    report["peak_per_doc"] = (peak - max(before, peak_before * 1024)) / n if peak > before \
        else report["rss_per_doc"]
    report["graph"] = store.graph is not None
    queries = clip_like(99, 300)
    found: list[list[str]] = []
    for name, where in FILTERS.items():
        options = SearchOptions.from_parameters({"top_k": 10, "where": where})
        search_collection(store, queries[:1], options)  # warm-up
        times, deadline = [], time.perf_counter() + QUERY_SECONDS
        for query in queries:
            began = time.perf_counter()
            (hits,) = search_collection(store, query[None, :], options)
            times.append(time.perf_counter() - began)
            if where is None:
                found.append([hit["id"] for hit in hits])
            if where:
                assert all(hit["tags"][key] == value for hit in hits
                           for key, value in where.items())
            if time.perf_counter() > deadline:
                break
        report[f"p50_ms_{name}"] = 1000 * statistics.median(times)
        report[f"queries_{name}"] = len(times)
    store.close()
    truth = exact_top(workspace, queries[: len(found)], 10)
    report["recall_at_10"] = statistics.mean(
        len(set(got) & set(want)) / len(want) for got, want in zip(found, truth, strict=True))
    report["disk_mb"] = sum(p.stat().st_size for p in Path(workspace).iterdir()
                            if p.is_file()) / 2**20
    return report


def child(tree: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        sys.exit(f"{' '.join(args)} in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_flags() -> str:
    found = set()
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("flags"):
                found |= set(line.split(":")[1].split())
    wanted = ("avx512_bf16", "avx512_vnni", "amx_bf16", "avx2")
    return " ".join(flag for flag in wanted if flag in found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--baseline", type=Path, help="another checkout, measured alongside")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_store"))
    parser.add_argument("--exact-max", type=int, help="the store's exact_max (default: its own)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.exact_max:
        os.environ["BENCH_EXACT_MAX"] = str(args.exact_max)
    if args.child:
        what, workspace, n = args.child
        print(json.dumps((build if what == "build" else probe)(workspace, int(n))))
        return
    here = Path(__file__).resolve().parents[1]
    trees = {"this tree": here, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    print(f"bench_store: {os.cpu_count()} cores, CPU flags: {cpu_flags()}, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for n in args.sizes:
        for label, tree in trees.items():
            workspace = args.workdir / f"{tree.name}-{n}"
            report = workspace.with_name(workspace.name + ".build.json")
            if not report.exists():
                shutil.rmtree(workspace, ignore_errors=True)  # a build that did not finish
                print(f"{label}: building {n:,} documents in {workspace}", flush=True)
                built = child(tree, "--child", "build", str(workspace), str(n))
                report.write_text(json.dumps(built))
            built = json.loads(report.read_text())
            print(f"{label}: probing {workspace} (load {os.getloadavg()[0]:.1f})", flush=True)
            rows.append({"tree": label, "n": n, **built,
                         **child(tree, "--child", "probe", str(workspace), str(n))})
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}\n")
    print("| code | n | upsert docs/s | restart (s) | RSS/doc steady (B) | RSS/doc peak (B) "
          "| p50 no filter (ms) | recall@10 | p50 0.2% tag (ms) | p50 20% tag (ms) "
          "| on disk (MB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        rate = f"{row['upsert_docs_s']:,.0f}" if "upsert_docs_s" in row else "—"
        print(f"| {row['tree']} | {row['n']:,} | {rate} | {row['load_s']:.2f} "
              f"| {row['rss_per_doc']:,.0f} | {row['peak_per_doc']:,.0f} "
              f"| {row['p50_ms_none']:.2f} | {row['recall_at_10']:.4f} "
              f"| {row['p50_ms_0.2%']:.2f} | {row['p50_ms_20%']:.1f} "
              f"| {row['disk_mb']:,.0f} |")


if __name__ == "__main__":
    main()
