"""Which frames of an animated image or a video are read, and how each kind of bad or
oversized file is stopped: real files made by PyAV and Pillow, decoded for real."""

import io
import os
import time

import numpy as np
import pytest
from clips import (
    VIDEO_KINDS,
    animated_bytes,
    audio_only_bytes,
    sparse_video_bytes,
    video_bytes,
)
from PIL import Image

from memeflow.encoder.access import AccessPolicy
from memeflow.encoder.decode import decode_image
from memeflow.encoder.frames import FrameLimits, looks_like_video, read_frames
from memeflow.encoder.frames.limits import CUT_DAMAGED, CUT_FRAMES, CUT_SECONDS, CUT_TIME
from memeflow.encoder.frames.sampling import FrameSampler, choose_frames
from memeflow.uris import ImageLoadError
from tests.conftest import MEMES

DRAKE, AAG, ACKBAR = (Image.open(MEMES / name / "default.jpg") for name in
                      ("drake", "aag", "ackbar"))
LIMITS = FrameLimits()


def frames_of(data: bytes, limits: FrameLimits = LIMITS, side: int = 224,
              max_pixels: int | None = None):
    return read_frames(data, source="clip", limits=limits, side=side, max_pixels=max_pixels)


def test_choose_frames_keeps_the_first_the_last_and_a_cut_between_grid_points() -> None:
    times = list(range(0, 100_000, 40))  # 2,500 frames of 40 ms
    changes = [0.01] * len(times)
    changes[1517] = 0.6  # one cut, far from any even slot
    chosen = choose_frames(times, changes, max_frames=8)
    assert len(chosen) == 8 and chosen == sorted(set(chosen))
    assert {0, 1517, len(times) - 1} <= set(chosen)
    gaps = np.diff([times[i] for i in chosen if i != 1517])
    assert gaps.max() < 2 * gaps.min() + 40 * 3  # the rest spread evenly
    assert choose_frames([0, 100, 200], [1.0, 0.0, 0.0], max_frames=16) == [0, 1, 2]


def test_the_sampler_keeps_a_bounded_number_of_frames_of_any_length() -> None:
    sampler = FrameSampler(max_frames=16)
    loads = 0

    def load() -> Image.Image:
        nonlocal loads
        loads += 1
        return Image.new("RGB", (2, 2))

    rng = np.random.default_rng(0)
    for index in range(20_000):  # a cut every 500 frames
        level = (index // 500) * 40 % 256
        signature = np.clip(level + rng.integers(-2, 3, (16, 16)), 0, 255).astype(np.uint8)
        sampler.offer(index * 100, signature, load)
    assert len(sampler.grid) <= 16 and len(sampler.scenes) <= 16
    chosen = sampler.chosen()
    assert len(chosen) == 16 and chosen[0].time_ms == 0
    assert [c.time_ms for c in chosen] == sorted(c.time_ms for c in chosen)
    assert loads < 20_000 // 20  # images are made only for frames that are kept


@pytest.mark.parametrize("suffix", sorted(VIDEO_KINDS))
def test_each_video_container_gives_frames_in_time_order(suffix: str) -> None:
    data = video_bytes([(DRAKE, 2.0), (AAG, 1.0)], suffix, fps=5)
    assert looks_like_video(data)
    sampled = frames_of(data, side=160)
    assert sampled is not None and sampled.cut is None
    assert 1 <= len(sampled.images) <= LIMITS.max_frames
    assert sampled.times_ms == sorted(set(sampled.times_ms))
    assert sampled.times_ms[0] == 0 and 2600 <= sampled.times_ms[-1] <= 3000  # the last frame
    assert any(t in range(1900, 2300) for t in sampled.times_ms)  # the cut to AAG
    assert all(min(image.size) == 160 and image.mode == "RGB" for image in sampled.images)


@pytest.mark.parametrize("image_format", ["GIF", "PNG", "WEBP"])
def test_animated_images_give_frames_at_their_cumulative_durations(image_format: str) -> None:
    data = animated_bytes([(DRAKE, 0.3), (AAG, 0.2), (ACKBAR, 0.4)], image_format,
                          frame_ms=100)
    assert not looks_like_video(data)
    sampled = frames_of(data)
    assert sampled is not None and sampled.cut is None
    # identical frames may be merged by the writer; the scene starts stay where they are
    assert {0, 300, 500} <= set(sampled.times_ms) and max(sampled.times_ms) <= 800


def test_stills_and_single_frame_files_are_no_animation() -> None:
    for image_format in ("GIF", "PNG", "WEBP", "JPEG"):
        buffer = io.BytesIO()
        DRAKE.convert("RGB").save(buffer, format=image_format)
        assert frames_of(buffer.getvalue()) is None, image_format
    assert frames_of((MEMES / "drake" / "default.jpg").read_bytes()) is None


def test_avif_and_heic_brands_are_images_not_videos() -> None:
    header = (24).to_bytes(4, "big") + b"ftypavif" + b"\0\0\0\0" + b"mif1miaf"
    assert not looks_like_video(header + b"\0" * 64)
    assert looks_like_video((24).to_bytes(4, "big") + b"ftypisom\0\0\2\0isomavc1" + b"\0" * 64)


def test_a_three_hour_film_is_cut_after_the_first_seconds_quickly() -> None:
    film = sparse_video_bytes(3 * 3600.0, every=10.0)
    started = time.monotonic()
    sampled = frames_of(film)
    assert time.monotonic() - started < 5  # the other 2 h 58 min are never decoded
    assert sampled is not None and sampled.cut == CUT_SECONDS
    assert sampled.times_ms == list(range(0, 120_001, 10_000))  # a frame every 10 s
    short = frames_of(film, FrameLimits(max_seconds=25))
    assert short is not None and short.times_ms == [0, 10_000, 20_000]


def test_a_gif_of_twenty_thousand_frames_stops_at_the_decoded_frame_cap() -> None:
    frames = [Image.new("P", (4, 4), index % 2) for index in range(20_000)]
    for image in frames:
        image.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=20,
                   optimize=False, disposal=1)
    started = time.monotonic()
    sampled = frames_of(buffer.getvalue(), FrameLimits(max_decoded=2000))
    assert time.monotonic() - started < 10
    assert sampled is not None and sampled.cut == CUT_FRAMES
    assert max(sampled.times_ms) < 2000 * 20 and len(sampled.images) == LIMITS.max_frames


def test_decoding_stops_at_its_time_budget_with_the_frames_it_has() -> None:
    data = video_bytes([(DRAKE, 1.0), (AAG, 1.0)], ".mp4", fps=10)
    sampled = frames_of(data, FrameLimits(budget_seconds=0.0))
    assert sampled is not None and sampled.cut == CUT_TIME and sampled.times_ms == [0]


def test_an_animation_that_breaks_off_keeps_the_frames_before_the_break() -> None:
    whole = (MEMES / "patrick" / "default.gif").read_bytes()  # 91 frames
    sampled = frames_of(whole[: len(whole) // 2])
    assert sampled is not None and sampled.cut == CUT_DAMAGED and len(sampled.images) >= 8
    with pytest.raises(ImageLoadError, match=r"^clip: .*(truncated|corrupt|not an image)"):
        frames_of(whole[:200]) or decode_image(whole[:200], source="clip")  # as the encoder


def broken_videos() -> dict[str, tuple[bytes, str]]:
    """Each kind of video that cannot be read, and the reason its error must give."""
    mp4 = video_bytes([(DRAKE, 1.0), (AAG, 1.0)], ".mp4")
    webm = video_bytes([(DRAKE, 1.0), (AAG, 1.0)], ".webm")
    return {
        "truncated.mp4": (mp4[: len(mp4) // 2], "truncated or corrupt video"),
        "truncated.webm": (webm[: len(webm) // 3], "truncated or corrupt video"),
        "noise.mp4": (mp4[:32] + os.urandom(4000), "truncated or corrupt video"),
        "song.mp4": (audio_only_bytes(), "no video stream"),
        "unknown-codec.mp4": (mp4.replace(b"avc1", b"zzzz"), "no decoder for this video's codec"),
    }


@pytest.mark.parametrize("name", sorted(broken_videos()))
def test_an_unreadable_video_is_one_clear_error(name: str) -> None:
    data, reason = broken_videos()[name]
    with pytest.raises(ImageLoadError) as error:
        read_frames(data, source=name, limits=LIMITS, side=224, max_pixels=None)
    message = str(error.value)
    assert message.startswith(f"{name}: ") and reason in message
    assert "\n" not in message and "Traceback" not in message


def test_video_frames_over_the_pixel_limit_are_refused_before_decoding() -> None:
    data = video_bytes([(DRAKE, 0.4)], ".mp4", side=224)
    with pytest.raises(ImageLoadError, match=r"224x224 video frames are over the limit of 1000"):
        frames_of(data, max_pixels=1000)
    gif = animated_bytes([(DRAKE, 0.2), (AAG, 0.2)], "GIF", side=64)
    with pytest.raises(ImageLoadError, match=r"64x64 = 4096 pixels is over"):
        frames_of(gif, max_pixels=1000)


def test_a_video_may_be_larger_than_an_image_but_not_without_limit() -> None:
    video = video_bytes([(DRAKE, 1.0), (AAG, 1.0)], ".mp4")
    still = (MEMES / "drake" / "default.jpg").read_bytes()
    policy = AccessPolicy(max_image_bytes=1000, max_video_bytes=len(video) + len(still))
    assert policy.read(None, video) == video
    with pytest.raises(ImageLoadError, match=r"over the 1000-byte limit for one image "
                                             r"\(MEMEFLOW_MAX_IMAGE_BYTES\)"):
        policy.read(None, still)
    with pytest.raises(ImageLoadError, match=rf"over the {len(video) - 1}-byte limit"):
        AccessPolicy(max_image_bytes=1000, max_video_bytes=len(video) - 1).read(None, video)
