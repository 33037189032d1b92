"""DocArray v2 document types shared by the gateway and the executors (the client codes the
same fields as plain dicts: `memeflow.client.wire`).

One request document type travels the whole Flow: the client fills `uri`, `blob` or
`text` (or brings its own `embedding`), the encoder adds the embedding, and the indexer
stores it or answers with `matches`. Before a reply leaves the Flow the executors drop
`blob` and, unless asked for, `embedding` and `frames`, so clients never get image bytes
back.
"""

from typing import Any

from docarray import BaseDoc, DocList
from docarray.typing import ID, NdArray

from memeflow import docarray_speedups
from memeflow.fields import (  # noqa: F401 (re-exported for the Flow's code)
    DERIVED_TAGS,
    HASH_TAG,
    HUB_TAG,
    THUMBNAIL_TYPE,
    Hit,
    content_id,
)

docarray_speedups.install()


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
    # An animated or video meme: the time (ms from its start) of the frame that matched best.
    frame_ms: int | None = None


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
    # An animated image or a video is one document with several vectors: `frames` holds the
    # (k, dim) embeddings of its sampled frames and `frame_ms` their times (ms from the
    # start), `embedding` the one that stands for the file (a still's only vector). Set by
    # the encoder on /index; like `embedding`, never in a reply unless asked for.
    frames: NdArray | None = None
    frame_ms: list[int] | None = None


def is_id_only(doc: "MemeDoc | TermDoc") -> bool:
    """A document that names an indexed meme by `id` and brings nothing to embed: its
    vector is the stored one, which only the indexer has."""
    return (doc.embedding is None and doc.blob is None and not doc.uri and not doc.text
            and bool(doc.id))
