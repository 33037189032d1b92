"""Collections against a numpy brute force, the same on both backends (tests/backends.py),
and the embedded collection's persistence against crashes and damage."""

import itertools
import json
import multiprocessing
import os
import resource
import shutil
import signal
import sqlite3
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memeflow.documents import Hit
from memeflow.indexer.backends import Collection
from memeflow.indexer.backends.embedded import (
    LOCK,
    CorruptStoreError,
    EmbeddedCollection,
    StoredDocument,
    StoreWriteError,
    WorkspaceInUseError,
)
from memeflow.indexer.filters import compile_where
from memeflow.indexer.storage import journal
from memeflow.indexer.storage.database import DATABASE
from memeflow.indexer.storage.legacy import LOG, SNAPSHOT
from tests.backends import BACKENDS, opened
from tests.conftest import REPO

TOL = 1e-5  # float32 storage against a float64 reference


def rand(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return rng.standard_normal((n, dim)).astype(np.float32)


def recs(ids: list[str], **tags: Any) -> list[StoredDocument]:
    return [StoredDocument(uri=f"file:///{doc_id}.png", tags={"name": doc_id, **tags})
            for doc_id in ids]


def brute_force(docs: dict[str, np.ndarray], query: np.ndarray) -> list[tuple[str, float]]:
    """Every document's float64 cosine similarity, best first, then by id."""
    ids = list(docs)
    matrix = np.array([docs[doc_id] for doc_id in ids], dtype=np.float64)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    scores = matrix @ (query / np.linalg.norm(query))
    return sorted(zip(ids, scores.tolist(), strict=True), key=lambda pair: (-pair[1], pair[0]))


def assert_ranking(hits: list[Hit], ranked: list[tuple[str, float]], top_k: int) -> None:
    """Same scores in the same order; ids may only differ where the reference has a near-tie."""
    expected, truth = ranked[:top_k], dict(ranked)
    assert len(hits) == len(expected)
    assert len({hit["id"] for hit in hits}) == len(hits)
    for hit, (doc_id, score) in zip(hits, expected, strict=True):
        assert isinstance(hit["score"], float)
        assert hit["score"] == pytest.approx(score, abs=TOL)
        if hit["id"] != doc_id:
            assert truth[hit["id"]] == pytest.approx(score, abs=TOL)


def state(store: EmbeddedCollection, ids: list[str], queries: np.ndarray) -> dict[str, Any]:
    """Everything observable, to compare a store before and after a reopen."""
    present = [doc_id for doc_id in ids if doc_id in store]
    return {
        "len": len(store),
        "dim": store.dim,
        "records": store.get(ids),
        "vectors": store.vectors(present).tolist(),
        "hits": store.dense_search(queries, 7) if store.dim == queries.shape[1] else None,
    }


def disk_bytes(workspace: Path) -> dict[str, int]:
    """The size of every file in the workspace (the database and its write-ahead log)."""
    return {path.name: path.stat().st_size for path in workspace.iterdir()}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[Collection]:
    """An empty collection on each backend: what both must answer alike."""
    with opened(request.param, request) as store:
        yield store


# --- search ------------------------------------------------------------------------------


def test_search_matches_brute_force(store: Collection, rng: np.random.Generator) -> None:
    ids = [f"doc{i:04d}" for i in rng.permutation(600)]
    vectors = rand(rng, 600, 32)
    for start in range(0, 600, 150):  # several calls: the matrix grows by doubling
        sl = slice(start, start + 150)
        store.upsert(ids[sl], vectors[sl], recs(ids[sl]))
    docs = dict(zip(ids, vectors, strict=True))
    queries = rand(rng, 16, 32)
    for top_k in (1, 5, 64, 599, 600, 10_000):
        results = store.dense_search(queries, top_k)
        assert len(results) == len(queries)
        for query, hits in zip(queries, results, strict=True):
            assert_ranking(hits, brute_force(docs, query), top_k)
    hit = store.dense_search(vectors[:1], 1)[0][0]
    assert hit == Hit(
        id=ids[0], score=hit["score"], uri=recs(ids[:1])[0]["uri"], tags=recs(ids[:1])[0]["tags"]
    )
    assert hit["score"] == pytest.approx(1.0, abs=TOL)


def test_equal_vectors_tie_exactly_and_order_by_id(store: Collection,
                                                  rng: np.random.Generator) -> None:
    """BLAS rounds equal rows differently by position: the store must not let that show."""
    ids = [f"doc{i:04d}" for i in rng.permutation(500)]
    vectors = rand(rng, 500, 64)
    twins = rng.choice(500, 40, replace=False)
    vectors[twins] = vectors[twins[0]]
    twin_ids = sorted(ids[row] for row in twins)
    store.upsert(ids, vectors, recs(ids))
    queries = rand(rng, 30, 64)
    queries[:20] = vectors[twins[0]] * 3 + 0.5 * queries[:20]  # twins first, k cuts among them
    for top_k in (1, 7, 40, 45, 500):
        results = store.dense_search(queries, top_k)
        assert all([hit["id"] for hit in hits[:40]] == twin_ids[:top_k] for hits in results[:20])
        for hits in results:
            found = [i for i, hit in enumerate(hits) if hit["id"] in twin_ids]
            assert [hits[i]["id"] for i in found] == twin_ids[: len(found)]  # smallest ids first
            if found:  # one block of exactly equal scores
                assert found == list(range(found[0], found[0] + len(found)))
                assert len({hits[i]["score"] for i in found}) == 1


def test_search_edge_cases(store: Collection, rng: np.random.Generator) -> None:
    assert store.dense_search(rand(rng, 3, 5), 4) == [[], [], []]
    store.upsert(["a", "b"], rand(rng, 2, 5), recs(["a", "b"]))
    with pytest.raises(ValueError, match="top_k"):
        store.dense_search(rand(rng, 1, 5), 0)
    with pytest.raises(ValueError, match="top_k"):
        store.dense_search(rand(rng, 1, 5), -3)
    with pytest.raises(ValueError, match=r"dimension 5, got 3"):
        store.dense_search(rand(rng, 1, 3), 1)
    with pytest.raises(ValueError, match="NaN"):
        store.dense_search(np.full((1, 5), np.nan), 1)
    assert store.dense_search(np.zeros((0, 5), np.float32), 3) == []
    assert [len(hits) for hits in store.dense_search(rand(rng, 2, 5), 50)] == [2, 2]
    store.delete(["a", "b"])
    assert store.dim == 5  # an emptied store keeps its dimension until clear()
    assert store.dense_search(rand(rng, 2, 5), 3) == [[], []]


# --- upsert, delete, get -----------------------------------------------------------------


def test_upsert_replaces(store: Collection, rng: np.random.Generator) -> None:
    old, new = rand(rng, 3, 8), rand(rng, 1, 8)
    store.upsert(["a", "b", "c"], old, recs(["a", "b", "c"]))
    store.upsert(["b"], new, [StoredDocument(uri=None, tags={"v": 2})])
    assert len(store) == 3
    assert store.get(["b"]) == [StoredDocument(uri=None, tags={"v": 2})]
    np.testing.assert_allclose(store.vectors(["b"])[0], new[0] / np.linalg.norm(new[0]), atol=TOL)
    assert store.dense_search(new, 1)[0][0]["id"] == "b"


def test_duplicate_ids_in_one_call_last_wins(store: Collection, rng: np.random.Generator) -> None:
    vectors = rand(rng, 3, 4)
    store.upsert(["x", "y", "x"], vectors, [StoredDocument(uri=str(i), tags={}) for i in range(3)])
    assert len(store) == 2
    assert store.get(["x", "y"]) == [StoredDocument(uri="2", tags={}),
                                     StoredDocument(uri="1", tags={})]
    np.testing.assert_allclose(store.vectors(["x"])[0], vectors[2] / np.linalg.norm(vectors[2]),
                               atol=TOL)


def test_delete(store: Collection, rng: np.random.Generator) -> None:
    ids = [f"d{i}" for i in range(50)]
    vectors = rand(rng, 50, 6)
    store.upsert(ids, vectors, recs(ids))
    gone = [*ids[0:50:3], "d49"]  # the first row, the last row, rows in between
    assert store.delete([*gone, "d0", "nope"]) == len(set(gone))
    assert store.delete(["nope", "d0"]) == 0
    assert len(store) == 50 - len(set(gone))
    assert store.get(["d0", "d1"]) == [None, recs(["d1"])[0]]
    with pytest.raises(KeyError):
        store.vectors(["d0"])
    docs = {i: v for i, v in zip(ids, vectors, strict=True) if i not in gone}
    for query in rand(rng, 20, 6):
        hits = store.dense_search(query[None], 50)[0]
        assert not {hit["id"] for hit in hits} & set(gone)
        assert_ranking(hits, brute_force(docs, query), 50)


# Ids, uris and tags are any text: file names hold quotes, backslashes, control characters.
ODD_TEXTS = ['say "hi"', "back\\slash", "new\nline", "it's", "tab\tand\x01\x1f\x7f",
             "\\\"", "猫 🐱", "cr\r"]


def test_any_text_is_an_id_a_uri_and_a_tag(store: Collection) -> None:
    records = [StoredDocument(uri=f"/m/{text}", tags={"name": text, text: 1}, words=text)
               for text in ODD_TEXTS]
    store.upsert(ODD_TEXTS, np.eye(len(ODD_TEXTS), dtype=np.float32), records)
    assert all(text in store for text in ODD_TEXTS) and store.get(ODD_TEXTS) == records
    assert store.vectors(ODD_TEXTS).shape == (len(ODD_TEXTS), len(ODD_TEXTS))
    assert sorted(store.find("name", ODD_TEXTS)) == sorted(ODD_TEXTS)
    query = np.ones((1, len(ODD_TEXTS)), np.float32)
    for text in ODD_TEXTS:
        assert store.find(uri_prefix=f"/m/{text}") == [text]
        for where in ({"name": text}, {"name": {"$in": [text, "x"]}}, {text: {"$exists": True}}):
            hits = store.dense_search(query, 3, store.select(compile_where(where)))[0]
            assert [h["id"] for h in hits] == [text], where
    assert store.delete(ODD_TEXTS[:4]) == 4 and sorted(store.find()) == sorted(ODD_TEXTS[4:])


def test_get_and_vectors_return_copies(store: Collection, rng: np.random.Generator) -> None:
    store.upsert(["a"], np.array([[3.0, 4.0]]), [StoredDocument(uri="u", tags={"k": 1})])
    store.get(["a"])[0]["tags"]["k"] = 99
    store.vectors(["a"])[0, 0] = 99
    assert store.get(["a", "b"]) == [StoredDocument(uri="u", tags={"k": 1}), None]
    np.testing.assert_allclose(store.vectors(["a"]), [[0.6, 0.8]], rtol=1e-6)
    assert store.vectors([]).shape == (0, 2)


INVALID: dict[str, tuple[Callable[[np.random.Generator], tuple[Any, Any, Any]], str]] = {
    "dimension": (lambda r: (["n1", "n2"], rand(r, 2, 8), recs(["n1", "n2"])), r"dimension 4.*8"),
    "nan": (lambda r: (["n1"], np.array([[1, np.nan, 0, 0]]), recs(["n1"])), "NaN"),
    "inf": (lambda r: (["n1"], np.array([[1, np.inf, 0, 0]]), recs(["n1"])), "inf"),
    "zero": (lambda r: (["n1", "a"], np.array([[1, 0, 0, 0], [0] * 4]), recs(["n1", "a"])), "zero"),
    "ids": (lambda r: (["n1"], rand(r, 2, 4), recs(["n1", "n2"])), "1 ids, 2 vectors"),
    "records": (lambda r: (["n1", "n2"], rand(r, 2, 4), recs(["n1"])), "1 records"),
    "1-d": (lambda r: (["n1"], rand(r, 1, 4)[0], recs(["n1"])), "2-d"),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_upsert_changes_nothing(
    rng: np.random.Generator, tmp_path: Path, case: str
) -> None:
    make, message = INVALID[case]
    store = EmbeddedCollection(tmp_path)
    store.upsert(["a", "b"], rand(rng, 2, 4), recs(["a", "b"]))
    queries, ids = rand(rng, 3, 4), ["a", "b", "n1", "n2"]
    before, size = state(store, ids, queries), disk_bytes(tmp_path)
    with pytest.raises(ValueError, match=message):
        store.upsert(*make(rng))
    assert state(store, ids, queries) == before
    assert disk_bytes(tmp_path) == size
    store.close()
    assert state(EmbeddedCollection(tmp_path), ids, queries) == before


def test_unstorable_input_is_refused(rng: np.random.Generator, tmp_path: Path) -> None:
    store = EmbeddedCollection(tmp_path)
    with pytest.raises(TypeError, match="sequence of strings"):
        store.upsert("ab", rand(rng, 2, 4), recs(["a", "b"]))
    with pytest.raises(ValueError, match="JSON"):
        store.upsert(["a"], rand(rng, 1, 4), [StoredDocument(uri=None, tags={"x": object()})])
    assert (len(store), store.dim, store.get(["a"])) == (0, None, [None])


def test_clear_forgets_the_dimension(store: Collection, rng: np.random.Generator) -> None:
    store.upsert(["a"], rand(rng, 1, 4), recs(["a"]))
    store.clear()
    assert (len(store), store.dim, "a" in store) == (0, None, False)
    store.upsert(["b"], rand(rng, 1, 9), recs(["b"]))
    assert (len(store), store.dim) == (1, 9)


def test_closed_store_refuses_use(rng: np.random.Generator, tmp_path: Path) -> None:
    store = EmbeddedCollection(tmp_path)
    store.close()
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.upsert(["a"], rand(rng, 1, 4), recs(["a"]))


def test_memory_only_store_writes_no_files(
    rng: np.random.Generator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = EmbeddedCollection()
    store.upsert(["a", "b"], rand(rng, 2, 4), recs(["a", "b"]))
    store.delete(["a"])
    store.clear()
    store.close()
    assert list(tmp_path.iterdir()) == []


# --- persistence -------------------------------------------------------------------------


def fill(store: EmbeddedCollection, rng: np.random.Generator, dim: int = 8) -> list[str]:
    """Upserts, replacements, deletes: a history whose replay order matters."""
    ids = [f"p{i:03d}" for i in range(120)]
    for start in range(0, 120, 20):
        store.upsert(ids[start : start + 20], rand(rng, 20, dim), recs(ids[start : start + 20]))
    store.upsert(ids[5:45], rand(rng, 40, dim), recs(ids[5:45], version=2))
    store.delete(ids[::7])
    store.upsert(ids[:3], rand(rng, 3, dim), recs(ids[:3], version=3))
    return ids


def test_reopen_gives_the_same_state(rng: np.random.Generator, tmp_path: Path) -> None:
    store = EmbeddedCollection(tmp_path / "new" / "workspace")
    ids, queries = fill(store, rng), rand(rng, 10, 8)
    before = state(store, ids, queries)
    store.close()
    assert sorted(os.listdir(tmp_path / "new" / "workspace")) == [DATABASE, LOCK]
    reopened = EmbeddedCollection(tmp_path / "new" / "workspace")
    assert state(reopened, ids, queries) == before
    assert before["records"][5] == recs(["p005"], version=2)[0] and before["records"][7] is None


def test_acknowledged_writes_survive_a_power_cut(tmp_path: Path) -> None:
    """WAL with synchronous=FULL: each commit syncs the log before it returns (NORMAL may
    roll the last commits back after a power cut, per SQLite's documentation)."""
    store = EmbeddedCollection(tmp_path)
    connection: sqlite3.Connection = store._conn
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_one_process_at_a_time_has_a_workspace(rng: np.random.Generator, tmp_path: Path) -> None:
    """A second store on one folder would number its new rows as the first does and
    overwrite that one's documents: it is refused, naming the process that has it."""
    store = EmbeddedCollection(tmp_path)
    store.upsert(["a"], rand(rng, 1, 4), recs(["a"]))
    with pytest.raises(WorkspaceInUseError, match=f"in use by process {os.getpid()}"):
        EmbeddedCollection(tmp_path)
    store.close()
    again = EmbeddedCollection(tmp_path)
    assert again.get(["a"]) == recs(["a"])


def test_text_sqlite_cannot_store_is_refused_before_writing(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    store = EmbeddedCollection(tmp_path)
    bad = StoredDocument(uri="/memes/caf\udce9.jpg", tags={})  # an undecodable name, not made a URI
    with pytest.raises(ValueError, match=r"uri is not valid Unicode: /memes/caf\\xe9\.jpg"):
        store.upsert(["a", "b"], rand(rng, 2, 4), [recs(["a"])[0], bad])
    assert len(store) == 0 and store.get(["a"]) == [None]


def test_the_database_counts_what_the_store_counts(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    """What ARCHITECTURE.md tells users to run with `sqlite3`, while the service has it open."""
    store = EmbeddedCollection(tmp_path)
    ids = fill(store, rng)
    with sqlite3.connect(tmp_path / DATABASE) as reader:
        assert reader.execute("select count(*) from documents").fetchone()[0] == len(store)
        (uri,) = reader.execute("select uri from documents where id = 'p010'").fetchone()
    assert uri == store.get(["p010"])[0]["uri"] and len(store) < len(ids)


def test_dimension_survives_reopen(rng: np.random.Generator, tmp_path: Path) -> None:
    store = EmbeddedCollection(tmp_path)
    store.upsert(["a"], rand(rng, 1, 4), recs(["a"]))
    store.delete(["a"])
    store.close()
    store = EmbeddedCollection(tmp_path)
    assert (len(store), store.dim) == (0, 4)
    with pytest.raises(ValueError, match=r"dimension 4, got dimension 6"):
        store.upsert(["b"], rand(rng, 1, 6), recs(["b"]))


def test_clear_persists_and_frees_the_disk(rng: np.random.Generator, tmp_path: Path) -> None:
    store = EmbeddedCollection(tmp_path)
    ids = [f"c{i}" for i in range(4_000)]
    store.upsert(ids, rand(rng, 4_000, 256), recs(ids))  # 4 MB of vectors
    full = sum(disk_bytes(tmp_path).values())
    store.clear()
    assert sum(disk_bytes(tmp_path).values()) < full / 10
    store.close()
    store = EmbeddedCollection(tmp_path)
    assert (len(store), store.dim) == (0, None)
    store.upsert(["z"], rand(rng, 1, 3), recs(["z"]))
    store.close()
    assert EmbeddedCollection(tmp_path).get(["z", "c1"]) == [recs(["z"])[0], None]


def crash_copy(workspace: Path, to: Path) -> Path:
    """The files of a store as a crash would leave them: the database and its write-ahead
    log, copied while the store is open (nothing checkpointed, nothing closed)."""
    to.mkdir()
    for name in (DATABASE, f"{DATABASE}-wal"):
        shutil.copy(workspace / name, to / name)
    return to


def test_a_crash_keeps_every_committed_write(rng: np.random.Generator, tmp_path: Path) -> None:
    store = EmbeddedCollection(tmp_path / "live")
    ids, queries = fill(store, rng), rand(rng, 10, 8)
    before = state(store, ids, queries)
    copy = crash_copy(tmp_path / "live", tmp_path / "crashed")
    assert state(EmbeddedCollection(copy), ids, queries) == before


@pytest.mark.parametrize("cut", [1, 100, 4096, -1])
def test_a_torn_last_write_is_dropped(rng: np.random.Generator, tmp_path: Path, cut: int) -> None:
    """Power lost while the last transaction's pages were being written: SQLite's
    checksums find the torn frames, and the store is as the commit before left it."""
    store = EmbeddedCollection(tmp_path / "live")
    ids, queries = fill(store, rng), rand(rng, 10, 8)
    before = state(store, ids, queries)
    wal = tmp_path / "live" / f"{DATABASE}-wal"
    committed = wal.stat().st_size
    store.upsert([f"t{i}" for i in range(50)], rand(rng, 50, 8), recs([f"t{i}" for i in range(50)]))
    copy = crash_copy(tmp_path / "live", tmp_path / "crashed")
    torn = wal.stat().st_size + cut if cut < 0 else committed + cut
    assert committed < torn < wal.stat().st_size
    os.truncate(copy / f"{DATABASE}-wal", torn)
    reopened = EmbeddedCollection(copy)
    assert state(reopened, ids, queries) == before and "t0" not in reopened
    reopened.upsert(["c"], rand(rng, 1, 8), recs(["c"]))  # and it takes writes again
    reopened.close()
    assert EmbeddedCollection(copy).get(["c"]) == recs(["c"])


def in_child(target: Any, workspace: Path) -> tuple[Any, Connection]:
    """`target(workspace, connection)` in a forked process, and the end that reads what it
    sends; a child that dies makes recv() raise instead of waiting forever."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=target, args=(str(workspace), sender))
    child.start()
    sender.close()
    return child, receiver


def _fill_disk(workspace: str, conn: Connection) -> None:
    """In a child: an upsert the file-size limit refuses, then one after it is lifted."""
    store, rng = EmbeddedCollection(workspace), np.random.default_rng(3)
    ids = [f"big{i}" for i in range(2_000)]
    store.upsert(["first"], rand(rng, 1, 256), recs(["first"]))
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    limit = sum(disk_bytes(Path(workspace)).values()) + 8192
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        store.upsert(ids, rand(rng, 2_000, 256), recs(ids))
        conn.send(("stored", len(store)))
    except StoreWriteError as exc:
        conn.send(("refused", str(exc), len(store), ids[0] in store))
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, hard))
    store.upsert(ids, rand(rng, 2_000, 256), recs(ids))
    conn.send(("after", len(store)))
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_full_disk_is_a_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the write fail as a full disk does (EFBIG, or ENOSPC)."""
    child, receiver = in_child(_fill_disk, tmp_path)
    refused, after = receiver.recv(), receiver.recv()
    child.join(60)
    assert refused[0] == "refused", refused
    assert "nothing from this request was stored" in refused[1]
    assert refused[2:] == (1, False)  # the store as it was
    assert after == ("after", 2_001)
    assert len(EmbeddedCollection(tmp_path)) == 2_001


def test_loads_100k_vectors(rng: np.random.Generator, tmp_path: Path) -> None:
    store = EmbeddedCollection(tmp_path)
    vectors = rand(rng, 100_000, 16)
    ids = [f"v{i}" for i in range(100_000)]
    for start in range(0, 100_000, 2_000):
        sl = slice(start, start + 2_000)
        store.upsert(ids[sl], vectors[sl], [StoredDocument(uri=None, tags={})] * 2_000)
    store.close()
    store = EmbeddedCollection(tmp_path)
    assert len(store) == 100_000
    hits = store.dense_search(vectors[[0, 54_321, 99_999]], 1)
    assert [h[0]["id"] for h in hits] == ["v0", "v54321", "v99999"]


def _writer(workspace: str, conn: Connection) -> None:
    """Upserts batches forever, reporting each one that returned."""
    store, rng = EmbeddedCollection(workspace), np.random.default_rng(7)
    for batch in itertools.count():
        ids = [f"w{batch}-{i}" for i in range(64)]
        store.upsert(ids, rand(rng, 64, 256),
                     [StoredDocument(uri=None, tags={"batch": batch})] * 64)
        conn.send(batch)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_killed_writer_keeps_every_confirmed_upsert(tmp_path: Path) -> None:
    child, receiver = in_child(_writer, tmp_path)
    confirmed: list[int] = []
    try:
        while len(confirmed) < 25:
            confirmed.append(receiver.recv())
    finally:
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    with pytest.raises(EOFError):
        while True:
            confirmed.append(receiver.recv())
    store = EmbeddedCollection(tmp_path)
    ids = [f"w{batch}-{i}" for batch in range(max(confirmed) + 2) for i in range(64)]
    batches = {record["tags"]["batch"] for record in store.get(ids) if record is not None}
    assert set(confirmed) <= batches
    assert batches == set(range(len(batches)))  # a prefix: nothing later without the earlier
    assert len(store) == 64 * len(batches) and len(batches) - len(confirmed) <= 1


# --- a workspace of the snapshot + log store (format 2), moved into the database ---------

FORMAT_2 = REPO / "tests" / "workspaces" / "format-2"


def legacy_copy(tmp_path: Path) -> Path:
    """A copy of the format-2 workspace, written by that store (make_format_2.py)."""
    return Path(shutil.copytree(FORMAT_2, tmp_path / "old"))


def expected_documents() -> dict[str, Any]:
    return json.loads((FORMAT_2.parent / "format-2-expected.json").read_text())


def test_a_snapshot_and_log_workspace_is_moved_into_the_database(tmp_path: Path) -> None:
    workspace, expected = legacy_copy(tmp_path), expected_documents()
    store = EmbeddedCollection(workspace)
    assert len(store) == len(expected) and store.dim == 8
    ids = sorted(expected)
    assert store.get(ids) == [expected[doc_id]["record"] for doc_id in ids]
    np.testing.assert_allclose(store.vectors(ids), [expected[i]["vector"] for i in ids],
                               atol=1e-6, rtol=0)
    assert store.find(uri_prefix="/memes/m05") == ["m05"]
    assert [hit[0] for hit in store.lexical_search("one does not simply", 1)[0]] == ["m07"]
    store.close()
    assert sorted(p.name for p in workspace.iterdir()) == [DATABASE, LOCK, "memeflow.json"]
    assert len(EmbeddedCollection(workspace)) == len(expected)  # once: nothing left to move


def test_a_move_cut_short_before_the_old_files_went_is_finished(tmp_path: Path) -> None:
    """A crash after the database committed the move, before the old files were removed."""
    workspace, expected = legacy_copy(tmp_path), expected_documents()
    shutil.copytree(workspace, tmp_path / "original")
    EmbeddedCollection(workspace).close()
    for name in (SNAPSHOT, LOG):  # the very files it moved
        shutil.copy2(tmp_path / "original" / name, workspace / name)
    store = EmbeddedCollection(workspace)
    assert len(store) == len(expected) and not (workspace / LOG).exists()


def test_old_files_that_were_not_moved_are_refused_not_deleted(tmp_path: Path) -> None:
    """A snapshot put back beside a database that already took another one's documents."""
    workspace = legacy_copy(tmp_path)
    EmbeddedCollection(workspace).close()
    (workspace / SNAPSHOT).write_bytes((FORMAT_2 / SNAPSHOT).read_bytes() + b"")
    os.utime(workspace / SNAPSHOT, ns=(1, 1))  # a restored backup: another file
    with pytest.raises(CorruptStoreError, match="move them away"):
        EmbeddedCollection(workspace)
    assert (workspace / SNAPSHOT).exists()


def test_a_torn_log_record_is_dropped_when_moving(tmp_path: Path) -> None:
    workspace, expected = legacy_copy(tmp_path), expected_documents()
    os.truncate(workspace / LOG, (workspace / LOG).stat().st_size - 5)  # the m05 upsert
    store = EmbeddedCollection(workspace)
    assert len(store) == len(expected)
    assert store.get(["m05"])[0]["uri"] == "/memes/m05.jpg"  # the version before it


@pytest.mark.parametrize("damage", ["log", "snapshot", "no snapshot"])
def test_damage_no_crash_causes_is_refused_and_the_files_are_kept(
    tmp_path: Path, damage: str
) -> None:
    workspace = legacy_copy(tmp_path)
    if damage == "no snapshot":
        (workspace / SNAPSHOT).unlink()
    else:
        path = workspace / (LOG if damage == "log" else SNAPSHOT)
        data = bytearray(path.read_bytes())
        data[20] ^= 0x40  # inside the first record's header
        path.write_bytes(bytes(data))
    files = sorted(p.name for p in workspace.iterdir())
    with pytest.raises(CorruptStoreError, match=r"snapshot\.bin|log\.bin|missing"):
        EmbeddedCollection(workspace)
    assert set(files) <= {p.name for p in workspace.iterdir()}


def test_a_log_left_by_a_crash_mid_compaction_is_not_applied_twice(tmp_path: Path) -> None:
    """A log record the snapshot already holds (its seq is not above the snapshot's)."""
    workspace, expected = legacy_copy(tmp_path), expected_documents()
    stale = b"".join(journal.frame({"seq": 1, "op": "clear"}))
    (workspace / LOG).write_bytes(stale + (workspace / LOG).read_bytes())
    assert len(EmbeddedCollection(workspace)) == len(expected)
