"""Tag filters on the Milvus backend give what their definition (`Where.matches`) gives,
edge cases included, against Milvus Lite's real server; what Milvus cannot say is
checked by memeflow on the stored tags, and the test names it."""

import math

import numpy as np
import pytest

from memeflow.indexer.backends.milvus import MilvusCollection
from memeflow.indexer.backends.milvus_where import compile_where as milvus_filter
from memeflow.indexer.filters import compile_where

# One document per tag value: the value kinds a filter must tell apart.
VALUES: dict[str, object] = {
    "int1": 1, "int0": 0, "neg": -3, "int2": 2, "float1": 1.0, "half": 1.5, "huge": 2**70,
    "huge1": 2**70 + 1,  # the same float as 2**70: only its exact tags tell them apart
    "nan": math.nan, "inf": math.inf, "ninf": -math.inf,
    "str1": "1", "strhalf": "1.5", "strnan": "nan", "abc": "abc", "mixed": "Hello World",
    "empty": "", "strtrue": "true", "quote": 'say "hi" \\ there\n', "unicode": "Ünïcødé 猫",
    "true": True, "false": False, "null": None,
    "list": [1, "a", True, "Bob Smith"], "strlist": ["x", "Y"], "emptylist": [],
    "nested": [[1, 2], {"k": 1}], "obj": {"k": 1}, "emptyobj": {},
}
DOCS = {f"d-{name}": {"x": value, "other": name} for name, value in VALUES.items()}
DOCS["d-missing"] = {"other": "missing"}
DOCS['d-odd-key'] = {'we"ird]\\key': "v", "other": "odd"}

WHERES = [
    {"x": 1}, {"x": 1.0}, {"x": True}, {"x": False}, {"x": 0}, {"x": 2}, {"x": "1"},
    {"x": "a"}, {"x": "abc"}, {"x": "Hello World"}, {"x": ""}, {"x": 'say "hi" \\ there\n'},
    {"x": "Ünïcødé 猫"}, {"x": 1.5}, {"x": -3},
    {"x": {"$ne": 1}}, {"x": {"$ne": "abc"}}, {"x": {"$ne": True}},
    {"x": {"$in": [2, "abc", "x"]}}, {"x": {"$in": []}}, {"x": {"$nin": [1, "abc"]}},
    {"x": {"$nin": []}},
    {"x": {"$exists": True}}, {"x": {"$exists": False}},
    {"x": {"$gt": 1}}, {"x": {"$gte": 1}}, {"x": {"$lt": 1}}, {"x": {"$lte": "1.5"}},
    {"x": {"$gt": 0, "$lt": 2}}, {"x": {"$gte": "inf"}}, {"x": {"$lt": "-inf"}},
    {"x": {"$gt": -1e300}},
    {'we"ird]\\key': "v"}, {"other": {"$in": ["abc", "list"]}, "x": {"$exists": True}},
    # what Milvus cannot say: checked by memeflow on the stored tags
    {"x": {"$contains": "world"}}, {"x": {"$contains": "B"}}, {"x": {"$contains": 1}},
    {"x": None}, {"x": [1, 2]}, {"x": {"$eq": {"k": 1}}}, {"x": {"$eq": []}}, {"x": 2**70},
    {"x": {"$ne": None}}, {"x": {"$nin": [None, 1]}}, {"x": {"$in": [{"k": 1}, "abc"]}},
    {"x": {"$contains": "o"}, "other": {"$ne": "mixed"}},
    {"x": float(2**70)}, {"x": {"$nin": [float(2**70), "abc"]}}, {"x": {"$ne": -(2.0**63)}},
]
# The conditions Milvus cannot express exactly (see milvus_where's docstring).
NOT_EXPRESSIBLE = WHERES[WHERES.index({"x": {"$contains": "world"}}):]


@pytest.fixture(scope="module")
def filtered(milvus_uri) -> MilvusCollection:
    collection = MilvusCollection(milvus_uri, collection="filters_module")
    collection.clear()
    ids = list(DOCS)
    vectors = np.random.default_rng(0).standard_normal((len(ids), 4)).astype(np.float32)
    collection.upsert(ids, vectors, [{"uri": None, "tags": DOCS[i]} for i in ids])
    yield collection
    collection.clear()
    collection.close()


@pytest.mark.parametrize("where", WHERES, ids=repr)
def test_a_milvus_filter_selects_what_the_definition_does(filtered, where) -> None:
    expected = {doc_id for doc_id, tags in DOCS.items() if compile_where(where).matches(tags)}
    selection = filtered.select(compile_where(where))
    query = np.ones((1, 4), np.float32)
    found = {hit["id"] for hit in filtered.dense_search(query, len(DOCS), selection)[0]}
    assert found == expected


@pytest.mark.parametrize("where", WHERES, ids=repr)
def test_only_the_conditions_milvus_cannot_say_are_checked_by_memeflow(where) -> None:
    residual = milvus_filter(compile_where(where)).residual
    assert bool(residual) == (where in NOT_EXPRESSIBLE)


def test_stored_tags_come_back_exactly(filtered) -> None:
    stored = filtered.get(list(DOCS))
    for doc_id, document in zip(DOCS, stored, strict=True):
        assert document is not None
        assert repr(document["tags"]) == repr(DOCS[doc_id])  # NaN, 2**70 and -0 included
