"""The words on memes through the running service: read at /index with MEMEFLOW_OCR=1 by the
real OCR models, matched by text queries over gRPC, HTTP and the CLI, kept across a move,
a restart and gone after a delete.

CLIP has random weights here, so its ranking is noise; the words decide which meme
quoting a caption comes first, and every reply says which signal found each meme.
"""

import json
import shutil
from pathlib import Path

import pytest
from captions import load_templates, render

from memeflow.client import MemeClient
from tests.conftest import MEMES, Service, post_json, serving

pytestmark = pytest.mark.flow

FONT = MEMES.parent / "fonts" / "TitilliumWeb-Black.ttf"
CAPTIONED = ("agnes", "aint-got-time", "ackbar")  # drawn with their example captions
PLAIN = ("drake", "doge")  # pictures without words


@pytest.fixture(scope="module")
def memes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("memes")
    for template in load_templates(MEMES):
        if template.name in CAPTIONED:
            render(template, FONT).save(folder / f"{template.name}.jpg", quality=90)
    for name in PLAIN:
        shutil.copy(MEMES / name / "default.jpg", folder / f"{name}.jpg")
    return folder


@pytest.fixture(scope="module")
def service(tmp_path_factory, memes: Path) -> Service:
    with serving(tmp_path_factory.mktemp("words"), MEMEFLOW_OCR="1") as running:
        indexed = running.cli("index", "-q", str(memes))
        assert indexed.returncode == 0, indexed.stderr
        yield running


def names(hits: list[dict]) -> list[str]:
    return [Path(hit["uri"]).stem for hit in hits]


def test_a_quoted_caption_finds_its_meme_over_grpc(service: Service, memes: Path) -> None:
    client = MemeClient(service.env["MEMEFLOW_HOST"])
    hits = client.search_text("I have read and agree to the terms and conditions", top_k=5)
    assert names(hits)[0] == "agnes" and hits[0]["signals"]["words"] == 1
    assert "TERMS" in (hits[0]["words"] or "").upper()
    assert all("words" not in hit["signals"] for hit in hits[1:])  # nothing else says it
    off = client.search_text("I have read and agree to the terms and conditions", top_k=5,
                             ocr_weight=0)
    assert [hit["signals"] for hit in off] == [{"clip": rank} for rank in range(1, 6)]
    dense_hits = client.search_image(memes / "drake.jpg", top_k=5)
    assert names(dense_hits)[0] == "drake" and dense_hits[0]["signals"] == {"clip": 1}


def test_a_quoted_caption_finds_its_meme_over_http(service: Service) -> None:
    reply = post_json(service, "/search", {"data": [{"text": "it's a trap"}],
                                           "parameters": {"top_k": 3}})
    (best, *_) = reply["data"][0]["matches"]
    assert Path(best["uri"]).stem == "ackbar" and best["signals"]["words"] == 1
    assert "embedding" not in best or best["embedding"] is None


def test_the_cli_says_which_memes_their_words_found(service: Service) -> None:
    run = service.cli("search", "ain't nobody got time for that", "-k", "3", "--json")
    hits = json.loads(run.stdout)
    assert names(hits)[0] == "aint-got-time" and hits[0]["signals"]["words"] == 1
    plain = service.cli("search", "ain't nobody got time for that", "--preview", "never")
    first = plain.stdout.splitlines()[0].split()
    assert first[2] == "words" and first[-1].endswith("aint-got-time.jpg")
    off = service.cli("search", "ain't nobody got time for that", "--json", "--ocr-weight", "0")
    assert all(set(hit["signals"]) == {"clip"} for hit in json.loads(off.stdout))
    status = json.loads(service.cli("status", "--json").stdout)
    assert status["ocr"] is True


def test_words_move_with_their_file_and_survive_a_restart(service: Service, memes: Path,
                                                          tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(memes, moved)
    shutil.rmtree(memes)
    run = service.cli("index", "--json", str(moved))
    report = json.loads(run.stdout)
    assert report["encoded"] == 0 and report["moved"] == len(CAPTIONED) + len(PLAIN)
    service.stop()
    service.start()
    hits = MemeClient(service.env["MEMEFLOW_HOST"]).search_text("it's a trap!", top_k=3)
    assert hits[0]["uri"] == str(moved / "ackbar.jpg") and hits[0]["signals"]["words"] == 1


def test_a_deleted_meme_is_no_longer_found_by_its_words(service: Service) -> None:
    client = MemeClient(service.env["MEMEFLOW_HOST"])
    found = [hit for hit in client.search_text("terms and conditions", top_k=20)
             if "words" in hit["signals"]]
    assert names(found) == ["agnes"]
    client.delete([found[0]["id"]])
    hits = client.search_text("terms and conditions", top_k=20)
    assert found[0]["id"] not in {hit["id"] for hit in hits}
    assert all("words" not in hit["signals"] for hit in hits)


def test_turning_ocr_on_later_reads_the_words_of_memes_indexed_without(
    service: Service, tmp_path: Path
) -> None:
    late = tmp_path / "late"
    late.mkdir()
    (agnes,) = [t for t in load_templates(MEMES) if t.name == "agnes"]
    render(agnes, FONT).save(late / "agnes-late.jpg", quality=80)  # new bytes: not a copy
    shutil.copy(MEMES / "fry" / "default.jpg", late / "fry.jpg")  # no words on it
    service.stop()
    service.env["MEMEFLOW_OCR"] = "0"
    service.start()
    first = json.loads(service.cli("index", "--json", str(late)).stdout)
    assert first["encoded"] == 2
    client = MemeClient(service.env["MEMEFLOW_HOST"])
    assert all(doc["words"] is None for doc in client.documents(
        [hit["id"] for hit in client.search_text("x", top_k=50)]).values()
        if doc["uri"] and doc["uri"].startswith(str(late)))
    service.stop()
    service.env["MEMEFLOW_OCR"] = "1"
    service.start()
    again = json.loads(service.cli("index", "--json", str(late)).stdout)
    assert again["encoded"] == 2 and again["unchanged"] == 0  # read now, words or none
    once_more = json.loads(service.cli("index", "--json", str(late)).stdout)
    assert once_more["unchanged"] == 2  # a meme without words is not read again and again
    hits = MemeClient(service.env["MEMEFLOW_HOST"]).search_text("terms and conditions", top_k=5)
    assert hits[0]["uri"] == str(late / "agnes-late.jpg") and "words" in hits[0]["signals"]
