"""The minimum score: dense candidates below it are dropped. It bars the dense signal only:
a meme its words found stays, whatever its cosine."""

from collections.abc import Sequence

from memeflow.documents import Hit


def at_least(hits: Sequence[Hit], min_score: float | None) -> list[Hit]:
    """The hits scoring `min_score` or more (all when None), in their order."""
    if min_score is None:
        return list(hits)
    return [hit for hit in hits if hit["score"] >= min_score]
