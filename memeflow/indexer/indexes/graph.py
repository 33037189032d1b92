"""When the embedded backend uses its HNSW graph (`memeflow.indexer.indexes.ann`): built
once the collection passes `exact_max` documents, rebuilt when tombstones pile up, dropped
below `exact_max / 2` (not at exact_max: no rebuilding back and forth); saved next to the
database with the collection's generation (its count of committed writes), so a restart
reuses it when nothing changed since, repairs it after a crash, and rebuilds a missing or
damaged one.

The graph only saves time: every change is already committed when it is applied here, so
a failure to add, build or save only logs, and searches fall back to exact ranking.
"""

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from memeflow.indexer.indexes.ann import DamagedGraphError, HnswIndex, HnswParams
from memeflow.indexer.storage.atomic import temporary_path

logger = logging.getLogger(__name__)

GRAPH = "index.hnsw"
EXACT_MAX = 200_000  # exact search scans 200k 512-d rows in about 20 ms on 2 cores
MAX_ANN_K = 1_000  # a larger top_k is searched exactly: a graph search that wide gains little


class GraphKeeper:
    """The graph of one collection (None while searches are exact) and where it is saved."""

    def __init__(self, folder: Path | None, exact_max: int, params: HnswParams) -> None:
        self.path = None if folder is None else folder / GRAPH
        self.exact_max, self.params = exact_max, params
        self.graph: HnswIndex | None = None
        self.saved_generation = -1  # the generation the saved graph covers

    def serves(self, count: int, top_k: int) -> bool:
        """Whether an unfiltered search of `top_k` over `count` documents asks the graph."""
        return self.in_use(count) and top_k <= MAX_ANN_K

    def in_use(self, count: int) -> bool:
        """Whether searches over `count` documents go through the graph: then the float32
        vectors need not stay in memory (candidates are rescored from the database)."""
        return self.graph is not None and count > self.exact_max

    def add(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Adds (or replaces) rows; a failure drops the graph, to be rebuilt."""
        if self.graph is not None:
            try:
                self.graph.add(rows, vectors)
            except (MemoryError, RuntimeError):
                logger.exception("adding to the HNSW graph failed; dropping it")
                self.graph = None

    def delete(self, moves: list[tuple[int, int]]) -> None:
        """Repeats the collection's swap-deletes: row `last` moved into `row`."""
        if self.graph is not None:
            for row, last in moves:
                self.graph.delete(row, last)

    def maintain(self, n: int, vectors: Callable[[], np.ndarray],
                 why: str = "the store outgrew exact search") -> None:
        """Builds, rebuilds or drops the graph for the collection's n documents; `vectors()`
        gives all their vectors, (n, dim), when a build needs them."""
        if n <= self.exact_max // 2:
            self.graph = None
            return
        if self.graph is not None and self.graph.needs_rebuild():
            why = f"{self.graph.tombstones} deleted or replaced vectors in it"
        elif self.graph is not None or n <= self.exact_max:
            return
        started, self.graph = time.perf_counter(), None
        try:
            self.graph = HnswIndex.build(vectors(), self.params)
        except (MemoryError, RuntimeError):
            logger.exception("building the HNSW graph over %d vectors failed", n)
            return
        took = time.perf_counter() - started
        logger.info("built the HNSW graph over %d vectors in %.1f s (%s)", n, took, why)

    def save(self, generation: int) -> None:
        """Writes the graph unless it is saved already, or removes a graph no longer kept;
        warns instead of raising."""
        if self.path is None:
            return
        try:
            if self.graph is None:
                self.path.unlink(missing_ok=True)
            elif self.saved_generation != generation:
                self.graph.save(self.path, generation)
                self.saved_generation = generation
        except (OSError, RuntimeError):
            logger.warning("saving the HNSW graph to %s failed", self.path, exc_info=True)

    def load(self, count: int, vectors_of: Callable[[np.ndarray], np.ndarray],
             vectors: Callable[[], np.ndarray], generation: int) -> str:
        """Uses the saved graph if it covers the collection as it is (`count` documents,
        `vectors_of(rows)` and `vectors()` their vectors, committed `generation`),
        repairing it after a crash. Returns why not ("" when it does)."""
        if self.path is None:
            return "no saved graph"
        temporary_path(self.path).unlink(missing_ok=True)
        if not self.path.exists() or count <= self.exact_max // 2:
            return "no saved graph"
        try:
            graph, saved = HnswIndex.load(self.path, self.params)
        except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            return f"the saved graph is unusable: {exc}"
        if saved > generation:
            return f"the saved graph (change {saved}) is newer than the database"
        if saved < generation:  # a crash: changes after the save are missing
            try:
                repaired = graph.repair(vectors())
            except DamagedGraphError as exc:
                return f"the saved graph (change {saved}) is out of date: {exc}"
            logger.info("%s: %d rows changed since the graph was saved; added them again",
                        self.path, repaired)
        elif not graph.matches(count, vectors_of):
            return f"the saved graph (change {saved}) does not match the database"
        if not graph.knows_errors:  # saved by an older memeflow: measure them once
            graph.measure_errors(vectors())
        self.graph, self.saved_generation = graph, saved
        return ""
