"""Retrieval and zero-shot metrics, and what chance alone would score: pure functions on
score matrices, so the formulas can be checked by hand.

Ties are broken by candidate order (a stable sort), the way `numpy.argsort(kind="stable")`
orders equal scores; a model that gives every candidate the same score therefore gets no
credit it did not earn beyond that order.
"""

import math
from collections.abc import Sequence

import numpy as np


def top1_accuracy(scores: np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Zero-shot top-1 accuracy: (1/n) * sum_i [argmax_c scores[i, c] == labels[i]].

    `scores`: (n, C) similarities of n images to C class prompts; `labels`: n class
    indices in [0, C). Returns a fraction in [0, 1]; NaN for n = 0. Ties go to the first
    class. (Radford et al. 2021, "Learning Transferable Visual Models From Natural
    Language Supervision", section 3.1.2.)
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (n, C) and labels (n,), got {scores.shape} and "
                         f"{labels.shape}")
    if scores.shape[0] == 0:
        return math.nan
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def ranks_of_first_relevant(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """For each query, the 1-based rank of its best-ranked relevant candidate.

    `scores`: (q, n) similarities; `relevant`: (q, n) booleans. A query with no relevant
    candidate gets rank n + 1 (never within any k <= n). Returns (q,) ints.
    """
    scores = np.asarray(scores)
    relevant = np.asarray(relevant, dtype=bool)
    if scores.shape != relevant.shape or scores.ndim != 2:
        raise ValueError(f"scores and relevant must be the same (q, n) shape, got "
                         f"{scores.shape} and {relevant.shape}")
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    found = hits.any(axis=1)
    first = np.argmax(hits, axis=1) + 1
    return np.where(found, first, scores.shape[1] + 1)


def recall_at_k(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """Recall@k as retrieval benchmarks report it: the fraction of queries with at least one
    relevant candidate among their k best-scored,
    (1/q) * sum_j [ {top-k candidates of query j} ∩ R_j != ∅ ].

    `scores`: (q, n) similarities of q queries to n candidates; `relevant`: (q, n) booleans,
    R_j = the candidates relevant to query j. With one relevant candidate per query (text to
    image on Flickr captions) it is the usual R@k of CLIP's paper (Radford et al. 2021,
    table 13) and of LAION's CLIP_benchmark. Returns a fraction in [0, 1]; NaN for q = 0.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranks = ranks_of_first_relevant(scores, relevant)
    if ranks.size == 0:
        return math.nan
    return float(np.mean(ranks <= k))


def chance_top1(n_classes: int) -> float:
    """Top-1 accuracy of a guess uniform over C classes: 1 / C."""
    if n_classes < 1:
        raise ValueError(f"need at least one class, got {n_classes}")
    return 1.0 / n_classes


def chance_recall_at_k(k: int, n_candidates: int, n_relevant: int = 1) -> float:
    """Recall@k of a uniformly random ranking: the hypergeometric probability that k
    candidates drawn without replacement from n include at least one of r relevant,
    1 - C(n - r, k) / C(n, k). With r = 1 this is k / n."""
    if not 0 <= n_relevant <= n_candidates or n_candidates < 1 or k < 1:
        raise ValueError(f"need 1 <= k, 0 <= r <= n, n >= 1; got k={k}, r={n_relevant}, "
                         f"n={n_candidates}")
    k = min(k, n_candidates)
    return 1.0 - math.comb(n_candidates - n_relevant, k) / math.comb(n_candidates, k)


def mean_chance_recall_at_k(k: int, n_candidates: Sequence[int], n_relevant: Sequence[int]
                            ) -> float:
    """Chance recall@k averaged over queries whose candidate and relevant counts differ
    (image-to-image: each query's own group size): mean_j chance_recall_at_k(k, n_j, r_j)."""
    values = [chance_recall_at_k(k, n, r) for n, r in zip(n_candidates, n_relevant, strict=True)]
    return float(np.mean(values)) if values else math.nan


def binomial_interval(p: float, n: int, z: float = 4.0) -> tuple[float, float]:
    """Where a mean of n independent successes of probability p falls, z standard deviations
    either side: p ± z * sqrt(p (1 - p) / n), clipped to [0, 1] (the normal approximation of
    the binomial; z = 4 leaves about 6 in 100,000 outside)."""
    if n < 1:
        raise ValueError(f"need n >= 1, got {n}")
    half = z * math.sqrt(p * (1.0 - p) / n)
    return max(0.0, p - half), min(1.0, p + half)


def percentile_ms(seconds: Sequence[float], q: float = 50.0) -> float:
    """The q-th percentile of durations in seconds, in milliseconds (numpy's linear rule)."""
    if not seconds:
        return math.nan
    return float(np.percentile(np.asarray(seconds, dtype=np.float64), q) * 1000.0)
