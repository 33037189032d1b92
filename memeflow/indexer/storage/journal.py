"""The frame format of the store's snapshot and log: `MAGIC | payload length (u64 LE) |
crc32 (u32 LE) | payload`, where a payload is one JSON header line followed by raw
little-endian float32 vectors. A crash can only tear the last frame of a file; the
checksum finds it.
"""

import json
import struct
import zlib
from typing import Any

import numpy as np

MAGIC = b"MFv1"
FRAME = struct.Struct("<4sQI")  # magic, payload length, crc32 of the payload


def frame(header: dict[str, Any], vectors: np.ndarray | None = None) -> list[bytes | memoryview]:
    """A frame as parts, so a large snapshot is written without copying it into one buffer."""
    parts: list[bytes | memoryview] = [json.dumps(header, separators=(",", ":")).encode() + b"\n"]
    if vectors is not None and vectors.size:
        parts.append(np.ascontiguousarray(vectors, dtype="<f4").data.cast("B"))
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return [FRAME.pack(MAGIC, sum(len(part) for part in parts), crc), *parts]


def frames(data: bytes, pos: int = 0) -> tuple[list[tuple[int, int]], int]:
    """(start, end) of each whole, checksum-valid payload from `pos` on, and where they stop."""
    view, spans = memoryview(data), []
    while pos + FRAME.size <= len(data):
        magic, length, crc = FRAME.unpack_from(data, pos)
        start, end = pos + FRAME.size, pos + FRAME.size + length
        if magic != MAGIC or end > len(data) or zlib.crc32(view[start:end]) != crc:
            break
        spans.append((start, end))
        pos = end
    return spans, pos


def decode(data: bytes, start: int, end: int) -> tuple[dict[str, Any], np.ndarray]:
    """The payload at data[start:end]: its JSON header and its vectors, flat float32 (a view
    into `data`). ValueError when it is not a header line followed by whole floats."""
    newline = data.find(b"\n", start, end)
    if newline < 0 or (end - newline - 1) % 4:
        raise ValueError("malformed payload")
    count = (end - newline - 1) // 4
    vectors = np.frombuffer(data, "<f4", count, newline + 1) if count else np.empty(0, "<f4")
    return json.loads(data[start:newline]), vectors


def valid_frame_after(data: bytes, pos: int) -> bool:
    """A crash only ever tears the last record: a good one after a bad one means damage."""
    while (pos := data.find(MAGIC, pos + 1)) >= 0:
        if frames(data, pos)[0]:
            return True
    return False
