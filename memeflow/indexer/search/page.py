"""The last stage: the page the request asked for."""

from collections.abc import Sequence
from typing import TypeVar

HitT = TypeVar("HitT")


def cut(hits: Sequence[HitT], offset: int, top_k: int, *, paged: bool = True) -> list[HitT]:
    """hits[offset : offset + top_k]; `paged=False` keeps everything before the page too
    (a shard's answer: the merger pages the union)."""
    return list(hits[offset if paged else 0 : offset + top_k])
