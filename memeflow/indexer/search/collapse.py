"""Near-duplicate memes: collapsing results by the perceptual hash the encoder stored.

The same template is often saved twice (re-encoded, resized, a different name); a
64-bit DCT hash (`imagehash.phash`) barely moves under such changes, while different
pictures differ in many bits. On the shared meme set, byte-identical and re-encoded
copies are 0 bits apart, the closest distinct pictures of one template 4-10 bits, and
the closest pictures of different templates 14 bits.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from memeflow.documents import HASH_TAG

DEFAULT_DISTANCE = 4  # bits; copies are at 0, different templates at 14 or more

HitT = TypeVar("HitT")


def _dict_tags(hit: Any) -> Mapping[str, Any]:
    return hit.get("tags") or {}


def hash_distance(a: str, b: str) -> int:
    """Differing bits between two hashes from `perceptual_hash`."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def collapse(
    hits: Iterable[HitT],
    *,
    distance: int | None = None,
    group_by: str | None = None,
    tags_of: Callable[[HitT], Mapping[str, Any]] = _dict_tags,
) -> list[HitT]:
    """The hits, best first, without those that repeat an earlier (better) one.

    `distance`: a hit whose `phash` tag is within this many bits of a kept hit's is a
    near-duplicate of it (None: keep every picture). `group_by`: keep the best hit per
    value of this tag (e.g. "folder", one per template). Hits without the tag stay.
    `tags_of` reads a hit's tags (a dict hit's "tags" by default).
    """
    kept: list[HitT] = []
    hashes: list[str] = []
    groups: set[str] = set()
    for hit in hits:
        tags = tags_of(hit)
        key = repr(tags[group_by]) if group_by is not None and group_by in tags else None
        code = tags.get(HASH_TAG) if distance is not None else None
        if key is not None and key in groups:
            continue
        if (isinstance(code, str) and distance is not None
                and any(hash_distance(code, h) <= distance for h in hashes)):
            continue
        if key is not None:
            groups.add(key)
        if isinstance(code, str):
            hashes.append(code)
        kept.append(hit)
    return kept


def fold(hits: list[HitT], distance: int | None, group_by: str | None) -> list[HitT]:
    """The collapsing stage: `collapse` when a request asks for it, else the hits as they are."""
    if distance is None and group_by is None:
        return hits
    return collapse(hits, distance=distance, group_by=group_by)
