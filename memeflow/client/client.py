"""Python client for a running memeflow service: plain dicts in and out, no DocArray needed."""

import base64
import io
import logging
import mimetypes
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from docarray import DocList
from PIL import Image

from memeflow import config
from memeflow.client import sync
from memeflow.client.errors import service_error
from memeflow.client.moves import StoredDoc, stored_path
from memeflow.client.sync import IndexReport, reply_id, uri_prefixes
from memeflow.documents import Hit, MatchDoc, MemeDoc, TermDoc
from memeflow.params import DEFAULT_TOP_K
from memeflow.protocol import HTTP_MAX_DOCS, client_headers
from memeflow.query import Term, is_plain_text, parse_query
from memeflow.regular_files import read_regular
from memeflow.uris import is_local, local_path, lone_surrogate_text, path_uri, printable

ImageInput = str | Path | bytes | Image.Image
REQUEST_SIZE = HTTP_MAX_DOCS  # documents per request: Jina's default, and the HTTP limit
GRPC_REQUEST_MAX = config.DEFAULT_MAX_DOCS  # the service's per-request limit


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
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    if isinstance(image, str):  # a path or a file: URL
        return read_regular(Path(local_path(image) or image))
    return read_regular(Path(image).expanduser())


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """Images travel over HTTP as `data:` URIs: JSON cannot carry raw bytes."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


class MemeClient:
    """Talks to a memeflow Flow over gRPC (default) or HTTP."""

    def __init__(self, host: str | None = None) -> None:
        from jina import Client  # imported here: `import jina` costs seconds

        self.protocol, self.hostname, self.port = parse_host(host or config.host())
        # Jina's client logs every failed call as an ERROR block; we raise instead.
        self._client = Client(host=self.hostname, port=self.port, protocol=self.protocol,
                              log_config="quiet")
        logging.getLogger(type(self._client).__name__).addHandler(logging.NullHandler())
        # MEMEFLOW_API_KEY, when set, goes with every call: gRPC metadata or HTTP headers.
        headers = client_headers()
        self._auth: dict[str, Any] = {}
        if headers and self.protocol == "grpc":
            self._auth = {"metadata": tuple(headers.items())}
        elif headers:
            self._auth = {"headers": headers}

    def _post(self, endpoint: str, docs: Sequence[MemeDoc], chunk: int = REQUEST_SIZE,
              **parameters: Any) -> DocList[MemeDoc]:
        """`docs` as requests of up to `chunk` documents, one after another, so the replies
        come in the order sent. Jina's own ordering (`results_in_order`) is not used: its
        gateway can wait forever when a reply overtakes the end of the client's stream."""
        if self.protocol != "grpc":
            chunk = min(chunk, REQUEST_SIZE)
        texts = [parameters, *([d.id, d.text, d.uri, d.tags] for d in docs)]
        if (bad := lone_surrogate_text(texts)) is not None:  # the service would refuse it
            raise ValueError(f"cannot send \"{printable(bad)}\": it is not Unicode text (a byte "
                             "that is not UTF-8, shown as \\xNN): write it in UTF-8")
        replies = DocList[MemeDoc]()
        for start in range(0, max(len(docs), 1), chunk):  # an empty call is one request too
            replies.extend(self._request(endpoint, docs[start : start + chunk], parameters))
        return replies

    def _request(self, endpoint: str, docs: Sequence[MemeDoc], parameters: dict[str, Any]
                 ) -> DocList[MemeDoc]:
        timeout = config.request_timeout()
        try:
            return self._client.post(
                endpoint, inputs=DocList[MemeDoc](docs), parameters=parameters,
                return_type=DocList[MemeDoc], request_size=max(1, len(docs)), timeout=timeout,
                **self._auth,
            )
        except ConnectionError as exc:
            if "DEADLINE_EXCEEDED" not in str(exc):
                raise
            raise TimeoutError(
                f"{endpoint}: no answer from {self.hostname}:{self.port} within {timeout:g} s; "
                "check the service's log, or raise MEMEFLOW_TIMEOUT for slow requests"
            ) from None
        except Exception as exc:  # an answer that is an error: one line, not Jina's pages
            error = service_error(exc, endpoint, f"{self.protocol}://{self.hostname}:{self.port}")
            if error is None:
                raise
            raise error from exc

    def _image_fields(self, data: bytes, uri: str | None = None) -> dict[str, Any]:
        """The bytes as `blob` over gRPC, as a `data:` URI over HTTP (JSON has no bytes)."""
        if self.protocol == "grpc":
            return {"blob": data, "uri": uri}
        return {"uri": data_uri(data, mimetypes.guess_type(uri or "")[0] or "image/png")}

    def image_doc(self, data: bytes, **fields: Any) -> MemeDoc:
        """A document carrying image bytes as this protocol can (a blob, or a data: URI)."""
        image = self._image_fields(data, fields.pop("uri", None))
        return MemeDoc(**fields, **image)

    def _image_or_id(self, image: ImageInput | None, doc_id: str | None) -> dict[str, Any]:
        if image is None:
            return {"id": doc_id}
        name = path_uri(image) if isinstance(image, str | Path) else None
        return self._image_fields(_image_bytes(image), name)

    def is_ready(self) -> bool:
        return self._client.is_flow_ready()

    # searching -------------------------------------------------------------------------
    def search(self, query: MemeDoc, top_k: int = DEFAULT_TOP_K, **options: Any) -> list[Hit]:
        """`options`: the /search parameters (where, min_score, offset, dedup, group_by,
        hub_correction, ocr_weight; see README, "Search options")."""
        (result,) = self._post("/search", [query], top_k=top_k, **options)
        if result.error:
            raise ValueError(result.error)
        first = int(options.get("offset") or 0) + 1
        return [
            Hit(rank=rank, id=reply_id(m), uri=m.uri, score=m.score, tags=dict(m.tags),
                signals={name: int(at) for name, at in m.signals.items()}, words=m.words)
            for rank, m in enumerate(result.matches, start=first)
        ]

    def search_text(self, text: str, top_k: int = DEFAULT_TOP_K, **options: Any) -> list[Hit]:
        return self.search(MemeDoc(text=text), top_k, **options)

    def search_image(self, image: ImageInput, top_k: int = DEFAULT_TOP_K, **options: Any
                     ) -> list[Hit]:
        """Search by example: a file path, raw bytes or a PIL image."""
        name = {"uri": path_uri(image)} if isinstance(image, str | Path) else {}
        return self.search(self.image_doc(_image_bytes(image), **name), top_k, **options)

    def search_terms(self, terms: Sequence[Term], top_k: int = DEFAULT_TOP_K, **options: Any
                     ) -> list[Hit]:
        """A combined query (memeflow.query): weighted text and image terms, negatives
        subtract. An image term is a file path, raw bytes or a PIL image."""
        docs = DocList[TermDoc]([
            TermDoc(text=term.text, weight=term.weight) if term.image is None
            else TermDoc(weight=term.weight, **self._term_image(term.image))
            for term in terms
        ])
        return self.search(MemeDoc(terms=docs), top_k, **options)

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
        candidates = DocList[MatchDoc]([MatchDoc(text=text) for text in texts])
        (result,) = self._post("/rank", [MemeDoc(matches=candidates,
                                                 **self._image_or_id(image, doc_id))])
        if result.error:
            raise ValueError(result.error)
        return [{"text": m.text, "probability": m.score, "cosine": m.tags["cosine"]}
                for m in result.matches]

    # indexing --------------------------------------------------------------------------
    def stored(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored tags of those ids that are in the index."""
        return {doc_id: dict(doc.tags) for doc_id, doc in self._stored_docs(ids).items()}

    def _stored_docs(self, ids: Sequence[str]) -> dict[str, MemeDoc]:
        """The stored uri, tags and words of those ids that are in the index."""
        batch = [MemeDoc(id=i) for i in ids]
        return {reply_id(doc): doc for doc in self._post("/get", batch, chunk=GRPC_REQUEST_MAX)}

    def find_by_hash(self, digests: Sequence[str]) -> dict[str, list[StoredDoc]]:
        """Indexed documents whose `sha256` tag is one of `digests`, with their vectors."""
        found: dict[str, list[StoredDoc]] = {}
        for start in range(0, len(digests), GRPC_REQUEST_MAX):
            batch = [MemeDoc(tags={"sha256": d})
                     for d in digests[start : start + GRPC_REQUEST_MAX]]
            replies = self._post("/find", batch, chunk=GRPC_REQUEST_MAX, tag="sha256",
                                 return_embeddings=True)
            for doc in replies:
                vector = np.asarray(doc.embedding, dtype=np.float32)
                stored = StoredDoc(reply_id(doc), doc.uri, vector, doc.words)
                found.setdefault(doc.tags["sha256"], []).append(stored)
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
                for doc in self._post("/find", [], uri_prefix=prefix):
                    path = stored_path(doc.uri)
                    if doc.uri and path is not None and (path == root or path.startswith(under)):
                        found[reply_id(doc)] = doc.uri
        return list(found.items())

    def index_paths(
        self,
        paths: Iterable[str | Path],
        batch_size: int = config.DEFAULT_INDEX_BATCH,
        on_progress: Callable[[int], object] | None = None,
        include_hidden: bool = False,
    ) -> "IndexReport":
        """Index image files and folders, skipping what is already indexed and reusing the
        vectors of moved and copied files: see `memeflow.client.sync.index_paths`."""
        return sync.index_paths(self, paths, batch_size, on_progress, include_hidden)

    def prune(self, folders: Iterable[str | Path]) -> list[str]:
        """Remove the documents under `folders` whose files no longer exist; their uris."""
        return sync.prune(self, folders)

    def index(self, docs: Sequence[MemeDoc]) -> DocList[MemeDoc]:
        """Encode and store documents (images or texts); the replies, in the order sent, say
        each one's `error` when it could not be stored."""
        return self._post("/index", docs)

    def thumbnails(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The stored previews of `ids` (gRPC only: bytes do not survive HTTP)."""
        docs = self._post("/thumbnail", [MemeDoc(id=i) for i in dict.fromkeys(ids)])
        return {reply_id(doc): doc.thumbnail for doc in docs if doc.thumbnail}

    # housekeeping ----------------------------------------------------------------------
    def upsert(self, docs: Sequence[MemeDoc], request_size: int = GRPC_REQUEST_MAX
               ) -> DocList[MemeDoc]:
        """Store documents that bring their own `embedding`, straight into the indexer (the
        encoder is skipped). Returns the documents without embeddings, in the order sent; a
        refused one has `error` set, and the others are stored."""
        return self._post("/upsert", docs, chunk=request_size)

    def count(self) -> int:
        return int(self._post("/count", [])[0].tags["count"])

    def delete(self, ids: Sequence[str]) -> int:
        replies = self._post("/delete", [MemeDoc(id=i) for i in ids], chunk=GRPC_REQUEST_MAX)
        return sum(int(reply.tags["deleted"]) for reply in replies)  # one reply per request

    def clear(self) -> None:
        self._post("/clear", [])

    def status(self) -> dict[str, Any]:
        """What the service runs: model, runtime, OCR on or off, count, dimension,
        workspace, shards."""
        return dict(self._post("/status", [])[0].tags)
