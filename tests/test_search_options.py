"""Filters, paging, minimum score, collapsing and hub correction over a store of known
vectors, where the right answer can be computed directly: the same answers on both
backends (tests/backends.py)."""

from collections.abc import Iterator

import numpy as np
import pytest

from memeflow import params
from memeflow.cli.search_flags import parse_cli_where
from memeflow.encoder import hubness as hubs
from memeflow.indexer.backends import Collection
from memeflow.indexer.backends.embedded import StoredDocument
from memeflow.indexer.filters import FilterError, compile_where
from memeflow.indexer.search.collapse import collapse, hash_distance
from memeflow.indexer.search.pipeline import SearchOptions, search_collection
from memeflow.params import RequestError
from tests.backends import BACKENDS, opened

DIM = 32


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.normal(size=(n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


IDS = [f"m{i:03d}" for i in range(600)]
# Perceptual hashes: m000 and m001 are copies (one hash), m002 and m003... Random 64-bit
# hashes of different pairs differ in about 32 bits.
HASHES = [f"{h:016x}" for h in np.random.default_rng(4).integers(0, 2**63, 300)]
RECORDS = [  # every 97th is `rare`, the others cycle over three folders
    StoredDocument(uri=f"/{i}.jpg", tags={
        "folder": "rare" if i % 97 == 0 else f"f{i % 3}",
        "year": 2000 + i % 25, "keywords": ["cat", "hat"] if i % 2 else ["dog"],
        "name": f"Meme number {i}", "phash": HASHES[i // 2],
    })
    for i in range(600)
]


@pytest.fixture(scope="module", params=BACKENDS)
def store(request) -> Iterator[Collection]:
    """The 600 documents above, on each backend (searched, never changed)."""
    # Embedded: beyond exact_max, so unfiltered searches use its HNSW graph.
    with opened(request.param, request, exact_max=100) as store:
        store.upsert(IDS, unit_rows(np.random.default_rng(3), 600), RECORDS)
        yield store


def exact_order(store: Collection, query: np.ndarray, keep) -> list[str]:
    """Every matching id by score, computed by hand from the stored vectors."""
    ids = [doc_id for doc_id, record in zip(IDS, RECORDS, strict=True) if keep(record["tags"])]
    scores = store.vectors(ids).astype(np.float64) @ query
    return [ids[i] for i in np.lexsort((np.array(ids), -scores))]


def test_a_rare_tag_returns_exactly_its_matches_in_score_order(store) -> None:
    query = unit_rows(np.random.default_rng(9), 1)
    options = SearchOptions.from_parameters({"top_k": 10, "where": {"folder": "rare"}})
    (hits,) = search_collection(store, query, options)
    assert [h["id"] for h in hits] == exact_order(store, query[0], lambda t: t["folder"] == "rare")
    assert len(hits) == 7  # ids 0, 97, ..., 582: all of them, though top_k is 10


def test_operators_select_what_they_say(store) -> None:
    query = unit_rows(np.random.default_rng(10), 1)
    where = {"year": {"$gte": 2010.0, "$lt": 2012}, "keywords": {"$contains": "cat"},
             "folder": {"$in": ["f0", "f1"]}, "name": {"$contains": "NUMBER 1"}}
    options = SearchOptions.from_parameters({"top_k": 600.0, "where": where})
    (hits,) = search_collection(store, query, options)
    expected = exact_order(store, query[0], lambda t: 2010 <= t["year"] < 2012
                           and "cat" in t["keywords"] and t["folder"] in ("f0", "f1")
                           and "number 1" in t["name"].lower())
    assert expected and [h["id"] for h in hits] == expected


@pytest.mark.parametrize(("where", "page_size", "total"), [
    ({"year": {"$lte": 2001}}, 10, 48),  # 10, 10, 10, 10, 8, then nothing
    ({"folder": "rare"}, 3, 7),  # pages 3, 3, 1, then nothing
])
def test_pages_concatenate_to_the_unpaged_list(store, where, page_size, total) -> None:
    query = unit_rows(np.random.default_rng(11), 1)
    (everything,) = search_collection(store, query, SearchOptions.from_parameters(
        {"top_k": total, "where": where}))
    pages = [
        search_collection(store, query, SearchOptions.from_parameters(
            {"top_k": page_size, "offset": float(offset), "where": where}))[0]
        for offset in range(0, total + page_size, page_size)
    ]
    assert [h["id"] for page in pages for h in page] == [h["id"] for h in everything]
    assert len(everything) == total and pages[-1] == []


def test_min_score_cuts_and_widens(store) -> None:
    query = unit_rows(np.random.default_rng(12), 1)
    (all_hits,) = search_collection(store, query, SearchOptions(top_k=600))
    threshold = all_hits[80]["score"]
    (hits,) = search_collection(store, query, SearchOptions(top_k=200, min_score=threshold))
    assert [h["id"] for h in hits] == [h["id"] for h in all_hits if h["score"] >= threshold]


def test_collapsing_keeps_the_best_of_each_group_and_pair_of_copies(store) -> None:
    query = unit_rows(np.random.default_rng(13), 1)
    everything = exact_order(store, query[0], lambda t: True)
    (grouped,) = search_collection(store, query, SearchOptions.from_parameters(
        {"top_k": 10, "group_by": "folder"}))
    best_of: dict[str, str] = {}  # each folder's best meme, in score order
    for doc_id in everything:
        best_of.setdefault(RECORDS[int(doc_id[1:])]["tags"]["folder"], doc_id)
    assert [h["id"] for h in grouped] == list(best_of.values())  # four folders
    (deduped,) = search_collection(store, query, SearchOptions.from_parameters(
        {"top_k": 20, "offset": 5, "dedup": True, "where": {"year": {"$lt": 2010}}}))
    pairs = dict.fromkeys(int(i[1:]) // 2 for i in exact_order(
        store, query[0], lambda t: t["year"] < 2010))
    assert [int(h["id"][1:]) // 2 for h in deduped] == list(pairs)[5:25]


def test_bad_filters_name_the_tag_and_the_fix() -> None:
    with pytest.raises(FilterError, match=r"where\['year'\] has unknown operator '\$gte '"):
        compile_where({"year": {"$gte ": 1}})
    with pytest.raises(FilterError, match=r"\$in.*must be a list"):
        compile_where({"folder": {"$in": "rare"}})
    with pytest.raises(ValueError, match="offset must be a whole number >= 0"):
        SearchOptions.from_parameters({"offset": -1})


@pytest.mark.parametrize(("parameters", "named"), [
    ({"top_k": 0}, "top_k"), ({"top_k": -1}, "top_k"), ({"top_k": "abc"}, "top_k"),
    ({"top_k": None}, "top_k"), ({"top_k": 2.5}, "top_k"), ({"top_k": True}, "top_k"),
    ({"offset": -3}, "offset"), ({"where": 5}, "where"), ({"where": {"a": {}}}, "where"),
    ({"min_score": "x"}, "min_score"), ({"min_score": "nan"}, "min_score"),
    ({"min_score": float("inf")}, "min_score"), ({"ocr_weight": -1}, "ocr_weight"),
    ({"ocr_weight": True}, "ocr_weight"),
    ({"dedup": True, "dedup_distance": 1.5}, "dedup_distance"),
    ({"group_by": 7}, "group_by"), ({"dedup": "maybe"}, "dedup"),
    ({"hub_correction": [1]}, "hub_correction"),
])
def test_every_bad_search_parameter_is_the_callers_error(parameters, named) -> None:
    """RequestError is what the gateway answers with 400 (memeflow.refusals)."""
    with pytest.raises(RequestError, match=f"^{named}"):
        SearchOptions.from_parameters(parameters)


def test_yes_no_parameters_read_what_json_and_grpc_send() -> None:
    for yes in (True, 1, 1.0, "true", "Yes", "1"):
        assert params.flag({"return_embeddings": yes}, "return_embeddings") is True
    for no in (False, 0, 0.0, "false", "no", None):
        assert params.flag({"return_embeddings": no}, "return_embeddings") is False
    assert params.flag({}, "return_embeddings") is False


def test_cli_where_syntax() -> None:
    assert parse_cli_where(["folder=rare", "year>=2010", "year<2012.5", "keywords~cat",
                            "name=a|b", "kind!=x", "url=http://a?b=c"]) == {
        "folder": {"$eq": "rare"}, "year": {"$gte": 2010, "$lt": 2012.5},
        "keywords": {"$contains": "cat"}, "name": {"$in": ["a", "b"]}, "kind": {"$ne": "x"},
        "url": {"$eq": "http://a?b=c"},
    }
    with pytest.raises(ValueError, match="TAG=VALUE"):
        parse_cli_where(["=x"])


def test_collapse_keeps_the_best_of_each_duplicate_and_group() -> None:
    hits = [
        {"id": "a", "score": 0.9, "tags": {"phash": "ffff000000000000", "folder": "x"}},
        {"id": "b", "score": 0.8, "tags": {"phash": "ffff000000000001", "folder": "y"}},
        {"id": "c", "score": 0.7, "tags": {"phash": "0000ffff00000000", "folder": "x"}},
        {"id": "d", "score": 0.6, "tags": {}},
    ]
    assert hash_distance("ffff000000000000", "ffff000000000001") == 1
    assert [h["id"] for h in collapse(hits, distance=4)] == ["a", "c", "d"]
    assert [h["id"] for h in collapse(hits, group_by="folder")] == ["a", "b", "d"]
    assert [h["id"] for h in collapse(hits, distance=0, group_by="folder")] == ["a", "b", "d"]


@pytest.mark.parametrize("kind", BACKENDS)
def test_hub_correction_stops_a_constructed_hub_from_dominating(kind, request) -> None:
    """A hub: an image vector near the centre of the query distribution, so it is close to
    every query. Generic prompts come from the same distribution; it is their hub too."""
    rng = np.random.default_rng(5)
    centre = unit_rows(rng, 1)[0]

    def queries_like(n: int) -> np.ndarray:
        rows = unit_rows(rng, n) + 1.5 * centre
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    bank, queries = queries_like(64), queries_like(100)
    images = unit_rows(rng, 300)
    images[0] = centre  # the hub
    with opened(kind, request) as store:
        store.upsert([f"i{n:03d}" for n in range(300)], images, [
            StoredDocument(uri=None, tags={hubs.HUB_TAG: float(h)})
            for h in hubs.hubness(images, bank)
        ])

        def hub_wins(correct: bool) -> int:
            results = search_collection(store, queries,
                                        SearchOptions(top_k=1, hub_correction=correct))
            return sum(hits[0]["id"] == "i000" for hits in results)

        assert hub_wins(False) == 100
        assert hub_wins(True) < 10
