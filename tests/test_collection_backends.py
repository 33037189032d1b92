"""The `Collection` interface's behaviour, the same on both backends: the embedded one
(SQLite in a workspace) and Milvus (Milvus Lite's real server, `milvus_uri`)."""

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest

from memeflow.indexer.backends import Collection
from memeflow.indexer.backends.embedded import EmbeddedCollection
from memeflow.indexer.backends.milvus import MilvusCollection
from memeflow.indexer.filters import compile_where
from tests.backends import milvus_only, opened
from tests.conftest import free_port

BACKENDS = ["embedded", "milvus"]
DIM = 8


def open_backend(kind: str, request: pytest.FixtureRequest, folder) -> Collection:
    if kind == "embedded":
        return EmbeddedCollection(folder)
    uri = request.getfixturevalue("milvus_uri")
    return MilvusCollection(uri, collection=request.getfixturevalue("milvus_collection_name"))


@pytest.fixture(params=BACKENDS)
def collection(request, tmp_path) -> Iterator[Collection]:
    opened = open_backend(request.param, request, tmp_path / "workspace")
    yield opened
    opened.clear()
    opened.close()


def unit(seed: int, n: int = 1) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


CAPTIONS = [
    "ONE DOES NOT SIMPLY WALK INTO MORDOR", "AINTNOBODYGOTTIMEFORTHAT",  # OCR lost the spaces
    "BRACE YOURSELVES WINTER IS COMING", "Y U NO GUESS", "SUCH WOW VERY DOGE",
    "ME GUSTA", "NOT SURE IF SERIOUS", None, None, "OK",
]


def fill(collection: Collection, n: int = 30) -> tuple[list[str], np.ndarray]:
    ids = [f"meme-{i:02d}" for i in range(n)]
    vectors = unit(1, n)
    docs = [{"uri": f"/memes/{'cats' if i % 3 == 0 else 'dogs'}/{i}.jpg",
             "tags": {"folder": ["cats", "dogs", "dogs"][i % 3], "year": 2000 + i,
                      "keywords": ["funny", "old"] if i % 2 else ["new"], "sha256": f"h{i}"},
             **({"words": CAPTIONS[i % len(CAPTIONS)]} if i % len(CAPTIONS) != 7 else {})}
            for i in range(n)]
    collection.upsert(ids, vectors, docs)
    return ids, vectors


def test_both_backends_give_the_same_answers(request, tmp_path) -> None:
    """Dense searches (with filters), lexical searches, finds and reads: compared with the
    embedded backend's answers query by query."""
    answers, backend = {}, "milvus"
    for kind in ("embedded", backend):
        opened = open_backend(kind, request, tmp_path / kind)
        try:
            fill(opened)
            queries = unit(2, 4)
            wheres = [None, {"folder": "cats"}, {"year": {"$gte": 2010, "$lt": 2020}},
                      {"keywords": "old", "folder": {"$ne": "cats"}},
                      {"keywords": {"$contains": "FUN"}}, {"folder": {"$in": []}}]
            answers[kind] = {
                "dense": [opened.dense_search(queries, 7, opened.select(
                    compile_where(where))) for where in wheres],
                "lexical": [opened.lexical_search(text, 5, opened.select(compile_where(where)))
                            for text in ("one does not simply", "aint nobody got time",
                                         "wintr is comming", "doge", "xyzzy", "ok")
                            for where in (None, {"folder": "dogs"})],
                "find": [opened.find("sha256", ["h3", "h4", "nope"]),
                         opened.find(uri_prefix="/memes/cats/"),
                         opened.find("year", [2001, 2004.0, True], uri_prefix="/memes/dogs/1"),
                         opened.find("keywords", ["old"])],  # a list tag: not by elements
                "get": opened.get(["meme-07", "absent", "meme-01"]),
                "count": opened.count(), "dim": opened.dim, "lexical?": opened.has_lexical(),
            }
        finally:
            opened.clear()
            opened.close()
    embedded, other = answers["embedded"], answers[backend]
    for dense_a, dense_b in zip(embedded.pop("dense"), other.pop("dense"), strict=True):
        for hits_a, hits_b in zip(dense_a, dense_b, strict=True):
            assert [h["id"] for h in hits_a] == [h["id"] for h in hits_b]
            assert [h["score"] for h in hits_a] == pytest.approx([h["score"] for h in hits_b],
                                                                 abs=1e-6)
            assert [(h["uri"], h["tags"], h.get("words")) for h in hits_a] == \
                [(h["uri"], h["tags"], h.get("words")) for h in hits_b]
    for (found_a, done_a), (found_b, done_b) in zip(embedded.pop("lexical"),
                                                    other.pop("lexical"), strict=True):
        assert [(m.id, m.phrase) for m in found_a] == [(m.id, m.phrase) for m in found_b]
        assert done_a == done_b
    embedded["find"] = [sorted(found) for found in embedded["find"]]
    other["find"] = [sorted(found) for found in other["find"]]
    assert embedded == other


def test_upsert_replaces_by_id_and_the_last_duplicate_wins(collection) -> None:
    collection.upsert(["a", "b", "a"], unit(3, 3),
                      [{"uri": "/x/a1", "tags": {"v": 1}}, {"uri": None, "tags": {}},
                       {"uri": "/x/a2", "tags": {"v": 2}, "words": "HELLO"}])
    assert collection.count() == 2 and collection.dim == DIM
    assert collection.get(["a", "b", "zz"]) == [
        {"uri": "/x/a2", "tags": {"v": 2}, "words": "HELLO"}, {"uri": None, "tags": {}}, None]
    np.testing.assert_allclose(collection.vectors(["a"]), unit(3, 3)[2:3], atol=1e-6)
    collection.upsert(["a"], unit(4), [{"uri": "/x/a3", "tags": {}}])
    assert collection.get(["a"]) == [{"uri": "/x/a3", "tags": {}}]  # the words are gone too
    assert collection.count() == 2 and "a" in collection and "zz" not in collection


def test_vectors_are_stored_at_unit_length_and_scores_are_cosines(collection) -> None:
    raw = np.array([[3, 4, 0, 0, 0, 0, 0, 0], [0, 0, 5, 0, 0, 0, 0, 0]], np.float32)
    collection.upsert(["p", "q"], raw, [{"uri": None, "tags": {}}] * 2)
    np.testing.assert_allclose(np.linalg.norm(collection.vectors(["p", "q"]), axis=1), 1,
                               atol=1e-6)
    query = np.array([[1, 0, 1, 0, 0, 0, 0, 0]], np.float32)
    hits = collection.dense_search(query, 5)[0]
    assert [h["id"] for h in hits] == ["q", "p"]
    assert [h["score"] for h in hits] == pytest.approx([1 / math.sqrt(2), 0.6 / math.sqrt(2)],
                                                       abs=1e-6)


def test_equal_vectors_tie_by_id(collection) -> None:
    vector = unit(5)
    collection.upsert(["c", "a", "b"], np.repeat(vector, 3, axis=0),
                      [{"uri": None, "tags": {}}] * 3)
    hits = collection.dense_search(vector, 2)[0]
    assert [h["id"] for h in hits] == ["a", "b"]
    assert hits[0]["score"] == hits[1]["score"] <= 1.0


def test_delete_counts_what_was_stored_and_clear_forgets_everything(collection) -> None:
    ids, _ = fill(collection, 6)
    assert collection.delete(["meme-01", "meme-01", "absent"]) == 1
    assert collection.count() == 5 and "meme-01" not in collection
    assert "meme-01" not in [h["id"] for h in collection.dense_search(unit(1, 6)[1:2], 6)[0]]
    with pytest.raises(KeyError):
        collection.vectors(["meme-01"])
    collection.set_model({"name": "clip", "dim": DIM})
    assert collection.model() == {"name": "clip", "dim": DIM}
    collection.clear()
    assert collection.count() == 0 and collection.dim is None
    assert collection.dense_search(unit(1), 3) == [[]]
    assert collection.get(ids) == [None] * 6
    collection.upsert(["new"], np.ones((1, 3), np.float32), [{"uri": None, "tags": {}}])
    assert collection.dim == 3  # an empty collection takes any dimension


def test_model_identity_is_kept_with_the_documents(collection) -> None:
    assert collection.model() is None
    fill(collection, 3)
    collection.set_model({"name": "openai/clip-vit-base-patch32", "dim": 512, "sha": "x"})
    assert collection.model() == {"name": "openai/clip-vit-base-patch32", "dim": 512,
                                  "sha": "x"}
    collection.set_model(None)
    assert collection.model() is None


def test_filters_select_before_the_top_k(collection) -> None:
    fill(collection, 30)
    rare = collection.select(compile_where({"year": 2029}))
    hits = collection.dense_search(unit(9), 3, rare)[0]
    assert [h["id"] for h in hits] == ["meme-29"]  # however low it scores
    nothing = collection.select(compile_where({"folder": {"$in": []}}))
    assert collection.dense_search(unit(9), 3, nothing) == [[]]
    assert collection.lexical_search("doge", 3, nothing) == ([], True)


def test_lexical_search_finds_misread_captions_phrase_first(collection) -> None:
    fill(collection, 10)
    assert collection.has_lexical()
    found, _ = collection.lexical_search("ain't nobody got time for that", 3)
    assert found[0].id == "meme-01" and found[0].phrase and found[0].score > 0
    found, _ = collection.lexical_search("brace yourselvs winter is comming", 3)
    assert [m.id for m in found][:1] == ["meme-02"] and not found[0].phrase
    assert collection.lexical_search("qqqqzzzz", 3) == ([], True)


def test_no_words_no_lexical(collection) -> None:
    collection.upsert(["a"], unit(1), [{"uri": None, "tags": {}}])
    assert not collection.has_lexical()


def test_find_by_tag_and_uri_prefix(collection) -> None:
    fill(collection, 9)
    assert sorted(collection.find("sha256", ["h2", "h5", "absent"])) == ["meme-02", "meme-05"]
    assert sorted(collection.find(uri_prefix="/memes/cats/")) == ["meme-00", "meme-03",
                                                                  "meme-06"]
    assert collection.find("sha256", []) == []


@pytest.mark.parametrize("bad", [
    lambda c: c.upsert("abc", unit(1, 3), [{"uri": None, "tags": {}}] * 3),
    lambda c: c.upsert(["a"], np.zeros((1, DIM), np.float32), [{"uri": None, "tags": {}}]),
    lambda c: c.upsert(["a"], np.full((1, DIM), np.nan, np.float32),
                       [{"uri": None, "tags": {}}]),
    lambda c: c.upsert(["a"], unit(1), [{"uri": None, "tags": {"x": object()}}]),
    lambda c: c.upsert(["a"], np.ones((1, DIM + 1), np.float32), [{"uri": None, "tags": {}}]),
    lambda c: c.dense_search(unit(1), 0),
    lambda c: c.dense_search(np.ones((1, DIM + 1), np.float32), 3),
], ids=["str-ids", "zero-vector", "nan-vector", "tags-not-json", "wrong-dim", "top-k-0",
        "query-dim"])
def test_bad_input_is_refused_and_changes_nothing(collection, bad) -> None:
    fill(collection, 3)
    with pytest.raises((ValueError, TypeError)):
        bad(collection)
    assert collection.count() == 3 and "a" not in collection


LARGE = {  # what a document may hold on the embedded backend, beyond Milvus's limits
    "5000-tags": {"uri": None, "tags": {f"t{i}": i for i in range(5_000)}},
    "2000-byte-tag-name": {"uri": None, "tags": {"n" * 2_000: "long"}},
    "100000-bytes-of-words": {"uri": None, "tags": {}, "words": "ONE DOES NOT SIMPLY " * 5_000},
}


@pytest.mark.parametrize("kind", ["embedded", milvus_only(
    "Milvus keeps at most 4,096 tags of names up to 1,024 bytes, and texts up to 65,535 bytes",
    raises=ValueError)])
@pytest.mark.parametrize("large", LARGE)
def test_a_large_document_is_stored_whole(kind, large, request) -> None:
    with opened(kind, request) as store:
        store.upsert(["big"], unit(1), [LARGE[large]])
        assert store.get(["big"]) == [LARGE[large]]


def test_a_milvus_that_does_not_answer_is_named_with_the_fix() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(ConnectionError, match=f"no Milvus answered at {uri}.*MEMEFLOW_INDEX"):
        MilvusCollection(uri, timeout=1)
    assert time.monotonic() - began < 30


LITE_FILE_SCRIPT = """
import json, sys
import numpy as np
from memeflow.indexer.backends import open_collection
collection = open_collection(None, index=sys.argv[1])
if sys.argv[2] == "write":
    collection.upsert(["a", "b"], np.eye(2, 8, dtype=np.float32),
                      [{"uri": "/a", "tags": {"x": 1}}, {"uri": None, "tags": {}}])
    collection.set_model({"name": "clip"})
hits = collection.dense_search(np.eye(1, 8, dtype=np.float32), 1)[0]
print(json.dumps([type(collection).__name__, collection.count(), collection.dim,
                  collection.model(), [hit["id"] for hit in hits]]))
"""


def test_a_milvus_lite_file_keeps_the_collection_across_opens(tmp_path) -> None:
    """MEMEFLOW_INDEX=~/memes.db: Milvus Lite inside the indexer's process. Run in child
    processes: Milvus Lite leaves server threads behind in its process, which a later fork
    (Jina starting executors in the test process) could inherit mid-lock."""
    path = str(tmp_path / "memes.db")
    answers = []
    for step in ("write", "read"):
        run = subprocess.run([sys.executable, "-c", LITE_FILE_SCRIPT, path, step],
                             capture_output=True, text=True, timeout=300, check=False)
        assert run.returncode == 0, run.stderr[-2000:]
        answers.append(json.loads(run.stdout.strip().splitlines()[-1]))
    assert answers[0] == answers[1] == ["MilvusCollection", 2, 8, {"name": "clip"}, ["a"]]


def test_two_indexers_sharing_a_milvus_collection_see_each_others_writes(
        milvus_uri, milvus_collection_name) -> None:
    one, two = (MilvusCollection(milvus_uri, collection=milvus_collection_name)
                for _ in range(2))
    try:
        assert one.dim is None and two.dim is None
        one.upsert(["a"], unit(1), [{"uri": None, "tags": {}}])
        two.upsert(["b"], unit(2), [{"uri": None, "tags": {}}])  # made by the other: reused
        assert one.count() == two.count() == 2
        with pytest.raises(ValueError, match="dimension"):
            two.upsert(["c"], np.ones((1, DIM + 1), np.float32), [{"uri": None, "tags": {}}])
        one.clear()
        assert two.dim is None and two.count() == 0 and two.dense_search(unit(1), 3) == [[]]
        two.upsert(["d"], np.ones((1, 3), np.float32), [{"uri": None, "tags": {}}])
        assert one.dim == 3 and one.get(["d"]) == [{"uri": None, "tags": {}}]
    finally:
        one.clear()
        one.close()
        two.close()
