"""Exact ranking for the vector store: which rows can be in a query's top k, and their
float64 scores (the store orders by those, ties by id).

One float32 matrix product ranks everything, but BLAS does not round identical rows
identically. So every row within that product's error bound of the k-th score is scored
again in float64, row by row (the same rounding for equal vectors), and those exact
scores decide the order: equal vectors are true ties, broken by id.
"""


from collections.abc import Callable

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)


def near_kth(queries: np.ndarray, scores: np.ndarray, k: int) -> list[np.ndarray]:
    """Per query (unit rows, (q, dim)), the columns of its float32 `scores` ((q, n)) that
    may belong in its top k: those within the product's error bound of the k-th score."""
    n = scores.shape[1]
    kth = np.partition(scores, n - k, axis=1)[:, n - k]
    # A float32 dot product of unit vectors errs by at most dim * eps / 2; a document can
    # belong in the top k if its score is within twice that of the k-th: double it again.
    slack = 2 * queries.shape[1] * EPS32
    return [np.flatnonzero(row >= bound - slack) for row, bound in zip(scores, kth, strict=True)]


def exact_scores(vectors_of: Callable[[np.ndarray], np.ndarray], rows: np.ndarray,
                 query: np.ndarray) -> np.ndarray:
    """float64 dot products of the float32 vectors of `rows` (`vectors_of(rows)`, (n, dim))
    with `query`, one row at a time: equal rows get equal scores, unlike in BLAS. Chunked,
    since collapsed embeddings (an untrained model) can make every row a candidate."""
    query64 = query.astype(np.float64)
    chunks = (rows[i : i + 1024] for i in range(0, len(rows), 1024))  # fits in cache
    return np.concatenate([(vectors_of(c).astype(np.float64) * query64).sum(axis=1)
                           for c in chunks] or [np.empty(0)])


def within_bound(approximate: np.ndarray, errors: np.ndarray, k: int, dim: int) -> np.ndarray:
    """The positions that may belong in the top k, given quantised scores and, per row, a
    bound on how far its exact score lies from them (`HnswIndex.approximate`): those whose
    best possible score reaches the k-th best of the worst possible ones."""
    slack = errors.astype(np.float64) * (1 + 1e-6) + 2 * dim * EPS32
    n = len(approximate)
    low = approximate - slack
    kth = np.partition(low, n - k)[n - k]
    return np.flatnonzero(approximate + slack >= kth)
