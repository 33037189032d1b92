"""A separate query text model (MEMEFLOW_TEXT_MODEL), from a tiny local folder in
sentence-transformers' layout built here with transformers' config classes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from memeflow.encoder.source import ModelLoadError
from memeflow.encoder.text_model import QueryTextModel, SentenceTextModel
from tests.conftest import MEMES

WORDS = ["un", "chat", "a", "cat", "dog", "perro", "hat", "sad", "man", "triste", "hombre"]


def build_text_model(folder: Path, out_features: int = 512) -> Path:
    """Transformer (a 1-layer BERT) in 0_Transformer, mean pooling, Dense to `out_features`."""
    torch.manual_seed(0)
    (folder / "0_Transformer").mkdir(parents=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizer(str(vocab)).save_pretrained(folder / "0_Transformer")
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=37)
    BertModel(config).save_pretrained(folder / "0_Transformer")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}))
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "config.json").write_text(json.dumps({
        "in_features": 32, "out_features": out_features, "bias": True,
        "activation_function": "torch.nn.modules.linear.Identity"}))
    linear = torch.nn.Linear(32, out_features)
    torch.save({"linear.weight": linear.weight.detach(), "linear.bias": linear.bias.detach()},
               folder / "2_Dense" / "pytorch_model.bin")
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "0_Transformer",
         "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]))
    return folder


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory) -> Path:
    return build_text_model(tmp_path_factory.mktemp("text-model"))


def test_vectors_are_mean_pooled_projected_and_unit(text_folder) -> None:
    model = SentenceTextModel(text_folder)
    vectors = model.embed_texts(["un chat triste", "a sad cat", "un chat triste"])
    assert vectors.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    alone = SentenceTextModel(text_folder, text_cache_size=0)
    # Padding in a batch with a longer text must not change a text's vector.
    batched = alone.embed_texts(["dog", "a sad man hat un perro triste"])[0]
    np.testing.assert_allclose(batched, alone.embed_texts(["dog"])[0], atol=1e-6)

    bert = BertModel.from_pretrained(text_folder / "0_Transformer").eval()
    state = torch.load(text_folder / "2_Dense" / "pytorch_model.bin")
    tokens = alone.tokenizer(["perro"], return_tensors="pt")
    with torch.no_grad():
        pooled = bert(**tokens).last_hidden_state.mean(dim=1)[0]
    manual = (state["linear.weight"] @ pooled + state["linear.bias"]).numpy()
    np.testing.assert_allclose(alone.embed_texts(["perro"])[0], manual / np.linalg.norm(manual),
                               atol=1e-5)


def test_a_text_model_for_another_space_is_refused(tmp_path, clip_model) -> None:
    narrow = SentenceTextModel(build_text_model(tmp_path / "narrow", out_features=64))
    with pytest.raises(ModelLoadError, match="makes 64-d vectors"):
        QueryTextModel(clip_model, narrow)
    with pytest.raises(ModelLoadError, match=r"modules\.json"):
        SentenceTextModel(tmp_path)


@pytest.mark.flow
def test_the_service_embeds_queries_with_the_text_model(tmp_path, text_folder) -> None:
    """Over HTTP and the CLI: a text query's vector is the text model's, images stay CLIP's."""
    from memeflow.client import MemeClient
    from tests.conftest import post_json, serving

    with serving(tmp_path, MEMEFLOW_TEXT_MODEL=str(text_folder)) as service:
        folder = MEMES / "drake"
        assert service.cli("index", "-q", str(folder)).returncode == 0
        reply = post_json(service, "/search", {
            "data": [{"text": "un chat triste"}],
            "parameters": {"top_k": 3, "return_embeddings": True}})
        expected = SentenceTextModel(text_folder).embed_texts(["un chat triste"])[0]
        np.testing.assert_allclose(reply["data"][0]["embedding"], expected, atol=1e-5)
        direct = MemeClient(service.env["MEMEFLOW_HOST"]).search_image(folder / "yes.jpg", 1)
        assert direct[0]["score"] > 0.99  # images still go through CLIP
        cli = service.cli("search", "un perro triste", "-k", "2", "--json")
        assert cli.returncode == 0 and len(json.loads(cli.stdout)) == 2
        assert "texts go through" in service.log_path.read_text()
