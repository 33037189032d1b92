"""Search features through the running service, over gRPC, HTTP and the CLI: filters and
paging, combined queries, /rank, collapsing duplicates and hub correction.

The model has random weights, so each test asserts what holds for any weights: exact
membership and order against vectors computed directly, identities such as "an image
term alone finds itself first", and probabilities that follow the cosines.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from docarray import DocList

from memeflow.client import MemeClient
from memeflow.client.files import file_id
from memeflow.documents import MatchDoc, MemeDoc, TermDoc
from memeflow.encoder.decode import decode_image
from memeflow.query import Term, combine
from tests.conftest import MEMES, image_uri, post_json

pytestmark = pytest.mark.flow

FOLDERS = ("sad-boehner", "sad-obama", "sad-biden", "drake", "doge", "success", "fry", "wonka",
           "yuno", "ds")




@pytest.fixture(scope="module")
def indexed(service) -> list[Path]:
    folders = [MEMES / name for name in FOLDERS]
    run = service.cli("index", "-q", *map(str, folders))
    assert run.returncode == 0, run.stderr
    return sorted(p for f in folders for p in f.iterdir() if p.suffix in {".jpg", ".png", ".gif"})


@pytest.fixture(scope="module")
def client(service, indexed) -> MemeClient:
    return MemeClient(service.env["MEMEFLOW_HOST"])


def image_vector(clip_model, path: Path) -> np.ndarray:
    """What the encoder computes for a file, computed here with the same model."""
    return clip_model.embed_pixels(clip_model.preprocess(decode_image(path.read_bytes()))[None])[0]


def test_a_rare_tag_returns_exactly_its_memes_in_score_order(service, client, indexed) -> None:
    obama = {file_id(p) for p in indexed if p.parent.name == "sad-obama"}
    everything = client.search_text("a sad politician", top_k=len(indexed))
    expected = [h["id"] for h in everything if h["id"] in obama]
    assert len(expected) == len(obama) == 6

    grpc = client.search_text("a sad politician", top_k=10, where={"folder": "sad-obama"})
    assert [h["id"] for h in grpc] == expected
    http = post_json(service, "/search", {"data": [{"text": "a sad politician"}], "parameters": {
        "top_k": 10, "where": {"folder": {"$in": ["sad-obama"]}}}})
    assert [m["id"] for m in http["data"][0]["matches"]] == expected
    cli = service.cli("search", "a sad politician", "--where", "folder=sad-obama", "--json")
    assert [h["id"] for h in json.loads(cli.stdout)] == expected


def test_pages_concatenate_to_the_unpaged_list(service, client) -> None:
    unpaged = [h["id"] for h in client.search_text("a dog", top_k=15)]
    pages = []
    for offset in (0, 5, 10):
        run = service.cli("search", "a dog", "-k", "5", "--offset", str(offset), "--json")
        pages.append(json.loads(run.stdout))
    assert [h["id"] for page in pages for h in page] == unpaged
    assert [h["rank"] for h in pages[1]] == [6, 7, 8, 9, 10]
    http = post_json(service, "/search", {"data": [{"text": "a dog"}],
                                          "parameters": {"top_k": 5.0, "offset": 10.0}})
    assert [m["id"] for m in http["data"][0]["matches"]] == unpaged[10:]


def test_min_score_leaves_out_lower_scores(client) -> None:
    hits = client.search_text("a dog", top_k=40)
    cut = hits[6]["score"]
    kept = client.search_text("a dog", top_k=40, min_score=cut)
    assert [h["id"] for h in kept] == [h["id"] for h in hits if h["score"] >= cut]


def test_bad_filter_is_refused_with_its_reason(service, client) -> None:
    with pytest.raises(Exception, match="unknown operator"):
        client.search_text("a dog", where={"folder": {"$like": "x"}})
    run = service.cli("search", "a dog", "--where", "folder")
    assert run.returncode == 2 and "TAG=VALUE" in run.stderr


def test_an_image_term_alone_ranks_itself_first(service, client, indexed) -> None:
    probe = MEMES / "drake" / "default.jpg"
    grpc = client.search_terms([Term(2.0, image=str(probe))], top_k=3)
    assert grpc[0]["id"] == file_id(probe) and grpc[0]["score"] > 0.99
    http = post_json(service, "/search", {"data": [{"terms": [
        {"uri": image_uri(probe), "weight": 1}]}], "parameters": {"top_k": 3}})
    assert http["data"][0]["matches"][0]["id"] == file_id(probe)
    by_id = client.search(MemeDoc(terms=DocList[TermDoc]([TermDoc(id=file_id(probe))])), 3)
    assert by_id[0]["id"] == file_id(probe)
    cli = json.loads(service.cli("search", f"{probe} - 0.001:text", "-k", "1", "--json").stdout)
    assert cli[0]["id"] == file_id(probe)


def test_a_combined_query_is_the_weighted_sum_of_its_terms(service, client, clip_model) -> None:
    probe = MEMES / "doge" / "default.jpg"
    texts = clip_model.embed_texts(["cat", "hat"])
    expected = combine(np.stack([texts[0], texts[1], image_vector(clip_model, probe)]),
                       [1, 2, -1])
    http = post_json(service, "/search", {"data": [{"terms": [
        {"text": "cat"}, {"text": "hat", "weight": 2.0}, {"uri": image_uri(probe), "weight": -1}]}],
        "parameters": {"top_k": 3, "return_embeddings": True}})
    np.testing.assert_allclose(http["data"][0]["embedding"], expected, atol=1e-5)
    hits = client.search_query(f"cat + 2:hat - {probe}", top_k=50)
    direct = client.search(MemeDoc(embedding=expected), top_k=50)
    assert [h["id"] for h in hits] == [h["id"] for h in direct]


def test_a_bad_term_is_named(client) -> None:
    with pytest.raises(ValueError, match=r"term 2 \(/no/such.jpg\)"):
        client.search(MemeDoc(terms=DocList[TermDoc]([TermDoc(text="cat"),
                                                      TermDoc(uri="/no/such.jpg")])))
    with pytest.raises(ValueError, match="cancel out"):
        client.search_query("cat - cat")


def test_rank_orders_texts_by_cosine_with_probabilities(service, client, clip_model) -> None:
    probe = MEMES / "success" / "default.jpg"
    labels = ["a baby", "a dog", "a politician", "a spreadsheet", "success kid"]
    cosines = clip_model.embed_texts(labels) @ image_vector(clip_model, probe)
    expected = [labels[i] for i in np.argsort(-cosines, kind="stable")]

    grpc = client.rank(labels, image=probe)
    assert [r["text"] for r in grpc] == expected
    assert sum(r["probability"] for r in grpc) == pytest.approx(1.0)
    assert [r["cosine"] for r in grpc] == pytest.approx(sorted(cosines, reverse=True), abs=1e-5)
    assert [r["text"] for r in client.rank(labels, doc_id=file_id(probe))] == expected
    http = post_json(service, "/rank", {"data": [{
        "uri": image_uri(probe), "matches": [{"text": t} for t in labels]}]})
    (doc,) = http["data"]
    assert [m["text"] for m in doc["matches"]] == expected
    assert doc.get("embedding") is None and all(m.get("embedding") is None for m in doc["matches"])
    cli = service.cli("rank", str(probe), *labels, "--json")
    assert [r["text"] for r in json.loads(cli.stdout)] == expected


def test_rank_names_what_is_missing(client) -> None:
    with pytest.raises(ValueError, match="no meme with this id"):
        client.rank(["a"], doc_id="not-indexed")
    reply = client._post("/rank", [MemeDoc(text="x")])
    assert "no candidate texts" in reply[0].error


def test_dedup_returns_one_of_each_duplicate(service, client, indexed) -> None:
    pairs = [("sad-boehner", "default.jpg", "frown.jpg"), ("sad-obama", "bow.jpg", "default.jpg")]
    for folder, a, b in pairs:
        probe = MEMES / folder / a
        twins = {file_id(MEMES / folder / a), file_id(MEMES / folder / b)}
        plain = {h["id"] for h in client.search_image(probe, top_k=len(indexed))}
        collapsed = [h["id"] for h in client.search_image(probe, top_k=len(indexed), dedup=True)]
        assert twins <= plain and len(twins & set(collapsed)) == 1
        assert len(collapsed) == len(set(collapsed)) < len(plain)
    cli = json.loads(service.cli("search", "--image", str(MEMES / "sad-biden" / "default.jpg"),
                                 "-k", "60", "--dedup", "--json").stdout)
    ids = {h["id"] for h in cli}
    assert len(ids & {file_id(MEMES / "sad-biden" / n) for n in ("default.jpg", "window.jpg")}) == 1


def test_group_by_folder_gives_one_result_per_template(service, client) -> None:
    reply = post_json(service, "/search", {"data": [{"text": "a sad man"}],
                                           "parameters": {"top_k": 50, "group_by": "folder"}})
    folders = [m["tags"]["folder"] for m in reply["data"][0]["matches"]]
    assert sorted(folders) == sorted(FOLDERS)
    best = client.search_text("a sad man", top_k=100)
    first_of_each = list(dict.fromkeys(h["tags"]["folder"] for h in best))
    assert folders == first_of_each


def test_hub_correction_ranks_by_cosine_minus_hubness(service, client) -> None:
    raw = {h["id"]: h for h in client.search_text("a cat", top_k=100)}
    assert all(-1 <= h["tags"]["hubness"] <= 1 for h in raw.values())  # set at index time
    run = service.cli("search", "a cat", "-k", "100", "--hub-correction", "--json")
    corrected = json.loads(run.stdout)
    expected = sorted(raw.values(), key=lambda h: (-(h["score"] - h["tags"]["hubness"]), h["id"]))
    assert [h["id"] for h in corrected] == [h["id"] for h in expected]
    assert corrected[0]["score"] == pytest.approx(
        raw[corrected[0]["id"]]["score"] - raw[corrected[0]["id"]]["tags"]["hubness"], abs=1e-6)


def test_rank_reply_over_grpc_keeps_candidate_texts(client) -> None:
    doc = MemeDoc(blob=(MEMES / "fry" / "default.jpg").read_bytes(),
                  matches=DocList[MatchDoc]([MatchDoc(text="one"), MatchDoc(text="two")]))
    (reply,) = client._post("/rank", [doc])
    assert sorted(m.text for m in reply.matches) == ["one", "two"]
    assert reply.blob is None
