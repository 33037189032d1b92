"""Frames of a video (MP4, WebM, MOV, MKV), decoded by PyAV (FFmpeg) one after another.

A frame's time is its presentation time in ms from the stream's start. Frames are decoded
in full (FFmpeg's H.264 and VP9 decoders have no reduced-size mode) by `DECODER_THREADS`
threads, and scaled down by FFmpeg before they become images: a frame that is not kept
costs one 16x16 greyscale copy, or nothing when it is within `MIN_GAP_MS` of the last.
"""

import functools
import io
import time
from fractions import Fraction

import av
import av.container
import av.stream
import av.video.stream
import numpy as np
from av.video.frame import VideoFrame
from PIL import Image

from memeflow.encoder.frames.limits import (
    CUT_DAMAGED,
    DECODER_THREADS,
    FrameLimits,
    Sampled,
    fitted,
)
from memeflow.encoder.frames.sampling import SIGNATURE_SIDE, FrameSampler
from memeflow.formats import VIDEO_FORMAT_NAMES
from memeflow.uris import ImageLoadError


def _open(data: bytes, source: str) -> av.container.InputContainer:
    try:
        return av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise ImageLoadError(f"{source}: truncated or corrupt video, FFmpeg cannot read it "
                             f"({exc})") from None


def _video_stream(container: av.container.InputContainer, source: str
                  ) -> av.video.stream.VideoStream:
    """The first video stream that is a picture sequence, not a cover image."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise ImageLoadError(f"{source}: no video stream (an audio-only file?): nothing to see; "
                         f"send a video ({VIDEO_FORMAT_NAMES}) or an image")


def _signature(frame: VideoFrame) -> np.ndarray:
    return frame.reformat(width=SIGNATURE_SIDE, height=SIGNATURE_SIDE,
                          format="gray").to_ndarray()


def _rgb(frame: VideoFrame, side: int) -> Image.Image:
    width, height = fitted(frame.width, frame.height, side)
    image = frame.to_image(width=width, height=height)
    rotation = frame.rotation  # phones store portrait video as landscape plus a rotation
    return image.rotate(rotation, expand=True) if rotation % 360 else image


def sample_video(data: bytes, *, source: str, limits: FrameLimits, side: int,
                 max_pixels: int | None) -> Sampled:
    """The frames of a video to embed, at most `limits.max_frames`, each at a short side of
    `side` pixels or less. `ImageLoadError` naming `source` for a file FFmpeg cannot read,
    one without a video stream, a codec it has no decoder for, frames over `max_pixels`,
    or one where no frame decodes."""
    with _open(data, source) as container:
        stream = _video_stream(container, source)
        context = stream.codec_context
        if context is None or context.codec is None:
            raise ImageLoadError(f"{source}: FFmpeg has no decoder for this video's codec; "
                                 "convert it to H.264 (MP4) or VP9 (WebM)")
        pixels = context.width * context.height
        if max_pixels is not None and pixels > max_pixels:
            raise ImageLoadError(f"{source}: {context.width}x{context.height} video frames are "
                                 f"over the limit of {max_pixels} pixels")
        context.thread_type = "AUTO"
        context.thread_count = DECODER_THREADS
        start = (stream.start_time or 0) * (stream.time_base or Fraction(0))
        return _decode(container, stream, float(start), source, limits, side)


def _decode(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
            start: float, source: str, limits: FrameLimits, side: int) -> Sampled:
    sampler = FrameSampler(limits.max_frames)
    started = time.monotonic()
    decoded, cut = 0, None
    latest: tuple[int, VideoFrame] | None = None  # the last frame read
    try:
        for frame in container.decode(stream):
            seconds = frame.time
            time_ms = latest[0] if latest else 0
            if seconds is not None:
                time_ms = max(0, round((seconds - start) * 1000))
            cut = limits.cut(time_ms, decoded, time.monotonic() - started)
            if cut:
                break
            decoded += 1
            if sampler.wants(time_ms):
                sampler.offer(time_ms, _signature(frame), functools.partial(_rgb, frame, side))
            latest = (time_ms, frame)
    except (av.FFmpegError, ValueError, OSError) as exc:
        if sampler.count == 0:
            raise _broken(source, exc) from None
        cut = CUT_DAMAGED
    if latest is not None:
        at, last = latest
        sampler.finish(at, functools.partial(_signature, last), functools.partial(_rgb, last, side))
    if sampler.count == 0:
        raise _broken(source, None)
    chosen = sampler.chosen()
    return Sampled([c.image for c in chosen], [c.time_ms for c in chosen], cut)


def _broken(source: str, exc: Exception | None) -> ImageLoadError:
    detail = f" ({exc})" if exc else ""
    return ImageLoadError(f"{source}: truncated or corrupt video, no frame decodes{detail}")
