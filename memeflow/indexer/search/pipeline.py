"""What `/search` does between "here are the query vectors" and "here are the matches":
one pass of stages, each a function in its own module of this folder, in this order:

1. `query`: each query vector checked and scaled to unit length, with its text when the
   words on memes take part;
2. `candidates`: the documents the filter (`where`) lets through;
3. `pool`: how many candidates to rank (the one widening rule);
4. `dense`: the best pool of them by cosine (exact, or approximate and rescored exactly);
5. `lexical`: for a text, the memes whose words match it, among the same candidates;
6. `hub_correction`: both signals' hits re-scored by `cosine - hubness`, when asked;
7. `min_score`: dense hits below the minimum score dropped;
8. `fusion`: one ranking of both signals (reciprocal rank fusion);
9. `collapse`: near-duplicates and same-group hits folded into the best one, when asked;
10. `page`: the page asked for.

When stages 7-9 leave the page short, stages 3-9 run again on a wider pool.
"""

from collections.abc import Sequence

import numpy as np

from memeflow.documents import Hit
from memeflow.indexer.backends.base import Collection
from memeflow.indexer.search import (
    candidates,
    collapse,
    dense,
    fusion,
    hub_correction,
    lexical,
    min_score,
    page,
    pool,
    query,
)
from memeflow.indexer.search.options import SearchOptions

__all__ = ["SearchOptions", "search_collection"]


def search_collection(
    collection: Collection, queries: np.ndarray, options: SearchOptions, *,
    texts: Sequence[str | None] | None = None, paged: bool = True,
) -> list[list[Hit]]:
    """Hits per query ((q, dim) float32) after every option, best first, each with its
    `signals`. `texts[i]`, when set, is query i's text, matched also against the words
    read on the memes. `paged=False` returns everything up to the end of the page (offset
    + top_k), for a shard merger that pages the union itself. ValueError for a query of
    another dimension than the collection's, NaN, inf or a zero row."""
    resolved = query.resolve(collection, queries, texts, options.ocr_weight)
    selection = candidates.select(collection, options.where)
    results = []
    for vector, text in resolved:
        size: int | None = None
        collapsed: list[Hit] = []
        exhausted = False
        while (size := pool.size(size, wanted=options.wanted, drops_hits=options.drops_hits,
                                 fused=text is not None, kept=len(collapsed),
                                 exhausted=exhausted)) is not None:
            hits = dense.rank(collection, vector[None, :], size, selection)[0]
            found = lexical.candidates(collection, vector, text, size, selection, hits)
            corrected, extra = hub_correction.correct(hits, found.hits if found else [],
                                                    options.hub_correction)
            kept = min_score.at_least(corrected, options.min_score)
            fused = fusion.fuse(kept, found.ranking if found else None, corrected + extra,
                                options.ocr_weight)
            collapsed = collapse.fold(fused, options.dedup_distance, options.group_by)
            exhausted = len(hits) < size and (found is None or found.done)
        results.append(page.cut(collapsed, options.offset, options.top_k, paged=paged))
    return results
