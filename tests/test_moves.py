"""Which files the index knows by content: moves, copies, and what must be encoded."""

import os
from pathlib import Path

import numpy as np

from memeflow.client.moves import StoredDoc, plan_reuse
from memeflow.indexer.backends.embedded import EmbeddedCollection, StoredDocument


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


def test_store_finds_documents_by_tag_value_and_uri_prefix() -> None:
    store = EmbeddedCollection()
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
