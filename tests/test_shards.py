"""A sharded indexer answers exactly like one shard holding everything."""

import numpy as np
import pytest
from docarray import DocList
from jina import Client, Flow

from memeflow.documents import MemeDoc
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.flow

INDEXER = str(REPO / "executors" / "meme_indexer" / "config.yml")
MERGER = str(REPO / "executors" / "shard_merger" / "config.yml")
# Jina sends /index to ANY shard unless told otherwise, even under "*": "ALL".
SHARD_POLLING = {"*": "ALL", "/index": "ALL"}


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.normal(size=(n, 512)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def run(flow: Flow, port: int, corpus: np.ndarray, queries: np.ndarray) -> dict:
    with flow:
        client = Client(port=port)
        docs = [MemeDoc(id=f"m{i}", uri=f"/{i}.jpg", embedding=v) for i, v in enumerate(corpus)]
        client.post("/index", DocList[MemeDoc](docs), request_size=500,
                    return_type=DocList[MemeDoc])
        again = client.post("/index", DocList[MemeDoc](docs[:50]), return_type=DocList[MemeDoc])
        assert all(d.error is None for d in again)  # upsert of known ids: no duplicates
        deleted = client.post("/delete", DocList[MemeDoc]([MemeDoc(id="m7"), MemeDoc(id="m8")]),
                              return_type=DocList[MemeDoc])
        results = client.post("/search", DocList[MemeDoc]([MemeDoc(embedding=q) for q in queries]),
                              parameters={"top_k": 10}, request_size=100,
                              return_type=DocList[MemeDoc])
        count = client.post("/count", DocList[MemeDoc](), return_type=DocList[MemeDoc])
        found = client.post("/find", DocList[MemeDoc](), parameters={"uri_prefix": "/12"},
                            return_type=DocList[MemeDoc])
        status = client.post("/status", DocList[MemeDoc](), return_type=DocList[MemeDoc])
        return {
            "found": sorted(doc.id for doc in found),
            "status": status[0].tags["count"],
            "deleted": deleted[0].tags["deleted"],
            "count": count[0].tags["count"],
            "ids": [[m.id for m in r.matches] for r in results],
            "scores": np.array([[m.score for m in r.matches] for r in results]),
        }


def test_two_shards_return_the_same_top_k_as_one(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MEMEFLOW_WORKSPACE", raising=False)
    rng = np.random.default_rng(7)
    corpus, queries = unit_rows(rng, 3000), unit_rows(rng, 100)
    corpus[100] = corpus[200]  # a tie across shards must break the same way (by id)
    one_port, two_port = free_port(), free_port()
    one = Flow(port=one_port).add(uses=INDEXER, uses_with={"workspace": str(tmp_path / "one")})
    two = Flow(port=two_port).add(uses=INDEXER, uses_with={"workspace": str(tmp_path / "two")},
                                  shards=2, polling=SHARD_POLLING, uses_after=MERGER)
    single, sharded = run(one, one_port, corpus, queries), run(two, two_port, corpus, queries)
    assert single["count"] == sharded["count"] == 2998
    assert single["status"] == sharded["status"] == 2998  # one status, summed over shards
    assert len(single["found"]) == 111 and sharded["found"] == single["found"]  # /12, /12x...
    assert single["deleted"] == sharded["deleted"] == 2
    assert sharded["ids"] == single["ids"]
    np.testing.assert_array_equal(sharded["scores"], single["scores"])
    # Each shard keeps its own store; the workspace's format and model are recorded once.
    assert sorted(p for p in (tmp_path / "two").iterdir() if p.is_dir()) == [
        tmp_path / "two" / "shard-0-of-2", tmp_path / "two" / "shard-1-of-2"]
    assert (tmp_path / "two" / "memeflow.json").is_file()
