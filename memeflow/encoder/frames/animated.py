"""Frames of an animated GIF, WebP or PNG (APNG), decoded by Pillow one after another.

A frame's time is the sum of the durations of the frames before it. A duration of 10 ms
or less (or none) counts as 100 ms, as browsers show it. Frames of a GIF are deltas on
the ones before, so every frame up to the last one read is decoded; `FrameLimits` bounds
how many.
"""

import functools
import io
import time

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from memeflow.encoder.decode import DECODE_ERRORS, to_rgb
from memeflow.encoder.frames.limits import (
    CUT_DAMAGED,
    FrameLimits,
    Sampled,
    fitted,
)
from memeflow.encoder.frames.sampling import SIGNATURE_SIDE, FrameSampler
from memeflow.uris import ImageLoadError

ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")  # not multi-page TIFF: pages are no animation
DEFAULT_DURATION_MS = 100


def open_animated(data: bytes) -> Image.Image | None:
    """The opened image when `data` is an animation of more than one frame, else None."""
    try:
        image = Image.open(io.BytesIO(data), formats=ANIMATED_FORMATS)
    except (UnidentifiedImageError, *DECODE_ERRORS):
        return None
    try:
        animated = bool(getattr(image, "is_animated", False))
    except DECODE_ERRORS:  # a broken second frame: the still decoder reads the first
        animated = False
    if not animated:
        image.close()
        return None
    return image


def _duration(frame: Image.Image) -> int:
    duration = frame.info.get("duration")
    if not isinstance(duration, int | float) or duration <= 10:
        return DEFAULT_DURATION_MS
    return int(duration)


def _signature(frame: Image.Image) -> np.ndarray:
    small = frame.convert("L").resize((SIGNATURE_SIDE, SIGNATURE_SIDE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8)


def _rgb(frame: Image.Image, side: int) -> Image.Image:
    rgb = to_rgb(frame)
    size = fitted(rgb.width, rgb.height, side)
    return rgb.resize(size, Image.Resampling.BILINEAR) if size != rgb.size else rgb.copy()


def sample_animated(image: Image.Image, *, source: str, limits: FrameLimits, side: int,
                    max_pixels: int | None) -> Sampled:
    """The frames of an opened animation to embed, at most `limits.max_frames`, each at
    a short side of `side` pixels or less. `ImageLoadError` naming `source` when it is
    over `max_pixels` or no frame decodes."""
    pixels = image.width * image.height
    if max_pixels is not None and pixels > max_pixels:
        raise ImageLoadError(f"{source}: {image.width}x{image.height} = {pixels} pixels is "
                             f"over the decompression-bomb limit of {max_pixels} pixels")
    sampler = FrameSampler(limits.max_frames)
    started = time.monotonic()
    time_ms, decoded, cut = 0, 0, None
    latest: tuple[int, Image.Image] | None = None  # the last frame read
    try:
        for frame in ImageSequence.Iterator(image):
            cut = limits.cut(time_ms, decoded, time.monotonic() - started)
            if cut:
                break
            decoded += 1
            if sampler.wants(time_ms):
                sampler.offer(time_ms, _signature(frame), functools.partial(_rgb, frame, side))
            latest = (time_ms, frame.copy())
            time_ms += _duration(frame)
    except DECODE_ERRORS as exc:
        if sampler.count == 0:
            raise ImageLoadError(f"{source}: truncated or corrupt animation ({exc})") from None
        cut = CUT_DAMAGED
    if latest is not None:
        at, last = latest
        sampler.finish(at, functools.partial(_signature, last), functools.partial(_rgb, last, side))
    chosen = sampler.chosen()
    return Sampled([c.image for c in chosen], [c.time_ms for c in chosen], cut)
