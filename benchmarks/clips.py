"""Short videos and animated images made from still pictures, for the tests and
bench_frames.py: real files, encoded by PyAV (FFmpeg) and Pillow, small and quick to make.

A clip is a list of scenes: (picture, seconds); each scene shows its picture, still, for
that long.
"""

import io
from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np
from PIL import Image

# container format and codec of each video suffix
VIDEO_KINDS = {".mp4": ("mp4", "libx264"), ".webm": ("webm", "libvpx-vp9"),
               ".mov": ("mov", "libx264"), ".mkv": ("matroska", "libx264")}
Scene = tuple[Image.Image, float]


def square(picture: Image.Image, side: int) -> Image.Image:
    """The picture's central square at `side` pixels, RGB: a scene of a clip as CLIP sees it
    (short side scaled to 224, centre kept)."""
    rgb = picture.convert("RGB")
    short = min(rgb.size)
    left, top = (rgb.width - short) // 2, (rgb.height - short) // 2
    return rgb.crop((left, top, left + short, top + short)).resize((side, side),
                                                                    Image.Resampling.BICUBIC)


def video_bytes(scenes: Sequence[Scene], suffix: str = ".mp4", fps: int = 5, side: int = 224,
                quality: int = 18) -> bytes:
    """A video of `scenes` at `fps` frames per second, `side` x `side` pixels; `quality` is
    the codec's constant rate factor (lower: closer to the pictures)."""
    container_format, codec = VIDEO_KINDS[suffix]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps, options={"crf": str(quality)})
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        for picture, seconds in scenes:
            pixels = np.asarray(square(picture, side))
            for _ in range(max(1, round(seconds * fps))):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def sparse_video_bytes(seconds: float, every: float = 60.0, side: int = 32) -> bytes:
    """A long MP4 that is cheap to make: one tiny frame every `every` seconds (a 3-hour
    film is 180 frames), grey levels stepping so every frame differs."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1)
        for index in range(int(seconds // every) + 1):
            level = (index * 47) % 256
            frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), level, np.uint8),
                                               format="rgb24")
            frame.pts = round(index * every)
            frame.time_base = Fraction(1, 1)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def audio_only_bytes(seconds: float = 1.0) -> bytes:
    """An MP4 holding only an AAC sound track: no picture."""
    buffer = io.BytesIO()
    rate = 16000
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        samples = np.sin(np.linspace(0, 440 * 2 * np.pi * seconds, int(rate * seconds)))
        chunk = 1024
        for start in range(0, len(samples), chunk):
            part = (samples[start : start + chunk] * 0.3).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(part, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def animated_bytes(scenes: Sequence[Scene], image_format: str = "GIF", side: int = 160,
                   frame_ms: int = 100) -> bytes:
    """An animated GIF, PNG (APNG) or WebP of `scenes`, one frame per `frame_ms`."""
    frames = [square(picture, side) for picture, seconds in scenes
              for _ in range(max(1, round(seconds * 1000 / frame_ms)))]
    buffer = io.BytesIO()
    options = {"lossless": True} if image_format == "WEBP" else {}
    frames[0].save(buffer, format=image_format, save_all=True, append_images=frames[1:],
                   duration=frame_ms, loop=0, **options)
    return buffer.getvalue()
