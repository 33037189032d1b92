"""Frames through the indexer executor and the client: stored from /index and /upsert (a
mistake is that document's error), never in a reply unless asked for, kept by a re-filed
picture, named by a hit's `frame_ms`, and carried by a moved file without encoding it."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from docarray import DocList

from memeflow.client.moves import Reuse, StoredDoc
from memeflow.client.sync import reused_doc
from memeflow.client.wire import codec
from memeflow.documents import MemeDoc
from memeflow.indexer.executor import MemeIndexer
from memeflow.indexer.search.options import SearchOptions
from memeflow.indexer.shards import merge_matches

DIM = 8
TOL = 1e-6


def unit(seed: int, n: int = 1) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


CLIP = unit(1, 4)  # the frames of a clip; its second one stands for the file
MS = [0, 500, 1000, 1500]


@pytest.fixture
def indexer(tmp_path, monkeypatch) -> Iterator[MemeIndexer]:
    for name in ("MEMEFLOW_WORKSPACE", "MEMEFLOW_INDEX"):
        monkeypatch.delenv(name, raising=False)
    opened = MemeIndexer(workspace=str(tmp_path / "ws"))
    yield opened
    opened.close()


def clip_doc(doc_id: str = "clip", **fields) -> MemeDoc:
    return MemeDoc(**{"id": doc_id, "uri": f"/memes/{doc_id}.gif", "embedding": CLIP[1],
                      "tags": {"sha256": "c1"}, "frames": CLIP, "frame_ms": MS, **fields})


def test_index_stores_frames_and_refuses_bad_ones_per_document(indexer) -> None:
    docs = DocList[MemeDoc]([
        MemeDoc(id="still", embedding=unit(2)[0], tags={"sha256": "s1"}),
        clip_doc(),
        clip_doc("no-times", frame_ms=None),
        clip_doc("short-times", frame_ms=MS[:3]),
        clip_doc("other-dim", frames=CLIP[:, :4]),
        clip_doc("nan", frames=np.full((2, DIM), np.nan, np.float32), frame_ms=[0, 1]),
    ])
    reply = indexer.index(docs, {})
    errors = {doc.id: doc.error for doc in reply}
    assert errors["still"] is None and errors["clip"] is None
    assert "frames but no frame_ms" in (errors["no-times"] or "")
    assert "one time in ms" in (errors["short-times"] or "")
    assert "(k, 8)" in (errors["other-dim"] or "")
    assert "NaN" in (errors["nan"] or "")
    assert all("\n" not in (error or "") for error in errors.values())
    assert len(indexer.collection) == 2
    assert all(doc.frames is None and doc.frame_ms is None and doc.embedding is None
               for doc in reply)
    stored = indexer.collection.frames(["clip"])[0]
    assert stored is not None and stored.ms == MS
    np.testing.assert_allclose(stored.vectors, CLIP, atol=TOL)
    kept = indexer.index(DocList[MemeDoc]([clip_doc("again")]), {"return_embeddings": True})
    assert kept[0].frame_ms == MS and np.shape(kept[0].frames) == (4, DIM)


def test_search_names_the_best_frame_and_sends_no_vectors(indexer) -> None:
    indexer.index(DocList[MemeDoc]([MemeDoc(id="still", embedding=unit(2)[0]), clip_doc()]), {})
    reply = indexer.search(DocList[MemeDoc]([MemeDoc(embedding=CLIP[3])]), {"top_k": 2})
    best, other = reply[0].matches
    assert (best.id, best.frame_ms) == ("clip", 1500) and abs(best.score - 1) < TOL
    assert (other.id, other.frame_ms) == ("still", None)
    assert best.embedding is None and reply[0].embedding is None
    # What the client makes of the reply: the clip's hit says when its best frame shows.
    from memeflow.client.client import _hit

    (wire,) = [codec.decode_doc(proto) for proto in codec.DocListProto.FromString(
        reply.to_protobuf().SerializeToString()).docs]
    hits = [_hit(rank, match) for rank, match in enumerate(wire["matches"], start=1)]
    assert hits[0]["frame_ms"] == 1500 and "frame_ms" not in hits[1]
    # Sharded: the merger keeps each hit's frame_ms.
    merged = merge_matches([reply[0].matches[1:], reply[0].matches[:1]],
                           SearchOptions.from_parameters({"top_k": 2}))
    assert [(m.id, m.frame_ms) for m in merged] == [("clip", 1500), ("still", None)]


def test_find_returns_frames_only_with_embeddings(indexer) -> None:
    indexer.index(DocList[MemeDoc]([clip_doc(), MemeDoc(id="still", embedding=unit(2)[0],
                                                        tags={"sha256": "c1"})]), {})
    query = DocList[MemeDoc]([MemeDoc(tags={"sha256": "c1"})])
    plain = {doc.id: doc for doc in indexer.find(query, {"tag": "sha256"})}
    assert all(doc.frames is None and doc.frame_ms is None for doc in plain.values())
    full = {doc.id: doc for doc in indexer.find(query, {"tag": "sha256",
                                                          "return_embeddings": True})}
    assert full["clip"].frame_ms == MS
    np.testing.assert_allclose(full["clip"].frames, CLIP, atol=TOL)
    assert full["still"].frames is None and full["still"].frame_ms is None


def test_an_upsert_of_the_same_picture_without_frames_keeps_them(indexer) -> None:
    indexer.index(DocList[MemeDoc]([clip_doc()]), {})
    same = MemeDoc(id="clip", uri="/memes/renamed.gif", embedding=CLIP[1], tags={"sha256": "c1"})
    indexer.index(DocList[MemeDoc]([same]), {})
    stored = indexer.collection.frames(["clip"])[0]
    assert stored is not None and stored.ms == MS
    edited = MemeDoc(id="clip", embedding=unit(3)[0], tags={"sha256": "c2"})  # other bytes
    indexer.index(DocList[MemeDoc]([edited]), {})
    assert indexer.collection.frames(["clip"]) == [None]


def test_a_moved_clip_keeps_its_frames_without_encoding(indexer, tmp_path) -> None:
    indexer.index(DocList[MemeDoc]([clip_doc()]), {})
    found = indexer.find(DocList[MemeDoc]([MemeDoc(tags={"sha256": "c1"})]),
                         {"tag": "sha256", "return_embeddings": True})
    # What the client reads back (as Client.find_by_hash does) and sends to /upsert.
    (wire,) = [codec.decode_doc(proto) for proto in codec.DocListProto.FromString(
        found.to_protobuf().SerializeToString()).docs]
    source = StoredDoc(wire["id"], wire["uri"], np.asarray(wire["embedding"], np.float32),
                       wire.get("words"), wire["tags"], np.asarray(wire["frames"], np.float32),
                       wire["frame_ms"])
    path = tmp_path / "moved.gif"
    path.write_bytes(b"GIF89a")
    sent = reused_doc(Reuse(Path(path), source, moved=True), "c1", None)
    assert sent["frame_ms"] == MS and np.shape(sent["frames"]) == (4, DIM)
    docs = DocList[MemeDoc].from_protobuf(type(DocList[MemeDoc]().to_protobuf()).FromString(
        codec.encode_list([sent]).SerializeToString()))
    indexer.collection.delete(["clip"])
    reply = indexer.index(docs, {})
    assert reply[0].error is None
    stored = indexer.collection.frames([sent["id"]])[0]
    assert stored is not None and stored.ms == MS
    np.testing.assert_allclose(stored.vectors, CLIP, atol=TOL)
