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
CLIP ranking that is noise; the OCR path is real. Throughput of OCR (each engine:
ONNX Runtime and OpenVINO, the same models) and CLIP encoding (the runtime `auto` picks)
is measured on the same rendered files in the same run; with --flow, also `memeflow
index` of those files through a running Flow with MEMEFLOW_OCR off and on, alternating.
"""

import argparse
import importlib.util
import os
import statistics
import string
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
from memeflow.encoder.ocr import (  # noqa: E402
    DEFAULT_ENGINE,
    ENGINES,
    OcrReader,
    resolve_engine,
)
from memeflow.encoder.pipeline import embed_documents  # noqa: E402
from memeflow.indexer.backends.embedded import EmbeddedCollection, StoredDocument  # noqa: E402
from memeflow.indexer.indexes.words import normalise  # noqa: E402
from memeflow.indexer.search.pipeline import SearchOptions, search_collection  # noqa: E402

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


def misread(line: str, rng) -> str:
    """`line` as OCR might read it: spaces lost and one letter changed."""
    letters = list(line.replace(" ", ""))
    spots = [i for i, ch in enumerate(letters) if ch.isalpha()]
    if spots:
        i = rng.choice(spots)
        letters[i] = rng.choice([c for c in string.ascii_lowercase if c != letters[i].lower()])
    return "".join(letters)


def words_scale(templates, sizes=(10_000, 100_000), queries: int = 50) -> None:
    """The word index alone at scale: documents of two random caption lines each, the
    candidates a /search of top_k 10 asks for (top_k +
    memeflow.indexer.search.pipeline.FUSION_POOL),
    for caption lines quoted exactly and the same lines misread (spaces lost, one letter
    changed). SQLite FTS5
    (memeflow.indexer.indexes.words, a file database in WAL mode, built in one
    transaction, default page cache) against the pre-SQLite in-memory index
    (baseline_bm25) in the same run, the two timed query by query in turn; then how often
    their top 10 agree, and how many of each top 10 hold the quoted line (of those that
    can: min(10, documents holding it))."""
    import random
    import resource
    import sqlite3

    from baseline_bm25 import Bm25Index as BaselineIndex

    from memeflow.indexer.indexes import words as fts

    lines = [line for t in templates for line in t.captions if line.strip()]
    rng = random.Random(1)
    header = ("| documents with words | index | build | size | query p50 (quoted) | max | "
              "query p50 (misread) | max |")
    rows, notes = [header, "| ---: | --- " + "| ---: " * 6 + "|"], []
    for size in sizes:
        docs = ["\n".join(rng.sample(lines, 2)).upper() for _ in range(size)]
        baseline = BaselineIndex()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        for i, text in enumerate(docs):
            baseline.upsert(f"{i:07d}", text)  # ties by id: in the order of the rows
        built = time.perf_counter() - started
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
        with tempfile.TemporaryDirectory(prefix="memeflow-words-") as folder:
            path = Path(folder) / "words.db"
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            started = time.perf_counter()
            conn.execute("BEGIN")
            for statement in fts.SCHEMA:
                conn.execute(statement)
            fts.put_words(conn, range(size), docs)
            conn.execute("COMMIT")
            fts_built = time.perf_counter() - started
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the file
            on_disk = sum(p.stat().st_size for p in Path(folder).iterdir()) / 2**20
            quoted = rng.sample(lines, queries)
            kinds = {"quoted": quoted, "misread": [misread(line, rng) for line in quoted]}
            took: dict[tuple[str, str], list[float]] = {}
            same, overlap, holding = {}, {}, {}
            normalised = [fts.normalise(text) for text in docs]
            for kind, texts in kinds.items():
                for line, text in zip(quoted, texts, strict=True):
                    started = time.perf_counter()
                    baseline.search(text, 10 + 100)
                    took.setdefault(("baseline", kind), []).append(time.perf_counter() - started)
                    started = time.perf_counter()
                    fts.search_words(conn, text, 10 + 100)
                    took.setdefault(("fts5", kind), []).append(time.perf_counter() - started)
                    old = [int(hit.id) for hit in baseline.search(text, 10)]
                    new = [hit.row for hit in fts.search_words(conn, text, 10)[0]]
                    same.setdefault(kind, []).append(set(old) == set(new))
                    overlap.setdefault(kind, []).append(
                        len(set(old) & set(new)) / max(len(old), len(new)) if old or new else 1.0)
                    want = fts.normalise(line)
                    can = min(10, sum(want in doc for doc in normalised))
                    for name, found in (("baseline", old), ("fts5", new)):
                        holding.setdefault((name, kind), []).append(
                            sum(want in normalised[i] for i in found) / can if can else 1.0)
            conn.close()
        for name, build, space in (
                ("baseline (dicts, in memory)", built, f"+{grown:.0f} MB RSS"),
                ("SQLite FTS5 + gram counts", fts_built, f"{on_disk:.1f} MB file")):
            key = "baseline" if name.startswith("baseline") else "fts5"
            cells = [f"{statistics.median(took[key, kind]) * 1000:.1f} ms | "
                     f"{max(took[key, kind]) * 1000:.0f} ms" for kind in kinds]
            rows.append(f"| {size:,} | {name} | {build:.1f} s | {space} | " + " | ".join(cells)
                        + " |")
        for kind in kinds:
            notes.append(
                f"{size:,} docs, {kind}: top 10 the same set {statistics.mean(same[kind]):.0%}, "
                f"mean overlap {statistics.mean(overlap[kind]):.0%}; top 10 holding the line "
                f"baseline {statistics.mean(holding['baseline', kind]):.3f}, "
                f"fts5 {statistics.mean(holding['fts5', kind]):.3f}")
        print(f"  {size:,} done ({load()})", flush=True)
    print("\n" + "\n".join(rows) + "\n\n" + "\n".join(notes) + f"\n({load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="quick")
    parser.add_argument("--flow", action="store_true",
                        help="also index the rendered memes through the Flow, OCR off and on")
    parser.add_argument("--words-scale", action="store_true",
                        help="only time the word index alone at 10k and 100k documents")
    args = parser.parse_args()
    if args.words_scale:
        import sqlite3

        print(f"bench_ocr --words-scale: {os.cpu_count()} cores, SQLite {sqlite3.sqlite_version}, "
              f"{load()}")
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

        # Both OCR engines on the same memes, and CLIP with the runtime `auto` picks.
        engines = ENGINES if importlib.util.find_spec("openvino") else ("onnxruntime",)
        readers = {engine: OcrReader(engine=engine) for engine in engines}
        default_engine = resolve_engine(DEFAULT_ENGINE)
        model = ClipModel(MODEL, allow_random=True, runtime="auto", device="auto")
        read: dict[str, dict[str, str]] = {engine: {} for engine in readers}
        docs, clip_total = [], 0.0
        ocr_total = dict.fromkeys(readers, 0.0)
        ratios: dict[str, list[float]] = {engine: [] for engine in readers}
        names = list(files)
        with ThreadPoolExecutor(2) as pool:
            for reader in readers.values():
                reader.read(files[names[0]].read_bytes())  # warm-up
            embed_documents(model, [MemeDoc(uri=str(files[n])) for n in names[:CHUNK]], pool)
            # Chunk by chunk, each OCR engine then CLIP on the same memes (the engines' order
            # alternating): outside load hits them alike.
            for index, start in enumerate(range(0, len(names), CHUNK)):
                chunk = names[start : start + CHUNK]
                seconds = {}
                for engine in (engines if index % 2 == 0 else engines[::-1]):
                    started = time.perf_counter()
                    for name in chunk:
                        read[engine][name] = readers[engine].read(files[name].read_bytes())
                    seconds[engine] = time.perf_counter() - started
                batch = [MemeDoc(id=name, uri=str(files[name])) for name in chunk]
                started = time.perf_counter()
                embed_documents(model, batch, pool)
                clip_seconds = time.perf_counter() - started
                docs += batch
                clip_total += clip_seconds
                for engine, spent in seconds.items():
                    ocr_total[engine] += spent
                    ratios[engine].append(spent / clip_seconds)
                print(f"  {start + len(chunk)}/{len(names)}: OCR "
                      + ", ".join(f"{e} {t:.1f} s" for e, t in seconds.items())
                      + f"; CLIP {clip_seconds:.1f} s ({load()})", flush=True)
        words = read[default_engine]
        rates = flow_rates([files[n] for n in names], FLOW_ROUNDS) if args.flow else []

    store = EmbeddedCollection()  # the words: the default engine's
    store.upsert(
        [doc.id for doc in docs],
        np.stack([doc.embedding for doc in docs]),
        [StoredDocument(uri=doc.uri, tags={}, words=words[doc.id]) for doc in docs],
    )

    queries = queries_for(templates)
    texts, expected = [q for q, _ in queries], [name for _, name in queries]
    vectors = model.embed_texts(texts)
    def search(weight: float) -> list[list[dict]]:  # the service's own /search path
        options = SearchOptions(top_k=5, ocr_weight=weight)
        return search_collection(store, vectors, options, texts=texts)

    rows = {
        "CLIP only (ocr_weight 0)": search(0.0),
        "words only (OCR + trigram BM25)": [
            [{"id": doc_id} for doc_id, _, _ in store.lexical_search(text, 5)[0]] for text in texts
        ],
        "fused (ocr_weight 1, RRF)": search(1.0),
    }

    print(f"\n{len(queries)} queries quoting a caption line (>= {MIN_WORDS} words), "
          f"{len(templates)} memes indexed")
    print("\n| ranking | recall@1 | recall@5 |\n| --- | ---: | ---: |")
    for label, hits in rows.items():
        ranked = [[hit["id"] for hit in found] for found in hits]
        at_1, at_5 = recall(ranked, expected, 1), recall(ranked, expected, 5)
        print(f"| {label} | {at_1:.3f} | {at_5:.3f} |")
    print(f"\nOCR engine of the tables above: {default_engine} (auto's choice)")
    for engine, found in read.items():
        back = sum(normalise(q) in normalise(found[name]) for q, name in queries) / len(queries)
        same = sum(found[n] == words[n] for n in found)
        print(f"  {engine}: queries whose line it read back letter for letter {back:.3f}; "
              f"words identical to {default_engine}'s on {same}/{len(found)} memes")
    print(f"\n| stage ({len(docs)} memes) | memes/s | OCR / CLIP time (median of "
          f"{len(ratios[default_engine])} chunks) | est. indexing with / without OCR |")
    print("| --- | ---: | ---: | ---: |")
    for engine, total in ocr_total.items():
        ratio = statistics.median(ratios[engine])
        print(f"| OCR, PP-OCRv4 det + rec, {engine} | {len(docs) / total:.2f} | {ratio:.2f}x | "
              f"{1 / (1 + ratio):.2f}x |")
    hw = model.hardware
    print(f"| CLIP image encoding ({hw.runtime} {hw.precision}, batch 16, file to vector) | "
          f"{len(docs) / clip_total:.2f} | | |")
    print(f"\n(est.: CLIP time / (CLIP + OCR time) per meme, both on the same cores; {load()})")
    if rates:
        print(f"\n| `memeflow index` through the Flow ({len(names) - WARM_UP} memes, "
              f"median of {len(rates)} rounds) | memes/s |\n| --- | ---: |")
        print(f"| MEMEFLOW_OCR=0 | {statistics.median(r[0] for r in rates):.2f} |")
        print(f"| MEMEFLOW_OCR=1 | {statistics.median(r[1] for r in rates):.2f} |")
        print(f"\nwith OCR / without, median of per-round ratios: "
              f"{statistics.median(r[1] / r[0] for r in rates):.2f}x")

if __name__ == "__main__":
    main()
