"""Reading image bytes from wherever a document points, and decoding them for CLIP.

Every failure becomes an `ImageLoadError` whose message names the input and the reason,
so one bad meme is reported on its document instead of failing a whole request. The
decoder runs in worker threads: it changes no Pillow globals (the decompression-bomb
limit and `LOAD_TRUNCATED_IMAGES` stay as they are) and installs no warning filters.
"""

import base64
import binascii
import functools
import http.client
import io
import logging
import os
import re
import stat
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
    | {".avif"}
)

CLIP_SIDE = 224  # the side of CLIP's input square: decoding finer than that is waste
# Raster formats we let Pillow try, in this order. Anything else (EPS, which runs
# Ghostscript; PSD; exotic formats with weak signatures) is refused as "not an image".
_WANTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO", "AVIF")
_FORMAT_NAMES = "JPEG, PNG, GIF, WebP, BMP, TIFF or AVIF"

# What Pillow raises for broken files: a truncated stream is an OSError, a bad header a
# SyntaxError, a short field a struct.error, an early end an EOFError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError)

_UNSIGNED_16 = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_CHUNK = 1 << 16
_USER_AGENT = "memeflow/0.1 (+image fetch)"


class ImageLoadError(ValueError):
    """A document's image could not be read; str(err) names the input and the reason."""


def describe_source(uri: str | None, blob: bytes | None) -> str:
    """Short human name of where an image came from, for messages (cheap: no decoding)."""
    if uri:
        if uri[:5].lower() != "data:":
            return uri
        header, sep, payload = uri[5:].partition(",")
        if not sep:
            return f"data:{header[:40]}… (malformed data URI)"
        if header.lower().endswith(";base64"):
            size = len(payload.rstrip("=")) * 3 // 4
        else:
            size = len(payload) - 2 * payload.count("%")
        return f"data:{header[:60]},… ({size} bytes)"
    if blob is not None:
        return f"blob ({len(blob)} bytes)"
    return "document without image"


def _scheme(uri: str) -> str:
    """The lower-case URI scheme, or '' for a local path (`C:` style drives do not occur)."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else ""


def normalise_uri(uri: str) -> str:
    """An absolute local path for paths and `file:` URLs; other URIs unchanged.

    Documents are identified by their uri, so one file must always get the same one,
    whatever directory the client ran in or how the path was spelled.
    """
    if not uri:
        return uri
    scheme = _scheme(uri)
    if scheme == "file":
        parts = urllib.parse.urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise ImageLoadError(
                f"{uri}: file URL names host {parts.netloc!r}; only local files "
                "(file:///path) can be read"
            )
        if not parts.path:
            raise ImageLoadError(f"{uri}: file URL has no path")
        return os.path.abspath(os.path.expanduser(urllib.request.url2pathname(parts.path)))
    if scheme:
        return uri
    return os.path.abspath(os.path.expanduser(uri))


def _too_large(source: str, size: int, max_bytes: int) -> ImageLoadError:
    return ImageLoadError(
        f"{source}: {size} bytes is over the {max_bytes}-byte limit for one image"
    )


def _read_data_uri(uri: str, max_bytes: int) -> bytes:
    """Bytes of an RFC 2397 `data:` URI, base64 or percent-encoded."""
    name = describe_source(uri, None)
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise ImageLoadError(f"{name}: expected 'data:[<mime>][;base64],<data>'")
    if header.strip().lower().endswith(";base64") or header.strip().lower() == "base64":
        text = urllib.parse.unquote(payload) if "%" in payload else payload
        text = "".join(text.split()).translate(str.maketrans("-_", "+/"))
        if len(text) * 3 // 4 > max_bytes + 2:
            raise _too_large(name, len(text) * 3 // 4, max_bytes)
        try:
            data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageLoadError(f"{name}: malformed data URI, bad base64 ({exc})") from None
    else:
        data = urllib.parse.unquote_to_bytes(payload)
    if not data:
        raise ImageLoadError(f"{name}: data URI holds no data")
    if len(data) > max_bytes:
        raise _too_large(name, len(data), max_bytes)
    return data


def _read_file(path: str, max_bytes: int) -> bytes:
    """A local file's bytes; refuses what is not a regular file before opening it."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ImageLoadError(f"file not found: {path}") from None
    except PermissionError:
        raise ImageLoadError(f"permission denied reading {path}") from None
    except OSError as exc:
        raise ImageLoadError(f"cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageLoadError(f"{path} is a directory, not an image file: name a file inside it")
    if not stat.S_ISREG(info.st_mode):
        raise ImageLoadError(f"{path} is not a regular file (device, pipe or socket)")
    if info.st_size > max_bytes:
        raise _too_large(path, info.st_size, max_bytes)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since stat
    except PermissionError:
        raise ImageLoadError(f"permission denied reading {path}") from None
    except OSError as exc:
        raise ImageLoadError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise ImageLoadError(f"empty file (0 bytes): {path}")
    if len(data) > max_bytes:
        raise _too_large(path, len(data), max_bytes)
    return data


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Asks `check` about every redirect target before following it."""

    def __init__(self, check: Callable[[str], None] | None) -> None:
        self.check = check

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: object,
        newurl: str,
    ) -> urllib.request.Request | None:
        if self.check is not None:
            self.check(urllib.parse.urljoin(req.full_url, newurl))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(redirect_check: Callable[[str], None] | None = None) -> urllib.request.OpenerDirector:
    """HTTP(S) only: a redirect must not lead the service to ftp: or file: URLs."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        _CheckedRedirects(redirect_check),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _fetch(
    url: str, max_bytes: int, timeout: float, redirect_check: Callable[[str], None] | None = None
) -> bytes:
    """Download at most `max_bytes`; `timeout` bounds connecting, each read and, four times
    over, the whole download (a server trickling bytes cannot hold a worker forever)."""
    request = urllib.request.Request(
        url, headers={"User-Agent": _USER_AGENT, "Accept": "image/*,*/*;q=0.5"}
    )
    deadline = time.monotonic() + 4 * timeout
    try:
        with _opener(redirect_check).open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise _too_large(url, int(length), max_bytes)
            chunks: list[bytes] = []
            total = 0
            while chunk := response.read(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise ImageLoadError(
                        f"{url}: more than {max_bytes} bytes, over the limit for one image"
                    )
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise ImageLoadError(f"{url}: download took over {4 * timeout:g} s")
    except urllib.error.HTTPError as exc:
        exc.close()
        raise ImageLoadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ImageLoadError(f"{url}: cannot fetch ({exc.reason})") from None
    except TimeoutError:
        raise ImageLoadError(f"{url}: no answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ImageLoadError(f"{url}: download failed ({exc!r})") from None
    if not total:
        raise ImageLoadError(f"{url}: server sent an empty body")
    return b"".join(chunks)


def read_source(
    uri: str | None,
    blob: bytes | None,
    *,
    max_bytes: int = 50 * 2**20,
    timeout: float = 10.0,
    redirect_check: Callable[[str], None] | None = None,
) -> bytes:
    """The raw bytes of an image: `blob` if given, else what `uri` points at.

    `redirect_check(target)` may raise ImageLoadError to refuse an HTTP redirect.
    """
    if blob is not None:
        if not blob:
            raise ImageLoadError("blob (0 bytes): empty image data")
        if len(blob) > max_bytes:
            raise _too_large(describe_source(None, blob), len(blob), max_bytes)
        return bytes(blob)
    if not uri:
        raise ImageLoadError("no image given: set `uri` (path, URL or data: URI) or `blob`")
    scheme = _scheme(uri)
    if scheme == "data":
        return _read_data_uri(uri, max_bytes)
    if scheme in ("http", "https"):
        return _fetch(uri, max_bytes, timeout, redirect_check)
    if scheme in ("", "file"):
        return _read_file(normalise_uri(uri), max_bytes)
    raise ImageLoadError(
        f"{uri}: unsupported URI scheme '{scheme}:'; use a local path, file://, "
        "http(s):// or a data: URI"
    )


@functools.cache
def _formats() -> tuple[str, ...]:
    """The wanted formats this Pillow build has: `Image.open` fails on unknown names."""
    Image.init()
    return tuple(name for name in _WANTED_FORMATS if name in Image.OPEN)


def _not_an_image(data: bytes, source: str) -> ImageLoadError:
    """Name the usual suspects (SVG, an HTML page for a URL) so users know what to fix."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    hint = ""
    if b"<svg" in head or (head.startswith(b"<?xml") and b"<svg" in data[:8192].lower()):
        hint = ": this is an SVG (vector) file; convert it to PNG or JPEG"
    elif head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        hint = ": this is an HTML page; link the image itself, not the page showing it"
    elif not data:
        hint = ": no data (0 bytes)"
    return ImageLoadError(f"{source}: not an image Pillow can read ({_FORMAT_NAMES}){hint}")


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit and float greyscale to 0..255; `convert('L')` would clip."""
    values = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low = float(values.min()) if values.size else 0.0
    high = float(values.max()) if values.size else 0.0
    if img.mode in _UNSIGNED_16:
        scale = 65535.0
    elif img.mode == "F" and low >= 0.0 and high <= 1.0:
        scale = 1.0  # float images are usually 0..1
    elif low >= 0.0 and high <= 255.0:
        scale = 255.0
    elif low >= 0.0 and high <= 65535.0:
        scale = 65535.0  # 'I' from a 16-bit file
    else:
        values, scale = values - low, (high - low) or 1.0
    pixels = np.clip(np.rint(values * (255.0 / scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    """Use the embedded ICC profile when there is one: naive CMYK maths shifts colours."""
    icc = img.info.get("icc_profile")
    if icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                img, profile, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
            logger.debug("ignoring unusable CMYK ICC profile: %s", exc)
    return img.convert("RGB")


def _flatten(img: Image.Image) -> Image.Image:
    """Transparent pixels become white, as a meme shows on a page, not black or noise."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    """An RGB image from any mode Pillow decodes to."""
    mode = img.mode
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    if mode in _UNSIGNED_16 or mode in ("I", "F") or mode.startswith("I;"):
        return _to_8bit(img).convert("RGB")
    if mode == "La":
        img, mode = img.convert("LA"), "LA"  # premultiplied; Pillow has no La -> RGBA
    if mode in _ALPHA_MODES or "transparency" in img.info:
        return _flatten(img)
    if mode == "RGB":
        return img
    return img.convert("RGB")


def _orient(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation (phone photos); a broken EXIF block is ignored, not fatal."""
    try:
        return ImageOps.exif_transpose(img)
    except (*_DECODE_ERRORS, KeyError, TypeError) as exc:
        logger.debug("ignoring unreadable EXIF orientation: %s", exc)
        return img.copy()


def decode_image(
    data: bytes, *, source: str = "image", min_side: int = CLIP_SIDE, max_pixels: int | None = None
) -> Image.Image:
    """Decode bytes into an RGB PIL image ready for CLIP preprocessing.

    The first frame of an animation is used; a JPEG is decoded at a reduced scale when
    that keeps its shorter side >= `min_side` (CLIP shrinks it to 224 anyway). Images of
    more than `max_pixels` (default: Pillow's decompression-bomb limit) are refused.
    """
    if not data:
        raise ImageLoadError(f"{source}: empty image data (0 bytes)")
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with Image.open(io.BytesIO(data), formats=_formats()) as img:
            pixels = img.width * img.height
            if limit is not None and pixels > limit:
                raise ImageLoadError(
                    f"{source}: {img.width}x{img.height} = {pixels} pixels is over the "
                    f"decompression-bomb limit of {limit} pixels; scale the image down"
                )
            if min_side > 0:
                img.draft("RGB", (min_side, min_side))  # JPEG only: 1/2, 1/4, 1/8 scale
            img.load()
            oriented = _orient(img)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise _not_an_image(data, source) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{source}: image too large to decode safely ({exc})") from None
    except _DECODE_ERRORS as exc:
        raise ImageLoadError(f"{source}: truncated or corrupt image ({exc})") from None
    try:
        return _to_rgb(oriented)
    except (ValueError, OSError) as exc:
        raise ImageLoadError(
            f"{source}: cannot convert a {oriented.mode} image to RGB ({exc})"
        ) from None


def central_crop(img: Image.Image, max_ratio: float = 4.0) -> Image.Image:
    """The centre of a very long or tall image, at most `max_ratio` times its short side.

    CLIP scales the short side to 224 and keeps the central square; on a 10000x1 strip that
    first scaling makes a 2,240,000x224 image (about a minute and 6 GB). Cropping the long
    side beforehand keeps that central square and costs nothing.
    """
    width, height = img.size
    short, long_side = min(width, height), max(width, height)
    keep = max(1, round(short * max_ratio))
    if long_side <= keep:
        return img
    start = (long_side - keep) // 2
    box = (start, 0, start + keep, height) if width > height else (0, start, width, start + keep)
    return img.crop(box)
