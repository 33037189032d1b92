"""Which files the index knows by content: moves, copies, and what must be encoded; the
index's side of it (finding by hash and folder, keeping what was derived from the pixels)
on both backends (tests/backends.py)."""

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from memeflow.client.moves import StoredDoc, plan_reuse
from memeflow.indexer.backends import Collection
from memeflow.indexer.backends.embedded import StoredDocument
from tests.backends import BACKENDS, milvus_only, opened


def stored(doc_id: str, uri: str) -> StoredDoc:
    return StoredDoc(doc_id, uri, np.ones(4, np.float32))


def test_a_file_whose_old_copy_is_gone_is_a_move_and_a_second_one_a_copy() -> None:
    new, twin, fresh = Path("/new/a.jpg"), Path("/new/a-again.jpg"), Path("/new/b.jpg")
    hashes = {new: "h1", twin: "h1", fresh: "h2"}
    by_hash = {"h1": [stored("old", "/old/a.jpg")]}
    reuses, to_encode = plan_reuse([new, twin, fresh], hashes, by_hash, file_gone=lambda u: True)
    assert [(r.path, r.source.id, r.moved) for r in reuses] == [
        (new, "old", True), (twin, "old", False)]
    assert to_encode == [fresh]


def test_a_file_whose_original_is_still_there_is_a_copy() -> None:
    copy = Path("/elsewhere/a.jpg")
    reuses, to_encode = plan_reuse([copy], {copy: "h1"}, {"h1": [stored("old", "/old/a.jpg")]},
                                   file_gone=lambda uri: False)
    assert [(r.source.id, r.moved) for r in reuses] == [("old", False)] and to_encode == []


def test_the_gone_candidate_is_moved_even_when_a_kept_one_comes_first() -> None:
    path = Path("/new/a.jpg")
    by_hash = {"h1": [stored("kept", "/kept/a.jpg"), stored("gone", "/gone/a.jpg")]}
    reuses, _ = plan_reuse([path], {path: "h1"}, by_hash,
                           file_gone=lambda uri: uri.startswith("/gone"))
    assert (reuses[0].source.id, reuses[0].moved) == ("gone", True)


def test_a_stored_path_that_reaches_this_very_file_is_a_move(tmp_path) -> None:
    """A file indexed by its resolved path, then reached through a link: one document."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.jpg").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    path = tmp_path / "link" / "a.jpg"
    by_hash = {"h1": [stored("resolved", str(tmp_path / "real" / "a.jpg"))]}
    reuses, _ = plan_reuse([path], {path: "h1"}, by_hash)
    assert (reuses[0].source.id, reuses[0].moved) == ("resolved", True)
    elsewhere = tmp_path / "copy.jpg"
    elsewhere.write_bytes(b"x")
    reuses, _ = plan_reuse([elsewhere], {elsewhere: "h1"}, by_hash)
    assert (reuses[0].source.id, reuses[0].moved) == ("resolved", False)  # a real copy


def test_a_file_url_whose_file_is_gone_is_a_move(tmp_path) -> None:
    gone = "file://" + str(tmp_path).replace("\\", "/") + "/caf%E9.jpg"
    path = tmp_path / "new.jpg"
    path.write_bytes(b"x")
    reuses, _ = plan_reuse([path], {path: "h1"}, {"h1": [stored("old", gone)]})
    assert reuses[0].moved
    (tmp_path / os.fsdecode(b"caf\xe9.jpg")).write_bytes(b"x")  # back: now a copy
    reuses, _ = plan_reuse([path], {path: "h1"}, {"h1": [stored("old", gone)]})
    assert not reuses[0].moved


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[Collection]:
    """An empty collection on each backend."""
    with opened(request.param, request) as store:
        yield store


def test_store_finds_documents_by_tag_value_and_uri_prefix(store: Collection) -> None:
    records = [StoredDocument(uri="/m/a/1.jpg", tags={"sha256": "x"}),
               StoredDocument(uri="/m/ab/2.jpg", tags={"sha256": "y"}),
               StoredDocument(uri="/n/3.jpg", tags={"sha256": "x"}),
               StoredDocument(uri=None, tags={"sha256": ["x"]})]
    store.upsert(["1", "2", "3", "4"], np.eye(4, dtype=np.float32), records)
    assert store.find("sha256", ["x", "z"]) == ["1", "3"]
    assert store.find(uri_prefix="/m/") == ["1", "2"]
    assert store.find("sha256", ["y"], uri_prefix="/n") == []
    assert store.find() == ["1", "2", "3", "4"]
    store.delete(["1"])  # the last row moves into its place: found under its new row
    assert store.find("sha256", ["x"]) == ["3"] and store.find(uri_prefix="/m/") == ["2"]


def test_store_finds_numbers_as_python_compares_them(store: Collection) -> None:
    """2.0**70 is not 2**70 + 1, though Milvus keeps that int as the float 2.0**70."""
    store.upsert(["huge", "one", "yes"], np.eye(3, dtype=np.float32),
                 [StoredDocument(uri=None, tags={"n": n}) for n in (2**70 + 1, 1, True)])
    assert sorted(store.find("n", [float(2**70), 1.0])) == ["one", "yes"]


@pytest.mark.parametrize("kind", ["embedded", milvus_only(
    "Milvus keeps no order of insertion: /find lists ids in id order")])
def test_store_finds_documents_in_the_order_they_were_first_stored(kind, request) -> None:
    with opened(kind, request) as store:
        store.upsert(["b", "c", "a"], np.eye(3, dtype=np.float32),
                     [StoredDocument(uri=f"/m/{i}.jpg", tags={"sha256": "x"}) for i in range(3)])
        store.upsert(["c"], np.eye(3, dtype=np.float32)[:1], [StoredDocument(uri=None, tags={
            "sha256": "x"})])  # replaced: keeps its place
        assert store.find("sha256", ["x"]) == ["b", "c", "a"]
        assert store.find(uri_prefix="/m/") == ["b", "a"]


# --- what was derived from the pixels survives every rewrite ------------------------------

def test_a_reused_document_carries_the_derived_tags_and_its_own_file_tags(tmp_path) -> None:
    from memeflow.client.moves import Reuse
    from memeflow.client.sync import reused_doc

    path = tmp_path / "new" / "renamed.jpg"
    path.parent.mkdir()
    path.write_bytes(b"x")
    source = StoredDoc("old", "/old/a.jpg", np.ones(4, np.float32), "words on it",
                       {"file": "a.jpg", "folder": "old", "phash": "00ff", "hubness": 0.25,
                        "sha256": "h1"})
    doc = reused_doc(Reuse(path, source, moved=True), "h1", b"jpeg")
    assert doc["tags"] == {"file": "renamed.jpg", "folder": "new", "phash": "00ff",
                           "hubness": 0.25, "sha256": "h1"}
    assert (doc["words"], doc["thumbnail"], doc["uri"]) == ("words on it", b"jpeg", str(path))
    assert doc["embedding"] is source.embedding
    assert doc["frames"] is None and doc["frame_ms"] is None  # a still has none


def test_a_reused_video_carries_its_frames_their_times_and_its_cut(tmp_path) -> None:
    from memeflow.client.moves import Reuse
    from memeflow.client.sync import reused_doc

    path = tmp_path / "film.mp4"
    path.write_bytes(b"x")
    frames = np.eye(4, dtype=np.float32)[:3]
    source = StoredDoc("old", "/old/film.mp4", frames[1], None,
                       {"phash": "00ff", "frames_cut": "seconds", "sha256": "h1"},
                       frames, [0, 500, 1000])
    doc = reused_doc(Reuse(path, source, moved=False), "h1", None)
    assert doc["frames"] is frames and doc["frame_ms"] == [0, 500, 1000]
    assert doc["tags"]["frames_cut"] == "seconds" and doc["tags"]["file"] == "film.mp4"


def store_derived(store: Collection) -> None:
    """Two documents with tags derived from their pixels (hash, hubness) and words."""
    store.upsert(["a", "b"], np.eye(4, dtype=np.float32)[:2], [
        StoredDocument(uri="/m/a.jpg", tags={"sha256": "ha", "phash": "0a", "hubness": 0.1},
                       words="hi"),
        StoredDocument(uri=None, tags={"phash": "0b", "hubness": 0.2}, words=None)])


def stored_of(store: Collection):
    return lambda ids: [None if r is None else (r, store.vectors([i])[0])
                        for i, r in zip(ids, store.get(ids), strict=True)]


def test_a_document_stored_again_without_its_derived_tags_keeps_them(store: Collection
                                                                    ) -> None:
    from memeflow.indexer.derived import keep_derived

    store_derived(store)
    vectors = np.array([[2, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 3, 0, 0]], np.float32)
    records = [  # a: the same bytes; b: another picture (nothing kept); c: not stored
        # before; b again: the same vector, its own values win
        StoredDocument(uri="/n/a.jpg", tags={"sha256": "ha", "file": "a.jpg"}, words=None),
        StoredDocument(uri=None, tags={}, words=None),
        StoredDocument(uri=None, tags={}, words=None),
        StoredDocument(uri=None, tags={"phash": "ff"}, words="own"),
    ]
    kept = keep_derived(["a", "b", "c", "b"], vectors, records, stored_of(store))
    assert kept[0] == StoredDocument(uri="/n/a.jpg", tags={"sha256": "ha", "file": "a.jpg",
                                                   "phash": "0a", "hubness": 0.1}, words="hi")
    assert kept[1] == records[1] and kept[2] == records[2]
    assert kept[3] == StoredDocument(uri=None, tags={"phash": "ff", "hubness": 0.2}, words="own")
    # Other bytes under the same id (the file was edited): the old hash is not carried over.
    edited = StoredDocument(uri="/m/a.jpg", tags={"sha256": "other"}, words=None)
    assert keep_derived(["a"], vectors[:1], [edited], stored_of(store)) == [edited]
