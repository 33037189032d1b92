"""How hub correction changes who comes first, on synthetic vectors with known hubs.

    .venv/bin/python benchmarks/bench_hubs.py            # a few seconds

Queries and the generic-prompt bank are drawn from the same distribution (a shared
direction plus noise, like CLIP text embeddings); images are spread around, and a few
"hubs" are planted near the centre of the query distribution, so they are close to every
query. Prints, with and without `hub_correction`, how many of the queries' top-1 and
top-10 slots the hubs take and the largest k-occurrence (how many top-10 lists the most
frequent image is in). Synthetic vectors only: this shows what the re-scoring does to
hubs, not search quality on real memes.
"""

import argparse
from collections import Counter

import numpy as np

from memeflow.encoder import hubness as hubs
from memeflow.indexer.backends.embedded import EmbeddedCollection, StoredDocument
from memeflow.indexer.search.pipeline import SearchOptions, search_collection


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--hubs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    centre = unit(rng.normal(size=(1, args.dim)))[0]

    def text_like(n: int) -> np.ndarray:
        return unit(rng.normal(size=(n, args.dim)) / np.sqrt(args.dim) + 0.6 * centre)

    bank, queries = text_like(len(hubs.GENERIC_PROMPTS)), text_like(args.queries)
    images = unit(rng.normal(size=(args.images, args.dim)) / np.sqrt(args.dim)
                  + 0.3 * centre)
    images[: args.hubs] = unit(centre + 0.2 * rng.normal(size=(args.hubs, args.dim))
                               / np.sqrt(args.dim))
    store = EmbeddedCollection()
    store.upsert([f"img{i:05d}" for i in range(args.images)], images, [
        StoredDocument(uri=None, tags={hubs.HUB_TAG: float(h)}) for h in hubs.hubness(images, bank)
    ])
    hub_ids = {f"img{i:05d}" for i in range(args.hubs)}
    print(f"{args.images} images ({args.hubs} planted hubs), {args.queries} queries, "
          f"bank of {len(bank)} prompts, {args.dim}-d\n")
    print("| hub_correction | top-1 slots held by hubs | top-10 slots held by hubs "
          "| max k-occurrence (top-10) |")
    print("| --- | --- | --- | --- |")
    for correct in (False, True):
        results = search_collection(store, queries, SearchOptions(top_k=10, hub_correction=correct))
        top1 = sum(hits[0]["id"] in hub_ids for hits in results)
        top10 = sum(hit["id"] in hub_ids for hits in results for hit in hits)
        occurrence = Counter(hit["id"] for hits in results for hit in hits).most_common(1)[0][1]
        print(f"| {'on' if correct else 'off'} | {top1} / {len(results)} | "
              f"{top10} / {10 * len(results)} | {occurrence} |")


if __name__ == "__main__":
    main()
