"""The search page on the gateway's HTTP port: the page, its assets, thumbnails and
full-size files by id.

Everything is answered from memory or through the Flow: the assets are a fixed set of
files read once at start-up, a thumbnail is asked of the indexer by document id, and a
full-size file is served only from the stored uri of an indexed document, under the
encoder's access rules (`memeflow.gateway.files`), so no request can make the server read
a path it names. A full-size file is streamed in slices, one byte range at a time when
asked (`memeflow.gateway.ranges`), so a video can be seeked without being downloaded.
"""

import asyncio
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from memeflow.documents import THUMBNAIL_TYPE
from memeflow.formats import FORMAT_NAMES, IMAGE_SUFFIXES
from memeflow.gateway.files import FileRefused, IndexedFiles, ServedFile, content_disposition
from memeflow.gateway.ranges import ByteRange, RangeNotSatisfiable, requested_range

ASSET_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "media.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.ico": "image/vnd.microsoft.icon",
}
# Filled into index.html when it is read: the upload check knows the formats the server
# reads from memeflow.formats, the one list of them.
PAGE_FIELDS = {
    "{{accept}}": ",".join(sorted(IMAGE_SUFFIXES)),
    "{{formats}}": FORMAT_NAMES,
}
# Document ids are free text, but one that looks like a path is never a thumbnail's.
DOC_ID = re.compile(r"^[A-Za-z0-9_.:@+=-]{1,200}$")
THUMBNAIL_MAX_AGE = 60  # seconds a preview is cached, here and in browsers, after a change
CACHE_ENTRIES = 1024  # about 15 MB of previews
CHUNK_BYTES = 256 * 1024  # one read of a full-size file on its way out

FetchThumbnail = Callable[[str], Awaitable[bytes | None]]


class Asset(NamedTuple):
    body: bytes
    media_type: str
    etag: str


def _etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def _filled(name: str, body: bytes) -> bytes:
    if name != "index.html":
        return body
    text = body.decode()
    for field, value in PAGE_FIELDS.items():
        text = text.replace(field, value)
    return text.encode()


def load_assets(folder: Path) -> dict[str, Asset]:
    """The page's files, read once: only these names are ever served."""
    return {
        name: Asset(body, media_type, _etag(body))
        for name, media_type in ASSET_TYPES.items()
        for body in [_filled(name, (folder / name).read_bytes())]
    }


def _cached(request: Request, body: bytes, media_type: str, etag: str, cache: str) -> Response:
    """`cache` is the Cache-Control value; a matching If-None-Match gets 304 and no body."""
    headers = {"ETag": etag, "Cache-Control": cache}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


class ThumbnailCache:
    """Recently asked-for previews, so scrolling back and forth does not ask the Flow again."""

    def __init__(self, fetch: FetchThumbnail, entries: int = CACHE_ENTRIES,
                 ttl: float = THUMBNAIL_MAX_AGE) -> None:
        self.fetch, self.entries, self.ttl = fetch, entries, ttl
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = asyncio.Lock()

    async def get(self, doc_id: str) -> bytes | None:
        async with self._lock:
            item = self._items.get(doc_id)
            if item and time.monotonic() - item[0] < self.ttl:
                self._items.move_to_end(doc_id)
                return item[1]
        data = await self.fetch(doc_id)
        if data is not None:
            async with self._lock:
                self._items[doc_id] = (time.monotonic(), data)
                self._items.move_to_end(doc_id)
                while len(self._items) > self.entries:
                    self._items.popitem(last=False)
        return data


def _bad_id(doc_id: str) -> bool:
    return not DOC_ID.match(doc_id) or ".." in doc_id


def _refusal(refusal: FileRefused) -> JSONResponse:
    return JSONResponse({"detail": refusal.message}, status_code=refusal.status)


async def _slices(served: ServedFile, start: int, length: int) -> AsyncIterator[bytes]:
    """`length` bytes of the file from `start`, a chunk at a time; closes it at the end
    (or when the client goes away)."""
    try:
        while length > 0:
            chunk = await asyncio.to_thread(served.read, start, min(CHUNK_BYTES, length))
            if not chunk:  # the file shrank since it was opened
                return
            start, length = start + len(chunk), length - len(chunk)
            yield chunk
    finally:
        served.close()


def file_response(request: Request, served: ServedFile) -> Response:
    """The file, or the one byte range asked for (206), or 416 for a range past its end;
    a stale If-Range gets the whole file, a matching If-None-Match 304. Closes `served`
    when no body is sent."""
    headers = {"ETag": served.etag, "Cache-Control": "private, no-cache",
               "Accept-Ranges": "bytes", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == served.etag:
        served.close()
        return Response(status_code=304, headers=headers)
    if_range = request.headers.get("if-range")
    try:
        wanted = None if if_range not in (None, served.etag) else requested_range(
            request.headers.get("range"), served.size)
    except RangeNotSatisfiable:
        served.close()
        return JSONResponse(
            {"detail": f"range {request.headers.get('range')!r} is not within the file's "
                       f"{served.size} bytes"},
            status_code=416, headers={**headers, "Content-Range": f"bytes */{served.size}"})
    part = wanted or ByteRange(0, served.size - 1, served.size)
    headers["Content-Length"] = str(part.length)
    if wanted is not None:
        headers["Content-Range"] = wanted.content_range
    return StreamingResponse(_slices(served, part.start, part.length),
                             status_code=206 if wanted else 200,
                             media_type=served.media_type, headers=headers)


def search_page(assets: dict[str, Asset], thumbnails: ThumbnailCache, files: IndexedFiles
                ) -> Starlette:
    """The page's routes, mounted at `/` after the API's, so the API keeps its paths."""

    async def page(request: Request) -> Response:
        asset = assets["index.html"]
        return _cached(request, asset.body, asset.media_type, asset.etag, "no-cache")

    async def static(request: Request) -> Response:
        asset = assets.get(request.path_params["name"])
        if asset is None:
            return JSONResponse({"detail": "no such file"}, status_code=404)
        return _cached(request, asset.body, asset.media_type, asset.etag, "no-cache")

    async def thumbnail(request: Request) -> Response:
        doc_id = request.path_params["doc_id"]
        if _bad_id(doc_id):
            return JSONResponse({"detail": f"{doc_id!r} is not a document id"}, status_code=400)
        data = await thumbnails.get(doc_id)
        if data is None:
            return JSONResponse(
                {"detail": f"no indexed document with a thumbnail has id {doc_id!r}"},
                status_code=404,
            )
        return _cached(request, data, THUMBNAIL_TYPE, _etag(data), f"max-age={THUMBNAIL_MAX_AGE}")

    async def favicon(request: Request) -> Response:
        asset = assets["favicon.ico"]
        return _cached(request, asset.body, asset.media_type, asset.etag, "max-age=86400")

    async def full_size(request: Request) -> Response:
        """GET /files/{id}: the file itself (`?download=1`: as an attachment), or the
        byte range asked for."""
        doc_id = request.path_params["doc_id"]
        if _bad_id(doc_id):
            return JSONResponse({"detail": f"{doc_id!r} is not a document id"}, status_code=400)
        try:
            served = await files.file(doc_id)
        except FileRefused as refusal:
            return _refusal(refusal)
        kind = "attachment" if request.query_params.get("download") else "inline"
        try:
            response = file_response(request, served)
        except BaseException:  # a fault of ours: the file is not left open until collected
            served.close()
            raise
        response.headers["Content-Disposition"] = content_disposition(kind, served.name)
        return response

    async def availability(request: Request) -> Response:
        """POST /files {"ids": [...]}: {"files": {id: null (served) or the reason not}}."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return JSONResponse({"detail": 'send {"ids": [document ids]}'}, status_code=400)
        try:
            answers = await files.availability(ids)
        except FileRefused as refusal:
            return _refusal(refusal)
        return JSONResponse({"files": answers})

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/favicon.ico", favicon, methods=["GET"]),
            Route("/static/{name}", static, methods=["GET"]),
            Route("/thumbnails/{doc_id:path}", thumbnail, methods=["GET"]),
            Route("/files", availability, methods=["POST"]),
            Route("/files/{doc_id:path}", full_size, methods=["GET"]),
        ]
    )
