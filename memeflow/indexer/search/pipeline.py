"""What `/search` does between "here is a query vector" and "here are the matches":
filters, a minimum score, hub correction, the words on memes, collapsing near-duplicates,
and paging.

Filters restrict the candidates before the top-k is chosen (`EmbeddedCollection.rows_where` finds
the matching rows from the database's tag indexes, `EmbeddedCollection.search` with `rows` ranks
them exactly, also beyond `exact_max` where unfiltered
searches use the HNSW graph), so a rare tag still yields every match it has. The steps
that drop or reorder hits after scoring (min_score, hub correction, collapsing) run on
a candidate pool that doubles until the page is full or the index is exhausted.

A text query is also matched against the words read on the memes (when the index has
any and `ocr_weight` > 0): the dense candidates, after hub correction and the minimum
score, are fused with the lexical candidates that pass the filters
(`memeflow.indexer.search.hybrid`). The minimum score bars dense candidates only: a meme
found by the
words written on it stays, whatever its cosine.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memeflow import config, params
from memeflow.documents import Hit
from memeflow.indexer.backends.embedded import EmbeddedCollection
from memeflow.indexer.filters import Where, compile_where
from memeflow.indexer.search import collapse, hub_correction, hybrid
from memeflow.vectors import unit_rows

MIN_POOL = 50
FUSION_POOL = 100  # candidates beyond the page from each signal: fusion lifts some from below


@dataclass(frozen=True)
class SearchOptions:
    """The /search parameters besides the query itself (see README, "Search options")."""

    top_k: int = params.DEFAULT_TOP_K
    offset: int = 0
    where: Where | None = None
    min_score: float | None = None
    hub_correction: bool = False
    dedup_distance: int | None = None  # None: near-duplicates are kept
    group_by: str | None = None
    ocr_weight: float = config.DEFAULT_OCR_WEIGHT  # 0: text queries ignore the words

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> "SearchOptions":
        dedup_on = params.flag(parameters, "dedup")
        group_by = parameters.get("group_by")
        if group_by is not None and not isinstance(group_by, str):
            raise params.RequestError(f"group_by must be a tag name, got {group_by!r}")
        return cls(
            top_k=params.top_k(parameters),
            offset=params.whole(parameters, "offset", 0, minimum=0),
            where=compile_where(parameters.get("where")),
            min_score=params.number(parameters, "min_score"),
            hub_correction=params.flag(parameters, "hub_correction"),
            dedup_distance=(
                params.whole(parameters, "dedup_distance", collapse.DEFAULT_DISTANCE, minimum=0)
                if dedup_on else None
            ),
            group_by=group_by or None,
            ocr_weight=hybrid.ocr_weight(dict(parameters)),
        )

    @property
    def wanted(self) -> int:
        """Hits needed to fill the page: everything before it and the page itself."""
        return self.offset + self.top_k

    @property
    def drops_hits(self) -> bool:
        """Whether scoring k candidates may leave fewer than k results (or change their order)."""
        return (
            self.min_score is not None or self.hub_correction
            or self.dedup_distance is not None or self.group_by is not None
        )

    def dense(self, hits: Sequence[Hit]) -> list[Any]:
        """Hub correction, then the minimum score: what the dense signal keeps."""
        ranked: list[Any] = hub_correction.rescore(hits) if self.hub_correction else list(hits)
        if self.min_score is not None:
            ranked = [hit for hit in ranked if hit["score"] >= self.min_score]
        return ranked

    def refine(self, hits: Sequence[Hit]) -> list[Hit]:
        """Hub correction, minimum score and collapsing, in that order; no paging."""
        return self.collapse(self.dense(hits))

    def collapse(self, hits: list[Any], tags_of: Callable[[Any], Mapping[str, Any]] | None = None
                 ) -> list[Any]:
        """Near-duplicates and same-group hits folded into the best one, if asked."""
        if self.dedup_distance is None and self.group_by is None:
            return hits
        return collapse.collapse(hits, distance=self.dedup_distance, group_by=self.group_by,
                              **({"tags_of": tags_of} if tags_of else {}))

    def page(self, hits: Sequence[Any]) -> list[Any]:
        return list(hits[self.offset : self.wanted])


def _search_one(
    search: Callable[[np.ndarray, int], list[list[Hit]]],
    query: np.ndarray, first: list[Hit], pool: int, options: SearchOptions,
) -> list[Hit]:
    """Widens one query's pool until its refined hits fill the page or nothing is left."""
    hits = first
    while True:
        refined = options.refine(hits)
        if len(refined) >= options.wanted or len(hits) < pool:
            return refined
        pool *= 2
        hits = search(query[None, :], pool)[0]


def _scored(store: EmbeddedCollection, query: np.ndarray, ids: list[str], options: SearchOptions
            ) -> Sequence[Mapping[str, Any]]:
    """Hits for memes their words found: scored against the query like any dense hit."""
    scores = store.vectors(ids).astype(np.float64) @ unit_rows(query[None, :], np.float64)[0]
    hits = store.hits(ids, scores.tolist())
    return hub_correction.rescore(hits) if options.hub_correction else hits


def _fused_one(
    store: EmbeddedCollection, query: np.ndarray, text: str, options: SearchOptions,
    rows: np.ndarray | None,
) -> list[Hit]:
    """One text query by the dense and the lexical signal; the pool doubles while
    collapsing leaves the page short and either signal has more candidates."""
    pool = options.wanted + FUSION_POOL
    while True:
        dense_hits = store.search(query[None, :], pool, rows=rows)[0]
        found, lexical_done = store.search_words(text, pool, rows)
        fused = hybrid.fuse(options.dense(dense_hits), hybrid.lexical_ranking(found),
                            options.ocr_weight, lambda ids: _scored(store, query, ids, options))
        hits = options.collapse(fused)
        if len(hits) >= options.wanted or (len(dense_hits) < pool and lexical_done):
            return hits
        pool *= 2


def search_store(
    store: EmbeddedCollection, queries: np.ndarray, options: SearchOptions, *,
    texts: Sequence[str | None] | None = None, paged: bool = True,
) -> list[list[Hit]]:
    """Hits per query after every option, each with its `signals`; `paged=False` returns
    everything up to the end of the page (offset + top_k), for a shard merger that pages
    the union itself. `texts[i]`, when set, is query i's text, matched also against the
    words read on the memes."""
    rows = store.rows_where(options.where) if options.where is not None else None

    def search(matrix: np.ndarray, k: int) -> list[list[Hit]]:
        return store.search(matrix, k, rows=rows)

    fuse = options.ocr_weight > 0 and any(texts or ()) and store.has_words()
    texts = list(texts) if texts is not None else [None] * len(queries)
    worded = {i for i, text in enumerate(texts) if fuse and text and text.strip()}
    plain = [i for i in range(len(queries)) if i not in worded]
    pool = options.wanted
    if options.drops_hits:
        pool = max(MIN_POOL, 4 * options.wanted)
    results: list[list[Hit]] = [[] for _ in texts]
    if plain:
        for i, hits in zip(plain, search(queries[plain], pool), strict=True):
            refined = _search_one(search, queries[i], hits, pool, options) if options.drops_hits \
                else hits
            results[i] = hybrid.with_dense_signals(refined)
    for i in sorted(worded):
        results[i] = _fused_one(store, queries[i], str(texts[i]), options, rows)
    return [options.page(hits) if paged else hits[: options.wanted] for hits in results]
