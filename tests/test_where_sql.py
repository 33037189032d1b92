"""Filters answered from the database's indexes give exactly the documents the filter's
definition (`Where.matches`) gives, and use an index rather than reading every document;
a search filtered on either backend (tests/backends.py) gives those documents too."""

import math
import random
import sqlite3
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from memeflow.indexer.backends import Collection
from memeflow.indexer.backends.embedded import EmbeddedCollection, StoredDocument
from memeflow.indexer.filters import compile_where
from tests.backends import BACKENDS, opened

VALUES: list[Any] = [
    "a", "b", "A", "1", "3", " 4 ", "1e2", "inf", "cat video", "", 0, 1, 2, -3, 2**70,
    2**70 + 1, 1.0, 2.5, math.nan, True, False, None, ["a", 1, True], ["b", "cat"], [], [["a"]],
    {"k": 1},
]
OPERANDS: list[Any] = [
    "a", "b", "1", "3", "cat", 0, 1, 2, 2.5, -3, 2**70, True, False, None, ["a", 1, True],
    {"k": 1}, 1e2, 2.0**70, 2.0**63, -(2.0**63), math.nan, math.inf,
]
TAGS = ["t1", "t2", "t3"]


def random_tags(rng: random.Random) -> dict[str, Any]:
    return {tag: rng.choice(VALUES) for tag in TAGS if rng.random() < 0.7}


def random_condition(rng: random.Random) -> dict[str, Any]:
    op = rng.choice(["$eq", "$ne", "$in", "$nin", "$contains", "$exists", "$gt", "$gte", "$lt",
                     "$lte", "plain"])
    if op == "plain":  # {"tag": value}: equality (an object there would be operators)
        return {rng.choice(TAGS): rng.choice([v for v in OPERANDS if not isinstance(v, dict)])}
    if op in ("$in", "$nin"):
        operand: Any = rng.sample(OPERANDS, rng.randint(0, 3))
    elif op == "$exists":
        operand = rng.choice([True, False])
    elif op.startswith(("$g", "$l")):
        operand = rng.choice([0, 1, 2.5, -1, 100, "3"])
    else:
        operand = rng.choice(OPERANDS)
    return {rng.choice(TAGS): {op: operand}}


def fill(store: Collection) -> dict[str, dict[str, Any]]:
    """300 documents of random tags, some deleted, some replaced; returns their tags by id."""
    rng = random.Random(11)
    tags = {f"d{i:03d}": random_tags(rng) for i in range(300)}
    ids = list(tags)
    vectors = np.random.default_rng(0).standard_normal((len(ids), 4)).astype(np.float32)
    store.upsert(ids, vectors, [StoredDocument(uri=None, tags=tags[i]) for i in ids])
    gone = ids[::7]  # rows move into the deleted ones' places: their tag rows must follow
    store.delete(gone)
    for doc_id in gone:
        del tags[doc_id]
    replaced = ids[1::9]
    for doc_id in replaced:
        tags[doc_id] = random_tags(rng)
    store.upsert(replaced, vectors[: len(replaced)],
                 [StoredDocument(uri=None, tags=tags[i]) for i in replaced])
    return tags


@pytest.fixture
def documents() -> tuple[EmbeddedCollection, dict[str, dict[str, Any]]]:
    store = EmbeddedCollection()
    return store, fill(store)


@pytest.fixture(scope="module", params=BACKENDS)
def on_both(request) -> Iterator[tuple[Collection, dict[str, dict[str, Any]]]]:
    with opened(request.param, request) as store:
        yield store, fill(store)


def test_indexed_filters_give_what_the_definition_gives(documents) -> None:
    store, tags = documents
    rng = random.Random(3)
    in_row_order = store.find()
    for _ in range(400):
        spec: dict[str, Any] = {}
        for _ in range(rng.randint(1, 3)):
            spec.update(random_condition(rng))
        where = compile_where(spec)
        assert where is not None
        found = [in_row_order[row] for row in store.select(where).rows]
        expected = [doc_id for doc_id in in_row_order if where.matches(tags[doc_id])]
        assert found == expected, spec


def test_an_equality_and_a_range_are_index_look_ups(documents) -> None:
    store, _ = documents
    statements: list[str] = []
    connection: sqlite3.Connection = store._conn
    connection.set_trace_callback(statements.append)
    try:
        store.select(compile_where({"t1": "a", "t2": {"$gte": 1, "$lt": 3},
                                    "t3": {"$in": ["b", 2]}}))
    finally:
        connection.set_trace_callback(None)
    assert len(statements) == 3
    for statement in statements:
        plan = " ".join(row[-1] for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}"))
        assert "USING COVERING INDEX tag_values_by_" in plan, plan
        assert "SCAN tag_values" not in plan and "documents" not in plan, plan


def test_a_filtered_search_finds_what_the_definition_gives(on_both) -> None:
    """Through `select` and `dense_search`, the path every search takes: Milvus's
    expressions and what memeflow checks beside them (`milvus_where`) included."""
    store, tags = on_both
    rng = random.Random(5)
    query = np.ones((1, 4), np.float32)
    for _ in range(150):
        spec: dict[str, Any] = {}
        for _ in range(rng.randint(1, 3)):
            spec.update(random_condition(rng))
        where = compile_where(spec)
        hits = store.dense_search(query, len(tags), store.select(where))[0]
        assert {h["id"] for h in hits} == {i for i in tags if where.matches(tags[i])}, spec
