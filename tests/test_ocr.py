"""The words on memes, read by the real OCR models from a meme rendered with its caption."""

from pathlib import Path

import pytest
from captions import load_templates, render

from memeflow.encoder.ocr import OcrReader
from memeflow.indexer.bm25 import normalise
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
