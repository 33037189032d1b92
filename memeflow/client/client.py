"""Python client for a running memeflow service: plain dicts in and out, no DocArray needed.

It speaks the gateway's protocol itself (`memeflow.client.transport`): importing it takes
a tenth of a second where Jina's client took two. Methods that take or give documents of
the Flow's own types (`index`, `upsert`, `image_doc`) accept dicts too, and import
DocArray only when they hand documents back.
"""

from __future__ import annotations

import base64
import io
import mimetypes
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlparse

import numpy as np

from memeflow import config
from memeflow.client import sync
from memeflow.client.moves import StoredDoc, stored_path, uri_prefixes
from memeflow.client.sync import IndexReport
from memeflow.client.transport import GrpcTransport, HttpTransport, Transport
from memeflow.client.wire.codec import WireDoc, as_wire_doc
from memeflow.fields import Hit
from memeflow.params import DEFAULT_TOP_K
from memeflow.protocol import HTTP_MAX_DOCS, client_headers
from memeflow.query import Term, is_plain_text, parse_query
from memeflow.regular_files import read_regular
from memeflow.uris import is_local, local_path, lone_surrogate_text, path_uri, printable

if TYPE_CHECKING:
    from docarray import DocList
    from PIL import Image

    from memeflow.documents import MemeDoc

ImageInput: TypeAlias = "str | Path | bytes | Image.Image"
Doc: TypeAlias = "MemeDoc | Mapping[str, Any]"  # a Flow document, or a dict of its fields
REQUEST_SIZE = HTTP_MAX_DOCS  # documents per request: Jina's default, and the HTTP limit
GRPC_REQUEST_MAX = config.DEFAULT_MAX_DOCS  # the service's per-request limit
READY_TIMEOUT = 5.0  # seconds `is_ready` waits for the gateway's answer


def parse_host(host: str) -> tuple[str, str, int]:
    """'grpc://h:p', 'http://h:p', 'h:p' or 'h' -> (protocol, host, port); gRPC by default."""
    parsed = urlparse(host if "://" in host else f"grpc://{host}")
    protocol = parsed.scheme.lower()
    if protocol not in {"grpc", "http"}:
        raise ValueError(f"unsupported protocol in host {host!r}: use grpc://HOST:PORT or http://HOST:PORT")
    default = config.grpc_port() if protocol == "grpc" else config.http_port()
    return protocol, parsed.hostname or "localhost", parsed.port or default


def _image_bytes(image: ImageInput) -> bytes:
    if isinstance(image, bytes):
        return image
    if isinstance(image, str):  # a path or a file: URL
        return read_regular(Path(local_path(image) or image))
    if isinstance(image, Path):
        return read_regular(image.expanduser())
    buffer = io.BytesIO()  # a PIL image
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """Images travel over HTTP as `data:` URIs: JSON cannot carry raw bytes."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def as_memedocs(docs: Iterable[WireDoc]) -> DocList[MemeDoc]:
    """Replies as the Flow's document type (imports DocArray, which the rest does not)."""
    from docarray import DocList

    from memeflow.documents import MatchDoc, MemeDoc, TermDoc

    def fields(doc: WireDoc) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if v is not None}

    out = DocList[MemeDoc]()
    for doc in docs:
        values = fields(doc)
        values["matches"] = DocList[MatchDoc]([MatchDoc(**fields(m))
                                               for m in doc.get("matches") or []])
        values["terms"] = DocList[TermDoc]([TermDoc(**fields(t)) for t in doc.get("terms") or []])
        out.append(MemeDoc(**values))
    return out


def _hit(rank: int, match: WireDoc) -> Hit:
    hit = Hit(rank=rank, id=match["id"], uri=match.get("uri"), score=match.get("score") or 0.0,
              tags=dict(match.get("tags") or {}),
              signals={name: int(at) for name, at in (match.get("signals") or {}).items()},
              words=match.get("words"))
    if match.get("frame_ms") is not None:  # an animated or video meme: when it matched
        hit["frame_ms"] = int(match["frame_ms"])
    return hit


class MemeClient:
    """Talks to a memeflow Flow over gRPC (default) or HTTP."""

    def __init__(self, host: str | None = None) -> None:
        self.protocol, self.hostname, self.port = parse_host(host or config.host())
        # MEMEFLOW_API_KEY, when set, goes with every call: gRPC metadata or HTTP headers.
        headers = client_headers()
        self._transport: Transport = (
            GrpcTransport(self.hostname, self.port, tuple(headers.items()))
            if self.protocol == "grpc" else HttpTransport(self.hostname, self.port, headers))

    def close(self) -> None:
        """Let go of the connection (a later call opens a new one)."""
        self._transport.close()

    def post(self, endpoint: str, docs: Sequence[Doc], chunk: int = REQUEST_SIZE,
             **parameters: Any) -> list[WireDoc]:
        """Call `endpoint` with `docs` (dicts of a `MemeDoc`'s fields, or MemeDocs) and
        `parameters`; the replies' documents as dicts, in the order sent.

        `docs` go as requests of up to `chunk` documents (at most 100 over HTTP), one after
        another, so the replies come in the order sent. Raises ConnectionError (the service
        does not answer), TimeoutError (no answer within MEMEFLOW_TIMEOUT), RequestRefused
        (the request's fault) or ServiceError (the service's), each with one line."""
        if self.protocol != "grpc":
            chunk = min(chunk, REQUEST_SIZE)
        wire = [as_wire_doc(doc) for doc in docs]
        texts = [parameters, *([d.get("id"), d.get("text"), d.get("uri"), d.get("tags")]
                               for d in wire)]
        if (bad := lone_surrogate_text(texts)) is not None:  # the service would refuse it
            raise ValueError(f"cannot send \"{printable(bad)}\": it is not Unicode text (a byte "
                             "that is not UTF-8, shown as \\xNN): write it in UTF-8")
        replies: list[WireDoc] = []
        for start in range(0, max(len(wire), 1), chunk):  # an empty call is one request too
            replies.extend(self._transport.call(endpoint, wire[start : start + chunk],
                                                parameters, config.request_timeout()))
        return replies

    def _post(self, endpoint: str, docs: Sequence[Doc], chunk: int = REQUEST_SIZE,
              **parameters: Any) -> DocList[MemeDoc]:
        """`post`, with the replies as the Flow's documents."""
        return as_memedocs(self.post(endpoint, docs, chunk, **parameters))

    def image_fields(self, data: bytes, uri: str | None = None) -> dict[str, Any]:
        """The bytes as `blob` over gRPC, as a `data:` URI over HTTP (JSON has no bytes)."""
        if self.protocol == "grpc":
            return {"blob": data, "uri": uri}
        return {"uri": data_uri(data, mimetypes.guess_type(uri or "")[0] or "image/png")}

    def image_doc(self, data: bytes, **fields: Any) -> MemeDoc:
        """A document carrying image bytes as this protocol can (a blob, or a data: URI)."""
        from memeflow.documents import MemeDoc

        image = self.image_fields(data, fields.pop("uri", None))
        return MemeDoc(**fields, **image)

    def _image_or_id(self, image: ImageInput | None, doc_id: str | None) -> dict[str, Any]:
        if image is None:
            return {"id": doc_id}
        name = path_uri(image) if isinstance(image, str | Path) else None
        return self.image_fields(_image_bytes(image), name)

    def is_ready(self) -> bool:
        return self._transport.is_ready(READY_TIMEOUT)

    # searching -------------------------------------------------------------------------
    def search(self, query: Doc, top_k: int = DEFAULT_TOP_K, **options: Any) -> list[Hit]:
        """`query`: a MemeDoc or a dict of its fields. `options`: the /search parameters
        (where, min_score, offset, dedup, group_by, hub_correction, ocr_weight; see README,
        "Search options")."""
        (result,) = self.post("/search", [query], top_k=top_k, **options)
        if result.get("error"):
            raise ValueError(result["error"])
        first = int(options.get("offset") or 0) + 1
        return [_hit(rank, m) for rank, m in enumerate(result.get("matches") or [], start=first)]

    def search_text(self, text: str, top_k: int = DEFAULT_TOP_K, **options: Any) -> list[Hit]:
        return self.search({"text": text}, top_k, **options)

    def search_image(self, image: ImageInput, top_k: int = DEFAULT_TOP_K, **options: Any
                     ) -> list[Hit]:
        """Search by example: a file path, raw bytes or a PIL image."""
        uri = path_uri(image) if isinstance(image, str | Path) else None
        return self.search(self.image_fields(_image_bytes(image), uri), top_k, **options)

    def search_terms(self, terms: Sequence[Term], top_k: int = DEFAULT_TOP_K, **options: Any
                     ) -> list[Hit]:
        """A combined query (memeflow.query): weighted text and image terms, negatives
        subtract. An image term is a file path, raw bytes or a PIL image."""
        docs = [{"text": term.text, "weight": term.weight} if term.image is None
                else {"weight": term.weight, **self._term_image(term.image)} for term in terms]
        return self.search({"terms": docs}, top_k, **options)

    def _term_image(self, image: ImageInput) -> dict[str, Any]:
        if isinstance(image, str) and not is_local(image):
            return {"uri": image}  # the service fetches or decodes it
        return self._image_or_id(image, None)

    def search_query(self, query: str, top_k: int = DEFAULT_TOP_K, **options: Any) -> list[Hit]:
        """A query in the command line's syntax: "cat + 2:hat - dog", "drake.jpg - text"."""
        terms = parse_query(query)
        if is_plain_text(terms):
            assert terms[0].text is not None  # is_plain_text: one text term
            return self.search_text(terms[0].text, top_k, **options)
        return self.search_terms(terms, top_k, **options)

    def rank(self, texts: Sequence[str], image: ImageInput | None = None,
             doc_id: str | None = None) -> list[dict[str, Any]]:
        """`texts` best first for an image (a path, bytes, a PIL image) or an indexed id:
        [{"text", "probability", "cosine"}], probabilities from softmax(100 * cosine)."""
        if (image is None) == (doc_id is None):
            raise ValueError("rank needs an image or the id of an indexed meme (one of them)")
        query = {"matches": [{"text": text} for text in texts],
                 **self._image_or_id(image, doc_id)}
        (result,) = self.post("/rank", [query])
        if result.get("error"):
            raise ValueError(result["error"])
        return [{"text": m["text"], "probability": m["score"], "cosine": m["tags"]["cosine"]}
                for m in result.get("matches") or []]

    # indexing --------------------------------------------------------------------------
    def stored(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored tags of those ids that are in the index."""
        return {doc_id: dict(doc.get("tags") or {}) for doc_id, doc in self.documents(ids).items()}

    def documents(self, ids: Sequence[str]) -> dict[str, WireDoc]:
        """The stored `uri`, `tags` and `words` of those ids that are in the index, by id."""
        replies = self.post("/get", [{"id": i} for i in ids], chunk=GRPC_REQUEST_MAX)
        return {doc["id"]: doc for doc in replies}

    def find_by_hash(self, digests: Sequence[str]) -> dict[str, list[StoredDoc]]:
        """Indexed documents whose `sha256` tag is one of `digests`, with their vectors (and
        frames)."""
        found: dict[str, list[StoredDoc]] = {}
        for start in range(0, len(digests), GRPC_REQUEST_MAX):
            batch = [{"tags": {"sha256": d}} for d in digests[start : start + GRPC_REQUEST_MAX]]
            replies = self.post("/find", batch, chunk=GRPC_REQUEST_MAX, tag="sha256",
                                return_embeddings=True)
            for doc in replies:
                tags = dict(doc.get("tags") or {})
                frames = doc.get("frames")
                stored = StoredDoc(doc["id"], doc.get("uri"),
                                   np.asarray(doc["embedding"], dtype=np.float32),
                                   doc.get("words"), tags,
                                   None if frames is None else np.asarray(frames, np.float32),
                                   doc.get("frame_ms"))
                found.setdefault(tags["sha256"], []).append(stored)
        return found

    def documents_under(self, folder: str | Path) -> list[tuple[str, str]]:
        """(id, uri) of the documents indexed from `folder` or below it (or that very file),
        as the path reaches it and, when it goes through links, as resolved (the paths
        stored before links were kept)."""
        found: dict[str, str] = {}
        given = os.path.abspath(os.path.expanduser(os.fspath(folder)))
        for root in dict.fromkeys([given, os.path.realpath(given)]):
            under = root.rstrip(os.sep) + os.sep
            for prefix in uri_prefixes(root):
                for doc in self.post("/find", [], uri_prefix=prefix):
                    uri = doc.get("uri")
                    path = stored_path(uri)
                    if uri and path is not None and (path == root or path.startswith(under)):
                        found[doc["id"]] = uri
        return list(found.items())

    def list_documents(self, uri_prefix: str | None = None) -> list[tuple[str, str | None]]:
        """(id, uri) of every indexed document, or of those whose uri starts with
        `uri_prefix` (a path prefix, or a URL's), in the order of their uris."""
        options: dict[str, Any] = {"uri_prefix": uri_prefix} if uri_prefix else {}
        docs = self.post("/find", [], **options)
        return sorted(((doc["id"], doc.get("uri")) for doc in docs),
                      key=lambda pair: (pair[1] or "", pair[0]))

    def index_paths(
        self,
        paths: Iterable[str | Path],
        batch_size: int = config.DEFAULT_INDEX_BATCH,
        on_progress: Callable[[int], object] | None = None,
        include_hidden: bool = False,
    ) -> IndexReport:
        """Index image files and folders, skipping what is already indexed and reusing the
        vectors of moved and copied files: see `memeflow.client.sync.index_paths`."""
        return sync.index_paths(self, paths, batch_size, on_progress, include_hidden)

    def prune(self, folders: Iterable[str | Path]) -> list[str]:
        """Remove the documents under `folders` whose files no longer exist; their uris."""
        return sync.prune(self, folders)

    def index(self, docs: Sequence[Doc]) -> DocList[MemeDoc]:
        """Encode and store documents (images or texts); the replies, in the order sent, say
        each one's `error` when it could not be stored."""
        return self._post("/index", docs)

    def thumbnails(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The stored previews of `ids` (gRPC only: bytes do not survive HTTP)."""
        docs = self.post("/thumbnail", [{"id": i} for i in dict.fromkeys(ids)])
        return {doc["id"]: doc["thumbnail"] for doc in docs if doc.get("thumbnail")}

    # housekeeping ----------------------------------------------------------------------
    def upsert(self, docs: Sequence[Doc], request_size: int = GRPC_REQUEST_MAX
               ) -> DocList[MemeDoc]:
        """Store documents that bring their own `embedding`, straight into the indexer (the
        encoder is skipped). Returns the documents without embeddings, in the order sent; a
        refused one has `error` set, and the others are stored."""
        return self._post("/upsert", docs, chunk=request_size)

    def count(self) -> int:
        return int(self.post("/count", [])[0]["tags"]["count"])

    def delete(self, ids: Sequence[str]) -> int:
        replies = self.post("/delete", [{"id": i} for i in ids], chunk=GRPC_REQUEST_MAX)
        return sum(int(reply["tags"]["deleted"]) for reply in replies)  # one per request

    def clear(self) -> None:
        self.post("/clear", [])

    def all_documents(self) -> DocList[MemeDoc]:
        """Every stored document: id, uri, tags and words (no vectors), in storage order."""
        return self._post("/find", [])

    def switch(self, phase: str, **parameters: Any) -> dict[str, Any]:
        """One phase of switching the service to another model and workspace
        (`memeflow.switch`); the stages' states, e.g. {"encoder": "ready", "indexer": ...}."""
        return dict(self.post("/switch", [], phase=phase, **parameters)[0]["tags"])

    def status(self) -> dict[str, Any]:
        """What the service runs: model, runtime, OCR on or off, count, dimension,
        workspace, shards."""
        return dict(self.post("/status", [])[0]["tags"])
