"""The encoder's work on a request: embeddings for good documents, errors for bad ones."""

import base64
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from memeflow import config
from memeflow.documents import MemeDoc, content_id
from memeflow.encoder.decode import decode_image
from memeflow.encoder.pipeline import embed_documents
from tests.conftest import MEMES, REPO

DRAKE = MEMES / "drake" / "default.jpg"
FIVE = [MEMES / name / "default.jpg" for name in ("drake", "aag", "ackbar", "afraid", "agnes")]


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(2) as workers:
        yield workers


def test_batches_keep_each_vector_with_its_document(clip_model, pool) -> None:
    docs = [MemeDoc(uri=str(p)) for p in FIVE]
    embed_documents(clip_model, docs, pool, batch_size=2)  # three batches, pipelined
    alone = np.vstack([clip_model.embed_images([decode_image(p.read_bytes())]) for p in FIVE])
    similarity = np.stack([d.embedding for d in docs]) @ alone.T
    np.testing.assert_allclose(np.diag(similarity), 1.0, atol=1e-4)  # its own image's vector
    assert list(similarity.argmax(axis=1)) == [0, 1, 2, 3, 4]
    assert all(d.error is None for d in docs)


def test_a_bad_document_fails_alone(clip_model, pool, tmp_path) -> None:
    text_as_jpg = tmp_path / "notes.jpg"
    text_as_jpg.write_text("this is not a picture")
    docs = [
        MemeDoc(uri=str(DRAKE)),
        MemeDoc(uri=str(tmp_path / "gone.jpg")),
        MemeDoc(uri=str(text_as_jpg)),
        MemeDoc(blob=DRAKE.read_bytes()[:2000]),  # truncated JPEG
        MemeDoc(),
        MemeDoc(text="   "),
        MemeDoc(text="drake rejecting something"),
    ]
    embed_documents(clip_model, docs, pool)
    good, gone, text, truncated, empty, blank, query = docs
    assert good.error is None and good.embedding is not None
    assert str(tmp_path / "gone.jpg") in gone.error and gone.embedding is None
    assert str(text_as_jpg) in text.error
    assert truncated.error and truncated.embedding is None
    assert "neither text nor image" in empty.error and "neither text nor image" in blank.error
    assert query.error is None and query.embedding.shape == (clip_model.dim,)


def test_ids_come_from_location_or_content(clip_model, pool, monkeypatch) -> None:
    monkeypatch.chdir(DRAKE.parent)
    data = DRAKE.read_bytes()
    docs = [MemeDoc(uri="default.jpg"), MemeDoc(blob=data), MemeDoc(id="mine", blob=data),
            MemeDoc(text="hello")]
    embed_documents(clip_model, docs, pool)
    by_path, by_bytes, given, text = docs
    # a relative path is made absolute against the process's directory, which the OS
    # keeps symlink-free even when the test reached it through a link
    absolute = os.path.join(os.getcwd(), "default.jpg")
    assert by_path.uri == absolute and by_path.id == content_id(uri=absolute)
    assert by_bytes.id == content_id(data=data)
    assert given.id == "mine"
    assert text.id == content_id(data=b"hello")
    assert all(d.blob is None for d in docs)  # bytes never travel on


def test_data_uri_is_read_and_not_sent_on(clip_model, pool) -> None:
    uri = "data:image/jpeg;base64," + base64.b64encode(DRAKE.read_bytes()).decode()
    doc = MemeDoc(uri=uri)
    embed_documents(clip_model, [doc], pool)
    reference = MemeDoc(blob=DRAKE.read_bytes())
    embed_documents(clip_model, [reference], pool)
    assert doc.uri is None and doc.error is None
    np.testing.assert_allclose(doc.embedding, reference.embedding, atol=1e-5)


def test_own_vectors_pass_through_or_are_refused(clip_model, pool) -> None:
    own = np.random.default_rng(0).normal(size=clip_model.dim).astype(np.float32)
    nan = own.copy()
    nan[3] = np.nan
    docs = [MemeDoc(embedding=own.copy()), MemeDoc(embedding=own[:10]), MemeDoc(embedding=nan),
            MemeDoc(embedding=np.zeros(clip_model.dim, dtype=np.float32))]
    embed_documents(clip_model, docs, pool)
    kept, short, with_nan, zero = docs
    np.testing.assert_array_equal(np.asarray(kept.embedding), own)
    assert kept.id == content_id(data=own.tobytes())
    assert "512" in short.error and "NaN" in with_nan.error and "zero" in zero.error


def test_file_urls_become_paths(clip_model, pool, tmp_path) -> None:
    os.symlink(DRAKE, tmp_path / "drake.jpg")
    doc = MemeDoc(uri=(tmp_path / "drake.jpg").as_uri())  # file:// URL
    embed_documents(clip_model, [doc], pool)
    assert doc.error is None and doc.uri == str(tmp_path / "drake.jpg")


def test_encoder_runtime_is_chosen_in_its_config(monkeypatch, tmp_path) -> None:
    from jina import Executor

    config_file = REPO / "executors" / "clip_encoder" / "config.yml"
    monkeypatch.delenv("MEMEFLOW_RUNTIME", raising=False)
    # The encoder records its model in the workspace: not in the user's own.
    monkeypatch.setenv("MEMEFLOW_WORKSPACE", str(tmp_path / "workspace"))
    encoder = Executor.load_config(str(config_file), uses_with={"runtime": "int8"})
    try:
        assert encoder.model.runtime == "int8"
        docs = [MemeDoc(uri=str(DRAKE)), MemeDoc(text="drake")]
        embed_documents(encoder.model, docs, encoder.pool, encoder.batch_size)
        assert all(d.error is None and d.embedding.shape == (512,) for d in docs)
    finally:
        encoder.close()
    # MEMEFLOW_RUNTIME overrides the config, as MEMEFLOW_MODEL does the model.
    assert config.runtime("torch") == "torch"
    monkeypatch.setenv("MEMEFLOW_RUNTIME", "int8")
    assert config.runtime("torch") == "int8"
