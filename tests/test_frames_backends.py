"""Documents of several frames (animated images, videos) in the `Collection` interface, the
same on both backends: stored and read back, scored by their best frame (which a hit names
by its time, `frame_ms`), filtered as their document, deleted and replaced with it."""


import numpy as np
import pytest

from memeflow.indexer.backends import Collection, Frames
from memeflow.indexer.filters import compile_where
from tests import test_collection_backends as backends
from tests.test_collection_backends import DIM, open_backend, unit

TOL = 1e-6
collection = backends.collection  # the interface suite's fixture: an empty one per backend


def clip(seed: int, k: int, step: int = 40) -> Frames:
    """k frames, `step` ms apart; the first is the one that stands for the file."""
    return Frames(unit(seed, k), [i * step for i in range(k)])


def fill(collection: Collection) -> dict[str, Frames | None]:
    """Six stills and two clips (a GIF of 3 frames, a video of 5), tagged by kind."""
    ids = [f"still-{i}" for i in range(6)] + ["gif", "video"]
    frames: list[Frames | None] = [None] * 6 + [clip(10, 3, 100), clip(11, 5, 40)]
    vectors = np.vstack([unit(1, 6), frames[6].vectors[1:2], frames[7].vectors[2:3]])  # type: ignore[union-attr]
    documents = [{"uri": f"/memes/{doc_id}", "tags": {"kind": "clip" if frame else "still"}}
                 for doc_id, frame in zip(ids, frames, strict=True)]
    collection.upsert(ids, vectors, documents, frames)  # type: ignore[arg-type]
    return dict(zip(ids, frames, strict=True))


def best_cosine(query: np.ndarray, frames: Frames) -> tuple[float, int]:
    scores = frames.vectors.astype(np.float64) @ query.astype(np.float64)
    return float(scores.max()), frames.ms[int(np.argmax(scores))]


def test_frames_are_read_back_as_stored_and_count_as_one_document(collection) -> None:
    stored = fill(collection)
    assert collection.count() == 8
    found = collection.frames(["video", "still-0", "absent", "gif"])
    assert found[1] is None and found[2] is None
    for got, doc_id in ((found[0], "video"), (found[3], "gif")):
        want = stored[doc_id]
        assert got is not None and want is not None
        assert got.ms == want.ms and got.vectors.dtype == np.float32
        np.testing.assert_allclose(got.vectors, want.vectors, atol=TOL)
    assert collection.get(["gif"])[0] == {"uri": "/memes/gif", "tags": {"kind": "clip"}}
    assert sorted(collection.find("kind", ["clip"])) == ["gif", "video"]


def test_a_clip_scores_its_best_frame_and_says_when_it_shows(collection) -> None:
    stored = fill(collection)
    video = stored["video"]
    assert video is not None
    for frame in range(5):  # whichever frame the query shows, the video comes first
        query = video.vectors[frame] + 0.05 * unit(20 + frame)[0]
        hits = collection.dense_search(query[None, :], 3)[0]
        score, ms = best_cosine(query / np.linalg.norm(query), video)
        assert hits[0]["id"] == "video" and hits[0]["frame_ms"] == ms == frame * 40
        assert abs(hits[0]["score"] - score) < TOL
    hits = collection.dense_search(unit(1, 6)[3:4], 8)[0]
    assert hits[0]["id"] == "still-3" and "frame_ms" not in hits[0]
    assert [("frame_ms" in hit) for hit in hits] == [hit["id"] in ("gif", "video")
                                                      for hit in hits]
    assert len({hit["id"] for hit in hits}) == 8  # one hit per file, however many frames


def test_filters_apply_to_a_clips_frames(collection) -> None:
    stored = fill(collection)
    gif = stored["gif"]
    assert gif is not None
    query = gif.vectors[2:3]  # not the vector that stands for the file
    stills = collection.select(compile_where({"kind": "still"}))
    assert "gif" not in [hit["id"] for hit in collection.dense_search(query, 8, stills)[0]]
    clips = collection.select(compile_where({"kind": {"$in": ["clip"]}}))
    hits = collection.dense_search(query, 8, clips)[0]
    assert hits[0]["id"] == "gif" and hits[0]["frame_ms"] == 200
    assert {hit["id"] for hit in hits} == {"gif", "video"}
    residual = collection.select(compile_where({"kind": {"$contains": "CLI"}}))  # not in Milvus
    assert [hit["id"] for hit in collection.dense_search(query, 8, residual)[0]] == [
        "gif", "video"]


def test_frames_go_with_delete_clear_and_a_still_stored_over_them(collection) -> None:
    stored = fill(collection)
    gif, video = stored["gif"], stored["video"]
    assert gif is not None and video is not None
    collection.upsert(["gif"], gif.vectors[1:2], [{"uri": "/memes/gif", "tags": {}}])
    assert collection.frames(["gif"]) == [None]
    hit = collection.dense_search(gif.vectors[1:2], 1)[0][0]
    assert hit["id"] == "gif" and "frame_ms" not in hit
    hits = {hit["id"]: hit for hit in collection.dense_search(gif.vectors[2:3], 8)[0]}
    still = float(gif.vectors[1].astype(np.float64) @ gif.vectors[2].astype(np.float64))
    assert abs(hits["gif"]["score"] - still) < TOL and "frame_ms" not in hits["gif"]
    collection.upsert(["gif"], gif.vectors[1:2], [{"uri": None, "tags": {}}], [gif])
    assert collection.dense_search(gif.vectors[2:3], 1)[0][0]["frame_ms"] == 200
    assert collection.delete(["video", "still-0"]) == 2
    assert collection.frames(["video"]) == [None] and collection.count() == 6
    hits = collection.dense_search(video.vectors[4:5], 6)[0]
    assert "video" not in [hit["id"] for hit in hits]
    collection.clear()
    collection.upsert(["video"], video.vectors[:1], [{"uri": None, "tags": {}}])
    assert collection.frames(["video", "gif"]) == [None, None]


def test_bad_frames_are_refused_before_anything_changes(collection) -> None:
    fill(collection)
    vector = unit(30)
    good = clip(31, 2)
    bad = {
        "another dimension": Frames(unit(31, 2)[:, :4], [0, 40]),
        "no frame": Frames(np.empty((0, DIM), np.float32), []),
        "a NaN": Frames(np.full((2, DIM), np.nan, np.float32), [0, 40]),
        "a zero row": Frames(np.vstack([good.vectors[:1], np.zeros((1, DIM))]), [0, 40]),
        "times not one per frame": Frames(good.vectors, [0]),
        "times not ints": Frames(good.vectors, [0.5, 40]),  # type: ignore[list-item]
    }
    for what, frames in bad.items():
        with pytest.raises(ValueError, match="new"):
            collection.upsert(["new", "gif"], np.vstack([vector, vector]),
                              [{"uri": None, "tags": {}}] * 2, [frames, None])
        assert "new" not in collection, what
        assert collection.frames(["gif"])[0] is not None, what
    with pytest.raises(ValueError, match="one entry"):
        collection.upsert(["new"], vector, [{"uri": None, "tags": {}}], [good, None])
    assert collection.count() == 8


def test_frames_beyond_one_querys_row_limit_are_all_read(request, tmp_path, monkeypatch
                                                         ) -> None:
    """Milvus answers a query with at most MAX_LIMIT rows (16,384): documents whose frames
    reach that many in one read are asked for again in smaller groups, none cut short.
    The limit is lowered here so that a few documents reach it."""
    from memeflow.indexer.backends import milvus

    monkeypatch.setattr(milvus, "MAX_LIMIT", 6)
    opened = open_backend("milvus", request, tmp_path / "workspace")
    try:
        clips = {f"clip-{i}": clip(20 + i, 4) for i in range(3)}  # 12 frames, 6 a read
        opened.upsert(list(clips), np.vstack([f.vectors[:1] for f in clips.values()]),
                      [{"uri": None, "tags": {}} for _ in clips], list(clips.values()))
        for got, want in zip(opened.frames(list(clips)), clips.values(), strict=True):
            assert got is not None and got.ms == want.ms
            assert np.allclose(got.vectors, want.vectors, atol=TOL)
    finally:
        opened.clear()
        opened.close()
