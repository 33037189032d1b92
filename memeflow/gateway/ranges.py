"""HTTP byte ranges (RFC 9110, section 14) for full-size files, so a browser can seek in a
video without downloading all of it.

One range is answered with 206 and that slice; no Range header, one in another unit, a
malformed one or several ranges are answered with the whole file (a server may ignore a
Range it does not serve, and browsers ask for one range at a time); a range that starts
past the end is unsatisfiable (416, with the file's size in Content-Range).
"""

import re
from dataclasses import dataclass

# One range: `first-last`, `first-` (to the end) or `-suffix` (the last `suffix` bytes);
# positions of at most 18 digits (an exabyte): a longer number is a malformed range (and
# Python refuses int() of more than 4,300 digits).
_ONE_RANGE = re.compile(r"(\d{0,18})-(\d{0,18})")


class RangeNotSatisfiable(Exception):
    """The one range asked for lies outside the file (answer 416)."""


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start` to `end` of a file of `size` bytes, both ends included."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


def requested_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range of a `Range` header within a file of `size` bytes; None when the
    whole file is to be sent; RangeNotSatisfiable when the range starts past the end (or
    asks for the last 0 bytes). A last byte past the end is cut at the end."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    found = _ONE_RANGE.fullmatch(spec.strip().replace(" ", ""))
    if found is None or found.group(1) == found.group(2) == "":
        return None
    first, last = found.group(1), found.group(2)
    if first == "":  # a suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = int(first)
    if last != "" and int(last) < start:
        return None  # not a valid range at all: ignored, like any malformed one
    end = size - 1 if last == "" else int(last)
    if start >= size:
        raise RangeNotSatisfiable(header)
    return ByteRange(start, min(end, size - 1), size)
