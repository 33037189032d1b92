"""Where a document's image lives: URI schemes, local paths and `file:` URLs, and the
error every stage uses for an image it cannot read.

A document is identified by its uri, so one file must always get the same one, whatever
directory the client ran in or how the path was spelled. A local file's uri is its
absolute path, except when the path is not UTF-8 (a Latin-1 `caf\xe9.jpg` from an old
disk): JSON and protobuf carry only Unicode, so such a path becomes a `file://` URL with
its bytes percent-encoded (RFC 8089), which `local_path` turns back into the same bytes.
"""

import os
import re
import urllib.parse

SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
IMAGE_URL_PREFIXES = ("http://", "https://", "data:image/", "file://")


class ImageLoadError(ValueError):
    """A document's image could not be read; str(err) names the input and the reason.

    A path that is not UTF-8 is shown with its odd bytes as `\\xNN`, so the message can
    travel on a document (protobuf strings must be valid UTF-8).
    """

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))


def printable(text: str) -> str:
    """`text` with the undecodable bytes of an OS path (lone surrogates) as `\\xNN`:
    safe to print to a strict UTF-8 stream or to put in JSON and protobuf."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no OS call made: show it as a code point
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


# What a terminal acts on rather than shows: C0 and C1 controls and DEL (escape sequences
# that clear the screen or retitle the window, newlines that split a line), line and
# paragraph separators, and the bidirectional overrides that reorder what is shown
# (CVE-2021-42574). Zero-width joiners stay: emoji are made of them.
_UNSAFE = {
    **{code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]},
    **{code: f"\\u{code:04x}" for code in [0x061C, 0x200E, 0x200F, 0x2028, 0x2029,
                                           *range(0x202A, 0x202F), *range(0x2066, 0x206A)]},
    0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r",
}


def terminal_safe(text: object) -> str:
    """`text` (anything, as `str()`) fit for a terminal line: `printable`, then every
    control character, line separator and bidi override escaped (`\\x1b`, `\\n`,
    `\\u202e`), so a file name, tag or message from outside can neither move the cursor,
    clear the screen, retitle the window, nor split one line into two."""
    return printable(str(text)).translate(_UNSAFE)


def lone_surrogate_text(value: object) -> str | None:
    """The first string in `value` (nested lists, tuples and dict keys and values) that is
    not Unicode text (holds a lone surrogate: an undecodable byte of a command line or a
    `\\udXXX` JSON escape), which neither JSON's UTF-8 nor protobuf can carry; else None.
    Iterative, so no nesting exhausts the stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def path_uri(path: str | os.PathLike[str]) -> str:
    """The uri of a local file: its absolute path as given (links are not resolved, `~`
    is expanded), or, when that path is not UTF-8, `file://` and its percent-encoded bytes.
    """
    absolute = os.path.abspath(os.path.expanduser(os.fspath(path)))
    try:
        absolute.encode("utf-8")
        return absolute
    except UnicodeEncodeError:
        return "file://" + urllib.parse.quote(os.fsencode(absolute), safe="/")


def local_path(uri: str) -> str | None:
    """The OS path (str, undecodable bytes as surrogates) of a local path or `file:` uri,
    or None for other schemes (http, data...). Raises ImageLoadError for a file URL of
    another host or without a path."""
    if not uri:
        return None
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
        raw = os.fsdecode(urllib.parse.unquote_to_bytes(parts.path))
        return os.path.abspath(os.path.expanduser(raw))
    if kind:
        return None
    return os.path.abspath(os.path.expanduser(uri))


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
    """The one uri of a local path or `file:` URL (see `path_uri`); other URIs unchanged.

    Documents are identified by their uri, so one file must always get the same one,
    whatever directory the client ran in or how the path was spelled. Read the file at
    `local_path(uri)`: the result is a `file://` URL when the path is not UTF-8.
    """
    path = local_path(uri)
    return uri if path is None else path_uri(path)


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
    return uri is not None and scheme(uri) == "data"


def names_image(text: str) -> bool:
    """Text that is an image's URL rather than words: an http(s), data:image/ or file: URL."""
    return text.lower().startswith(IMAGE_URL_PREFIXES)
