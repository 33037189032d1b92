"""What documents carry, without DocArray: the tags the encoder derives from pixels, a
search hit as a dict, and how a document without an id is named. The DocArray types
(`memeflow.documents`) and the client (which needs no DocArray) both use these."""

import hashlib
from typing import Any, TypedDict

from typing_extensions import NotRequired

from memeflow.uris import is_data_uri

# Tags the encoder adds to every image it indexes, read by the indexer's search options.
HASH_TAG = "phash"  # 64-bit perceptual hash, 16 hex digits (memeflow.encoder.phash)
HUB_TAG = "hubness"  # mean cosine to the nearest generic prompts (memeflow.encoder.hubness)
# What was computed from an image's pixels and is not in its file's tags: a document
# rewritten without its pixels (a moved or copied file, a re-upsert, a migration) keeps
# these, with its vector, preview and the words read on it.
DERIVED_TAGS = (HASH_TAG, HUB_TAG)
# An animated image or video whose decoding a limit stopped early says which
# (memeflow.encoder.frames.limits); a moved or copied file keeps it with its frames.
FRAMES_CUT_TAG = "frames_cut"
THUMBNAIL_TYPE = "image/jpeg"  # what `thumbnail` holds (memeflow.encoder.thumbnail)


class Hit(TypedDict):
    """One search hit as a dict, with the fields of a `MatchDoc` the API returns: what the
    store finds, what the indexer and the shard merger rank, and what the client hands out.

    `score` is the cosine similarity to the query (stored vectors are unit length). The
    others are there once a stage has added them: `words` for memes with words on them,
    `signals` (the rank in each ranking that found it: "clip", "words") and `words_score`
    after ranking, `rank` (1 for the best hit of the first page) in the client's hits,
    `frame_ms` for a document of several frames (the time of the one that scored `score`).
    """

    id: str
    uri: str | None
    score: float
    tags: dict[str, Any]
    words: NotRequired[str | None]
    signals: NotRequired[dict[str, int]]
    words_score: NotRequired[float | None]
    rank: NotRequired[int]
    frame_ms: NotRequired[int | None]  # an animated or video meme: when its best frame shows


def derived_tags(tags: dict[str, Any]) -> dict[str, Any]:
    """The tags of `tags` that were computed from the image's pixels (`DERIVED_TAGS`)."""
    return {name: tags[name] for name in DERIVED_TAGS if name in tags}


def content_id(*, uri: str | None = None, data: bytes | None = None) -> str:
    """A stable id for a document that came without one.

    A document with a location (a path or URL) is named by that location, so indexing
    the same file twice updates one entry even after the file changed; a document
    without one (bytes, a `data:` URI, a text) is named by its bytes.
    """
    if uri and not is_data_uri(uri):
        key = b"uri\0" + uri.encode()
    elif data is not None:
        key = b"data\0" + data
    else:
        raise ValueError("content_id needs a uri or the document's bytes")
    return hashlib.sha256(key).hexdigest()[:32]
