"""The search's answers on a fixed generated index, held to a recorded file.

About forty queries by option combination (filters, words fused with the picture ranking,
hub correction, minimum score, collapsing near-duplicates and groups, paging, queries by
an indexed id, the graph beyond exact_max, two shards merged) were recorded before the
search was rebuilt as one pass of stages; the stages must give the same ids in the same
order, and the same scores within a tiny absolute tolerance.

To record again after a deliberate change of ranking: MEMEFLOW_RECORD_GOLDEN=1 pytest
tests/test_search_golden.py, then review the diff of tests/golden/search.json.
"""

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from docarray import DocList

from memeflow.documents import MatchDoc
from memeflow.indexer.backends.embedded import EmbeddedCollection, StoredDocument
from memeflow.indexer.search.pipeline import SearchOptions, search_collection
from memeflow.indexer.shards import merge_matches, shard_of

GOLDEN = Path(__file__).parent / "golden" / "search.json"
DIM, N = 24, 420
TOLERANCE = 1e-6
PHRASES = ["one does not simply walk", "such wow very doge", "ain't nobody got time",
           "this is fine", "cat on a hat", "distracted boyfriend"]


def _phash(i: int) -> str:
    """Copies of 0..29 at 300..329: near-duplicates 0 to 2 bits apart; others far apart."""
    original, flipped = (i - 300, i % 4) if 300 <= i < 330 else (i, 0)
    return f"{original * 2654435761 % 2**64 ^ flipped:016x}"


def _records(rng: np.random.Generator) -> list[StoredDocument]:
    records = []
    for i in range(N):
        tags: dict[str, Any] = {
            "folder": "rare" if i % 53 == 0 else f"f{i % 7}",
            "year": 2000 + i % 30,
            "keywords": ["cat", "hat"] if i % 3 == 0 else ["dog"],
            "phash": _phash(i),
        }
        if i % 5:
            tags["hubness"] = round(float(rng.uniform(0.0, 0.3)), 6)
        words = None
        if i % 4 == 0:
            words = f"{PHRASES[i % len(PHRASES)]} {'extra words' if i % 8 == 0 else ''} {i}"
        records.append(StoredDocument(uri=f"/m/{i}.jpg", tags=tags, words=words))
    return records


def _index(exact_max: int) -> tuple[list[str], np.ndarray, list[StoredDocument]]:
    rng = np.random.default_rng(22)
    vectors = rng.normal(size=(N, DIM)).astype(np.float32)
    vectors[300:330] = vectors[0:30] + rng.normal(scale=0.05, size=(30, DIM)).astype(np.float32)
    return [f"d{i:03d}" for i in range(N)], vectors, _records(rng)


@pytest.fixture(scope="module")
def stores() -> dict[str, EmbeddedCollection]:
    built = {}
    for name, exact_max in (("exact", 10_000), ("graph", 100)):
        ids, vectors, records = _index(exact_max)
        store = EmbeddedCollection(exact_max=exact_max)
        store.upsert(ids, vectors, records)
        built[name] = store
    return built


QUERIES = {f"q{i}": v for i, v in enumerate(
    np.random.default_rng(5).normal(size=(5, DIM)).astype(np.float32))}

# (store, query (a vector's name or "id:ID"), text, parameters, shards)
CASES: list[tuple[str, str, str | None, dict[str, Any], int]] = [
    ("exact", "q0", None, {}, 1),
    ("exact", "q1", None, {"top_k": 3}, 1),
    ("exact", "q2", None, {"top_k": 10, "offset": 10}, 1),
    ("exact", "q3", None, {"top_k": 10, "offset": 415}, 1),
    ("exact", "q0", None, {"where": {"folder": "rare"}}, 1),
    ("exact", "q1", None, {"where": {"folder": {"$in": ["f1", "f2"]}, "year": {"$gte": 2020}}}, 1),
    ("exact", "q2", None, {"where": {"keywords": {"$contains": "cat"}, "year": {"$lt": 2005}}}, 1),
    ("exact", "q3", None, {"where": {"hubness": {"$exists": False}}}, 1),
    ("exact", "q4", None, {"where": {"folder": {"$ne": "f0"}}, "offset": 5}, 1),
    ("exact", "q0", None, {"hub_correction": True}, 1),
    ("exact", "q1", None, {"hub_correction": True, "where": {"folder": "f3"}}, 1),
    ("exact", "q2", None, {"min_score": 0.3}, 1),
    ("exact", "q3", None, {"min_score": 0.35, "top_k": 50}, 1),
    ("exact", "q4", None, {"min_score": 0.1, "hub_correction": True}, 1),
    ("exact", "id:d005", None, {}, 1),
    ("exact", "id:d005", None, {"dedup": True}, 1),
    ("exact", "id:d012", None, {"dedup": True, "dedup_distance": 0}, 1),
    ("exact", "id:d250", None, {"group_by": "folder"}, 1),
    ("exact", "q0", None, {"group_by": "folder", "top_k": 5, "offset": 2}, 1),
    ("exact", "q1", None, {"group_by": "year", "min_score": 0.0, "top_k": 20}, 1),
    ("exact", "q2", None, {"dedup": True, "hub_correction": True, "min_score": -0.2}, 1),
    ("exact", "q0", "one does not simply", {}, 1),
    ("exact", "q1", "such wow", {"top_k": 20}, 1),
    ("exact", "q2", "this is fine", {"ocr_weight": 0.0}, 1),
    ("exact", "q3", "this is fine", {"ocr_weight": 3.0}, 1),
    ("exact", "q4", "cat on a hat", {"where": {"folder": "f0"}}, 1),
    ("exact", "q0", "distracted boyfriend", {"min_score": 0.4}, 1),
    ("exact", "q1", "ain't nobody got time", {"hub_correction": True}, 1),
    ("exact", "q2", "one does not simply walk", {"dedup": True, "offset": 3}, 1),
    ("exact", "q3", "such wow very doge", {"group_by": "folder"}, 1),
    ("exact", "q4", "no meme says this at all", {}, 1),
    ("exact", "q0", "cat", {"offset": 10, "top_k": 10}, 1),
    ("graph", "q0", None, {}, 1),
    ("graph", "q1", None, {"top_k": 30, "offset": 20}, 1),
    ("graph", "q2", None, {"where": {"year": {"$gte": 2010, "$lte": 2012}}}, 1),
    ("graph", "q3", None, {"hub_correction": True, "dedup": True}, 1),
    ("graph", "id:d100", None, {"min_score": 0.2}, 1),
    ("graph", "q4", "this is fine", {}, 1),
    ("exact", "q0", None, {}, 2),
    ("exact", "q1", None, {"dedup": True, "offset": 4}, 2),
    ("exact", "q2", "such wow", {}, 3),
    ("exact", "q3", "one does not simply", {"group_by": "folder", "min_score": 0.0}, 2),
]


def _query(store: EmbeddedCollection, name: str) -> np.ndarray:
    if name.startswith("id:"):
        return store.vectors([name[3:]])
    return QUERIES[name][None, :]


def _sharded(store: EmbeddedCollection, shards: int) -> list[EmbeddedCollection]:
    parts = []
    everything = store.find()
    for shard in range(shards):
        ids = [doc_id for doc_id in everything if shard_of(doc_id, shards) == shard]
        part = EmbeddedCollection()
        part.upsert(ids, store.vectors(ids), store.get(ids))  # type: ignore[arg-type]
        parts.append(part)
    return parts


def _answer(stores: dict[str, EmbeddedCollection], case: tuple) -> list[tuple[str, float]]:
    name, query_name, text, parameters, shards = case
    store = stores[name]
    query = _query(store, query_name)
    options = SearchOptions.from_parameters(parameters)
    if shards == 1:
        (hits,) = search_collection(store, query, options, texts=[text])
        return [(hit["id"], hit["score"]) for hit in hits]
    replies = []
    for part in _sharded(store, shards):
        (hits,) = search_collection(part, query, options, texts=[text], paged=False)
        replies.append(DocList[MatchDoc]([MatchDoc(**hit) for hit in hits]))
        part.close()
    return [(m.id or "", m.score) for m in merge_matches(replies, options)]


def _key(case: tuple) -> str:
    name, query_name, text, parameters, shards = case
    return json.dumps([name, query_name, text, parameters, shards], sort_keys=True)


def test_the_cases_cover_every_stage() -> None:
    used = {key for case in CASES for key in case[3]}
    assert {"where", "hub_correction", "min_score", "dedup", "group_by", "offset",
            "ocr_weight", "top_k"} <= used
    assert len(CASES) >= 40 and len({_key(case) for case in CASES}) == len(CASES)


def test_search_answers_as_recorded(stores) -> None:
    answers = {_key(case): _answer(stores, case) for case in CASES}
    if os.environ.get("MEMEFLOW_RECORD_GOLDEN"):
        GOLDEN.write_text(json.dumps(
            {key: [[doc_id, round(score, 9)] for doc_id, score in hits[:10]]
             for key, hits in answers.items()}, indent=0) + "\n")
    recorded = json.loads(GOLDEN.read_text())
    assert set(recorded) == set(answers)
    for key, hits in answers.items():
        expected = recorded[key]
        assert [doc_id for doc_id, _ in hits[:10]] == [doc_id for doc_id, _ in expected], key
        assert np.allclose([s for _, s in hits[:10]], [s for _, s in expected],
                           rtol=0, atol=TOLERANCE), key
