"""Hub correction: some images sit close to almost every text and come top for unrelated
queries. Each image's *hubness* is its mean cosine to its nearest prompts in a bank of
generic ones (the neighbourhood a typical query lives in); with `hub_correction` a
search ranks by `cosine - hubness`, the image side of CSLS (Conneau et al. 2018), which
ranks exactly as CSLS does: its query-side term is the same for every image.

The encoder measures each image's hubness when it is indexed and keeps it in its
`hubness` tag (`memeflow.encoder.hubness`); this module re-ranks by it.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from memeflow.documents import HUB_TAG, Hit


def rescore(hits: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Hits re-ranked by `score - hubness` (hits without a `hubness` tag keep their score),
    best first, ties by id as everywhere else."""
    def corrected(hit: Mapping[str, Any]) -> float:
        return float(hit["score"]) - float((hit.get("tags") or {}).get(HUB_TAG, 0.0))

    rescored = [{**hit, "score": corrected(hit)} for hit in hits]
    rescored.sort(key=lambda hit: (-hit["score"], hit["id"] or ""))
    return rescored


def correct(dense: Sequence[Hit], lexical: Sequence[Hit], on: bool
          ) -> tuple[list[Hit], list[Hit]]:
    """The hub-correction stage over both signals' hits, when a request asks for it: the
    dense ranking re-ranked by corrected score, the lexical-only hits rescored alike."""
    if not on:
        return list(dense), list(lexical)
    return cast(list[Hit], rescore(dense)), cast(list[Hit], rescore(lexical))
