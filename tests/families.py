"""Checkpoints of every model family built offline: the published architecture with no
weights (memeflow runs them with seeded random weights, MEMEFLOW_ALLOW_RANDOM_WEIGHTS), the
checkpoint's preprocessing settings, and a small tokenizer of the family's kind trained
here on a few sentences (the real ones are fetched from the Hub, which tests never reach).

The architecture numbers are those of the published config.json / open_clip model config:
- google/siglip-base-patch16-224: transformers' SiglipConfig defaults are this checkpoint
  (ViT-B/16 at 224 px; text 12 x 768, 64 tokens, 32,000 SentencePiece ids); its processor
  squashes to 224 x 224 (no crop), mean and std 0.5.
- google/siglip2-base-patch16-224: the same SigLIP architecture with Gemma's 256,000-id
  tokenizer (its config.json sets only text vocab_size 256000 over SigLIP's defaults).
- facebook/metaclip-2-mt5-worldwide-b32: ViT-B/32 at 224 px, text 12 x 512 (8 heads, MLP
  2048, 77 tokens), 512-d, mT5's 250,112-id tokenizer (eos id 1). Derived from its
  published 253,980,417 parameters, 128,057,344 of them the token embedding (250,112 x 512).
- OpenCLIP ViT-B-32-256 (DataComp) and MobileCLIP2-S0: open_clip's own model configs,
  with the preprocessing of their pretrained tags (OpenAI mean/std, bicubic, shortest side;
  MobileCLIP: mean 0, std 1, bilinear).

`vocab_size` may be shrunk to the small tokenizer's size (`shrink_vocab=True`) where a
test is about runtimes or the Flow: the embedding table only grows with it, no computation.
"""

import io
import json
from pathlib import Path
from typing import Any

import pytest

SENTENCES = [
    "a photo of a cat", "a photo of a dog", "two people arguing at a dinner table",
    "when the code works on the first try", "drake rejecting something",
    "distracted boyfriend looking at another woman", "a meme about mondays",
    "this is fine, the room is on fire", "un chat sur une table", "ein Hund im Park",
    "una persona feliz", "gato durmiendo en el sofá", "the quick brown fox jumps over",
    "success kid with a fist", "one does not simply walk into mordor",
]
SMALL_VOCAB = 512

SIGLIP_BASE_TEXT = {"vocab_size": 32000, "hidden_size": 768, "intermediate_size": 3072,
                    "num_hidden_layers": 12, "num_attention_heads": 12,
                    "max_position_embeddings": 64}
SIGLIP_BASE_VISION = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                      "num_attention_heads": 12, "image_size": 224, "patch_size": 16}
METACLIP2_MT5_B32 = {
    "projection_dim": 512,
    "text_config": {"vocab_size": 250112, "hidden_size": 512, "intermediate_size": 2048,
                    "num_hidden_layers": 12, "num_attention_heads": 8,
                    "max_position_embeddings": 77, "eos_token_id": 1, "pad_token_id": 0,
                    "bos_token_id": 0, "projection_dim": 512},
    "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                      "num_attention_heads": 12, "image_size": 224, "patch_size": 32,
                      "projection_dim": 512},
}
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258,
                                                                 0.27577711)
OPEN_CLIP_FOLDERS: dict[str, dict[str, Any]] = {
    "ViT-B-32-256": {
        "model_cfg": {"embed_dim": 512,
                      "vision_cfg": {"image_size": 256, "layers": 12, "width": 768,
                                     "patch_size": 32},
                      "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512,
                                   "heads": 8, "layers": 12}},
        "preprocess_cfg": {"mean": OPENAI_MEAN, "std": OPENAI_STD,
                           "interpolation": "bicubic", "resize_mode": "shortest"},
    },
    "MobileCLIP2-S0": {
        "model_cfg": {"embed_dim": 512,
                      "vision_cfg": {"timm_model_name": "fastvit_mci0",
                                     "timm_model_pretrained": False, "timm_pool": "avg",
                                     "timm_proj": None, "timm_drop": 0.0,
                                     "timm_drop_path": 0.0, "image_size": 256},
                      "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512,
                                   "heads": 8, "layers": 12, "no_causal_mask": True},
                      "custom_text": True},
        "preprocess_cfg": {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0),
                           "interpolation": "bilinear", "resize_mode": "shortest"},
    },
}


def _sentencepiece_model(vocab_size: int = 200) -> bytes:
    """A unigram SentencePiece model of SigLIP's kind: <pad> 0, </s> 1, <unk> 2."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 4), model_writer=out, vocab_size=vocab_size,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>", hard_vocab_limit=False,
        minloglevel=2,
    )
    return out.getvalue()


def _gemma_tokenizer() -> Any:
    """A BPE tokenizer of Gemma's kind (SigLIP 2's), trained on SENTENCES."""
    from tokenizers import Tokenizer, models, normalizers, trainers
    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.normalizer = normalizers.Replace(" ", "▁")
    bpe.train_from_iterator(SENTENCES, trainers.BpeTrainer(vocab_size=300,
                                                           special_tokens=specials))
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return GemmaTokenizer(vocab=state["vocab"], merges=merges)


def _t5_tokenizer() -> Any:
    """A unigram tokenizer of mT5's kind (MetaCLIP 2 mt5): <pad> 0, </s> 1, <unk> 2,
    and </s> after every text."""
    from transformers import T5Tokenizer

    words = sorted({w for s in SENTENCES for w in s.replace(",", " ").split()})
    chars = sorted({c for s in SENTENCES for c in s if c != " "})
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(f"▁{w}", -2.0) for w in words] + [(c, -5.0) for c in chars] + [("▁", -3.0)]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def siglip_folder(root: Path, *, shrink_vocab: bool = False) -> Path:
    """google/siglip-base-patch16-224's architecture and processor, no weights."""
    from transformers import (
        SiglipConfig,
        SiglipImageProcessorPil,
        SiglipProcessor,
        SiglipTokenizer,
    )

    folder = root / "siglip-base-patch16-224"
    (folder).mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(_sentencepiece_model())
    tokenizer = SiglipTokenizer(vocab_file=str(folder / "spiece.model"))
    text = dict(SIGLIP_BASE_TEXT, vocab_size=SMALL_VOCAB if shrink_vocab else 32000)
    SiglipConfig(text_config=text, vision_config=SIGLIP_BASE_VISION).save_pretrained(folder)
    images = SiglipImageProcessorPil(size={"height": 224, "width": 224})
    SiglipProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def siglip2_folder(root: Path, *, shrink_vocab: bool = False) -> Path:
    """google/siglip2-base-patch16-224's architecture (SigLIP + Gemma tokenizer)."""
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipProcessor

    folder = root / "siglip2-base-patch16-224"
    text = dict(SIGLIP_BASE_TEXT, vocab_size=SMALL_VOCAB if shrink_vocab else 256000)
    SiglipConfig(text_config=text, vision_config=SIGLIP_BASE_VISION).save_pretrained(folder)
    images = SiglipImageProcessorPil(size={"height": 224, "width": 224})
    SiglipProcessor(image_processor=images, tokenizer=_gemma_tokenizer()).save_pretrained(folder)
    return folder


def metaclip2_folder(root: Path, *, shrink_vocab: bool = False) -> Path:
    """facebook/metaclip-2-mt5-worldwide-b32's architecture and CLIP preprocessing."""
    from transformers import CLIPImageProcessorPil, CLIPProcessor, MetaClip2Config

    folder = root / "metaclip-2-mt5-worldwide-b32"
    values = json.loads(json.dumps(METACLIP2_MT5_B32))
    if shrink_vocab:
        values["text_config"]["vocab_size"] = SMALL_VOCAB
    MetaClip2Config(**values).save_pretrained(folder)
    images = CLIPImageProcessorPil(size={"shortest_edge": 224},
                                   crop_size={"height": 224, "width": 224})
    CLIPProcessor(image_processor=images, tokenizer=_t5_tokenizer()).save_pretrained(folder)
    return folder


def open_clip_or_skip() -> None:
    """OpenCLIP is the optional `openclip` extra, which `make test` installs: skipped only
    where it is not installed. Any other failure to import it fails the test."""
    pytest.importorskip("open_clip", reason="the optional `openclip` extra is not installed")


def open_clip_folder(root: Path, arch: str) -> Path:
    """An OpenCLIP folder (open_clip_config.json, no weights) of a published architecture."""
    folder = root / arch
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(OPEN_CLIP_FOLDERS[arch]))
    return folder
