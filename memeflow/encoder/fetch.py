"""Reading a document's image bytes: a blob, a local file, a `data:` URI or an http(s) URL.

Every failure is an `ImageLoadError` naming the input and the reason.
"""

import base64
import binascii
import http.client
import os
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import IO

from memeflow.regular_files import NotRegularFile, read_regular
from memeflow.uris import (
    ImageLoadError,
    describe_source,
    is_data_uri,
    is_fetched,
    is_local,
    local_path,
    scheme,
)

CHUNK = 1 << 16
USER_AGENT = "memeflow/0.1 (+image fetch)"


def _too_large(source: str, size: int, max_bytes: int) -> ImageLoadError:
    return ImageLoadError(
        f"{source}: {size} bytes is over the {max_bytes}-byte limit for one image or video"
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
    """A local file's bytes; refuses what is not a regular file, never blocking on one
    (`memeflow.regular_files`)."""
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
        data = read_regular(path, max_bytes)  # the file may have grown since stat
    except NotRegularFile as exc:  # swapped for a FIFO or device since the stat
        raise ImageLoadError(f"{path} is {exc.strerror}") from None
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
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
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
        url, headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5"}
    )
    deadline = time.monotonic() + 4 * timeout
    try:
        with _opener(redirect_check).open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise _too_large(url, int(length), max_bytes)
            chunks: list[bytes] = []
            total = 0
            while chunk := response.read(CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise ImageLoadError(
                        f"{url}: more than {max_bytes} bytes, over the limit for one image or video"
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
    """The raw bytes of an image or video: `blob` if given, else what `uri` points at.

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
    if is_data_uri(uri):
        return _read_data_uri(uri, max_bytes)
    if is_fetched(uri):
        return _fetch(uri, max_bytes, timeout, redirect_check)
    if is_local(uri):
        return _read_file(local_path(uri) or uri, max_bytes)
    raise ImageLoadError(
        f"{uri}: unsupported URI scheme '{scheme(uri)}:'; use a local path, file://, "
        "http(s):// or a data: URI"
    )
