"""One ranking from the dense signal (CLIP: what a meme shows) and the lexical one (the
words read on it): reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009).

A document's fused score is the sum over rankings of `weight / (K + rank)`, so what
counts is where each signal put it, not how its raw scores (cosine similarity, BM25)
compare. K = 60 is the paper's constant: it keeps one first place from drowning out
agreement further down. `ocr_weight` weighs the words' votes against CLIP's (1: equal say;
0: the pure CLIP ranking). Every hit keeps its cosine as `score`, reports its rank in each
signal that found it (`signals`) and, when its words matched, how well (`words_score`):
what a shard merger needs to fuse the union of several shards' answers again.
"""

from collections.abc import Mapping, Sequence
from typing import cast

from memeflow.documents import Hit

K = 60
# The signals' names in a match's `signals` (the API's): dense (CLIP) and lexical (words).
DENSE, LEXICAL = "clip", "words"


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


def fuse(dense: Sequence[Hit], lexical: Sequence[tuple[str, float]] | None,
         hits: Sequence[Hit], weight: float) -> list[Hit]:
    """The fused ranking of the dense hits (best first) and the lexical ranking ((id,
    words_score), best first); `hits` holds a hit for every id the lexical ranking names
    that `dense` lacks. Without a lexical ranking (None), the dense ranking, each hit
    saying it was found by the dense signal at its rank."""
    if lexical is None:
        return [cast(Hit, {**hit, "signals": {DENSE: rank}})
                for rank, hit in enumerate(dense, start=1)]
    fused = reciprocal_rank_fusion(
        {LEXICAL: [doc_id for doc_id, _ in lexical], DENSE: [hit["id"] for hit in dense]},
        {LEXICAL: weight, DENSE: 1.0},
    )
    known = {hit["id"]: hit for hit in hits}
    known.update({hit["id"]: hit for hit in dense})
    scores = dict(lexical)
    return [cast(Hit, {**known[doc_id], "signals": signals, "words_score": scores.get(doc_id)})
            for doc_id, _, signals in fused]
