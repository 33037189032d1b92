"""Re-scoring against a query bank takes first places away from a hub and spreads them."""

import numpy as np
from hub_analysis import csls, k_occurrence_skewness, querybank_normalise, top1_counts


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def hub_world(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries around a common direction; item 0 lies on it (a hub), the others scattered."""
    rng = np.random.default_rng(seed)
    centre = unit(rng.normal(size=(1, 64)))
    gallery = unit(np.vstack([centre, centre * 0.6 + unit(rng.normal(size=(49, 64)))]))
    queries = unit(centre * 1.2 + rng.normal(size=(300, 64)) * 0.15)
    bank = unit(centre * 1.2 + rng.normal(size=(300, 64)) * 0.15)
    return queries @ gallery.T, bank @ gallery.T, gallery


def test_the_hub_wins_most_queries_before_re_scoring() -> None:
    scores, _, _ = hub_world()
    counts = top1_counts(scores)
    assert counts.sum() == 300 and counts[0] > 150
    assert k_occurrence_skewness(scores) > 3


def test_csls_and_querybank_normalisation_spread_the_first_places() -> None:
    scores, bank, _ = hub_world()
    before = top1_counts(scores)
    for rescored in (csls(scores, bank), querybank_normalise(scores, bank)):
        after = top1_counts(rescored)
        assert after[0] < before[0] / 3
        assert np.count_nonzero(after) > 3 * np.count_nonzero(before)
        assert k_occurrence_skewness(rescored) < k_occurrence_skewness(scores)


def test_querybank_normalisation_is_finite_for_large_beta() -> None:
    scores, bank, _ = hub_world()
    assert np.isfinite(querybank_normalise(scores, bank, beta=500.0)).all()


def test_an_even_gallery_has_no_skew() -> None:
    assert k_occurrence_skewness(np.eye(6), k=1) == 0.0
