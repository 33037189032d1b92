"""`memeflow serve` with MEMEFLOW_INDEX naming a Milvus server (Milvus Lite's, started by
the tests): index, search by text and by image, filter, move, delete, as with the default
index; the documents, their previews and the model identity are in Milvus, not in the
workspace."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from memeflow.client import MemeClient
from memeflow.client.files import file_id
from memeflow.documents import MemeDoc
from memeflow.indexer.backends.milvus import MilvusCollection
from tests.conftest import post_json, serving

pytestmark = pytest.mark.flow


@pytest.fixture(scope="module")
def memes(tmp_path_factory, meme_files) -> list[Path]:
    """A dozen memes of several templates (drake's two among them), copied into a folder of
    this module's own."""
    root = tmp_path_factory.mktemp("memes")
    picked = [f for f in meme_files if not f.parent.name.startswith(("_", "sad-obama"))][:10]
    picked += [f for f in meme_files if f.parent.name == "drake"]
    assert len(picked) > 11
    copies = []
    for path in picked:
        (root / path.parent.name).mkdir(exist_ok=True)
        copies.append(Path(shutil.copy(path, root / path.parent.name / path.name)))
    return copies


@pytest.fixture(scope="module")
def milvus_service(tmp_path_factory, milvus_uri):
    name = "flow_module"
    MilvusCollection(milvus_uri, collection=name).clear()
    with serving(tmp_path_factory.mktemp("service"), MEMEFLOW_INDEX=milvus_uri,
                 MEMEFLOW_COLLECTION=name) as running:
        yield running, MilvusCollection(milvus_uri, collection=name)


@pytest.fixture(scope="module")
def client(milvus_service) -> MemeClient:
    return MemeClient(milvus_service[0].env["MEMEFLOW_HOST"])


def test_index_stores_every_meme_in_milvus_then_nothing_changed(client, milvus_service,
                                                                  memes) -> None:
    report = client.index_paths([memes[0].parents[1]])
    assert len(report.encoded) == len(memes) and not report.failed
    assert client.count() == len(memes)
    collection = milvus_service[1]
    assert collection.count() == len(memes)  # in the Milvus collection itself
    assert collection.model() is not None  # the model identity is kept beside it
    again = client.index_paths([memes[0].parents[1]])
    assert len(again.unchanged) == len(memes) and not again.encoded


def test_previews_and_the_model_live_in_milvus_and_status_names_it(client, milvus_service,
                                                                     memes) -> None:
    service, collection = milvus_service
    previews = client.thumbnails([file_id(path) for path in memes])
    assert set(previews) == {file_id(path) for path in memes}
    assert all(data[:3] == b"\xff\xd8\xff" for data in previews.values())  # JPEGs
    assert collection.previews(Path("unused")).get_many(list(previews)) == previews
    workspace = Path(service.env["MEMEFLOW_WORKSPACE"])
    assert not list(workspace.rglob("*.jpg"))  # nothing of them in the workspace
    meta = json.loads((workspace / "memeflow.json").read_text())
    assert meta["model"] is None and meta.get("running_model") is None  # Milvus has them
    status = json.loads(service.cli("status", "--json").stdout)
    assert status["index"] == f"{service.env['MEMEFLOW_INDEX']} (collection flow_module)"
    assert "workspace" not in status
    assert "index:     " + status["index"] in service.cli("status").stdout


def test_search_by_image_finds_the_meme_itself_first(client, memes) -> None:
    for path in memes[:4]:
        hits = client.search_image(path, top_k=3)
        assert hits[0]["id"] == file_id(path) or hits[0]["score"] == pytest.approx(
            hits[1]["score"], abs=1e-4)  # byte-identical copies tie
        assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_search_by_text_and_filter(client, memes) -> None:
    hits = client.search_text("a happy child", top_k=5)
    assert len(hits) == 5
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    folder = memes[-1].parent.name
    only = client.search_text("a happy child", top_k=20, where={"folder": folder})
    assert only and {h["tags"]["folder"] for h in only} == {folder}
    assert len(only) == sum(p.parent.name == folder for p in memes)
    paged = client.search_text("a happy child", top_k=2, offset=2)
    assert [h["id"] for h in paged] == [h["id"] for h in hits[2:4]]


def test_a_moved_file_keeps_its_document(client, memes) -> None:
    old = memes[-1]
    new = old.with_name("renamed-" + old.name)
    old.rename(new)
    try:
        report = client.index_paths([memes[0].parents[1]])
        assert report.moved == [(str(old), str(new))] and not report.encoded
        assert client.count() == len(memes)
    finally:
        new.rename(old)
        client.index_paths([memes[0].parents[1]])


def test_bad_requests_are_refused_and_bad_documents_fail_alone(client) -> None:
    good = np.random.default_rng(7).standard_normal((2, 512)).astype(np.float32)
    docs = [MemeDoc(id=f"own-{i}", uri=f"memes/own-{i}.png", tags={"n": i}, embedding=v)
            for i, v in enumerate(good)]
    docs += [MemeDoc(id="own-nan", embedding=np.full(512, np.nan, np.float32)),
             MemeDoc(id="own-short", embedding=good[0][:100])]
    results = {d.id: d for d in client.upsert(docs)}
    assert [results["own-0"].error, results["own-1"].error] == [None, None]
    assert "NaN" in results["own-nan"].error and "512" in results["own-short"].error
    assert set(client.stored(list(results))) == {"own-0", "own-1"}
    (hit,) = client.search(MemeDoc(embedding=good[1]), top_k=1, where={"n": {"$gte": 1}})
    assert hit["id"] == "own-1" and hit["score"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="unknown operator"):
        client.search_text("a dog", where={"folder": {"$like": "x"}})
    with pytest.raises(ValueError, match="512"):
        client.search(MemeDoc(embedding=good[0][:100]), top_k=1)
    assert client.delete(["own-0", "own-1"]) == 2


def test_min_score_group_by_and_hub_correction_through_the_flow(client, milvus_service
                                                                ) -> None:
    """What tests/test_search_features.py asserts through the embedded backend's Flow."""
    service = milvus_service[0]
    hits = client.search_text("a dog", top_k=40)
    cut = hits[3]["score"]
    kept = client.search_text("a dog", top_k=40, min_score=cut)
    assert [h["id"] for h in kept] == [h["id"] for h in hits if h["score"] >= cut]
    reply = post_json(service, "/search", {"data": [{"text": "a dog"}],
                                           "parameters": {"top_k": 50, "group_by": "folder"}})
    folders = [m["tags"]["folder"] for m in reply["data"][0]["matches"]]
    assert folders == list(dict.fromkeys(h["tags"]["folder"] for h in hits))
    run = service.cli("search", "a dog", "-k", "40", "--hub-correction", "--json")
    corrected = json.loads(run.stdout)
    expected = sorted(hits, key=lambda h: (-(h["score"] - h["tags"]["hubness"]), h["id"]))
    assert [h["id"] for h in corrected] == [h["id"] for h in expected]


def test_delete_removes_from_milvus(client, milvus_service, memes) -> None:
    gone = file_id(memes[0])
    assert client.delete([gone]) == 1
    assert client.count() == len(memes) - 1 == milvus_service[1].count()
    assert gone not in {h["id"] for h in client.search_image(memes[0], top_k=len(memes))}
    assert client.delete([gone]) == 0
