"""DocArray v2 document types shared by the gateway, the executors and the clients.

One request document type travels the whole Flow: the client fills `uri`, `blob` or
`text` (or brings its own `embedding`), the encoder adds the embedding, and the indexer
stores it or answers with `matches`. Before a reply leaves the Flow the executors drop
`blob` and, unless asked for, `embedding`, so clients never get image bytes back.
"""

import hashlib
from typing import Any, TypedDict

from docarray import BaseDoc, DocList
from docarray.typing import ID, NdArray
from typing_extensions import NotRequired

from memeflow import docarray_speedups
from memeflow.uris import is_data_uri

docarray_speedups.install()

# Tags the encoder adds to every image it indexes, read by the indexer's search options.
HASH_TAG = "phash"  # 64-bit perceptual hash, 16 hex digits (memeflow.encoder.phash)
HUB_TAG = "hubness"  # mean cosine to the nearest generic prompts (memeflow.encoder.hubness)
THUMBNAIL_TYPE = "image/jpeg"  # what `thumbnail` holds (memeflow.encoder.thumbnail)


class MatchDoc(BaseDoc):
    """One search hit: what the user needs to show or open the meme, and how close it is."""

    id: ID | None = None
    uri: str | None = None
    text: str | None = None  # /rank: a candidate text
    score: float = 0.0
    # Plain defaults, which pydantic copies per instance: Jina's HTTP schema turns a
    # default_factory into a required field and rejects documents without it.
    tags: dict[str, Any] = {}  # noqa: RUF012
    embedding: NdArray | None = None
    # The words read on the meme, the rank it had in each ranking that found it ("clip":
    # by picture, "words": by the words on it) and how well its words matched a text
    # query (BM25, more for a whole phrase); see memeflow/indexer/search/fusion.py.
    words: str | None = None
    signals: dict[str, int] = {}  # noqa: RUF012 (see tags)
    words_score: float | None = None


class Hit(TypedDict):
    """One search hit as a dict, with the fields of a `MatchDoc` the API returns: what the
    store finds, what the indexer and the shard merger rank, and what the client hands out.

    `score` is the cosine similarity to the query (stored vectors are unit length). The
    others are there once a stage has added them: `words` for memes with words on them,
    `signals` (the rank in each ranking that found it: "clip", "words") and `words_score`
    after ranking, `rank` (1 for the best hit of the first page) in the client's hits.
    """

    id: str
    uri: str | None
    score: float
    tags: dict[str, Any]
    words: NotRequired[str | None]
    signals: NotRequired[dict[str, int]]
    words_score: NotRequired[float | None]
    rank: NotRequired[int]


class TermDoc(BaseDoc):
    """One term of a combined query: a text, an image (`uri` or `blob`) or the `id` of an
    indexed meme, with a `weight` (negative: the query moves away from it)."""

    id: ID | None = None
    text: str | None = None
    uri: str | None = None
    blob: bytes | None = None
    weight: float = 1.0
    embedding: NdArray | None = None


class MemeDoc(BaseDoc):
    """A meme to index or a query to search with.

    `uri` may be a path, a `file://` URL, a `data:image/...;base64,` URI or an
    `http(s)://` URL; `blob` holds raw image bytes (gRPC only: JSON cannot carry bytes,
    so HTTP clients send a `data:` URI). A document without an `id` gets one derived
    from its content (see `content_id`). `error` is set, and the document skipped,
    when it cannot be read. On /search, a document with only an `id` asks for the
    documents most like that indexed one ("more like this"). `terms` makes a query of several
    weighted terms, and on /rank `matches` carries the candidate texts.
    """

    id: ID | None = None
    uri: str | None = None
    blob: bytes | None = None
    text: str | None = None
    tags: dict[str, Any] = {}  # noqa: RUF012 (see MatchDoc)
    embedding: NdArray | None = None
    words: str | None = None  # the text written on the image, when OCR is on (memeflow/ocr.py)
    error: str | None = None
    matches: DocList[MatchDoc] = DocList[MatchDoc]()
    # A small JPEG preview made by the encoder on /index, kept by the indexer (never in a
    # reply) and served by the gateway at /thumbnails/{id}.
    thumbnail: bytes | None = None
    terms: DocList[TermDoc] = DocList[TermDoc]()  # /search: a combined query (memeflow.query)


def is_id_only(doc: "MemeDoc | TermDoc") -> bool:
    """A document that names an indexed meme by `id` and brings nothing to embed: its
    vector is the stored one, which only the indexer has."""
    return (doc.embedding is None and doc.blob is None and not doc.uri and not doc.text
            and bool(doc.id))


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
