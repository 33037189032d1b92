"""Finding memes by their words: the trigram text index and reciprocal rank fusion."""

import pytest

from memeflow.docs import MemeDoc
from memeflow.fusion import reciprocal_rank_fusion
from memeflow.ocr import read_documents
from memeflow.textindex import TextIndex, normalise
from memeflow.wordsearch import ocr_weight

CAPTIONS = {
    "sweet-brown": "MEMES?\nAIN'TNOBODYGOT TIME FO'THAT",  # as OCR reads it: spaces lost
    "agnes": "IHAVEREADANDAGREETOTHE\nTERMSANDCONDITIONS",
    "andy": "IDON'TKNOWWHAT\nTHISMEMEISFOR\nANDATTHISPOINTIM\nTOOAFRAIDTOASK",
    "ackbar": "IT'SATRAP!",
}


@pytest.fixture
def index() -> TextIndex:
    words = TextIndex()
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


class BrokenReader:
    """An OCR engine that fails on every image."""

    def read(self, data: bytes, source: str = "image") -> str:
        raise RuntimeError("onnxruntime: bad input")


def test_a_meme_ocr_cannot_read_keeps_its_picture_path(meme_files) -> None:
    docs = [MemeDoc(uri=str(meme_files[0])), MemeDoc(uri="/no/such/meme.jpg")]
    read_documents(BrokenReader(), docs)
    assert [(d.words, d.error) for d in docs] == [(None, None), (None, None)]
