"""Keeping what was derived from an image's pixels when its document is stored again without
them: an `/upsert` (or an `/index` of a document that brings its own vector) of an id that is
stored, for the same picture, keeps the stored `memeflow.fields.DERIVED_TAGS` (perceptual
hash, hubness) and words read on it, unless the new document brings its own. Without this,
re-filing a document would silently drop it from duplicate collapsing and hub correction.
It asks the collection only through its interface, so every backend keeps them. The frames
of an animated image or a video are kept alike (`keep_frames`): a document re-filed from its
stored vector alone still scores by its best frame.

"The same picture": both documents carry the same `sha256` tag (the file's bytes), or, when
either has none, their vectors are the same direction (cosine >= 1 - 1e-6: a vector read back
from the index and sent again; float32 rounding moves the cosine by about 1e-7).
"""

from collections.abc import Callable, Sequence

import numpy as np

from memeflow.fields import DERIVED_TAGS, derived_tags
from memeflow.indexer.backends.base import Frames, StoredDocument

SAME_DIRECTION = 1 - 1e-6


def lacks_derived(record: StoredDocument) -> bool:
    """Whether a record to store is missing any derived tag, or its words."""
    tags = record.get("tags") or {}
    return record.get("words") is None or any(name not in tags for name in DERIVED_TAGS)


def same_picture(new: StoredDocument, new_vector: np.ndarray, old: StoredDocument,
                 old_vector: np.ndarray) -> bool:
    """See the module docstring. `old_vector` is unit length (as the store keeps them)."""
    new_hash = (new.get("tags") or {}).get("sha256")
    old_hash = (old.get("tags") or {}).get("sha256")
    if new_hash is not None and old_hash is not None:
        return bool(new_hash == old_hash)
    vector = np.asarray(new_vector, dtype=np.float64)
    norm = np.linalg.norm(vector)
    return bool(norm > 0 and float(vector @ old_vector) / norm >= SAME_DIRECTION)


def with_derived(new: StoredDocument, old: StoredDocument) -> StoredDocument:
    """`new`, with the derived tags and words of `old` where it has none of its own."""
    words = new.get("words")
    return StoredDocument(uri=new.get("uri"), tags={**derived_tags(old.get("tags") or {}),
                                            **(new.get("tags") or {})},
                  words=words if words is not None else old.get("words"))


def keep_derived(ids: Sequence[str], vectors: np.ndarray, records: Sequence[StoredDocument],
                 stored: Callable[[list[str]], list[tuple[StoredDocument, np.ndarray] | None]]
                 ) -> list[StoredDocument]:
    """`records` to store under `ids` with `vectors` ((n, d)), each completed from the stored
    document of its id when that is the same picture. `stored(ids)` gives the stored record
    and unit vector of each id (None when absent); it is asked only about records that lack
    something."""
    out = list(records)
    asked = [i for i, record in enumerate(records) if lacks_derived(record)]
    if not asked:
        return out
    for i, found in zip(asked, stored([ids[i] for i in asked]), strict=True):
        if found is not None and same_picture(records[i], vectors[i], *found):
            out[i] = with_derived(records[i], found[0])
    return out


def keep_frames(ids: Sequence[str], vectors: np.ndarray, records: Sequence[StoredDocument],
                frames: Sequence[Frames | None],
                stored_frames: Callable[[list[str]], list[Frames | None]],
                stored: Callable[[list[str]], list[tuple[StoredDocument, np.ndarray] | None]]
                ) -> list[Frames | None]:
    """`frames` to store under `ids` (one per id, None for none brought), each None replaced
    by the stored frames of its id when it has some and is the same picture (`records` and
    `vectors` as sent, before `keep_derived`). `stored_frames(ids)` is asked about the ids
    that bring none; `stored(ids)` (as for `keep_derived`) only about those that have some."""
    out = list(frames)
    asked = [i for i, entry in enumerate(frames) if entry is None]
    if not asked:
        return out
    framed = [(i, entry) for i, entry in zip(asked, stored_frames([ids[i] for i in asked]),
                                             strict=True) if entry is not None]
    if not framed:
        return out
    for (i, entry), found in zip(framed, stored([ids[i] for i, _ in framed]), strict=True):
        if found is not None and same_picture(records[i], vectors[i], *found):
            out[i] = entry
    return out
