"""The /search parameters besides the query itself, read and checked once per request
(see README, "Search options"); every stage takes the fields it needs."""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memeflow import config, params
from memeflow.indexer.filters import Where, compile_where
from memeflow.indexer.search.collapse import DEFAULT_DISTANCE
from memeflow.params import RequestError


def ocr_weight(parameters: Mapping[str, Any]) -> float:
    """The `ocr_weight` request parameter, else MEMEFLOW_OCR_WEIGHT, else 1; >= 0. A bad
    parameter is the caller's RequestError; a bad variable, the service's ValueError."""
    raw = parameters.get("ocr_weight")
    error: type[ValueError] = RequestError
    if raw is None:
        raw, error = config.ocr_weight(), ValueError
    try:
        value = math.nan if isinstance(raw, bool) else float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not value >= 0 or value == math.inf:
        name = "ocr_weight" if error is RequestError else "MEMEFLOW_OCR_WEIGHT"
        raise error(f"{name} must be a number >= 0 (0 turns the words off), got {raw!r}")
    return value


@dataclass(frozen=True)
class SearchOptions:
    """What a search does besides ranking by cosine: a filter, hub correction, a minimum
    score, the words' say in text queries, collapsing, and the page."""

    top_k: int = params.DEFAULT_TOP_K
    offset: int = 0
    where: Where | None = None
    min_score: float | None = None
    hub_correction: bool = False
    dedup_distance: int | None = None  # None: near-duplicates are kept
    group_by: str | None = None
    ocr_weight: float = config.DEFAULT_OCR_WEIGHT  # 0: text queries ignore the words

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> "SearchOptions":
        """Raises RequestError (a 400) naming the bad parameter and the fix."""
        dedup_on = params.flag(parameters, "dedup")
        group_by = parameters.get("group_by")
        if group_by is not None and not isinstance(group_by, str):
            raise params.RequestError(f"group_by must be a tag name, got {group_by!r}")
        return cls(
            top_k=params.top_k(parameters),
            offset=params.whole(parameters, "offset", 0, minimum=0),
            where=compile_where(parameters.get("where")),
            min_score=params.number(parameters, "min_score"),
            hub_correction=params.flag(parameters, "hub_correction"),
            dedup_distance=(
                params.whole(parameters, "dedup_distance", DEFAULT_DISTANCE, minimum=0)
                if dedup_on else None
            ),
            group_by=group_by or None,
            ocr_weight=ocr_weight(parameters),
        )

    @property
    def wanted(self) -> int:
        """Hits needed to fill the page: everything before it and the page itself."""
        return self.offset + self.top_k

    @property
    def drops_hits(self) -> bool:
        """Whether ranking k candidates may leave fewer than k results, or reorder them."""
        return (self.min_score is not None or self.hub_correction
                or self.dedup_distance is not None or self.group_by is not None)
