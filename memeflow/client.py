"""Python client for a running memeflow service: plain dicts in and out, no DocArray needed."""

import base64
import io
import logging
import mimetypes
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlparse

from docarray import DocList
from PIL import Image

from memeflow import config
from memeflow.docs import MemeDoc
from memeflow.files import file_id, file_tags, find_images, sha256_file

ImageInput = str | Path | bytes | Image.Image


class Hit(TypedDict):
    rank: int
    id: str
    uri: str | None
    score: float
    tags: dict[str, Any]


@dataclass
class IndexReport:
    """What `index_paths` did with each file."""

    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


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
    return Path(image).expanduser().read_bytes()


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

    def _post(self, endpoint: str, docs: Sequence[MemeDoc], **parameters: Any) -> DocList[MemeDoc]:
        return self._client.post(
            endpoint,
            inputs=DocList[MemeDoc](docs),
            parameters=parameters,
            return_type=DocList[MemeDoc],
            # A long list goes as several requests, answered as they finish; with no
            # documents at all (count, clear) Jina's ordering would wait forever.
            results_in_order=len(docs) > 0,
        )

    def _image_doc(self, data: bytes, **fields: Any) -> MemeDoc:
        if self.protocol == "grpc":
            return MemeDoc(blob=data, **fields)
        mime = mimetypes.guess_type(fields.get("uri") or "")[0] or "image/png"
        return MemeDoc(uri=data_uri(data, mime), **{k: v for k, v in fields.items() if k != "uri"})

    def is_ready(self) -> bool:
        return self._client.is_flow_ready()

    # searching -------------------------------------------------------------------------
    def search(self, query: MemeDoc, top_k: int = 10) -> list[Hit]:
        (result,) = self._post("/search", [query], top_k=top_k)
        if result.error:
            raise ValueError(result.error)
        return [
            Hit(rank=rank, id=m.id, uri=m.uri, score=m.score, tags=dict(m.tags))
            for rank, m in enumerate(result.matches, start=1)
        ]

    def search_text(self, text: str, top_k: int = 10) -> list[Hit]:
        return self.search(MemeDoc(text=text), top_k)

    def search_image(self, image: ImageInput, top_k: int = 10) -> list[Hit]:
        """Search by example: a file path, raw bytes or a PIL image."""
        name = {"uri": str(image)} if isinstance(image, str | Path) else {}
        return self.search(self._image_doc(_image_bytes(image), **name), top_k)

    # indexing --------------------------------------------------------------------------
    def stored(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored tags of those ids that are in the index."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 1000):
            batch = [MemeDoc(id=i) for i in ids[start : start + 1000]]
            found.update({doc.id: dict(doc.tags) for doc in self._post("/get", batch)})
        return found

    def index_paths(
        self,
        paths: Iterable[str | Path],
        batch_size: int = 32,
        on_progress: Callable[[int], None] | None = None,
    ) -> IndexReport:
        """Index image files and folders; files already indexed with the same bytes are skipped.

        `on_progress(n)` is called after each batch with the number of files it settled.
        """
        report = IndexReport()
        files = list(find_images(paths))
        hashes: dict[Path, str] = {}
        for path in files:
            try:
                hashes[path] = sha256_file(path)
            except OSError as exc:
                report.failed.append((str(path), f"cannot read file: {exc.strerror or exc}"))
        stored = self.stored([file_id(p) for p in hashes])
        todo = []
        for path, digest in hashes.items():
            if stored.get(file_id(path), {}).get("sha256") == digest:
                report.unchanged.append(str(path))
            else:
                todo.append(path)
        if on_progress and (report.unchanged or report.failed):
            on_progress(len(report.unchanged) + len(report.failed))
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            self._index_batch(batch, hashes, report)
            if on_progress:
                on_progress(len(batch))
        return report

    def _index_batch(self, batch: list[Path], hashes: dict[Path, str], report: IndexReport) -> None:
        docs = []
        for path in batch:
            try:
                data = path.read_bytes()
            except OSError as exc:
                report.failed.append((str(path), f"cannot read file: {exc.strerror or exc}"))
                continue
            tags = {**file_tags(path), "sha256": hashes[path]}
            docs.append(self._image_doc(data, id=file_id(path), uri=str(path), tags=tags))
        if not docs:
            return
        for doc in self._post("/index", docs):
            if doc.error:
                file = doc.uri or doc.tags.get("file", doc.id)
                report.failed.append((file, doc.error.removeprefix(f"{file}: ")))
            else:
                report.indexed.append(doc.uri or doc.id)

    # housekeeping ----------------------------------------------------------------------
    def upsert(self, docs: Sequence[MemeDoc], request_size: int = 1000) -> DocList[MemeDoc]:
        """Store documents that bring their own `embedding`, straight into the indexer (the
        encoder is skipped). Returns the documents without embeddings; a refused one has
        `error` set, and the others are stored."""
        return self._client.post(
            "/upsert", inputs=DocList[MemeDoc](docs), request_size=request_size,
            return_type=DocList[MemeDoc], results_in_order=len(docs) > 0,
        )

    def count(self) -> int:
        return int(self._post("/count", [])[0].tags["count"])

    def delete(self, ids: Sequence[str]) -> int:
        return int(self._post("/delete", [MemeDoc(id=i) for i in ids])[0].tags["deleted"])

    def clear(self) -> None:
        self._post("/clear", [])
