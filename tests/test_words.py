"""Finding memes by their words: the trigram text index and reciprocal rank fusion."""

import math
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from docarray import DocList

from memeflow.documents import MatchDoc, MemeDoc
from memeflow.encoder.pipeline import embed_documents
from memeflow.indexer.bm25 import K1, B, Bm25Index, grams, normalise
from memeflow.indexer.filters import compile_where
from memeflow.indexer.fusion import reciprocal_rank_fusion
from memeflow.indexer.hybrid import ocr_weight
from memeflow.indexer.search import SearchOptions, search_store
from memeflow.indexer.shards import merge_matches
from memeflow.indexer.store import Record, VectorStore

CAPTIONS = {
    "sweet-brown": "MEMES?\nAIN'TNOBODYGOT TIME FO'THAT",  # as OCR reads it: spaces lost
    "agnes": "IHAVEREADANDAGREETOTHE\nTERMSANDCONDITIONS",
    "andy": "IDON'TKNOWWHAT\nTHISMEMEISFOR\nANDATTHISPOINTIM\nTOOAFRAIDTOASK",
    "ackbar": "IT'SATRAP!",
}


@pytest.fixture
def index() -> Bm25Index:
    words = Bm25Index()
    for doc_id, text in CAPTIONS.items():
        words.upsert(doc_id, text)
    return words


def test_normalise_keeps_letters_and_digits_only() -> None:
    assert normalise("Ain't nobody — got TIME fo' that!") == "aintnobodygottimefothat"
    assert normalise("Café 2") == "cafe2"


def test_a_quoted_caption_finds_its_meme_despite_lost_spaces(index) -> None:
    hits = index.search("ain't nobody got time for that", 10)
    assert hits[0].id == "sweet-brown"
    hits = index.search("at this point I am too afraid to ask", 10)
    assert hits[0].id == "andy" and hits[0].phrase is False  # not word for word
    assert index.search("at this point I'm too afraid", 10)[0].phrase is True


def test_a_few_shared_letters_are_no_match(index) -> None:
    assert index.search("the", 10)[0].id == "agnes"  # "the" is written there
    assert index.search("a photo of a dog on the beach", 10) == []


def test_delete_and_clear_remove_words_and_upsert_replaces(index) -> None:
    index.delete(["agnes"])
    assert "agnes" not in index
    assert index.search("terms and conditions", 10) == []
    index.upsert("ackbar", "TERMS AND CONDITIONS")
    assert [h.id for h in index.search("terms and conditions", 10)] == ["ackbar"]
    assert index.search("it's a trap", 10) == []
    index.upsert("ackbar", None)
    assert len(index) == 2 and "ackbar" not in index
    index.clear()
    assert len(index) == 0 and index.search("memes", 10) == []


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


@pytest.fixture
def captioned() -> tuple[VectorStore, Bm25Index, np.ndarray]:
    """40 memes with random pictures; four carry the captions above, in two folders."""
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(40, DIM)).astype(np.float32)
    names = list(CAPTIONS)
    ids = [names[i] if i < len(names) else f"m{i:02d}" for i in range(40)]
    records = [Record(uri=None, tags={"folder": "a" if i % 2 else "b"},
                      words=CAPTIONS.get(doc_id)) for i, doc_id in enumerate(ids)]
    store, words = VectorStore(), Bm25Index()
    store.upsert(ids, vectors, records)
    for doc_id, text in store.words():
        words.upsert(doc_id, text)
    query = rng.normal(size=(1, DIM)).astype(np.float32)  # the text's CLIP vector
    return store, words, query


def ranked(store, words, query, text, **options) -> list[dict]:
    (hits,) = search_store(store, query, SearchOptions(**options), texts=[text], lexical=words)
    return hits


def test_a_quoted_caption_puts_its_meme_first_and_says_why(captioned) -> None:
    store, words, query = captioned
    hits = ranked(store, words, query, "ain't nobody got time for that")
    assert hits[0]["id"] == "sweet-brown" and hits[0]["signals"]["words"] == 1
    assert hits[0]["words"] == CAPTIONS["sweet-brown"] and hits[0]["words_score"] > 0
    picture = {h["id"]: h for h in ranked(store, words, query, None, top_k=40)}
    # Still its cosine (near zero for random vectors: an absolute tolerance; a meme only its
    # words found is scored by a float32 product, the picture ranking in float64).
    assert hits[0]["score"] == pytest.approx(picture["sweet-brown"]["score"], abs=1e-6)
    assert hits[0]["signals"]["clip"] == list(picture).index("sweet-brown") + 1
    assert all(set(h["signals"]) == {"clip"} for h in hits[1:])  # no other meme says it


def test_ocr_weight_zero_is_the_picture_ranking(captioned) -> None:
    store, words, query = captioned
    plain = ranked(store, words, query, None)
    off = ranked(store, words, query, "ain't nobody got time for that", ocr_weight=0.0)
    assert [(h["id"], h["score"]) for h in off] == [(h["id"], h["score"]) for h in plain]
    assert [h["signals"] for h in off] == [{"clip": rank} for rank in range(1, 11)]


def test_filters_bar_memes_found_by_their_words(captioned) -> None:
    store, words, query = captioned
    folder = store.tags("sweet-brown")["folder"]
    other = {"a": "b", "b": "a"}[folder]
    hits = ranked(store, words, query, "ain't nobody got time for that",
                  where=compile_where({"folder": other}))
    assert "sweet-brown" not in {h["id"] for h in hits}
    assert len(hits) == 10 and all(h["tags"]["folder"] == other for h in hits)


def test_min_score_bars_pictures_not_memes_found_by_their_words(captioned) -> None:
    store, words, query = captioned
    everything = ranked(store, words, query, None, top_k=40)
    bar = everything[5]["score"]
    hits = ranked(store, words, query, "terms and conditions", min_score=bar, top_k=40)
    assert hits[0]["id"] == "agnes"
    rest = [h for h in hits if h["id"] != "agnes"]
    assert len(rest) == 6 and all(h["score"] >= bar for h in rest)


def test_pages_of_a_fused_ranking_follow_on(captioned) -> None:
    store, words, query = captioned
    text = "I don't know what this meme is for"
    whole = ranked(store, words, query, text, top_k=20)
    pages = ranked(store, words, query, text, top_k=10) + ranked(
        store, words, query, text, top_k=10, offset=10)
    assert [h["id"] for h in pages] == [h["id"] for h in whole]


def test_two_shards_fuse_their_union_again(captioned) -> None:
    store, words, query = captioned
    text = "it's a trap"
    shards = []
    for shard in range(2):
        everything = store.select(lambda record: True)
        ids = [doc_id for i, doc_id in enumerate(everything) if i % 2 == shard]
        part, part_words = VectorStore(), Bm25Index()
        part.upsert(ids, store.vectors(ids), store.get(ids))
        for doc_id, caption in part.words():
            part_words.upsert(doc_id, caption)
        (hits,) = search_store(part, query, SearchOptions(), texts=[text], lexical=part_words,
                               paged=False)
        shards.append(DocList[MatchDoc]([MatchDoc(**hit) for hit in hits]))
    merged = merge_matches(shards, SearchOptions())
    single = ranked(store, words, query, text)
    assert [m.id for m in merged] == [h["id"] for h in single]
    assert [m.signals for m in merged] == [h["signals"] for h in single]


def test_the_word_index_finds_what_scoring_every_document_finds() -> None:
    """Scoring only the documents that can reach the coverage changes no result: checked
    against a plain BM25 over every document, on random OCR-like captions."""
    rng = random.Random(5)
    words = ["the", "time", "ain't", "nobody", "got", "for", "that", "trap", "one", "does",
             "not", "simply", "walk", "into", "mordor", "terms", "and", "conditions", "what"]
    texts = {f"d{i}": " ".join(rng.choices(words, k=rng.randint(2, 9))) for i in range(400)}
    index = Bm25Index()
    for doc_id, text in texts.items():
        index.upsert(doc_id, text)
    counts = {doc_id: grams(text) for doc_id, text in texts.items()}
    lengths = {doc_id: sum(c.values()) for doc_id, c in counts.items()}
    average = sum(lengths.values()) / len(lengths)
    for _ in range(60):
        query = " ".join(rng.choices(words, k=rng.randint(1, 6)))
        wanted = grams(query)
        scores, shared = Counter(), Counter()
        for gram in wanted:
            holders = [d for d in texts if gram in counts[d]]
            idf = math.log(1 + (len(texts) - len(holders) + 0.5) / (len(holders) + 0.5))
            for d in holders:
                count = counts[d][gram]
                scores[d] += idf * count * (K1 + 1) / (
                    count + K1 * (1 - B + B * lengths[d] / average))
                shared[d] += 1
        expected = sorted(
            (d for d in scores if shared[d] >= index.min_coverage * len(wanted)),
            key=lambda d: (normalise(query) not in normalise(texts[d]), -scores[d], d))
        assert [hit.id for hit in index.search(query, 50)] == expected[:50], query
