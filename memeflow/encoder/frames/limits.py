"""What bounds the decoding of one animated image or video, and what it gives back.

A file is read until the first of: its end, `max_seconds` of it, `max_decoded` frames, or
`budget_seconds` of wall time. Stopping early is no error: the document is indexed by the
frames read, and its `frames_cut` tag says which limit stopped it (README, "Animated
images and videos").
"""

from dataclasses import dataclass

from PIL import Image

from memeflow.config import DEFAULT_MAX_FRAMES, DEFAULT_MAX_SECONDS
from memeflow.fields import FRAMES_CUT_TAG

__all__ = ["FRAMES_CUT_TAG", "FrameLimits", "Sampled", "fitted"]
# Its values: which limit stopped the decoding before the end of the file.
CUT_SECONDS = "seconds"  # only the first `max_seconds` were read (a long video)
CUT_FRAMES = "frames"  # `max_decoded` frames were decoded (e.g. a GIF of 20,000 frames)
CUT_TIME = "time"  # decoding took `budget_seconds` (a slow codec, a loaded machine)
CUT_DAMAGED = "damaged"  # the file broke off (truncated or corrupt) after some frames

MAX_DECODED_FRAMES = 5000  # a 20,000-frame GIF stops here; 2 min of 30 fps video is 3,600
DECODE_BUDGET_SECONDS = 20.0  # wall time one file may decode for (a worker thread each)
DECODER_THREADS = 2  # FFmpeg's threads per video


@dataclass(frozen=True)
class FrameLimits:
    """max_frames: frames embedded per file; max_seconds: how much of a file is read;
    max_decoded: frames decoded per file; budget_seconds: wall time per file."""

    max_frames: int = DEFAULT_MAX_FRAMES
    max_seconds: float = DEFAULT_MAX_SECONDS
    max_decoded: int = MAX_DECODED_FRAMES
    budget_seconds: float = DECODE_BUDGET_SECONDS

    def cut(self, time_ms: int, decoded: int, elapsed: float) -> str | None:
        """Which limit stops the decoding before a frame at `time_ms` (ms from the start),
        after `decoded` frames and `elapsed` seconds of wall time; None: read it. The first
        frame is always read, however slow the machine."""
        if time_ms > self.max_seconds * 1000:
            return CUT_SECONDS
        if decoded >= self.max_decoded:
            return CUT_FRAMES
        if decoded and elapsed > self.budget_seconds:
            return CUT_TIME
        return None


@dataclass
class Sampled:
    """The frames of one file to embed: RGB images (short side about the `side` asked for,
    never enlarged), their times in ms from the file's start (ascending), and which limit
    cut the decoding (None: the whole file was read)."""

    images: list[Image.Image]
    times_ms: list[int]
    cut: str | None = None


def fitted(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) scaled down so the short side is `side`; unchanged if already smaller."""
    short = min(width, height)
    if short <= side:
        return width, height
    scale = side / short
    return max(1, round(width * scale)), max(1, round(height * scale))
