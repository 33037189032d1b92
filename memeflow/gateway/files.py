"""Full-size files of indexed memes, for the page's open, download, copy and drag.

A request names a document id, never a path: the gateway asks the indexer (through the
Flow) for that document's stored uri, and serves the file only when the uri is a local
path that the encoder's access policy (`memeflow.encoder.access`) would read: under
`MEMEFLOW_ROOTS`, after resolving `..` and links, a regular file within the image size
limit, that Pillow recognises as one of the formats memeflow reads, or a video (MP4, MOV,
WebM, Matroska, told by its first bytes). So the service serves exactly what it could
index from disk, and nothing when it reads no paths (the default: the CLI sends the
bytes, and the service keeps only a preview of them). A file is opened once and read in
slices by the route, so a video is streamed and can be served a range at a time.
"""

import asyncio
import io
import os
import stat
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from memeflow.config import MAX_IMAGE_BYTES_ENV, MAX_VIDEO_BYTES_ENV, ROOTS_ENV
from memeflow.encoder.access import AccessPolicy
from memeflow.encoder.decode import readable_formats
from memeflow.formats import EBML_MAGIC, looks_like_video
from memeflow.regular_files import open_regular
from memeflow.uris import ImageLoadError, is_local, local_path

# What each format Pillow recognises is served as.
MEDIA_TYPES = {
    "JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
    "WEBP": "image/webp", "BMP": "image/bmp", "TIFF": "image/tiff", "AVIF": "image/avif",
    "HEIF": "image/heif",
}
HEADER_BYTES = 64  # enough of a file's start to tell a video's container
MAX_IDS = 100  # ids one availability question may name

# Document id -> its stored uri (None: the document has none), for the ids indexed.
LookUp = Callable[[list[str]], Awaitable[dict[str, str | None]]]


class FileRefused(Exception):
    """Why a document's file is not served; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class ServedFile:
    """A file as it goes out: open for reading (the caller closes it), its size in bytes,
    media type, the name to save it under, and an ETag that changes with its contents."""

    content: BinaryIO
    size: int
    media_type: str
    name: str
    etag: str

    def read(self, start: int, length: int) -> bytes:
        """`length` bytes from byte `start` (fewer at the end); blocking."""
        self.content.seek(start)
        return self.content.read(length)

    def close(self) -> None:
        self.content.close()


def media_type(data: bytes) -> str | None:
    """The media type of image bytes in a format memeflow reads, else None. Reads the
    header only (Pillow's `open` decodes no pixels)."""
    try:
        with Image.open(io.BytesIO(data), formats=readable_formats()) as image:
            return MEDIA_TYPES.get(image.format or "")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return None


def video_type(header: bytes) -> str | None:
    """The media type of a video file from its first bytes, else None: what the encoder
    reads as a video (`memeflow.formats.looks_like_video`), by its container."""
    if not looks_like_video(header):
        return None
    if header.startswith(EBML_MAGIC):
        return "video/webm" if b"webm" in header else "video/x-matroska"
    if header[4:8] == b"ftyp" and header[8:12] != b"qt  ":
        return "video/mp4"
    return "video/quicktime"  # brand `qt  `, or a QuickTime file without `ftyp`


def content_disposition(kind: str, name: str) -> str:
    """`inline` or `attachment` with the file name, ASCII-safe (RFC 6266 / RFC 5987)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                       for c in name) or "meme"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(name)}"


class IndexedFiles:
    """Decides, and reads, what the gateway may serve of each indexed document."""

    def __init__(self, look_up: LookUp, policy: AccessPolicy | None = None) -> None:
        self.look_up = look_up
        self.policy = policy if policy is not None else AccessPolicy.from_env()

    @property
    def serves_files(self) -> bool:
        """Whether any file can be served at all: only with MEMEFLOW_ROOTS set."""
        return bool(self.policy.roots)

    def _checked_path(self, doc_id: str, uri: str | None) -> str:
        """The real path of a document's file if the policy lets the service read it."""
        if not self.policy.roots:
            raise FileRefused(403, f"the service serves no files ({ROOTS_ENV} is not set): "
                              "set it to the folders you index to open memes full size")
        if not uri or not is_local(uri):
            raise FileRefused(403, f"document {doc_id!r} was not indexed from a file on the "
                              "server (it has no local path)")
        try:
            path = self.policy.check_path(uri)  # the encoder's rule: under a root, links too
        except ImageLoadError:
            raise FileRefused(403, f"{uri}: outside the folders the service may read "
                              f"({ROOTS_ENV}); add its folder there to open it full size"
                              ) from None
        try:
            info = os.stat(path)
        except OSError:
            raise FileRefused(404, f"{local_path(uri) or uri}: the file is gone") from None
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(403, f"{uri}: not a regular file")
        return path

    async def _uris(self, ids: list[str]) -> dict[str, str | None]:
        return await self.look_up(ids)

    async def availability(self, ids: list[str]) -> dict[str, str | None]:
        """For each id: None when its file would be served, else the reason it is not.
        Checks paths only (no file is read). Raises FileRefused(400) for too many ids."""
        if len(ids) > MAX_IDS:
            raise FileRefused(400, f"{len(ids)} ids: ask about at most {MAX_IDS} at once")
        uris = await self._uris(ids) if self.serves_files else {}
        answers: dict[str, str | None] = {}
        for doc_id in ids:
            if self.serves_files and doc_id not in uris:
                answers[doc_id] = f"no indexed document has id {doc_id!r}"
                continue
            try:
                await asyncio.to_thread(self._checked_path, doc_id, uris.get(doc_id))
                answers[doc_id] = None
            except FileRefused as refusal:
                answers[doc_id] = refusal.message
        return answers

    async def file(self, doc_id: str) -> ServedFile:
        """The full-size file of an indexed document; FileRefused says why not (403: the
        policy does not let the service read it, or it is over MEMEFLOW_MAX_IMAGE_BYTES;
        404: no such document, or its file is gone; 415: not an image or video memeflow
        reads). The caller closes the file it gets."""
        if not self.serves_files:
            self._checked_path(doc_id, None)  # raises the refusal that names the setting
        uris = await self._uris([doc_id])
        if doc_id not in uris:
            raise FileRefused(404, f"no indexed document has id {doc_id!r}")
        return await asyncio.to_thread(self._read, doc_id, uris[doc_id])

    def _read(self, doc_id: str, uri: str | None) -> ServedFile:
        path = self._checked_path(doc_id, uri)
        name = os.path.basename(local_path(uri or "") or path)
        try:
            content = open_regular(path)
        except FileNotFoundError:
            raise FileRefused(404, f"{local_path(uri or '') or uri}: the file is gone") from None
        except OSError as error:  # no permission, or no longer a regular file
            raise FileRefused(403, f"{uri}: cannot read it: {error.strerror or error}"
                              ) from None
        try:
            return self._served(content, uri or path, name)
        except BaseException:
            content.close()
            raise

    def _served(self, content: BinaryIO, uri: str, name: str) -> ServedFile:
        """The open file as it may go out: a video or an image, within the size limit the
        encoder reads it under (a video's is the larger: MEMEFLOW_MAX_VIDEO_BYTES)."""
        info = os.fstat(content.fileno())
        kind = video_type(content.read(HEADER_BYTES))
        limit, what, setting = ((self.policy.max_video_bytes, "video", MAX_VIDEO_BYTES_ENV)
                                if kind else
                                (self.policy.max_image_bytes, "image", MAX_IMAGE_BYTES_ENV))
        if info.st_size > limit:
            raise FileRefused(403, f"{uri}: {info.st_size} bytes is over the {limit}-byte "
                              f"limit for one {what} ({setting})")
        etag = f'"{info.st_size:x}-{info.st_mtime_ns:x}-{info.st_ino:x}"'
        if kind is None:  # an image: Pillow reads its header from the whole file
            content.seek(0)
            kind = media_type(content.read(limit + 1))
        if kind is None:
            raise FileRefused(415, f"{uri}: not an image or video in a format memeflow reads")
        return ServedFile(content, info.st_size, kind, name, etag)
