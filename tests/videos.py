"""Small videos made from meme images with PyAV, for the tests of video memes."""

from pathlib import Path

import av
import numpy as np
from PIL import Image

# Container -> the codec it is written with (VP8 for WebM: Chromium plays it without
# the proprietary codecs that H.264 needs).
CODECS = {"webm": "libvpx", "mkv": "libvpx", "mp4": "mpeg4", "mov": "mpeg4"}


def write_video(path: Path, images: list[Path], seconds_each: float = 2.0, fps: int = 4,
                side: int = 96) -> Path:
    """`path` (its suffix picks the container) showing each image for `seconds_each`
    seconds, `side` x `side` pixels at `fps` frames per second."""
    frames = [np.asarray(Image.open(image).convert("RGB").resize((side, side)))
              for image in images]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODECS[path.suffix[1:]], rate=fps)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        for pixels in frames:
            for _ in range(round(seconds_each * fps)):
                for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
