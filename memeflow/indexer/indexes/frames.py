"""The frames a dense search scans, in memory: the sampled frames of every animated image or
video (a few per document, unit float32 rows), and which document row owns each.

A document with frames scores its best frame, so a search takes, besides the candidates of
the documents' own vectors, the documents whose best frame can be in the top k: one float32
product over the frames (those of the selected rows only), each owner's maximum
(`np.maximum.reduceat` over the frames grouped by owner), and the same error bound as the
exact ranking (`memeflow.indexer.indexes.exact.near_kth`). The candidates are then scored
again in float64, frame by frame as `exact_scores` scores rows, so equal vectors tie.

Rows move as the documents' rows do (a deleted row's place takes the last row); the flat
arrays the search scans are rebuilt from the per-row frames at the first search after a
write that changed a frame or moved its owner (O(frames * dim), a copy of them all: about
1 ms for 2,000 512-d frames); writes of stills leave them as they are.
"""

from typing import NamedTuple

import numpy as np

from memeflow.indexer.backends.base import Frames
from memeflow.indexer.indexes.exact import near_kth


class _Flat(NamedTuple):
    """Every frame, grouped by owner in row order: `owners` (m,) int64, `vectors` (m, dim)
    float32, `ms` (m,) int64; `rows` the distinct owners (sorted) and `starts` where each
    one's frames begin."""

    owners: np.ndarray
    vectors: np.ndarray
    ms: np.ndarray
    rows: np.ndarray
    starts: np.ndarray


class BestFrames(NamedTuple):
    """Per scored row: whether it has frames, its best frame's float64 cosine (-inf for a
    still) and that frame's time in ms."""

    has: np.ndarray
    scores: np.ndarray
    ms: np.ndarray


class FrameIndex:
    """The frames of each document row that has some."""

    def __init__(self) -> None:
        self._by_row: dict[int, Frames] = {}
        self._flat: _Flat | None = None

    def __len__(self) -> int:
        """How many documents have frames."""
        return len(self._by_row)

    @property
    def frame_count(self) -> int:
        return sum(len(frames.ms) for frames in self._by_row.values())

    def get(self, row: int) -> Frames | None:
        return self._by_row.get(row)

    def put(self, rows: list[int], frames: list[Frames | None]) -> None:
        """The frames of `rows` (unit vectors): None removes a row's frames (a still)."""
        for row, entry in zip(rows, frames, strict=True):
            if entry is not None:
                self._by_row[row] = entry
                self._flat = None
            elif self._by_row.pop(row, None) is not None:
                self._flat = None

    def move(self, moves: list[tuple[int, int]]) -> None:
        """Repeats swap-deletes: `row` deleted, then the row `last` moved into its place."""
        for row, last in moves:
            if self._by_row.pop(row, None) is not None:
                self._flat = None
            if last != row and last in self._by_row:
                self._by_row[row] = self._by_row.pop(last)
                self._flat = None

    def clear(self) -> None:
        self._by_row, self._flat = {}, None

    def candidates(self, queries: np.ndarray, k: int, rows: np.ndarray | None
                   ) -> list[np.ndarray]:
        """Per unit query ((q, dim)), the owner rows (among `rows`, sorted, when given)
        whose best frame may be in the top k of the owners by best frame. Any document
        of the true top k by max(vector, best frame) whose best frame decides its score is
        among them."""
        flat = self._flattened()
        if flat is None:
            return [np.empty(0, np.int64) for _ in queries]
        vectors, owners = flat.vectors, flat.owners
        if rows is not None:
            keep = _isin_sorted(owners, rows)
            vectors, owners = vectors[keep], owners[keep]
        if not len(owners):
            return [np.empty(0, np.int64) for _ in queries]
        distinct, starts = np.unique(owners, return_index=True)  # owners stay grouped
        best = np.maximum.reduceat(queries @ vectors.T, starts, axis=1)  # (q, owners)
        near = near_kth(queries, best, min(k, len(distinct)))
        return [distinct[columns] for columns in near]

    def best(self, rows: np.ndarray, query: np.ndarray) -> BestFrames:
        """The float64 cosine of each of `rows`' best frame with the unit `query` ((dim,)),
        and its time; the first frame wins a tie."""
        n = len(rows)
        found = BestFrames(np.zeros(n, bool), np.full(n, -np.inf), np.zeros(n, np.int64))
        flat = self._flattened()
        if flat is None or not n:
            return found
        at = np.minimum(np.searchsorted(flat.rows, rows), len(flat.rows) - 1)
        has = flat.rows[at] == rows
        if not has.any():
            return found
        groups = at[has]
        ends = np.append(flat.starts[1:], len(flat.owners))
        lengths = ends[groups] - flat.starts[groups]
        offsets = np.cumsum(lengths) - lengths  # where each row's frames begin in `frame`
        frame = np.repeat(flat.starts[groups] - offsets, lengths) + np.arange(offsets[-1]
                                                                              + lengths[-1])
        query64 = query.astype(np.float64)
        scores = np.concatenate([  # row by row, as `exact_scores`: equal vectors tie
            (flat.vectors[frame[i : i + 1024]].astype(np.float64) * query64).sum(axis=1)
            for i in range(0, len(frame), 1024)])
        maxima = np.maximum.reduceat(scores, offsets)
        owner = np.repeat(np.arange(len(groups)), lengths)
        winners = np.flatnonzero(scores == maxima[owner])
        first = winners[np.unique(owner[winners], return_index=True)[1]]
        found.has[has], found.scores[has], found.ms[has] = True, maxima, flat.ms[frame[first]]
        return found

    def _flattened(self) -> _Flat | None:
        if not self._by_row:
            return None
        if self._flat is None:
            rows = np.array(sorted(self._by_row), np.int64)
            entries = [self._by_row[int(row)] for row in rows]
            lengths = np.array([len(entry.ms) for entry in entries], np.int64)
            self._flat = _Flat(
                owners=np.repeat(rows, lengths),
                vectors=np.concatenate([entry.vectors for entry in entries]),
                ms=np.concatenate([np.asarray(entry.ms, np.int64) for entry in entries]),
                rows=rows,
                starts=np.cumsum(lengths) - lengths,
            )
        return self._flat


def _isin_sorted(values: np.ndarray, sorted_rows: np.ndarray) -> np.ndarray:
    """A mask of the `values` found in the sorted `sorted_rows`."""
    at = np.minimum(np.searchsorted(sorted_rows, values), len(sorted_rows) - 1)
    return sorted_rows[at] == values if len(sorted_rows) else np.zeros(len(values), bool)
