"""Finding memes by their words: fused with the picture ranking by reciprocal rank fusion,
through the store and the search path (the word index alone: test_words_index.py), with
the same answers on both backends (tests/backends.py)."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from docarray import DocList

from memeflow.documents import MatchDoc, MemeDoc
from memeflow.encoder.pipeline import embed_documents
from memeflow.indexer.backends import Collection
from memeflow.indexer.backends.embedded import EmbeddedCollection, StoredDocument
from memeflow.indexer.filters import compile_where
from memeflow.indexer.search.fusion import reciprocal_rank_fusion
from memeflow.indexer.search.options import ocr_weight
from memeflow.indexer.search.pipeline import SearchOptions, search_collection
from memeflow.indexer.shards import merge_matches
from tests.backends import BACKENDS, opened

CAPTIONS = {
    "sweet-brown": "MEMES?\nAIN'TNOBODYGOT TIME FO'THAT",  # as OCR reads it: spaces lost
    "agnes": "IHAVEREADANDAGREETOTHE\nTERMSANDCONDITIONS",
    "andy": "IDON'TKNOWWHAT\nTHISMEMEISFOR\nANDATTHISPOINTIM\nTOOAFRAIDTOASK",
    "ackbar": "IT'SATRAP!",
}


def test_fusion_lifts_a_document_both_signals_found() -> None:
    fused = reciprocal_rank_fusion(
        {"words": ["w1"], "clip": ["c1", "c2", "w1"]}, {"words": 1.0, "clip": 1.0}
    )
    assert [doc_id for doc_id, _, _ in fused] == ["w1", "c1", "c2"]
    assert fused[0][2] == {"words": 1, "clip": 3}
    assert fused[1][2] == {"clip": 1}


def test_fusion_weight_zero_keeps_the_clip_order() -> None:
    fused = reciprocal_rank_fusion(
        {"words": ["c3"], "clip": ["c1", "c2", "c3"]}, {"words": 0.0, "clip": 1.0}
    )
    assert [doc_id for doc_id, _, _ in fused] == ["c1", "c2", "c3"]


def test_ocr_weight_parameter_and_environment(monkeypatch) -> None:
    assert ocr_weight({}) == 1.0
    assert ocr_weight({"ocr_weight": 0.0}) == 0.0
    monkeypatch.setenv("MEMEFLOW_OCR_WEIGHT", "2.5")
    assert ocr_weight({}) == 2.5
    assert ocr_weight({"ocr_weight": "0.5"}) == 0.5
    with pytest.raises(ValueError, match="ocr_weight must be a number >= 0"):
        ocr_weight({"ocr_weight": -1})
    with pytest.raises(ValueError, match="ocr_weight"):
        ocr_weight({"ocr_weight": "lots"})


class ReaderStub:
    """An OCR engine whose answers are known: the file name's stem, or a failure."""

    max_side = 640

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.seen = fail, []

    def read_image(self, rgb) -> str:
        if self.fail:
            raise RuntimeError("onnxruntime: bad input")
        self.seen.append(rgb.shape)
        return "WORDS ON IT"


def test_the_encoder_reads_words_from_the_image_it_decodes(clip_model, meme_files) -> None:
    docs = [MemeDoc(uri=str(meme_files[0])), MemeDoc(text="drake"),
            MemeDoc(uri="/no/such/meme.jpg")]
    reader = ReaderStub()
    with ThreadPoolExecutor(2) as pool:
        embed_documents(clip_model, docs, pool, ocr=reader)  # type: ignore[arg-type]
    assert docs[0].words == "WORDS ON IT" and docs[0].embedding is not None
    assert min(reader.seen[0][:2]) >= 224 and len(reader.seen) == 1  # not the texts
    assert docs[1].words is None and docs[2].error and docs[2].words is None


def test_a_meme_ocr_cannot_read_keeps_its_picture(clip_model, meme_files) -> None:
    docs = [MemeDoc(uri=str(meme_files[0])), MemeDoc(uri=str(meme_files[1]))]
    with ThreadPoolExecutor(2) as pool:
        embed_documents(clip_model, docs, pool, ocr=ReaderStub(fail=True))  # type: ignore[arg-type]
    assert all(d.embedding is not None and d.words is None and not d.error for d in docs)


DIM = 16


def fill_captioned(store: Collection) -> np.ndarray:
    """40 memes with random pictures; four carry the captions above, in two folders.
    Returns the query: the text's CLIP vector, (1, DIM)."""
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(40, DIM)).astype(np.float32)
    names = list(CAPTIONS)
    ids = [names[i] if i < len(names) else f"m{i:02d}" for i in range(40)]
    records = [StoredDocument(uri=None, tags={"folder": "a" if i % 2 else "b"},
                      words=CAPTIONS.get(doc_id)) for i, doc_id in enumerate(ids)]
    store.upsert(ids, vectors, records)
    return rng.normal(size=(1, DIM)).astype(np.float32)


@pytest.fixture(scope="module", params=BACKENDS)
def captioned(request) -> Iterator[tuple[Collection, np.ndarray]]:
    """The captioned memes on each backend (searched, never changed), and the query."""
    with opened(request.param, request) as store:
        yield store, fill_captioned(store)


def ranked(store, query, text, **options) -> list[dict]:
    (hits,) = search_collection(store, query, SearchOptions(**options), texts=[text])
    return hits


def test_a_quoted_caption_puts_its_meme_first_and_says_why(captioned) -> None:
    store, query = captioned
    hits = ranked(store, query, "ain't nobody got time for that")
    assert hits[0]["id"] == "sweet-brown" and hits[0]["signals"]["words"] == 1
    assert hits[0]["words"] == CAPTIONS["sweet-brown"] and hits[0]["words_score"] > 0
    picture = {h["id"]: h for h in ranked(store, query, None, top_k=40)}
    # Still its cosine (near zero for random vectors: an absolute tolerance).
    assert hits[0]["score"] == pytest.approx(picture["sweet-brown"]["score"], abs=1e-6)
    assert hits[0]["signals"]["clip"] == list(picture).index("sweet-brown") + 1
    assert all(set(h["signals"]) == {"clip"} for h in hits[1:])  # no other meme says it


def test_ocr_weight_zero_is_the_picture_ranking(captioned) -> None:
    store, query = captioned
    plain = ranked(store, query, None)
    off = ranked(store, query, "ain't nobody got time for that", ocr_weight=0.0)
    assert [(h["id"], h["score"]) for h in off] == [(h["id"], h["score"]) for h in plain]
    assert [h["signals"] for h in off] == [{"clip": rank} for rank in range(1, 11)]


def test_filters_bar_memes_found_by_their_words(captioned) -> None:
    store, query = captioned
    folder = store.get(["sweet-brown"])[0]["tags"]["folder"]
    other = {"a": "b", "b": "a"}[folder]
    hits = ranked(store, query, "ain't nobody got time for that",
                  where=compile_where({"folder": other}))
    assert "sweet-brown" not in {h["id"] for h in hits}
    assert len(hits) == 10 and all(h["tags"]["folder"] == other for h in hits)


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_filter_keeps_the_memes_its_words_find_however_many_others_match(kind, request
                                                                           ) -> None:
    """Forty memes say the same; the filter admits one: the words still find it."""
    with opened(kind, request) as store:
        ids = [f"m{i:02d}" for i in range(40)]
        store.upsert(ids, np.random.default_rng(1).normal(size=(40, DIM)).astype(np.float32),
                     [StoredDocument(uri=None, tags={"pick": i == 39},
                                     words="ONE DOES NOT SIMPLY") for i in range(40)])
        found, done = store.lexical_search("one does not simply", 5,
                                           store.select(compile_where({"pick": True})))
    assert [doc_id for doc_id, _, phrase in found if phrase] == ["m39"] and done


@pytest.mark.parametrize("kind", BACKENDS)
def test_words_replaced_or_deleted_are_found_no_more(kind, request) -> None:
    with opened(kind, request) as store:
        query = fill_captioned(store)
        store.upsert(["agnes"], query, [StoredDocument(uri=None, tags={},
                                                       words="ONEDOESNOTSIMPLY")])
        store.delete(["ackbar"])
        assert [m.id for m in store.lexical_search("terms and conditions", 5)[0]] == []
        assert store.lexical_search("it's a trap", 5) == ([], True)
        found, _ = store.lexical_search("one does not simply", 5)
        assert [(m.id, m.phrase) for m in found] == [("agnes", True)]
        (hits,) = search_collection(store, query, SearchOptions(), texts=["one does not simply"])
        assert hits[0]["id"] == "agnes" and hits[0]["signals"] == {"words": 1, "clip": 1}


def test_min_score_bars_pictures_not_memes_found_by_their_words(captioned) -> None:
    store, query = captioned
    everything = ranked(store, query, None, top_k=40)
    bar = everything[5]["score"]
    hits = ranked(store, query, "terms and conditions", min_score=bar, top_k=40)
    assert hits[0]["id"] == "agnes"
    rest = [h for h in hits if h["id"] != "agnes"]
    assert len(rest) == 6 and all(h["score"] >= bar for h in rest)


def test_pages_of_a_fused_ranking_follow_on(captioned) -> None:
    store, query = captioned
    text = "I don't know what this meme is for"
    whole = ranked(store, query, text, top_k=20)
    pages = ranked(store, query, text, top_k=10) + ranked(
        store, query, text, top_k=10, offset=10)
    assert [h["id"] for h in pages] == [h["id"] for h in whole]


def test_two_shards_fuse_their_union_again() -> None:
    """Embedded only: memeflow never shards a Milvus collection (Milvus shards itself)."""
    store = EmbeddedCollection()
    query = fill_captioned(store)
    text = "it's a trap"
    shards = []
    for shard in range(2):
        everything = store.find()
        ids = [doc_id for i, doc_id in enumerate(everything) if i % 2 == shard]
        part = EmbeddedCollection()
        part.upsert(ids, store.vectors(ids), store.get(ids))  # type: ignore[arg-type]
        (hits,) = search_collection(part, query, SearchOptions(), texts=[text], paged=False)
        shards.append(DocList[MatchDoc]([MatchDoc(**hit) for hit in hits]))
    merged = merge_matches(shards, SearchOptions())
    single = ranked(store, query, text)
    assert [m.id for m in merged] == [h["id"] for h in single]
    assert [m.signals for m in merged] == [h["signals"] for h in single]
