"""Previews: made from the decoded image on /index, stored by a hash of the id, never on
queries; and a /search query with only an id passes the encoder for the indexer."""

import io
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from memeflow.documents import MemeDoc
from memeflow.encoder.pipeline import NO_INPUT, embed_documents
from memeflow.encoder.thumbnail import THUMBNAIL_SIDE, make_thumbnail
from memeflow.indexer.storage.thumbnails import ThumbnailStore
from tests.conftest import MEMES

DRAKE = MEMES / "drake" / "default.jpg"


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(2) as workers:
        yield workers


def test_thumbnail_is_a_small_jpeg_keeping_the_aspect_ratio() -> None:
    wide = Image.new("RGB", (1200, 600), "orange")
    preview = Image.open(io.BytesIO(make_thumbnail(wide)))
    assert preview.format == "JPEG"
    assert preview.size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE // 2)
    small = Image.new("RGB", (100, 80), "blue")
    assert Image.open(io.BytesIO(make_thumbnail(small))).size == (100, 80)  # never enlarged


def test_store_names_files_by_id_hash_inside_its_folder(tmp_path) -> None:
    store = ThumbnailStore(tmp_path / "thumbnails")
    for doc_id in ("../../etc/passwd", "/abs/path", "plain"):
        store.put(doc_id, b"jpeg of " + doc_id.encode())
        assert store.path(doc_id).parent == tmp_path / "thumbnails"
        assert store.get(doc_id) == b"jpeg of " + doc_id.encode()
    assert not (tmp_path / "etc").exists()
    store.delete(["plain", "never-stored"])
    assert store.get("plain") is None and store.get("/abs/path")
    store.clear()
    assert store.get("/abs/path") is None and list((tmp_path / "thumbnails").iterdir()) == []


def test_a_failed_write_keeps_the_old_thumbnail_and_leaves_no_temporary_file(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ThumbnailStore(tmp_path / "thumbnails")
    store.put("a", b"old jpeg")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.put("a", b"new jpeg")
    monkeypatch.undo()
    assert store.get("a") == b"old jpeg"
    assert [path.name for path in store.folder.iterdir()] == [store.path("a").name]


def test_a_request_of_previews_is_written_with_one_folder_sync(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request's previews are replaced together: each file synced, then the folder once
    (not once per preview); a failure leaves the old previews and no temporary file."""
    store = ThumbnailStore(tmp_path / "thumbnails")
    store.put("a", b"old a")
    synced: list[bool] = []
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    store.put_many({"a": b"new a", "b": b"b", "c": b"c"})
    assert [store.get(doc_id) for doc_id in "abc"] == [b"new a", b"b", b"c"]
    assert synced.count(True) == 1 and synced.count(False) == 3

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.put_many({"a": b"newer a", "d": b"d"})
    monkeypatch.undo()
    assert store.get("a") == b"new a" and store.get("d") is None
    assert sorted(path.name for path in store.folder.iterdir()) == sorted(
        store.path(doc_id).name for doc_id in "abc")


def test_indexed_images_get_a_thumbnail_and_queries_do_not(clip_model, pool) -> None:
    indexed = MemeDoc(blob=DRAKE.read_bytes())
    embed_documents(clip_model, [indexed], pool, thumbnails=True)
    preview = Image.open(io.BytesIO(indexed.thumbnail))
    assert max(preview.size) == THUMBNAIL_SIDE and indexed.blob is None
    query = MemeDoc(blob=DRAKE.read_bytes())
    embed_documents(clip_model, [query], pool)
    assert query.thumbnail is None and query.embedding is not None


def test_an_id_only_query_passes_the_encoder_on_search_only(clip_model, pool) -> None:
    query = MemeDoc(id="some-indexed-id")
    embed_documents(clip_model, [query], pool, by_id=True)
    assert query.error is None and query.embedding is None
    to_index = MemeDoc(id="some-indexed-id")
    embed_documents(clip_model, [to_index], pool)
    assert to_index.error == NO_INPUT
