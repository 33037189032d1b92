"""Indexer replicas sharing one Milvus collection (Milvus Lite's server): whichever
replica answers, every request sees every write (previews too), and searches give the
exact top 10."""

import numpy as np
import pytest
from docarray import DocList
from jina import Client, Flow

from memeflow.documents import MemeDoc
from memeflow.indexer.backends.milvus import MilvusCollection
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.flow

INDEXER = str(REPO / "executors" / "meme_indexer" / "config.yml")
REPLICAS = 3


def test_replicas_of_a_stateless_indexer_answer_as_one(tmp_path, milvus_uri,
                                                       milvus_collection_name) -> None:
    rng = np.random.default_rng(3)
    corpus = rng.normal(size=(240, 512)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = corpus[:6] + rng.normal(scale=0.5, size=(6, 512)).astype(np.float32)
    port = free_port()
    flow = Flow(port=port).add(
        uses=INDEXER, replicas=REPLICAS,
        uses_with={"workspace": str(tmp_path / "workspace"), "index": milvus_uri,
                   "collection": milvus_collection_name})
    with flow:
        client = Client(port=port)
        docs = [MemeDoc(id=f"m{i:03d}", uri=f"/{i}.jpg", tags={"odd": i % 2},
                        thumbnail=f"jpeg {i}".encode() if i % 40 == 0 else None,
                        embedding=v) for i, v in enumerate(corpus)]
        # requests of 20: the gateway spreads them over the replicas
        client.post("/index", DocList[MemeDoc](docs), request_size=20,
                    return_type=DocList[MemeDoc])
        counts = [client.post("/count", DocList[MemeDoc](), return_type=DocList[MemeDoc])[0]
                  .tags["count"] for _ in range(2 * REPLICAS)]
        answers = [client.post("/search", DocList[MemeDoc]([MemeDoc(embedding=q)]),
                               parameters={"top_k": 10, "where": {"odd": 1}},
                               return_type=DocList[MemeDoc])[0]
                   for q in np.repeat(queries, REPLICAS, axis=0)]
        previewed = [{doc.id: doc.thumbnail for doc in client.post(
            "/thumbnail", DocList[MemeDoc]([MemeDoc(id=f"m{i:03d}") for i in range(0, 240, 20)]),
            return_type=DocList[MemeDoc])} for _ in range(2 * REPLICAS)]
        deleted = client.post("/delete", DocList[MemeDoc]([MemeDoc(id="m001")]),
                              return_type=DocList[MemeDoc])[0].tags["deleted"]
        after = [client.post("/count", DocList[MemeDoc](), return_type=DocList[MemeDoc])[0]
                 .tags["count"] for _ in range(2 * REPLICAS)]
    assert counts == [len(corpus)] * (2 * REPLICAS)
    assert previewed == [{f"m{i:03d}": f"jpeg {i}".encode() for i in range(0, 240, 40)}
                         ] * (2 * REPLICAS)
    assert deleted == 1 and after == [len(corpus) - 1] * (2 * REPLICAS)
    odd = np.arange(1, len(corpus), 2)
    for i, answer in enumerate(answers):
        scores = corpus[odd] @ (queries[i // REPLICAS] / np.linalg.norm(queries[i // REPLICAS]))
        expected = [f"m{odd[j]:03d}" for j in np.argsort(-scores)[:10]]
        assert [m.id for m in answer.matches] == expected
    assert MilvusCollection(milvus_uri, collection=milvus_collection_name).count() == 239
