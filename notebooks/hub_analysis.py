"""Hub images: items that come first for many unrelated queries, and re-scorings that tame them.

In a high-dimensional embedding space a few items sit close to the centre of where the
queries fall and so come first for almost any query ("hubs"; CLIP shows them too). Both
re-scorings here measure how close each gallery item is to a bank of generic queries and
discount that closeness, so an item wins only where it is closer than it usually is:

- CSLS (Lample et al. 2018): score - mean similarity of the item to its k nearest bank queries;
- query-bank normalisation (QB-Norm, Bogolin et al. 2022) with the inverted softmax:
  exp(beta * score) divided by the item's summed exp(beta * bank similarity), in log space.

`scores` are (queries, gallery) cosine similarities; `bank_scores` (bank queries, gallery).
"""

import numpy as np

from memeflow.encoder.hubness import bank_closeness


def top1_counts(scores: np.ndarray) -> np.ndarray:
    """How many queries rank each gallery item first."""
    return np.bincount(np.argmax(scores, axis=1), minlength=scores.shape[1])


def k_occurrence_skewness(scores: np.ndarray, k: int = 5) -> float:
    """Skewness of how often each item is in a query's top k: 0 is even, large means hubs."""
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    counts = np.bincount(top.ravel(), minlength=scores.shape[1]).astype(np.float64)
    spread = counts.std()
    return 0.0 if spread == 0 else float(((counts - counts.mean()) ** 3).mean() / spread**3)


def csls(scores: np.ndarray, bank_scores: np.ndarray, k: int = 10) -> np.ndarray:
    """Scores minus each item's mean similarity to its k closest bank queries. (CSLS also
    subtracts a per-query term, which cannot change a query's ranking, so it is left out.)"""
    return scores - bank_closeness(bank_scores, k)


def querybank_normalise(scores: np.ndarray, bank_scores: np.ndarray, beta: float = 20.0
                        ) -> np.ndarray:
    """Inverted-softmax scores, log(exp(beta s) / sum over the bank of exp(beta s_bank))."""
    scaled = beta * bank_scores
    peak = scaled.max(axis=0)
    log_norm = peak + np.log(np.exp(scaled - peak).sum(axis=0))
    return beta * scores - log_norm
