"""What `/search` does between "here is a query vector" and "here are the matches":
filters, a minimum score, hub correction, collapsing near-duplicates, and paging.

Filters restrict the candidates before the top-k is chosen (`VectorStore.search` with
`rows`: exact over the matching subset, also beyond `exact_max` where unfiltered
searches use the HNSW graph), so a rare tag still yields every match it has. The steps
that drop or reorder hits after scoring (min_score, hub correction, collapsing) run on
a candidate pool that doubles until the page is full or the index is exhausted.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memeflow import dedup, hubs, params
from memeflow.filters import Predicate, compile_where
from memeflow.store import Hit, VectorStore

MIN_POOL = 50


@dataclass(frozen=True)
class SearchOptions:
    """The /search parameters besides the query itself (see README, "Search options")."""

    top_k: int = params.DEFAULT_TOP_K
    offset: int = 0
    where: Predicate | None = None
    min_score: float | None = None
    hub_correction: bool = False
    dedup_distance: int | None = None  # None: near-duplicates are kept
    group_by: str | None = None

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> "SearchOptions":
        dedup_on = params.flag(parameters, "dedup")
        group_by = parameters.get("group_by")
        if group_by is not None and not isinstance(group_by, str):
            raise ValueError(f"group_by must be a tag name, got {group_by!r}")
        return cls(
            top_k=params.top_k(parameters),
            offset=params.whole(parameters, "offset", 0, minimum=0),
            where=compile_where(parameters.get("where")),
            min_score=params.number(parameters, "min_score"),
            hub_correction=params.flag(parameters, "hub_correction"),
            dedup_distance=(
                params.whole(parameters, "dedup_distance", dedup.DEFAULT_DISTANCE, minimum=0)
                if dedup_on else None
            ),
            group_by=group_by or None,
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

    def refine(self, hits: Sequence[Hit]) -> list[Hit]:
        """Hub correction, minimum score and collapsing, in that order; no paging."""
        ranked: list[Any] = hubs.rescore(hits) if self.hub_correction else list(hits)
        if self.min_score is not None:
            ranked = [hit for hit in ranked if hit["score"] >= self.min_score]
        return self.collapse(ranked)

    def collapse(self, hits: list[Any], tags_of: Callable[[Any], Mapping[str, Any]] | None = None
                 ) -> list[Any]:
        """Near-duplicates and same-group hits folded into the best one, if asked."""
        if self.dedup_distance is None and self.group_by is None:
            return hits
        return dedup.collapse(hits, distance=self.dedup_distance, group_by=self.group_by,
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


def search_store(
    store: VectorStore, queries: np.ndarray, options: SearchOptions, *, paged: bool = True
) -> list[list[Hit]]:
    """Hits per query after every option; `paged=False` returns everything up to the end of
    the page (offset + top_k), for a shard merger that pages the union itself."""
    rows = store.rows_where(options.where) if options.where is not None else None

    def search(matrix: np.ndarray, k: int) -> list[list[Hit]]:
        return store.search(matrix, k, rows=rows)

    pool = options.wanted
    if options.drops_hits:
        pool = max(MIN_POOL, 4 * options.wanted)
    results = [
        _search_one(search, query, hits, pool, options) if options.drops_hits else hits
        for query, hits in zip(queries, search(queries, pool), strict=True)
    ]
    return [options.page(hits) if paged else hits[: options.wanted] for hits in results]
