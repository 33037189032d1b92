"""Words on memes: can a quoted caption find its meme? Recall with and without OCR.

    .venv/bin/python benchmarks/bench_ocr.py --size quick   # 40 templates, ~2 min
    .venv/bin/python benchmarks/bench_ocr.py --size full    # all templates, BENCHMARKS.md
    .venv/bin/python benchmarks/bench_ocr.py --size full --flow   # + indexing through the Flow
    .venv/bin/python benchmarks/bench_ocr.py --words-scale        # the word index at 10k, 100k

Each template's example caption lines are drawn into its text boxes (memeflow.captions,
the template's own font and boxes) in a temporary folder; the real OCR reads every
rendered meme; the memes are indexed as the indexer does (vectors + words); then each
caption line of three words or more is a query, expecting its own meme. Rankings: CLIP
alone (ocr_weight 0), the words alone, and the two fused (ocr_weight 1).

The CLIP model has random weights unless MEMEFLOW_MODEL names a real checkpoint, so the
CLIP column is chance level and the fused column is what the words achieve despite a
CLIP ranking that is noise; the OCR path is real. Throughput of OCR and CLIP encoding
is measured on the same rendered files in the same run; with --flow, also `memeflow
index` of those files through a running Flow with MEMEFLOW_OCR off and on, alternating.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from captions import load_templates, render  # noqa: E402

from memeflow.documents import MemeDoc  # noqa: E402
from memeflow.encoder.model import ClipModel  # noqa: E402
from memeflow.encoder.ocr import OcrReader  # noqa: E402
from memeflow.encoder.pipeline import embed_documents  # noqa: E402
from memeflow.indexer.bm25 import Bm25Index, normalise  # noqa: E402
from memeflow.indexer.search import SearchOptions, search_store  # noqa: E402
from memeflow.indexer.store import Record, VectorStore  # noqa: E402

SHARED = REPO.parent / "shared"
MODEL = os.environ.get("MEMEFLOW_MODEL") or str(
    SHARED / "models" / "clip-vit-base-patch32-noweights"
)
MEMES = SHARED / "data" / "memes" / "templates"
FONT = SHARED / "data" / "memes" / "fonts" / "TitilliumWeb-Black.ttf"
SIZES = {"quick": 40, "full": None}  # templates (None: all)
CHUNK = 16  # memes per timing chunk (the encoder's batch size)
WARM_UP = 4  # memes indexed through a new Flow before its timing starts
FLOW_ROUNDS = 2
MIN_WORDS = 3  # shorter lines ("memes?", "aliens") say too little to be a quote


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def queries_for(templates) -> list[tuple[str, str]]:
    """(caption line, template) for every line of MIN_WORDS or more that only one
    template uses: a line shared by two templates has no single right answer."""
    owners: dict[str, set[str]] = {}
    for template in templates:
        for line in template.captions:
            owners.setdefault(normalise(line), set()).add(template.name)
    return [
        (line, template.name)
        for template in templates
        for line in template.captions
        if len(line.split()) >= MIN_WORDS and len(owners[normalise(line)]) == 1
    ]


def recall(rankings: list[list[str]], expected: list[str], k: int) -> float:
    return sum(want in got[:k] for got, want in zip(rankings, expected, strict=True)) / len(
        expected
    )


def flow_rates(files: list[Path], rounds: int) -> list[tuple[float, float]]:
    """(memes/s with OCR off, with OCR on) per round: the client indexing the files through
    a fresh Flow, as `memeflow index` does, after a few files of warm-up."""
    from flowrun import running_flow

    from memeflow.client import MemeClient

    log = Path(tempfile.gettempdir()) / "bench_ocr_flow.log"
    rates = []
    for _ in range(rounds):
        pair = []
        for ocr in ("0", "1"):
            with running_flow(log, MEMEFLOW_OCR=ocr) as ports:
                client = MemeClient(f"grpc://127.0.0.1:{ports.grpc}")
                client.index_paths(files[:WARM_UP])  # the first requests pay for lazy set-up
                started = time.perf_counter()
                report = client.index_paths(files[WARM_UP:])
                elapsed = time.perf_counter() - started
                read = client._stored_docs([hit["id"] for hit in client.search_text(
                    "x", top_k=len(files))]).values()
            assert not report.failed and len(report.encoded) == len(files) - WARM_UP
            assert sum(doc.words is not None for doc in read) == (len(files) if ocr == "1" else 0)
            pair.append(len(report.encoded) / elapsed)
            print(f"  Flow, MEMEFLOW_OCR={ocr}: {pair[-1]:.2f} memes/s ({load()})", flush=True)
        rates.append((pair[0], pair[1]))
    return rates


def words_scale(templates, sizes=(10_000, 100_000), queries: int = 50) -> None:
    """The trigram index alone at scale: documents of two random caption lines each, the
    candidates a /search of top_k 10 asks for; build time, memory, query latency, against
    a baseline in the same run: a scan of every document for the query as a substring
    (exact phrases only, what a search without an index would do)."""
    import random
    import resource

    lines = [line for t in templates for line in t.captions if line.strip()]
    rng = random.Random(1)
    print("\n| documents with words | build | memory (max RSS growth) | query p50 | query max "
          "| substring scan p50 | index / scan |\n" + "| ---: " * 7 + "|")
    for size in sizes:
        index = Bm25Index()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        for i in range(size):
            index.upsert(f"d{i}", "\n".join(rng.sample(lines, 2)).upper())
        build = time.perf_counter() - started
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
        texts = list(index._texts.values())  # normalised, as the index compares them
        took, scanned = [], []
        for line in rng.sample(lines, queries):
            started = time.perf_counter()
            index.search(line, 10 + 100)  # top_k + memeflow.search.FUSION_POOL
            took.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            wanted = normalise(line)
            [text for text in texts if wanted in text]
            scanned.append((time.perf_counter() - started) * 1000)
        p50, scan = statistics.median(took), statistics.median(scanned)
        print(f"| {size:,} | {build:.1f} s | +{grown:.0f} MB | {p50:.1f} ms | {max(took):.0f} ms "
              f"| {scan:.1f} ms | {p50 / scan:.1f}x |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="quick")
    parser.add_argument("--flow", action="store_true",
                        help="also index the rendered memes through the Flow, OCR off and on")
    parser.add_argument("--words-scale", action="store_true",
                        help="only time the word index alone at 10k and 100k documents")
    args = parser.parse_args()
    if args.words_scale:
        print(f"bench_ocr --words-scale: {os.cpu_count()} cores, {load()}")
        words_scale(load_templates(MEMES))
        return
    templates = [t for t in load_templates(MEMES) if not t.name.startswith("_")]
    templates = templates[: SIZES[args.size]]
    print(f"bench_ocr --size {args.size}: {len(templates)} templates, {os.cpu_count()} cores, "
          f"{load()}\nmodel {MODEL}", flush=True)
    with tempfile.TemporaryDirectory(prefix="memeflow-captioned-") as folder:
        files = {}
        for template in templates:
            files[template.name] = Path(folder) / f"{template.name}.jpg"
            render(template, FONT).save(files[template.name], quality=90)

        reader, model = OcrReader(), ClipModel(MODEL, allow_random=True)
        words, docs, ratios, ocr_total, clip_total = {}, [], [], 0.0, 0.0
        names = list(files)
        with ThreadPoolExecutor(2) as pool:
            reader.read(files[names[0]].read_bytes())  # warm-up
            embed_documents(model, [MemeDoc(uri=str(files[n])) for n in names[:CHUNK]], pool)
            # Chunk by chunk, OCR then CLIP on the same memes: outside load hits both alike.
            for start in range(0, len(names), CHUNK):
                chunk = names[start : start + CHUNK]
                started = time.perf_counter()
                for name in chunk:
                    words[name] = reader.read(files[name].read_bytes())
                ocr_seconds = time.perf_counter() - started
                batch = [MemeDoc(id=name, uri=str(files[name])) for name in chunk]
                started = time.perf_counter()
                embed_documents(model, batch, pool)
                clip_seconds = time.perf_counter() - started
                docs += batch
                ocr_total, clip_total = ocr_total + ocr_seconds, clip_total + clip_seconds
                ratios.append(ocr_seconds / clip_seconds)
                print(f"  {start + len(chunk)}/{len(names)}: OCR {ocr_seconds:.1f} s, "
                      f"CLIP {clip_seconds:.1f} s ({load()})", flush=True)
        rates = flow_rates([files[n] for n in names], FLOW_ROUNDS) if args.flow else []

    store, text_index = VectorStore(), Bm25Index()
    store.upsert(
        [doc.id for doc in docs],
        np.stack([doc.embedding for doc in docs]),
        [Record(uri=doc.uri, tags={}, words=words[doc.id]) for doc in docs],
    )
    for name, text in words.items():
        text_index.upsert(name, text)

    queries = queries_for(templates)
    texts, expected = [q for q, _ in queries], [name for _, name in queries]
    vectors = model.embed_texts(texts)
    def search(weight: float) -> list[list[dict]]:  # the service's own /search path
        options = SearchOptions(top_k=5, ocr_weight=weight)
        return search_store(store, vectors, options, texts=texts, lexical=text_index)

    rows = {
        "CLIP only (ocr_weight 0)": search(0.0),
        "words only (OCR + trigram BM25)": [
            [{"id": hit.id} for hit in text_index.search(text, 5)] for text in texts
        ],
        "fused (ocr_weight 1, RRF)": search(1.0),
    }
    read_back = sum(normalise(q) in normalise(words[name]) for q, name in queries) / len(queries)

    print(f"\n{len(queries)} queries quoting a caption line (>= {MIN_WORDS} words), "
          f"{len(templates)} memes indexed")
    print("\n| ranking | recall@1 | recall@5 |\n| --- | ---: | ---: |")
    for label, hits in rows.items():
        ranked = [[hit["id"] for hit in found] for found in hits]
        at_1, at_5 = recall(ranked, expected, 1), recall(ranked, expected, 5)
        print(f"| {label} | {at_1:.3f} | {at_5:.3f} |")
    print(f"\nqueries whose line the OCR read back letter for letter: {read_back:.3f}")
    print(f"\n| stage ({len(docs)} memes) | memes/s |\n| --- | ---: |")
    print(f"| OCR (PP-OCRv4 det + rec, ONNX Runtime) | {len(docs) / ocr_total:.2f} |")
    print(f"| CLIP image encoding (torch fp32, batch 16) | {len(docs) / clip_total:.2f} |")
    print(f"\nOCR / CLIP time per meme, median over {len(ratios)} chunks of {CHUNK}: "
          f"{statistics.median(ratios):.1f}x ({load()})")
    if rates:
        print(f"\n| `memeflow index` through the Flow ({len(names) - WARM_UP} memes, "
              f"median of {len(rates)} rounds) | memes/s |\n| --- | ---: |")
        print(f"| MEMEFLOW_OCR=0 | {statistics.median(r[0] for r in rates):.2f} |")
        print(f"| MEMEFLOW_OCR=1 | {statistics.median(r[1] for r in rates):.2f} |")
        print(f"\nwith OCR / without, median of per-round ratios: "
              f"{statistics.median(r[1] / r[0] for r in rates):.2f}x")

if __name__ == "__main__":
    main()
