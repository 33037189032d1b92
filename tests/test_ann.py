"""The HNSW path of EmbeddedCollection: recall against exact search, the graph kept in step with
upserts and deletes, and the saved graph used, repaired after a crash, or rebuilt.

faiss builds graphs on several threads, so a graph is not the same from run to run: these
tests assert what holds for any graph (ids, scores, files), and recall with a margin."""

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from memeflow.documents import Hit
from memeflow.indexer.backends import embedded as store_module
from memeflow.indexer.backends.embedded import GRAPH, LOCK, EmbeddedCollection, StoredDocument
from memeflow.indexer.filters import compile_where
from memeflow.indexer.indexes.ann import HnswIndex, HnswParams
from memeflow.indexer.storage.database import DATABASE
from memeflow.vectors import unit_rows

BUILT = "built the HNSW graph"


def clip_like(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Vectors with structure, as embeddings have: a shared direction, most variance in a
    few dozen dimensions, some noise. Isotropic random vectors have no near neighbours at
    all, the worst case for any graph (see BENCHMARKS.md); the benchmark uses both."""
    basis = np.linalg.qr(rng.standard_normal((dim, 48)))[0].T
    spread = np.arange(1, 49) ** -0.5 / np.linalg.norm(np.arange(1, 49) ** -0.5)
    mean = np.ones(dim) / np.sqrt(dim)
    noise = rng.standard_normal((n, dim)) * 0.3 / np.sqrt(dim)
    return (0.8 * mean + (rng.standard_normal((n, 48)) * spread) @ basis + noise).astype(
        np.float32
    )


def rand_iso(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return rng.standard_normal((n, dim)).astype(np.float32)


def upsert(store: EmbeddedCollection, ids: list[str], vectors: np.ndarray) -> None:
    store.upsert(ids, vectors, [StoredDocument(uri=None, tags={"n": i}) for i in range(len(ids))])


def unit64(docs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {doc_id: v.astype(np.float64) / np.linalg.norm(v) for doc_id, v in docs.items()}


def assert_consistent(hits: list[Hit], unit: dict[str, np.ndarray], query: np.ndarray) -> None:
    """Only present ids, each once, with the float64 cosine of its current vector, best
    first. `unit`: the present documents' vectors, normalised in float64."""
    query = query.astype(np.float64) / np.linalg.norm(query)
    assert len({hit["id"] for hit in hits}) == len(hits)
    for hit in hits:
        assert hit["score"] == pytest.approx(float(unit[hit["id"]] @ query), abs=1e-5)
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)


def recall(approx: list[list[Hit]], exact: list[list[Hit]]) -> float:
    pairs = zip(approx, exact, strict=True)
    found = sum(len({h["id"] for h in a} & {h["id"] for h in e}) for a, e in pairs)
    return found / sum(len(e) for e in exact)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(99)


# --- search --------------------------------------------------------------------------------


def test_a_graph_saved_without_its_error_table_is_kept(rng: np.random.Generator,
                                                     tmp_path: Path) -> None:
    """A graph file of the format before the error table (MFh1) is used, not rebuilt: the
    errors are measured once from the vectors in the database, and filtered searches are
    exact with them."""
    import zlib

    from memeflow.indexer.indexes import ann

    vectors = clip_like(rng, 1_500, 64)
    ids = [f"d{i:04d}" for i in range(1_500)]
    store = EmbeddedCollection(tmp_path, exact_max=1_000)
    store.upsert(ids, vectors, [StoredDocument(uri=None, tags={"odd": i % 2})
                                for i in range(1_500)])
    store.close()
    data = (tmp_path / GRAPH).read_bytes()
    _, faiss_len, meta_len, _ = ann.FOOTER.unpack(data[-ann.FOOTER.size:])
    ntotal = 1_500
    body = data[: faiss_len + meta_len - 4 * ntotal]  # without the float32 error table
    footer = ann.FOOTER.pack(b"MFh1", faiss_len, meta_len - 4 * ntotal, zlib.crc32(body))
    (tmp_path / GRAPH).write_bytes(body + footer)
    store = EmbeddedCollection(tmp_path, exact_max=1_000)
    assert store.graph is not None and store.graph.loaded_from is not None
    unit = vectors.astype(np.float64) / np.linalg.norm(vectors, axis=1, keepdims=True)
    query = clip_like(rng, 1, 64)
    q = query[0].astype(np.float64) / np.linalg.norm(query[0])
    (hits,) = store.dense_search(query, 10, store.select(compile_where({"odd": 1})))
    best = sorted(range(1, 1_500, 2), key=lambda i: (-float(unit[i] @ q), ids[i]))[:10]
    assert [hit["id"] for hit in hits] == [ids[i] for i in best]
    store.close()


def test_beyond_exact_max_only_the_graph_stays_in_memory_and_filters_stay_exact(
        rng: np.random.Generator, tmp_path: Path) -> None:
    """Past exact_max the float32 vectors leave memory (candidates are rescored from the
    database); a filtered search ranks the graph's 8-bit copies within their error bounds,
    so it still returns exactly the brute-force top k, with exact cosines. Below
    exact_max / 2 the graph goes and the vectors come back."""
    vectors = clip_like(rng, 3_000, 64)
    ids = [f"d{i:04d}" for i in range(3_000)]
    store = EmbeddedCollection(tmp_path, exact_max=1_000)
    store.upsert(ids, vectors, [StoredDocument(uri=None, tags={"part": i % 7})
                                for i in range(3_000)])
    assert store.graph is not None and not store.vectors_in_memory
    unit = vectors.astype(np.float64) / np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = clip_like(rng, 20, 64)
    for query in queries:
        q = query.astype(np.float64) / np.linalg.norm(query)
        (hits,) = store.dense_search(query[None], 15, store.select(compile_where({"part": 3})))
        part = [i for i in range(3_000) if i % 7 == 3]
        best = sorted(part, key=lambda i: (-float(unit[i] @ q), ids[i]))[:15]
        assert [hit["id"] for hit in hits] == [ids[i] for i in best]
        for hit, i in zip(hits, best, strict=True):
            assert hit["score"] == pytest.approx(float(unit[i] @ q), abs=1e-6)
    np.testing.assert_allclose(store.vectors(["d0042"])[0], unit[42], atol=1e-6)
    store.close()
    store = EmbeddedCollection(tmp_path, exact_max=1_000)  # the saved graph; no vectors read
    assert store.graph is not None and store.graph.loaded_from is not None
    assert not store.vectors_in_memory
    store.delete(ids[:2_600])  # 400 left: below exact_max / 2
    assert store.graph is None and store.vectors_in_memory
    (hits,) = store.dense_search(queries[:1], 5)
    q = queries[0].astype(np.float64) / np.linalg.norm(queries[0])
    left = sorted(range(2_600, 3_000), key=lambda i: (-float(unit[i] @ q), ids[i]))[:5]
    assert [hit["id"] for hit in hits] == [ids[i] for i in left]
    store.close()



@pytest.mark.parametrize("dim", [512, 64], ids=["clip-like-512d", "isotropic-64d"])
def test_recall_against_exact(rng: np.random.Generator, dim: int) -> None:
    """The default settings, on vectors with structure and on vectors without."""
    n = 20_000
    vectors = clip_like(rng, n + 200, dim) if dim == 512 else rand_iso(rng, n + 200, dim)
    ids = [f"d{i:05d}" for i in range(n)]
    ann, exact = EmbeddedCollection(exact_max=1_000), EmbeddedCollection()
    for start in range(0, n, 5_000):  # the graph is built at 5k, then added to
        sl = slice(start, start + 5_000)
        upsert(ann, ids[sl], vectors[sl])
        upsert(exact, ids[sl], vectors[sl])
    assert ann.graph is not None and exact.graph is None
    queries = vectors[n:]
    approx, truth = ann.dense_search(queries, 10), exact.dense_search(queries, 10)
    assert recall(approx, truth) >= 0.98
    for a, e in zip(approx, truth, strict=True):
        assert len(a) == 10
        scores = {hit["id"]: hit["score"] for hit in e}
        for hit in a:  # the very same float64 scores as exact search, not quantised ones
            assert hit["score"] == scores.get(hit["id"], hit["score"])
        assert [h["score"] for h in a] == sorted((h["score"] for h in a), reverse=True)


def test_top_k_beyond_the_graph_limit_is_exact(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors, ids = rand_iso(rng, 3_000, 16), [f"d{i}" for i in range(3_000)]
    ann, exact = EmbeddedCollection(exact_max=100), EmbeddedCollection()
    upsert(ann, ids, vectors)
    upsert(exact, ids, vectors)
    monkeypatch.setattr(store_module, "MAX_ANN_K", 5)
    queries = rand_iso(rng, 5, 16)
    assert ann.dense_search(queries, 6) == exact.dense_search(queries, 6)
    assert [len(hits) for hits in ann.dense_search(queries, 5_000)] == [3_000] * 5


# --- kept in step with upserts and deletes ------------------------------------------------


def test_upserts_and_deletes_kept_in_step(rng: np.random.Generator) -> None:
    store, dim = EmbeddedCollection(exact_max=500), 32
    ids = [f"d{i:04d}" for i in range(3_000)]
    docs = dict(zip(ids, rand_iso(rng, 3_000, dim), strict=True))
    upsert(store, ids, np.stack(list(docs.values())))
    original = dict(docs)
    replaced = [str(doc_id) for doc_id in rng.choice(ids, 300, replace=False)]
    new_vectors = rand_iso(rng, 300, dim)
    old_vectors = np.stack([docs[doc_id] for doc_id in replaced])
    upsert(store, replaced, new_vectors)
    docs.update(zip(replaced, new_vectors, strict=True))
    others = [doc_id for doc_id in ids if doc_id not in replaced]
    deleted = [ids[0], ids[-1], *(str(i) for i in rng.choice(others, 400, replace=False))]
    deleted += replaced[:50]
    assert store.delete(deleted) == len(set(deleted))
    for doc_id in deleted:
        docs.pop(doc_id, None)
    added = [f"n{i}" for i in range(200)]
    added_vectors = rand_iso(rng, 200, dim)
    upsert(store, added, added_vectors)
    docs.update(zip(added, added_vectors, strict=True))
    assert store.graph is not None and store.graph.tombstones == 300 + len(set(deleted))
    assert len(store) == len(docs) == len(store.graph)

    gone = set(deleted)
    queries = np.concatenate([new_vectors[50:], old_vectors[50:], rand_iso(rng, 50, dim)])
    tops, unit = [], unit64(docs)
    for query, hits in zip(queries, store.dense_search(queries, 10), strict=True):
        assert len(hits) == 10
        assert not {hit["id"] for hit in hits} & gone
        assert_consistent(hits, unit, query)
        tops.append(hits[0]["id"])
    # a replaced vector is found by its new value, with score 1, and not by its old one
    found = sum(top == doc_id for top, doc_id in zip(tops[:250], replaced[50:], strict=True))
    assert found >= 0.95 * 250
    assert store.dense_search(new_vectors[60:61], 1)[0][0]["score"] == pytest.approx(1.0, abs=1e-6)
    old_hits = store.dense_search(old_vectors[50:], 1)
    assert sum(hits[0]["score"] > 0.999 for hits in old_hits) == 0
    own = np.stack([original[doc_id] for doc_id in deleted[:100]])
    for hits in store.dense_search(own, 10):  # a deleted vector's own query does not bring it back
        assert not {hit["id"] for hit in hits} & gone


def test_tombstones_trigger_a_rebuild(
    rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    store = EmbeddedCollection(exact_max=500, hnsw=HnswParams(rebuild_fraction=0.3))
    ids = [f"d{i}" for i in range(2_000)]
    upsert(store, ids, rand_iso(rng, 2_000, 16))
    upsert(store, ids[:700], rand_iso(rng, 700, 16))  # 700 tombstones of 2700 labels: 26%
    assert store.graph is not None and store.graph.tombstones == 700
    with caplog.at_level(logging.INFO, logger="memeflow.indexer"):
        store.delete(ids[700:900])  # 900 of 2700: 33%
    assert store.graph.tombstones == 0 and len(store.graph) == 1_800
    assert "deleted or replaced" in caplog.text


def test_a_shrunk_store_drops_the_graph_and_searches_exactly(rng: np.random.Generator) -> None:
    store, exact = EmbeddedCollection(exact_max=1_000), EmbeddedCollection()
    ids, vectors = [f"d{i}" for i in range(1_500)], rand_iso(rng, 1_500, 16)
    upsert(store, ids, vectors)
    upsert(exact, ids, vectors)
    store.delete(ids[:700])  # 800 left: still kept, but searched exactly
    exact.delete(ids[:700])
    queries = rand_iso(rng, 5, 16)
    assert store.graph is not None
    assert store.dense_search(queries, 10) == exact.dense_search(queries, 10)
    store.delete(ids[700:1_000])  # 500 = exact_max / 2
    assert store.graph is None
    upsert(store, ids[:400], vectors[:400])  # 900: no graph until beyond exact_max
    assert store.graph is None


# --- persistence ---------------------------------------------------------------------------


def filled(path: Path, rng: np.random.Generator, **kwargs: object
           ) -> tuple[EmbeddedCollection, list[str]]:
    store = EmbeddedCollection(path, exact_max=500, **kwargs)  # type: ignore[arg-type]
    ids = [f"d{i:04d}" for i in range(2_000)]
    upsert(store, ids, rand_iso(rng, 2_000, 16))
    upsert(store, ids[:100], rand_iso(rng, 100, 16))
    store.delete(ids[100:200])
    return store, ids


def reopen(path: Path, caplog: pytest.LogCaptureFixture, **kwargs: object) -> EmbeddedCollection:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="memeflow.indexer"):
        return EmbeddedCollection(path, exact_max=500, **kwargs)  # type: ignore[arg-type]


def test_reopen_uses_the_saved_graph(
    rng: np.random.Generator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, _ = filled(tmp_path, rng)
    queries = rand_iso(rng, 20, 16)
    before = store.dense_search(queries, 10)
    store.close()
    assert (tmp_path / GRAPH).exists()
    store = reopen(tmp_path, caplog)
    assert store.graph is not None and store.graph.loaded_from == tmp_path / GRAPH
    assert BUILT not in caplog.text and "and its HNSW graph" in caplog.text
    assert store.graph.tombstones == 200  # the very graph, tombstones and all
    assert store.dense_search(queries, 10) == before
    mtime = (tmp_path / GRAPH).stat().st_mtime_ns
    store.close()  # unchanged: not written again
    assert (tmp_path / GRAPH).stat().st_mtime_ns == mtime


def test_a_graph_saved_before_a_crash_is_repaired_not_rebuilt(
    rng: np.random.Generator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, ids = filled(tmp_path, rng)
    store.close()
    store = EmbeddedCollection(tmp_path, exact_max=500)
    late = rand_iso(rng, 30, 16)
    upsert(store, [f"late{i}" for i in range(30)], late)
    store.delete(ids[300:400])  # rows move: the last ones into the deleted ones' places
    del store  # a crash: close() never saves the graph again
    store = reopen(tmp_path, caplog)
    assert store.graph is not None and store.graph.loaded_from is not None
    assert BUILT not in caplog.text and "added them again" in caplog.text
    assert len(store) == len(store.graph) == 2_000 - 200 + 30
    hits = store.dense_search(late, 1)
    assert sum(h[0]["id"] == f"late{i}" for i, h in enumerate(hits)) >= 28
    gone = set(ids[100:200] + ids[300:400])
    queries = rand_iso(rng, 50, 16)
    found = {hit["id"] for hits in store.dense_search(queries, 20) for hit in hits}
    assert found and not found & gone
    exact = EmbeddedCollection(exact_max=10_000)  # the same documents, searched exactly
    kept = [doc_id for doc_id in [*ids, *(f"late{i}" for i in range(30))] if doc_id in store]
    upsert(exact, kept, store.vectors(kept))
    assert recall(store.dense_search(queries, 10), exact.dense_search(queries, 10)) >= 0.95


def test_a_graph_newer_than_the_database_is_rebuilt(
    rng: np.random.Generator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database restored from a backup older than the graph beside it."""
    store, ids = filled(tmp_path, rng)
    store.close()
    shutil.copy(tmp_path / DATABASE, tmp_path / "backup")
    store = EmbeddedCollection(tmp_path, exact_max=500)
    store.delete(ids[500:510])
    store.close()
    shutil.copy(tmp_path / "backup", tmp_path / DATABASE)
    store = reopen(tmp_path, caplog)
    assert store.graph is not None and store.graph.loaded_from is None
    assert len(store.graph) == len(store) == 1_900
    assert BUILT in caplog.text and "newer than the database" in caplog.text
    store.close()
    assert reopen(tmp_path, caplog).graph.loaded_from is not None  # type: ignore[union-attr]


def test_graph_of_another_workspace_is_rebuilt(
    rng: np.random.Generator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Same history, other vectors: the seq and the counts agree, the vectors do not."""
    for name in ("a", "b"):
        store, _ = filled(tmp_path / name, rng)
        store.close()
    shutil.copy(tmp_path / "a" / GRAPH, tmp_path / "b" / GRAPH)
    store = reopen(tmp_path / "b", caplog)
    assert store.graph is not None and store.graph.loaded_from is None
    assert "does not match" in caplog.text


@pytest.mark.parametrize("damage", ["flip", "truncate", "params"])
def test_unusable_graph_is_rebuilt(
    rng: np.random.Generator, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    store, _ = filled(tmp_path, rng)
    queries = rand_iso(rng, 10, 16)
    store.close()
    path, kwargs = tmp_path / GRAPH, {}
    if damage == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 3] ^= 0x10
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-7])
    else:
        kwargs = {"hnsw": HnswParams(m=16)}
    store = reopen(tmp_path, caplog, **kwargs)
    assert store.graph is not None and store.graph.loaded_from is None
    assert BUILT in caplog.text and "unusable" in caplog.text
    assert all(len(hits) == 10 for hits in store.dense_search(queries, 10))


def test_failed_graph_save_only_warns(
    rng: np.random.Generator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, _ = filled(tmp_path, rng)

    def disk_full(self: HnswIndex, path: Path, seq: int) -> None:
        path.with_name(path.name + ".tmp").write_bytes(b"half a gra")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(HnswIndex, "save", disk_full)
    with caplog.at_level(logging.WARNING, logger="memeflow.indexer"):
        store.close()
    assert "saving the HNSW graph" in caplog.text and not (tmp_path / GRAPH).exists()
    monkeypatch.undo()
    store = reopen(tmp_path, caplog)
    assert len(store) == 1_900 and BUILT in caplog.text and "no saved graph" in caplog.text
    assert not (tmp_path / f"{GRAPH}.tmp").exists()


def test_clear_removes_the_graph(rng: np.random.Generator, tmp_path: Path) -> None:
    store, _ = filled(tmp_path, rng)
    store.close()
    store = EmbeddedCollection(tmp_path, exact_max=500)
    store.clear()
    assert store.graph is None and not (tmp_path / GRAPH).exists()
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [DATABASE, LOCK]


def test_the_graph_of_an_old_workspace_moves_with_it(
    rng: np.random.Generator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot + log workspace (format 2) with its saved graph: the move into the
    database keeps the old rows, so the graph is used, not rebuilt (minutes at 1M)."""
    from memeflow.indexer.storage import journal, legacy

    ids, vectors = [f"o{i:04d}" for i in range(1_200)], rand_iso(rng, 1_200, 16)
    records = [{"uri": None, "tags": {}} for _ in ids]
    header = {"op": "snapshot", "seq": 7, "dim": 16, "count": 1_200, "ids": ids[:1_000],
              "records": records[:1_000]}
    header["count"] = 1_000
    tail = {"op": "upsert", "seq": 8, "dim": 16, "count": 200, "ids": ids[1_000:],
            "records": records[1_000:]}
    deleted = {"op": "delete", "seq": 9, "ids": ids[:50]}  # the last rows move into these
    (tmp_path / legacy.SNAPSHOT).write_bytes(b"".join(journal.frame(header, vectors[:1_000])))
    (tmp_path / legacy.LOG).write_bytes(b"".join(
        [*journal.frame(tail, vectors[1_000:]), *journal.frame(deleted)]))
    old = legacy.read_legacy_store(tmp_path)
    matrix = np.stack([old.vectors[doc_id] for doc_id in old.ids])
    HnswIndex.build(matrix / np.linalg.norm(matrix, axis=1, keepdims=True),
                    HnswParams()).save(tmp_path / legacy.GRAPH, 9)
    store = reopen(tmp_path, caplog)
    assert len(store) == 1_150 and BUILT not in caplog.text
    assert store.graph is not None and store.graph.loaded_from == tmp_path / GRAPH
    hits = store.dense_search(vectors[[60, 1_100]], 1)
    assert [h[0]["id"] for h in hits] == [ids[60], ids[1_100]]


def test_quantised_scores_are_those_of_the_decoded_copies_within_their_bounds(
        rng: np.random.Generator) -> None:
    """A filtered search scores the 8-bit codes without decoding them: the scores must be
    those of faiss's own decoded copies, and each exact score within its row's bound."""
    matrix = unit_rows(rng.standard_normal((3000, 64)).astype(np.float32))
    graph = HnswIndex.build(matrix, HnswParams())
    rows = np.sort(rng.choice(3000, 700, replace=False))
    query = unit_rows(rng.standard_normal((1, 64)).astype(np.float32))[0]
    scores, bounds = graph.approximate(rows, query, chunk=256)  # several chunks
    decoded = graph._storage().reconstruct_batch(np.ascontiguousarray(rows))  # label = row
    np.testing.assert_allclose(scores, decoded @ query, rtol=0, atol=1e-5)
    exact = matrix[rows].astype(np.float64) @ query
    assert np.all(np.abs(exact - scores) <= bounds + 1e-5)
    assert scores.dtype == np.float32 and len(scores) == len(bounds) == 700


def test_rescoring_reads_each_stored_vector_by_row(rng: np.random.Generator,
                                                   tmp_path: Path) -> None:
    """Candidates are rescored from the vectors read back by row: blob reads (Python 3.11+)
    and the one-query read give the stored float32 vectors in the order asked, and a row
    not stored is a KeyError either way."""
    from memeflow.indexer.storage import documents

    vectors = unit_rows(rng.standard_normal((50, 16)).astype(np.float32))
    store = EmbeddedCollection(tmp_path / "ws")
    upsert(store, [f"d{i}" for i in range(50)], vectors)
    rows = np.array([49, 0, 7, 7, 23])
    readers = [documents.vectors_by_row, documents._vectors_by_query]
    for read in readers:
        got = read(store._conn, rows if read is documents.vectors_by_row else rows.tolist(), 16)
        np.testing.assert_array_equal(got, vectors[rows])
        assert got.dtype == np.float32
        with pytest.raises(KeyError):
            read(store._conn, np.array([3, 50]) if read is documents.vectors_by_row else [3, 50],
                 16)
    store.close()
