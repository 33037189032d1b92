"""The embedded backend's frames: kept in the database across restarts and swap-deletes,
ranked as a brute-force max over every frame in each search mode (exact, HNSW graph,
filtered), and a workspace written before frames opened unchanged."""

import json
import logging
import shutil
import sqlite3

import numpy as np
import pytest

from memeflow.indexer.backends import Frames
from memeflow.indexer.backends.embedded import EmbeddedCollection
from memeflow.indexer.filters import compile_where
from memeflow.indexer.indexes.ann import HnswParams
from memeflow.indexer.storage.database import DATABASE, VERSION
from tests.conftest import REPO

DIM = 16
TOL = 1e-6


def corpus(n: int, clips: int, seed: int = 5) -> tuple[list[str], np.ndarray, list[dict],
                                                        list[Frames | None]]:
    """n documents; every n // clips-th one a clip of 2-6 frames whose vector is one of them."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    frames: list[Frames | None] = [None] * n
    for i in range(0, n, n // clips):
        k = int(rng.integers(2, 7))
        frame_vectors = rng.standard_normal((k, DIM)).astype(np.float32)
        frame_vectors /= np.linalg.norm(frame_vectors, axis=1, keepdims=True)
        frame_vectors[k // 2] = vectors[i]
        frames[i] = Frames(frame_vectors, [33 * j for j in range(k)])
    documents = [{"uri": None, "tags": {"half": i % 2}} for i in range(n)]
    return [f"d{i:04d}" for i in range(n)], vectors, documents, frames


def brute_force(query: np.ndarray, vectors: np.ndarray, frames: list[Frames | None],
                keep: np.ndarray, k: int) -> list[tuple[int, float, int | None]]:
    """(index, score, frame_ms) of the best k of the kept documents, by max over frames."""
    query = query.astype(np.float64) / np.linalg.norm(query)
    scored = []
    for i in np.flatnonzero(keep):
        score, ms = float(vectors[i].astype(np.float64) @ query), None
        if (entry := frames[i]) is not None:
            per_frame = entry.vectors.astype(np.float64) @ query
            score, ms = max(score, float(per_frame.max())), entry.ms[int(np.argmax(per_frame))]
        scored.append((int(i), score, ms))
    return sorted(scored, key=lambda hit: -hit[1])[:k]


@pytest.mark.parametrize("mode", ["exact", "graph"])
def test_every_search_mode_ranks_as_the_max_over_every_frame(tmp_path, mode) -> None:
    ids, vectors, documents, frames = corpus(400, 40)
    exact_max = 100 if mode == "graph" else 10_000
    store = EmbeddedCollection(tmp_path, exact_max=exact_max,
                               hnsw=HnswParams(m=16, ef_construction=40, ef_search=128))
    store.upsert(ids, vectors, documents, frames)  # type: ignore[arg-type]
    assert (store.graph is not None) == (mode == "graph")
    rng = np.random.default_rng(6)
    clip_frames = [entry.vectors[0] for entry in frames if entry is not None]
    queries = np.vstack([rng.standard_normal((4, DIM)), clip_frames[:4]]).astype(np.float32)
    halves = np.arange(400) % 2 == 1
    for where, keep in ((None, np.ones(400, bool)), ({"half": 1}, halves)):
        selection = store.select(compile_where(where))
        found = store.dense_search(queries, 10, selection)
        for query, hits in zip(queries, found, strict=True):
            want = brute_force(query, vectors, frames, keep, 10)
            if mode == "graph" and where is None:  # approximate: the frames' own best stay
                framed = [hit for hit in want if hit[2] is not None][:1]
                got = {hit["id"]: hit for hit in hits}
                for i, score, ms in framed:
                    if score > want[-1][1] + 1e-3:
                        assert got[ids[i]]["frame_ms"] == ms
                continue
            assert [hit["id"] for hit in hits] == [ids[i] for i, _, _ in want]
            assert [hit.get("frame_ms") for hit in hits] == [ms for _, _, ms in want]
            np.testing.assert_allclose([hit["score"] for hit in hits],
                                       [score for _, score, _ in want], atol=TOL)
    store.close()


def test_frames_survive_a_restart_and_follow_a_swap_deleted_row(tmp_path) -> None:
    ids, vectors, documents, frames = corpus(40, 4)
    store = EmbeddedCollection(tmp_path)
    store.upsert(ids, vectors, documents, frames)  # type: ignore[arg-type]
    store.dense_search(vectors[:1], 1)  # the frames as the search scans them, before moves
    last = frames[-10]  # d0030, a clip: deleting d0001 moves d0039 (a still) into its row
    assert last is not None
    store.delete(["d0001", "d0002"])  # the rows of d0039 and d0038 change; clips' stay
    store.delete(["d0010"])  # a clip: the last row (d0037) takes its place
    store.dense_search(vectors[:1], 1)
    store.upsert(["d0039"], vectors[39:40], documents[39:40], [last])  # now a clip too
    for restarted in (False, True):
        if restarted:
            store.close()
            store = EmbeddedCollection(tmp_path)  # read back from the database
        assert store.frames(["d0010", "d0001"]) == [None, None]
        for entry in store.frames(["d0039", "d0030"]):
            assert entry is not None and entry.ms == last.ms
            np.testing.assert_allclose(entry.vectors, last.vectors, atol=TOL)
        hits = store.dense_search(last.vectors[-1:], 3)[0]
        assert sorted(hit["id"] for hit in hits[:2]) == ["d0030", "d0039"]
        assert [hit["frame_ms"] for hit in hits[:2]] == [last.ms[-1]] * 2
        assert "frame_ms" not in store.dense_search(vectors[37:38], 1)[0][0]  # still a still
        hits = store.dense_search(frames[20].vectors[:1], 1)[0]  # type: ignore[union-attr]
        assert hits[0]["id"] == "d0020" and hits[0]["frame_ms"] == 0
    store.close()


def test_a_clip_moved_into_a_deleted_row_is_searched_at_its_new_row() -> None:
    _, vectors, _, _ = corpus(10, 2)
    b, c = Frames(vectors[1:4], [0, 1, 2]), Frames(vectors[6:9], [10, 20, 30])
    store = EmbeddedCollection()
    store.upsert(["a", "b", "c"], vectors[[0, 1, 6]], [{"uri": None, "tags": {}}] * 3,
                 [None, b, c])
    assert store.dense_search(vectors[8:9], 1)[0][0]["frame_ms"] == 30
    store.delete(["a"])  # a still: c, the last row, moves into its place
    for query, doc_id, ms in ((vectors[8:9], "c", 30), (vectors[3:4], "b", 2)):
        hits = store.dense_search(query, 2)[0]
        assert (hits[0]["id"], hits[0]["frame_ms"]) == (doc_id, ms)
    store.close()


def test_a_workspace_written_before_frames_is_migrated_once_and_reads_the_same(
    tmp_path, caplog,
) -> None:
    root = tmp_path / "ws"
    shutil.copytree(REPO / "tests" / "workspaces" / "format-3", root)
    expected = json.loads((REPO / "tests" / "workspaces" / "format-3-expected.json").read_text())
    with sqlite3.connect(root / DATABASE) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1 < VERSION
    with caplog.at_level(logging.INFO):
        store = EmbeddedCollection(root)
    assert "migrated the schema from version 1 to 2" in caplog.text
    ids = expected["ids"]
    assert len(store) == len(ids) and sorted(store.find()) == sorted(ids)
    assert store.get(ids) == expected["documents"]
    np.testing.assert_allclose(store.vectors(ids), expected["vectors"], atol=TOL)
    assert store.frames(ids) == [None] * len(ids)
    hits = store.dense_search(np.asarray(expected["vectors"][3:4], np.float32), 2)[0]
    assert hits[0]["id"] == ids[3] and "frame_ms" not in hits[0]
    frames = Frames(np.asarray(expected["vectors"][5:7], np.float32), [0, 80])
    store.upsert([ids[0]], np.asarray(expected["vectors"][:1], np.float32),
                 expected["documents"][:1], [frames])
    store.close()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        store = EmbeddedCollection(root)
    assert "migrated" not in caplog.text
    hits = store.dense_search(np.asarray(expected["vectors"][6:7], np.float32), 2)[0]
    by_id = {hit["id"]: hit for hit in hits}  # the still and the clip's second frame
    assert set(by_id) == {ids[0], ids[6]} and by_id[ids[0]]["frame_ms"] == 80
    assert "frame_ms" not in by_id[ids[6]]
    assert all(abs(hit["score"] - 1) < TOL for hit in hits)
    store.close()
    with sqlite3.connect(root / DATABASE) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION == 2


def test_frame_ms_goes_through_every_stage_and_a_words_only_hit_has_none() -> None:
    from memeflow.indexer.search.options import SearchOptions
    from memeflow.indexer.search.pipeline import search_collection

    rng = np.random.default_rng(8)
    query = rng.standard_normal(DIM).astype(np.float32)
    query /= np.linalg.norm(query)
    near = (query + 0.3 * rng.standard_normal((150, DIM))).astype(np.float32)
    clip = np.vstack([rng.standard_normal((2, DIM)), query[None, :]]).astype(np.float32)
    away = np.vstack([-query, -query + 0.1 * rng.standard_normal(DIM)]).astype(np.float32)
    store = EmbeddedCollection()
    ids = [f"s{i:03d}" for i in range(150)] + ["clip", "far-clip"]
    documents = [{"uri": None, "tags": {"group": doc_id, "hubness": 0.01}} for doc_id in ids]
    documents[-1]["words"] = "SUCH WOW VERY DOGE"
    store.upsert(ids, np.vstack([near, clip[:1], away[:1]]), documents,  # type: ignore[arg-type]
                 [None] * 150 + [Frames(clip, [0, 40, 80]), Frames(away, [0, 40])])
    options = SearchOptions.from_parameters({
        "top_k": 4, "ocr_weight": 1.0, "hub_correction": True, "dedup": True,
        "group_by": "group", "min_score": -2.0, "offset": 0})
    (hits,) = search_collection(store, query[None, :], options, texts=["doge"])
    by_id = {hit["id"]: hit for hit in hits}
    assert by_id["clip"]["frame_ms"] == 80 and by_id["clip"]["signals"] == {"clip": 1}
    assert abs(by_id["clip"]["score"] - (1 - 0.01)) < TOL  # its best frame, hub-corrected
    assert by_id["far-clip"]["signals"] == {"words": 1} and "frame_ms" not in by_id["far-clip"]
    assert all("frame_ms" not in hit for hit in hits if hit["id"].startswith("s"))
    store.close()
