"""Animated images and videos: one document, a vector per sampled frame.

`read_frames` gives the frames of a file to embed (None for a still image, which the
encoder decodes as before); `representative` picks the frame that stands for the file.
Modules: `sampling` (which frames), `animated` (GIF, WebP, APNG through Pillow), `video`
(MP4, WebM, MOV, MKV through PyAV), `limits` (what bounds a file's decoding).
"""

import numpy as np

from memeflow.encoder.frames.animated import open_animated, sample_animated
from memeflow.encoder.frames.limits import FRAMES_CUT_TAG, FrameLimits, Sampled
from memeflow.encoder.frames.video import sample_video
from memeflow.formats import looks_like_video

__all__ = ["FRAMES_CUT_TAG", "FrameLimits", "Sampled", "looks_like_video", "read_frames",
           "representative"]


def read_frames(data: bytes, *, source: str, limits: FrameLimits, side: int,
                max_pixels: int | None) -> Sampled | None:
    """The sampled frames of a video or an animated image; None for anything else (a still
    image, or bytes Pillow cannot read: the still decoder names the problem).
    `ImageLoadError` naming `source` for a video or animation that cannot be read."""
    if looks_like_video(data):
        return sample_video(data, source=source, limits=limits, side=side,
                            max_pixels=max_pixels)
    animation = open_animated(data)
    if animation is None:
        return None
    with animation:
        return sample_animated(animation, source=source, limits=limits, side=side,
                               max_pixels=max_pixels)


def representative(frames: np.ndarray) -> int:
    """The row of `frames` ((k, dim) unit vectors) closest to their normalised mean: the
    frame that stands for the file (its `embedding`, thumbnail and perceptual hash)."""
    mean = frames.astype(np.float64).mean(axis=0)
    norm = np.linalg.norm(mean)
    if not norm > 0:  # opposite frames cancel out: the first stands for the file
        return 0
    return int(np.argmax(frames.astype(np.float64) @ (mean / norm)))
