"""With the documents in a Milvus server the indexer holds no state: two indexers (replicas,
or services on two machines) with workspaces of their own serve the same previews, know the
same model identity, and say where the documents live (Milvus Lite's server)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from docarray import DocList
from PIL import Image

from memeflow.documents import MemeDoc
from memeflow.encoder.identity import ModelMismatchError, check_model, preflight_model
from memeflow.encoder.thumbnail import make_thumbnail
from memeflow.indexer.executor import MemeIndexer
from memeflow.model_record import model_record
from memeflow.workspace import read_meta
from tests.conftest import free_port
from tests.test_workspace import identity, unit_rows


@pytest.fixture
def replicas(tmp_path, milvus_uri, milvus_collection_name, monkeypatch):
    """Two indexers on one Milvus collection, each with a workspace of its own."""
    for name in ("MEMEFLOW_WORKSPACE", "MEMEFLOW_INDEX", "MEMEFLOW_COLLECTION"):
        monkeypatch.delenv(name, raising=False)
    opened = [MemeIndexer(workspace=str(tmp_path / f"ws{i}"), index=milvus_uri,
                          collection=milvus_collection_name) for i in (1, 2)]
    yield opened
    opened[0].clear(DocList[MemeDoc]())
    for indexer in opened:
        indexer.close()


def _docs(ids: list[str], previews: dict[str, bytes], dim: int = 8) -> DocList[MemeDoc]:
    rng = np.random.default_rng(len(ids))
    return DocList[MemeDoc]([MemeDoc(id=i, uri=f"/memes/{i}.jpg", thumbnail=previews.get(i),
                                     embedding=rng.standard_normal(dim).astype(np.float32))
                             for i in ids])


def _previews(indexer: MemeIndexer, ids: list[str]) -> dict[str, bytes]:
    found = indexer.thumbnail(DocList[MemeDoc]([MemeDoc(id=i) for i in ids]))
    return {doc.id: doc.thumbnail for doc in found}


def test_previews_stored_through_one_indexer_are_served_by_the_other(replicas, tmp_path
                                                                    ) -> None:
    one, two = replicas
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    largest = make_thumbnail(Image.fromarray(noise))  # the worst case for JPEG: ~45 KB
    previews = {"a": largest, "b": make_thumbnail(Image.new("RGB", (300, 200), "orange")),
                "huge": os.urandom(200_000)}  # /upsert may bring any bytes: several pieces
    one.index(_docs(["a", "b", "c", "huge"], previews), {})
    assert _previews(two, ["a", "b", "c", "huge", "never-indexed"]) == previews
    assert not [p for ws in ("ws1", "ws2") for p in (tmp_path / ws).rglob("*.jpg")]

    two.delete(DocList[MemeDoc]([MemeDoc(id="a")]))
    assert one.previews.get_many(["a", "b"]) == {"b": previews["b"]}  # its preview went too
    two.index(_docs(["b"], {}), {})  # again from a bare vector: the old preview is dropped
    assert _previews(one, ["b", "huge"]) == {"huge": previews["huge"]}
    one.index(_docs(["c"], {"c": b"jpeg of c"}), {})
    assert _previews(two, ["c"]) == {"c": b"jpeg of c"}
    odd = 'x\x01"\\y\u00e9'  # a control character, a quote, a backslash: ids may hold any
    one.index(_docs([odd], {odd: b"jpeg of odd"}), {})
    assert _previews(two, [odd]) == {odd: b"jpeg of odd"}
    two.delete(DocList[MemeDoc]([MemeDoc(id=odd)]))
    assert one.previews.get_many([odd]) == {}

    two.clear(DocList[MemeDoc]())
    assert one.previews.get_many(["c", "huge"]) == {} == _previews(one, ["c", "huge"])
    one.index(_docs(["d"], {"d": b"jpeg of d"}), {})  # the previews' collection made again
    assert _previews(two, ["d"]) == {"d": b"jpeg of d"}


def test_an_indexer_with_an_empty_workspace_knows_the_model_from_milvus(
        replicas, tmp_path, milvus_uri, milvus_collection_name) -> None:
    one, two = replicas
    rng = np.random.default_rng(5)
    a, other = identity("a", unit_rows(rng, 4, 8)), identity("b", unit_rows(rng, 4, 8))

    def record(machine: str):  # what an encoder or `memeflow serve` there opens
        return model_record(tmp_path / machine, milvus_uri, milvus_collection_name)

    check_model(record("machine-1"), a)  # the encoder of the first service, starting
    one.index(_docs(["x"], {}), {})  # its first vectors bind the collection to a
    assert one.collection.model() == a == two.collection.model()
    assert (read_meta(tmp_path / "ws1") or {}).get("model") is None  # not the workspace's

    check_model(record("machine-2"), a)  # the same model starts anywhere
    with pytest.raises(ModelMismatchError) as refused:  # another one is refused
        check_model(record("machine-3"), other)
    message = str(refused.value)
    assert f"Milvus collection {milvus_collection_name} at {milvus_uri}" in message
    assert "MEMEFLOW_COLLECTION" in message and "MEMEFLOW_MODEL=a" in message
    folder = tmp_path / "model-16"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"projection_dim": 16}))
    with pytest.raises(ModelMismatchError, match="dimensions differ"):  # `memeflow serve`
        preflight_model(record("machine-3"), str(folder), folder, None)

    two.clear(DocList[MemeDoc]())  # an empty collection takes any model
    assert one.collection.model() is None
    check_model(record("machine-3"), other)
    two.index(_docs(["y"], {}), {})
    assert one.collection.model() == other


def test_vectors_stored_before_any_encoder_started_take_the_next_ones_model(
        replicas, tmp_path, milvus_uri, milvus_collection_name) -> None:
    one, _ = replicas
    one.index(_docs(["x"], {}), {})  # /upsert of own vectors: no encoder has said its model
    assert one.collection.model() is None
    a = identity("a", unit_rows(np.random.default_rng(8), 4, 8))
    check_model(model_record(tmp_path / "elsewhere", milvus_uri, milvus_collection_name), a)
    assert one.collection.model() == a  # adopted, as a workspace of an older memeflow is


def test_status_names_the_milvus_collection_not_a_workspace(replicas, milvus_uri,
                                                             milvus_collection_name) -> None:
    one, two = replicas
    one.index(_docs(["x", "y"], {}), {})
    tags = two.status(DocList[MemeDoc]())[0].tags
    assert tags["index"] == f"{milvus_uri} (collection {milvus_collection_name})"
    assert "workspace" not in tags and tags["count"] == 2 and tags["dim"] == 8


def test_status_without_a_service_names_the_milvus_collection_serve_would_use(tmp_path
                                                                             ) -> None:
    port = free_port()  # nothing answers there: status says what `serve` here would use
    env = dict(os.environ, MEMEFLOW_INDEX="http://milvus-host:19530", MEMEFLOW_COLLECTION="memes",
               MEMEFLOW_GRPC_PORT=str(port), MEMEFLOW_HOST=f"grpc://127.0.0.1:{port}",
               MEMEFLOW_WORKSPACE=str(tmp_path / "ws"))
    run = subprocess.run([str(Path(sys.executable).parent / "memeflow"), "status", "--json"],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 3, run.stderr
    status = json.loads(run.stdout)
    assert status["index"] == "http://milvus-host:19530 (collection memes)"
    assert "workspace" not in status and status["answering"] is False
