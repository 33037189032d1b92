"""Where a document's image lives: URI schemes, local paths and `file:` URLs, and the
error every stage uses for an image it cannot read.

A document is identified by its uri, so one file must always get the same one, whatever
directory the client ran in or how the path was spelled.
"""

import os
import re
import urllib.parse
import urllib.request

SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
IMAGE_URL_PREFIXES = ("http://", "https://", "data:image/", "file://")


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




def scheme(uri: str) -> str:
    """The lower-case URI scheme, or '' for a local path (`C:` style drives do not occur)."""
    match = SCHEME.match(uri)
    return match.group(1).lower() if match else ""


def normalise_uri(uri: str) -> str:
    """An absolute local path for paths and `file:` URLs; other URIs unchanged.

    Documents are identified by their uri, so one file must always get the same one,
    whatever directory the client ran in or how the path was spelled.
    """
    if not uri:
        return uri
    kind = scheme(uri)
    if kind == "file":
        parts = urllib.parse.urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise ImageLoadError(
                f"{uri}: file URL names host {parts.netloc!r}; only local files "
                "(file:///path) can be read"
            )
        if not parts.path:
            raise ImageLoadError(f"{uri}: file URL has no path")
        return os.path.abspath(os.path.expanduser(urllib.request.url2pathname(parts.path)))
    if kind:
        return uri
    return os.path.abspath(os.path.expanduser(uri))


LOCAL_SCHEMES = ("", "file")  # a path or a file: URL: a file on the machine that reads it
FETCHED_SCHEMES = ("http", "https")


def is_local(uri: str) -> bool:
    """A local path or a `file:` URL (read from the disk of whoever reads the image)."""
    return scheme(uri) in LOCAL_SCHEMES


def is_fetched(uri: str) -> bool:
    """An `http(s):` URL, which the encoder fetches when its access policy allows."""
    return scheme(uri) in FETCHED_SCHEMES


def is_data_uri(uri: str | None) -> bool:
    """A `data:` URI: the image bytes themselves, never a place to name a document by."""
    return bool(uri) and scheme(uri) == "data"


def names_image(text: str) -> bool:
    """Text that is an image's URL rather than words: an http(s), data:image/ or file: URL."""
    return text.lower().startswith(IMAGE_URL_PREFIXES)
