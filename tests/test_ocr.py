"""The words on memes, read by the real OCR models from a meme rendered with its caption."""

from pathlib import Path

import pytest
from captions import load_templates, render

from memeflow.encoder.ocr import OcrReader
from memeflow.indexer.indexes.words import normalise
from tests.conftest import MEMES

FONT = MEMES.parent / "fonts" / "TitilliumWeb-Black.ttf"
CAPTIONED = ("agnes", "afraid", "aint-got-time", "ackbar")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    """The captioned templates drawn with their example lines, as JPEG files."""
    folder = tmp_path_factory.mktemp("captioned")
    files = {}
    for template in load_templates(MEMES):
        if template.name in CAPTIONED:
            files[template.name] = folder / f"{template.name}.jpg"
            render(template, FONT).save(files[template.name], quality=90)
    assert set(files) == set(CAPTIONED)
    return files


def test_real_ocr_reads_the_caption_on_a_rendered_meme(rendered) -> None:
    words = OcrReader().read(rendered["agnes"].read_bytes())
    assert "ihavereadandagreetothe" in normalise(words)
    assert "termsandconditions" in normalise(words)


def test_openvino_engine_reads_what_onnxruntime_reads(rendered) -> None:
    """The same models in either engine: the words on each rendered meme match."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed")
    engines = [OcrReader(engine="onnxruntime"), OcrReader(engine="openvino")]
    assert engines[1].engine == "openvino"
    for path in rendered.values():
        onnx_words, openvino_words = (normalise(e.read(path.read_bytes())) for e in engines)
        assert onnx_words and openvino_words == onnx_words, path.name


def test_unknown_ocr_engine_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown OCR engine 'tesseract'.*auto, onnxruntime"):
        OcrReader(engine="tesseract")
