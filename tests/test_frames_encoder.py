"""The encoder's work on animated images and videos: one document, a vector per sampled
frame, the representative frame as its `embedding`, and a per-file error for each kind of
bad file while the rest of the request goes on. Real files, decoded for real."""

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from clips import animated_bytes, audio_only_bytes, sparse_video_bytes, square, video_bytes
from PIL import Image

from memeflow.documents import MemeDoc
from memeflow.encoder.frames import FrameLimits
from memeflow.encoder.frames.limits import CUT_SECONDS, FRAMES_CUT_TAG
from memeflow.encoder.phash import perceptual_hash
from memeflow.encoder.pipeline import distinct_words, embed_documents
from tests.conftest import MEMES

NAMES = ("drake", "aag", "ackbar", "afraid", "agnes", "bender")
P, A, B, C, D, E = (Image.open(MEMES / name / "default.jpg") for name in NAMES)


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(2) as workers:
        yield workers


def own_vector(model, picture: Image.Image) -> np.ndarray:
    """A picture's vector as the encoder makes it for a still (the clips show its square)."""
    return model.embed_images([square(picture, 224)])[0]


def index(model, pool, *blobs: bytes, batch_size: int = 4, **options) -> list[MemeDoc]:
    docs = [MemeDoc(blob=blob) for blob in blobs]
    embed_documents(model, docs, pool, batch_size, thumbnails=True, keep_frames=True,
                    **options)
    return docs


def test_the_frame_most_like_a_picture_is_when_the_clip_shows_it(clip_model, pool) -> None:
    clip = video_bytes([(A, 2), (B, 2), (C, 2), (P, 2), (D, 2), (E, 2)], ".mp4", fps=5)
    webm = video_bytes([(A, 3), (B, 3), (P, 2), (C, 4)], ".webm", fps=4)
    mp4, vp9 = index(clip_model, pool, clip, webm)
    target = own_vector(clip_model, P)
    for doc, start in ((mp4, 6000), (vp9, 6000)):
        assert doc.error is None
        frames = np.asarray(doc.frames)
        assert frames.dtype == np.float32 and frames.shape == (len(doc.frame_ms), 512)
        assert 2 <= len(doc.frame_ms) <= 16 and doc.frame_ms == sorted(doc.frame_ms)
        np.testing.assert_allclose(np.linalg.norm(frames, axis=1), 1.0, atol=1e-5)
        best = int(np.argmax(frames @ target))
        assert start <= doc.frame_ms[best] < start + 2000, doc.frame_ms


def test_a_gif_whose_meaning_is_in_its_last_frame_has_that_frame(clip_model, pool) -> None:
    others = [(picture, 0.1) for _ in range(12) for picture in (A, B, C, D, E)]
    gif = animated_bytes([*others[:-1], (P, 0.1)], "GIF", frame_ms=100)  # 60 frames
    real = (MEMES / "bongo" / "default.gif").read_bytes()
    doc, bongo = index(clip_model, pool, gif, real)
    assert len(doc.frame_ms) == 16 and doc.frame_ms[-1] == 5900
    frames = np.asarray(doc.frames)
    assert int(np.argmax(frames @ own_vector(clip_model, P))) == len(doc.frame_ms) - 1
    with Image.open(MEMES / "bongo" / "default.gif") as source:  # 11 frames of 50 ms
        assert source.n_frames == 11
    assert bongo.frame_ms == [0, 100, 200, 300, 400, 500]  # frames 100 ms apart, and the last


def test_the_representative_frame_is_the_documents_vector_preview_and_hash(clip_model,
                                                                         pool) -> None:
    clip = video_bytes([(A, 3), (B, 1), (A, 3)], ".mp4", fps=4)  # mostly A
    (doc,) = index(clip_model, pool, clip)
    frames = np.asarray(doc.frames)
    mean = frames.mean(axis=0) / np.linalg.norm(frames.mean(axis=0))
    best = int(np.argmax(frames @ mean))
    np.testing.assert_allclose(doc.embedding, frames[best], atol=1e-6)  # one of its rows
    a, b = own_vector(clip_model, A), own_vector(clip_model, B)
    assert float(frames[best] @ a) > float(frames[best] @ b)
    preview = Image.open(io.BytesIO(doc.thumbnail))
    assert max(preview.size) <= 256 and preview.format == "JPEG"
    preview_vector = clip_model.embed_images([preview.convert("RGB")])[0]
    assert float(preview_vector @ a) > float(preview_vector @ b)
    # the hash is of the same frame as the preview (a JPEG of it: a few bits may differ)
    differing = int(doc.tags["phash"], 16) ^ int(perceptual_hash(preview.convert("RGB")), 16)
    assert bin(differing).count("1") <= 6


def test_stills_keep_one_vector_and_no_frames(clip_model, pool) -> None:
    still = (MEMES / "drake" / "default.jpg").read_bytes()
    (doc,) = index(clip_model, pool, still)
    assert doc.frames is None and doc.frame_ms is None and doc.embedding is not None
    assert FRAMES_CUT_TAG not in doc.tags


def test_a_query_by_gif_is_its_representative_frame(clip_model, pool) -> None:
    gif = (MEMES / "bongo" / "default.gif").read_bytes()
    (indexed,) = index(clip_model, pool, gif)
    query = MemeDoc(blob=gif)
    embed_documents(clip_model, [query], pool, 4, by_id=True)  # as /search does
    assert query.frames is None and query.frame_ms is None
    np.testing.assert_allclose(query.embedding, indexed.embedding, atol=1e-6)


def test_frames_of_many_files_are_batched_and_each_kept_with_its_own(clip_model,
                                                                     pool) -> None:
    clips = [video_bytes([(X, 1), (Y, 1)], ".mp4", fps=3) for X, Y in ((A, B), (C, D), (E, P))]
    still = (MEMES / "afraid" / "default.jpg").read_bytes()
    docs = index(clip_model, pool, clips[0], still, clips[1], clips[2], batch_size=2)
    alone = [index(clip_model, pool, data, batch_size=16)[0] for data in clips]
    for doc, single in zip([docs[0], docs[2], docs[3]], alone, strict=True):
        np.testing.assert_allclose(np.asarray(doc.frames), np.asarray(single.frames), atol=1e-5)
        assert doc.frame_ms == single.frame_ms
    assert docs[1].frames is None


def test_a_long_film_is_indexed_by_its_first_seconds_and_says_so(clip_model, pool) -> None:
    film = sparse_video_bytes(3 * 3600.0, every=30.0)
    (doc,) = index(clip_model, pool, film, limits=FrameLimits(max_seconds=60))
    assert doc.error is None and doc.tags[FRAMES_CUT_TAG] == CUT_SECONDS
    assert doc.frame_ms == [0, 30_000, 60_000]


def test_each_bad_file_fails_alone_with_its_reason(clip_model, pool, tmp_path: Path) -> None:
    good = video_bytes([(A, 1), (B, 1)], ".mp4", fps=4)
    files = {
        "good.mp4": good,
        "truncated.mp4": good[: len(good) // 2],
        "song.mp4": audio_only_bytes(),
        "unknown-codec.mp4": good.replace(b"avc1", b"zzzz"),
        "still.jpg": (MEMES / "drake" / "default.jpg").read_bytes(),
        "anim.webp": animated_bytes([(A, 0.2), (B, 0.2)], "WEBP"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    docs = [MemeDoc(uri=str(tmp_path / name)) for name in files]
    embed_documents(clip_model, docs, pool, 2, thumbnails=True, keep_frames=True)
    by_name = {Path(doc.uri).name: doc for doc in docs}
    reasons = {"truncated.mp4": "truncated or corrupt video", "song.mp4": "no video stream",
               "unknown-codec.mp4": "no decoder for this video's codec"}
    for name, reason in reasons.items():
        error = by_name[name].error
        assert error is not None and error.startswith(f"{tmp_path / name}: ") and reason in error
        assert "\n" not in error and by_name[name].embedding is None
    for name in ("good.mp4", "still.jpg", "anim.webp"):
        assert by_name[name].error is None and by_name[name].embedding is not None


class FakeOcr:
    """Reads a word per colour of meme: what a real engine reads, without its models."""

    max_side = 224

    def read_image(self, rgb: np.ndarray) -> str:
        return "RED" if rgb[..., 0].mean() > rgb[..., 2].mean() else "BLUE\nwords"


def test_words_on_frames_are_read_and_kept_once(clip_model, pool) -> None:
    red, blue = Image.new("RGB", (64, 64), (220, 20, 20)), Image.new("RGB", (64, 64), (20, 20, 220))
    clip = video_bytes([(red, 1), (blue, 1), (red, 1)], ".mp4", fps=4)
    (doc,) = index(clip_model, pool, clip, ocr=FakeOcr())
    assert doc.words == "RED BLUE words"
    assert distinct_words([None, None]) is None and distinct_words(["", None]) == ""
