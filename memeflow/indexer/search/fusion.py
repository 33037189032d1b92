"""One ranking from several: reciprocal rank fusion (Cormack et al., 2009).

A document's fused score is the sum over rankings of `weight / (K + rank)`, so what
counts is where each signal put it, not how its raw scores (cosine similarity, BM25)
compare. K = 60 is the usual constant: it keeps one first place from drowning out
agreement further down.
"""

from collections.abc import Mapping, Sequence

K = 60


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[str]], weights: Mapping[str, float], k: int = K
) -> list[tuple[str, float, dict[str, int]]]:
    """(id, fused score, {signal: 1-based rank}) best first. A signal with weight 0 still
    reports its ranks but moves nothing; ties go to the document found by more signals,
    then to the earlier signal's better rank, then by id."""
    fused: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for signal, ids in rankings.items():
        weight = weights.get(signal, 1.0)
        for rank, doc_id in enumerate(ids, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (k + rank)
            ranks.setdefault(doc_id, {})[signal] = rank
    order = list(rankings)
    worst = max((len(ids) for ids in rankings.values()), default=0) + 1

    def key(doc_id: str) -> tuple:
        found = ranks[doc_id]
        return (-fused[doc_id], -len(found), *(found.get(s, worst) for s in order), doc_id)

    return [(doc_id, fused[doc_id], ranks[doc_id]) for doc_id in sorted(fused, key=key)]
