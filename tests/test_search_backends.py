"""The search, every stage of it, on the Milvus backend (Milvus Lite's server): the same
recorded answers as the embedded backend's (tests/test_search_golden.py): filters, words
fused with the picture ranking, hub correction, minimum score, collapsing, paging and
queries by an indexed id.

The golden cases of a sharded indexer are left out: memeflow never shards a Milvus
collection (Milvus shards itself), and the shard merger compares the words' BM25 scores
across shards, which Milvus computes over every document of a collection, those without
words too (the embedded backend counts only documents with words): the ranks within a
collection agree, the scores do not (README, "Documents in Milvus")."""

import json

import numpy as np
import pytest

from memeflow.indexer.backends.milvus import MilvusCollection
from memeflow.indexer.search.pipeline import SearchOptions, search_collection
from tests.test_search_golden import CASES, GOLDEN, QUERIES, TOLERANCE, _index, _key

UNSHARDED = [case for case in CASES if case[4] == 1]


@pytest.fixture(scope="module")
def milvus(milvus_uri) -> MilvusCollection:
    collection = MilvusCollection(milvus_uri, collection="golden_module")
    collection.clear()
    ids, vectors, records = _index(10_000)
    collection.upsert(ids, vectors, records)
    yield collection
    collection.clear()
    collection.close()


@pytest.mark.parametrize("case", UNSHARDED, ids=_key)
def test_milvus_answers_as_the_embedded_backend_recorded(milvus, case) -> None:
    _, query_name, text, parameters, _ = case
    query = (milvus.vectors([query_name[3:]]) if query_name.startswith("id:")
             else QUERIES[query_name][None, :])
    (found,) = search_collection(milvus, query, SearchOptions.from_parameters(parameters),
                                 texts=[text])
    hits = [(hit["id"], hit["score"]) for hit in found]
    expected = json.loads(GOLDEN.read_text())[_key(case)]
    assert [doc_id for doc_id, _ in hits[:10]] == [doc_id for doc_id, _ in expected]
    assert np.allclose([s for _, s in hits[:10]], [s for _, s in expected], rtol=0,
                       atol=TOLERANCE)
