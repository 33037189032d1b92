"""The indexer's requests, answered alike whichever backend holds the documents (the
embedded one and Milvus, tests/backends.py): what /index, /get, /find, /count, /search,
/delete and /clear answer, the model identity kept with the vectors, and the mistakes
it names. The executor is called directly, without a Flow (test_flow.py and
test_milvus_flow.py run it in one)."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from docarray import DocList

from memeflow.documents import MemeDoc
from memeflow.encoder.identity import check_model
from memeflow.indexer.executor import MemeIndexer, QueryDimensionError
from memeflow.model_record import model_record
from memeflow.params import RequestError
from tests.backends import BACKENDS

DIM = 8
MODEL = {"name": "clip-test", "dim": DIM, "random_seed": None,
         "fingerprint": np.eye(2, DIM).tolist()}


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def docs(*items: MemeDoc) -> DocList[MemeDoc]:
    return DocList[MemeDoc](list(items))


@pytest.fixture(params=BACKENDS)
def indexer(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[MemeIndexer]:
    """An indexer on an empty workspace (embedded) or an empty Milvus collection, whose
    workspace an encoder of `MODEL` has started on."""
    for name in ("MEMEFLOW_WORKSPACE", "MEMEFLOW_INDEX", "MEMEFLOW_COLLECTION"):
        monkeypatch.delenv(name, raising=False)
    index = request.getfixturevalue("milvus_uri") if request.param == "milvus" else None
    root, collection = tmp_path / "workspace", f"t_{uuid.uuid4().hex}"
    record = model_record(root, index, collection)  # the workspace's, or Milvus's own
    check_model(record, MODEL)  # what the encoder does as it starts
    record.close()
    opened = MemeIndexer(workspace=str(root), index=index, collection=collection)
    yield opened
    opened.clear(docs())
    opened.close()


def memes() -> DocList[MemeDoc]:
    """Three storable memes, then three mistakes: no vector, a 3-d one, a zero one."""
    return docs(
        MemeDoc(id="cat", uri="/memes/cats/1.jpg", embedding=unit(1),
                tags={"sha256": "h1", "folder": "cats"}, words="I CAN HAS"),
        MemeDoc(id="cat-copy", uri="/memes/cats/2.jpg", embedding=unit(1),
                tags={"sha256": "h1", "folder": "cats"}),
        MemeDoc(id="dog", uri="/memes/dogs/1.jpg", embedding=unit(2),
                tags={"sha256": "h2", "folder": "dogs"}),
        MemeDoc(id="no-vector", uri="/memes/x.jpg"),
        MemeDoc(id="short", embedding=np.ones(3, np.float32)),
        MemeDoc(id="zero", embedding=np.zeros(DIM, np.float32)),
    )


def test_index_stores_the_good_documents_and_names_each_bad_one(indexer) -> None:
    reply = indexer.index(memes(), {})
    errors = {doc.id: doc.error for doc in reply if doc.error}
    assert set(errors) == {"no-vector", "short", "zero"}
    assert "send it to /index" in errors["no-vector"] and "8-d" in errors["short"]
    assert all(doc.embedding is None and doc.thumbnail is None for doc in reply)
    assert indexer.count(docs())[0].tags == {"count": 3, "dim": DIM}
    got = indexer.get(docs(MemeDoc(id="dog"), MemeDoc(id="absent"), MemeDoc(id="cat")))
    assert [(d.id, d.uri, d.tags, d.words) for d in got] == [
        ("dog", "/memes/dogs/1.jpg", {"sha256": "h2", "folder": "dogs"}, None),
        ("cat", "/memes/cats/1.jpg", {"sha256": "h1", "folder": "cats"}, "I CAN HAS")]


def test_find_by_hash_and_folder_and_delete(indexer) -> None:
    indexer.index(memes(), {})
    by_hash = indexer.find(docs(MemeDoc(tags={"sha256": "h1"}), MemeDoc(tags={"sha256": "h9"})),
                           {"tag": "sha256"})
    assert sorted(d.id for d in by_hash) == ["cat", "cat-copy"]
    assert all(d.embedding is None for d in by_hash)
    (dog,) = indexer.find(docs(), {"uri_prefix": "/memes/dogs/", "return_embeddings": True})
    assert dog.id == "dog" and dog.tags["folder"] == "dogs"
    np.testing.assert_allclose(dog.embedding, unit(2), atol=1e-6)
    reply = indexer.delete(docs(MemeDoc(id="cat"), MemeDoc(id="absent")))
    assert reply[0].tags == {"deleted": 1, "count": 2}
    assert [d.id for d in indexer.find(docs(), {"uri_prefix": "/memes/cats/"})] == ["cat-copy"]


def test_a_search_by_id_finds_its_twins_first_and_sends_no_vectors(indexer) -> None:
    indexer.index(memes(), {})
    (query,) = indexer.search(docs(MemeDoc(id="cat-copy")), {"top_k": 2})
    assert [m.id for m in query.matches] == ["cat", "cat-copy"]  # equal vectors: by id
    assert query.matches[0].score == pytest.approx(1.0, abs=1e-6)
    assert query.embedding is None and all(m.embedding is None for m in query.matches)
    (query,) = indexer.search(docs(MemeDoc(embedding=unit(2))),
                              {"top_k": 1, "return_embeddings": True, "where": {"folder": "dogs"}})
    np.testing.assert_allclose(query.matches[0].embedding, unit(2), atol=1e-6)


def test_search_mistakes_are_named_and_spare_the_other_queries(indexer) -> None:
    indexer.index(memes(), {})
    absent, good = indexer.search(docs(MemeDoc(id="absent"), MemeDoc(embedding=unit(2))),
                                  {"top_k": 1})
    assert "no indexed document has id 'absent'" in (absent.error or "") and not absent.matches
    assert [m.id for m in good.matches] == ["dog"]
    with pytest.raises(QueryDimensionError, match="3-d but the index holds 8-d"):
        indexer.search(docs(MemeDoc(embedding=np.ones(3, np.float32))), {})
    with pytest.raises(RequestError, match=r"^where"):
        indexer.search(docs(MemeDoc(embedding=unit(2))), {"where": {"folder": {"$like": "d"}}})


def test_the_model_is_kept_with_the_first_vectors_and_forgotten_at_clear(indexer) -> None:
    assert indexer.collection.model() is None
    indexer.index(memes(), {})
    assert indexer.collection.model() == indexer.record.read()["model"] == MODEL
    assert indexer.clear(docs())[0].tags == {"count": 0}
    assert indexer.collection.model() is None and indexer.count(docs())[0].tags == {
        "count": 0, "dim": None}
    assert indexer.record.read()["model"] is None
