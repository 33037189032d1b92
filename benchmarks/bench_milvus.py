"""The Milvus backend beside the embedded one, in the same run: upsert rate and search
latency at 10k documents, and which word index finds misread captions better in Milvus.

    .venv/bin/python benchmarks/bench_milvus.py --size 10000
    .venv/bin/python benchmarks/bench_milvus.py --words

Milvus here is Milvus Lite's gRPC server (`milvus-lite server`, a pure-Python
reimplementation of Milvus, started by this script on a free port): the numbers say what
the tests and a laptop get, not what Milvus Standalone or Distributed do (BENCHMARKS.md
quotes Milvus's own figures for those).

Size run: the documents of bench_store (512-d CLIP-like unit vectors, tags `folder` (one of
500: 0.2% each) and `group` (one of 5)), upserted in requests of 1,000 into each backend
through the `Collection` interface (`upsert docs/s`: the median request); then single
queries, top 10, the two backends in turn query by query (so outside load hits both
alike): no filter, and `where: {"folder": "folder7"}`; and recall@10 of the Milvus
answers against the embedded backend's exact ones.

Words run (`--words`): every caption line of the meme templates (../shared) stored as OCR
might read it (spaces lost and one letter changed, `bench_ocr.misread`, as PP-OCRv4 reads
most captions; or spaces kept and one letter changed), queried by the line as typed;
recall@1 and @5 of memeflow's Milvus backend (BM25 over character trigrams) against a
Milvus BM25 over the words as Milvus's standard analyser splits them.
"""

import argparse
import os
import random
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
from bench_store import FILTERS, cpu_flags, records  # noqa: E402
from synthetic import clip_like, doc_ids  # noqa: E402

from memeflow.cli.exposure import free_port_run  # noqa: E402
from memeflow.indexer.backends.embedded import EmbeddedCollection  # noqa: E402
from memeflow.indexer.backends.milvus import MilvusCollection  # noqa: E402
from memeflow.indexer.filters import compile_where  # noqa: E402
from tests.milvus_lite import milvus_lite_server  # noqa: E402

BATCH, QUERIES = 1_000, 30


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def size_run(uri: str, folder: Path, n: int) -> None:
    backends = {"embedded": EmbeddedCollection(folder / "embedded"),
                "milvus-lite": MilvusCollection(uri, collection="bench")}
    backends["milvus-lite"].clear()
    ids, vectors = doc_ids(n), clip_like(1000, n)
    rates: dict[str, list[float]] = {name: [] for name in backends}
    for start in range(0, n, BATCH):
        for name, collection in backends.items():
            began = time.perf_counter()
            collection.upsert(ids[start : start + BATCH], vectors[start : start + BATCH],
                              records(ids[start : start + BATCH], start))  # type: ignore[arg-type]
            rates[name].append(BATCH / (time.perf_counter() - began))
    print(f"  upserted {n:,} into each ({load()})", flush=True)
    queries = clip_like(7, QUERIES)
    took: dict[tuple[str, str], list[float]] = {}
    recall: list[float] = []
    for label, where in (("none", None), ("0.2%", FILTERS["0.2%"])):
        for query in queries:
            found = {}
            for name, collection in backends.items():
                began = time.perf_counter()
                selection = collection.select(compile_where(where))
                found[name] = collection.dense_search(query[None, :], 10, selection)[0]
                took.setdefault((name, label), []).append(time.perf_counter() - began)
            exact = {hit["id"] for hit in found["embedded"]}
            recall.append(len(exact & {hit["id"] for hit in found["milvus-lite"]}) / len(exact))
    print(f"\n| backend ({n:,} docs, 512-d) | upsert docs/s | search p50, no filter | "
          "search p50, folder (0.2%) |\n| --- | ---: | ---: | ---: |")
    for name in backends:
        cells = [f"{statistics.median(took[name, label]) * 1000:.1f} ms"
                 for label in ("none", "0.2%")]
        print(f"| {name} | {statistics.median(rates[name]):,.0f} | " + " | ".join(cells) + " |")
    print(f"\nrecall@10 of milvus-lite against the exact answers: {statistics.mean(recall):.3f}"
          f" ({len(recall)} queries); {load()}")
    backends["milvus-lite"].clear()
    for collection in backends.values():
        collection.close()


def misread_keeping_spaces(line: str, rng: random.Random) -> str:
    """`line` with one letter changed, its spaces kept (an OCR that saw the gaps)."""
    letters = list(line)
    spots = [i for i, ch in enumerate(letters) if ch.isalpha()]
    if spots:
        i = rng.choice(spots)
        letters[i] = rng.choice([c for c in string.ascii_uppercase if c != letters[i].upper()])
    return "".join(letters)


def standard_bm25(client: Any, name: str, ids: list[str], words: list[str]) -> None:
    """A collection of `words` under Milvus's standard analyser, ranked by BM25."""
    from pymilvus import DataType, Function, FunctionType

    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("words", DataType.VARCHAR, max_length=4096, enable_analyzer=True,
                     analyzer_params={"tokenizer": "standard"})
    schema.add_field("bm25", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                 input_field_names=["words"], output_field_names=["bm25"]))
    index = client.prepare_index_params()
    index.add_index("bm25", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index,
                             consistency_level="Strong")
    client.insert(name, [{"id": i, "words": w, "vector": [1.0, 0.0]}
                         for i, w in zip(ids, words, strict=True)])


def words_run(uri: str) -> None:
    from bench_ocr import misread
    from captions import load_templates
    from pymilvus import MilvusClient

    from memeflow.indexer.indexes.words import normalise

    shared = HERE.parent.parent / "shared" / "data" / "memes" / "templates"
    lines = sorted({line.strip() for t in load_templates(shared) for line in t.captions
                    if len(line.split()) >= 3})
    ids = [f"line-{i:04d}" for i in range(len(lines))]
    # a line may occur inside another: any stored line holding the query's letters counts
    holders = [{ids[j] for j, w in enumerate(lines) if normalise(line) in normalise(w)}
               for line in lines]
    client = MilvusClient(uri=uri)
    print(f"\n{len(lines)} caption lines of 3 words or more (upper case, as memes write them), "
          "stored as OCR might read them, queried as typed\n\n"
          "| stored words | words in Milvus | recall@1 | recall@5 |\n| --- | --- | ---: | ---: |")
    for reading, misreader in (("spaces lost, one letter changed", misread),
                               ("spaces kept, one letter changed", misread_keeping_spaces)):
        rng = random.Random(1)
        read = [misreader(line.upper(), rng) for line in lines]
        trigrams = MilvusCollection(uri, collection="words_trigrams")
        trigrams.clear()
        trigrams.upsert(ids, np.ones((len(ids), 2), np.float32),
                        [{"uri": None, "tags": {}, "words": w} for w in read])
        standard_bm25(client, "words_standard", ids, read)
        hits: dict[str, list[list[str]]] = {"trigrams": [], "standard": []}
        for line in lines:
            hits["trigrams"].append([m.id for m in trigrams.lexical_search(line, 5)[0]])
            found = client.search("words_standard", data=[line], anns_field="bm25", limit=5,
                                  search_params={"metric_type": "BM25"})[0]
            hits["standard"].append([hit["id"] for hit in found])
        for name, label in (("trigrams", "memeflow: BM25 over character trigrams"),
                            ("standard", "BM25 over words (standard analyser)")):
            at1 = statistics.mean(bool(set(h[:1]) & want) for h, want in
                                  zip(hits[name], holders, strict=True))
            at5 = statistics.mean(bool(set(h) & want) for h, want in
                                  zip(hits[name], holders, strict=True))
            print(f"| {reading} | {label} | {at1:.3f} | {at5:.3f} |")
        trigrams.clear()
        trigrams.close()
        client.drop_collection("words_standard")
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--words", action="store_true", help="the word-index run instead")
    args = parser.parse_args()
    print(f"bench_milvus: {os.cpu_count()} cores, CPU flags: {cpu_flags()}, {load()}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="memeflow-bench-milvus-") as tmp:
        folder = Path(tmp)
        with milvus_lite_server(folder / "milvus", free_port_run(1), folder / "milvus.log") as uri:
            if args.words:
                words_run(uri)
            else:
                size_run(uri, folder, args.size)



if __name__ == "__main__":
    main()
