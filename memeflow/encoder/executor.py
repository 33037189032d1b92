"""CLIP encoder: gives every document of /index and /search a unit-length embedding."""

import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from docarray import DocList
from jina import requests
from PIL import Image

from memeflow import config
from memeflow.documents import MemeDoc
from memeflow.encoder.access import AccessPolicy
from memeflow.encoder.frames import FrameLimits
from memeflow.encoder.hardware import default_batch_size, default_decode_threads
from memeflow.encoder.hubness import GENERIC_PROMPTS, tag_hubness
from memeflow.encoder.identity import (
    Identity,
    check_model,
    check_workspace_model,
    describe,
    model_identity,
)
from memeflow.encoder.model import DEFAULT_TEXT_CACHE_SIZE, ClipModel, load_model
from memeflow.encoder.ocr import OcrReader
from memeflow.encoder.pipeline import PHASES, embed_documents
from memeflow.encoder.query_parts import embed_query_parts
from memeflow.encoder.rank import embed_for_rank
from memeflow.encoder.text_model import QueryTextModel, with_text_model
from memeflow.model_record import model_record
from memeflow.refusals import RefusingExecutor
from memeflow.switch import PendingSwitch, SwitchError, phase_of, target_of

# Batch size and decode threads default per device (memeflow.encoder.hardware), chosen by
# measurement (BENCHMARKS.md, "Encoding").


def build_model(name: str, options: dict[str, Any]) -> ClipModel:
    """The one place a model is built from its name (MEMEFLOW_ALLOW_RANDOM_WEIGHTS read
    here), at start and when /switch prepares another."""
    return load_model(name, allow_random=config.allow_random_weights(), **options)


class _Prepared(NamedTuple):
    """A model ready to replace the serving one, with what is derived from it."""

    model: ClipModel
    hub_bank: np.ndarray
    identity: Identity


def _drop(prepared: _Prepared) -> None:
    """Nothing to release but memory: the model goes with its last reference."""


class ClipEncoder(RefusingExecutor):
    """A thin shell around `ClipModel`: the model loads once, preprocessing runs in threads.

    Settings (`uses_with:` in flow.yml; an MEMEFLOW_* variable overrides where named):
    - model: a Hugging Face id, an OpenCLIP name (hf-hub:ORG/NAME, open_clip:ARCH/PRETRAINED)
      or a local folder (MEMEFLOW_MODEL; default ViT-B/32); CLIP, SigLIP, SigLIP 2,
      MetaCLIP 2 and OpenCLIP checkpoints (memeflow.encoder.families).
    - runtime: "auto" (default: torch fp16 on a GPU, else OpenVINO when installed, else
      torch; memeflow.encoder.hardware), "torch" (float32 reference), "openvino" (bf16 where
      the CPU has it, else f32; the `openvino` extra), "onnx" (the same vectors through ONNX
      Runtime, the `onnx` extra) or "int8" (torch with int8 Linear layers: vectors close but
      not equal) (MEMEFLOW_RUNTIME).
    - device: "auto" (a CUDA GPU when torch sees one), "cpu", "cuda" or "cuda:N"
      (MEMEFLOW_DEVICE); precision: "auto", "f32", "f16" or "bf16" (MEMEFLOW_PRECISION).
      Converted models are cached under MEMEFLOW_CACHE (default ~/.cache/memeflow).
    - batch_size and preprocess_threads: None sizes them for the device (16 and 2 on a CPU,
      measured on 2 cores: batches of 16 let a client request of 32 overlap decoding with
      the model; 64 and a decoder per core on a GPU). torch_threads None (one per core),
      interop_threads 1.
    - text_cache_size: repeated query texts skip the model (0 turns the cache off).
    - text_model: a separate (e.g. multilingual) text model folder (MEMEFLOW_TEXT_MODEL).
    - max_frames and max_seconds: an animated image or a video is one document embedded
      by at most `max_frames` of its frames (16; MEMEFLOW_MAX_FRAMES), scene changes and an
      even sample, from its first `max_seconds` (120; MEMEFLOW_MAX_SECONDS); a video may
      be up to MEMEFLOW_MAX_VIDEO_BYTES (memeflow.encoder.frames).
    - ocr: read the words on memes at /index (MEMEFLOW_OCR; needs the `ocr` extra). Off by
      default: it costs more per meme than CLIP on a CPU (BENCHMARKS.md, "Words on memes").
      ocr_engine: auto (OpenVINO when installed), onnxruntime or openvino
      (MEMEFLOW_OCR_ENGINE).
    - index, collection: the indexer's (MEMEFLOW_INDEX, MEMEFLOW_COLLECTION): with a Milvus
      server the model of the vectors is checked against Milvus's record, not the workspace.
    """

    def __init__(
        self,
        model: str | None = None,
        batch_size: int | None = None,
        preprocess_threads: int | None = None,
        runtime: str = "auto",
        device: str | None = None,
        precision: str | None = None,
        torch_threads: int | None = None,
        interop_threads: int | None = 1,
        text_cache_size: int = DEFAULT_TEXT_CACHE_SIZE,
        text_model: str | None = None,
        ocr: bool = False,
        workspace: str | None = None,
        ocr_engine: str | None = None,
        index: str | None = None,
        collection: str | None = None,
        max_frames: int | None = None,
        max_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        """`workspace`, `index` and `collection` are the indexer's (MEMEFLOW_WORKSPACE,
        MEMEFLOW_INDEX, MEMEFLOW_COLLECTION override both): a model other than the one of the
        index's vectors is refused here, before the Flow serves (ModelMismatchError)."""
        super().__init__(**kwargs)
        self._model_options: dict[str, Any] = dict(
            runtime=config.runtime(runtime), device=config.device(device),
            precision=config.precision(precision), torch_threads=torch_threads,
            interop_threads=interop_threads, text_cache_size=text_cache_size)
        clip = build_model(config.model_name(model), self._model_options)
        # The vectors of one workspace come from one model (memeflow.encoder.identity).
        identity, root = model_identity(clip), config.workspace(workspace)
        record = model_record(root, config.index(index), config.collection_name(collection))
        try:
            check_model(record, identity)
        finally:
            record.close()
        # Texts (queries, /rank candidates, the hub bank) may go through a separate model.
        self.model = with_text_model(clip, config.text_model(text_model))
        device_type = clip.device.type
        self.batch_size = batch_size or default_batch_size(device_type)
        preprocess_threads = preprocess_threads or default_decode_threads(device_type)
        self.policy = AccessPolicy.from_env()  # roots, fetch hosts, size limits
        self.frame_limits = FrameLimits(max_frames=config.max_frames(max_frames),
                                        max_seconds=config.max_seconds(max_seconds))
        # decode_image refuses images over the pixel limit with an error on their document;
        # Pillow's warning about the same image would only add debris to the log.
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        self.pool = ThreadPoolExecutor(preprocess_threads, thread_name_prefix="preprocess")
        self.logger.info(f"loaded {describe(identity)}: {clip.hardware.describe()}; "
                         f"batches of {self.batch_size}, {preprocess_threads} decode threads; "
                         f"fit for the {record.what}")
        if isinstance(self.model, QueryTextModel):
            self.logger.info(f"texts go through {self.model.text.folder}")
        # Reading the words on memes costs more than CLIP (BENCHMARKS.md, "Words on memes").
        self.ocr = (OcrReader(engine=config.ocr_engine(ocr_engine)) if config.ocr_enabled(ocr)
                    else None)
        if self.ocr is not None:
            self.logger.info(f"reading the words on memes at /index (MEMEFLOW_OCR), "
                             f"with {self.ocr.engine}")
        # Embedded once: each indexed image's hubness is measured against it (memeflow.hubs).
        self.hub_bank = self.model.embed_texts(list(GENERIC_PROMPTS))
        self._switch: PendingSwitch[_Prepared] = PendingSwitch()

    @requests(on="/index")
    def encode(self, docs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        """Embeds images, videos and texts; keeps a preview and, with OCR on, the words of
        each image; an animated image or a video keeps the vectors of its frames."""
        self._encode(docs, thumbnails=True, ocr=self.ocr, keep_frames=True)
        tag_hubness(docs, self.hub_bank)
        return docs

    @requests(on="/search")
    def encode_queries(self, docs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        """Queries need no thumbnail; one with only an id is searched by its stored vector;
        one with `terms` is a combined query (memeflow.encoder.query_parts)."""
        self._encode(DocList[MemeDoc]([doc for doc in docs if not doc.terms]), by_id=True)
        embed_query_parts(self.model, [doc for doc in docs if doc.terms], self.pool,
                          self.batch_size, self.policy)
        return docs

    @requests(on="/rank")
    def encode_for_rank(self, docs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        self.policy.check_request(len(docs))
        embed_for_rank(self.model, docs, self.pool, self.batch_size, self.policy)
        return docs

    def _encode(self, docs: DocList[MemeDoc], **options: Any) -> DocList[MemeDoc]:
        self.policy.check_request(len(docs))
        with self.monitor("encode_seconds", "Time to read, decode and embed a request"):
            embed_documents(
                self.model, docs, self.pool, self.batch_size, self.policy, self._phase_timer,
                limits=self.frame_limits, **options,
            )
        return docs

    def _phase_timer(self, name: str) -> AbstractContextManager[object]:
        return self.monitor(name, PHASES[name])

    def _prepare(self, name: str, root: Path) -> "_Prepared":
        """The model `name`, checked against the vectors of the workspace `root`."""
        clip = build_model(name, self._model_options)
        identity = model_identity(clip)
        check_workspace_model(root, identity)
        return _Prepared(clip, clip.embed_texts(list(GENERIC_PROMPTS)), identity)

    @requests(on="/switch")
    def switch(self, docs: DocList[MemeDoc], parameters: dict, **kwargs: Any
               ) -> DocList[MemeDoc]:
        """Another model, loaded beside the one serving and swapped in at commit
        (memeflow.switch); the reply's `encoder` tag says how far it got."""
        phase = phase_of(parameters)
        state = phase
        if phase == "prepare":
            if isinstance(self.model, QueryTextModel):
                raise SwitchError("this Flow embeds texts with a separate text model "
                                  "(MEMEFLOW_TEXT_MODEL), made for the model it serves: stop "
                                  "it and serve the new workspace with its own settings")
            name, workspace = target_of(parameters)
            self._switch.prepare(lambda: self._prepare(name, Path(workspace)), _drop)
        elif phase == "commit":
            prepared = self._switch.take()
            self.model, self.hub_bank = prepared.model, prepared.hub_bank
            self.logger.info(f"switched to {describe(prepared.identity)}: "
                             f"{prepared.model.hardware.describe()}")
            state = "committed"
        elif phase == "abort":
            self._switch.abort(_drop)
        if phase in ("prepare", "poll"):
            state = self._switch.state()
        return DocList[MemeDoc]([MemeDoc(tags={"encoder": state})])

    @requests(on="/status")
    def status(self, docs: DocList[MemeDoc], **kwargs: Any) -> DocList[MemeDoc]:
        """The model half of `memeflow status`; the indexer adds the index half."""
        hardware = self.model.hardware
        status = MemeDoc(tags={"model": self.model.name, "family": self.model.family,
                               "runtime": hardware.runtime,
                               "precision": hardware.precision, "device": hardware.device,
                               "gpu": hardware.gpu,
                               "cpu": hardware.cpu, "cpu_features": list(hardware.cpu_features),
                               "model_dim": self.model.dim,
                               "random_weights": self.model.random_weights,
                               "ocr": self.ocr is not None})
        return DocList[MemeDoc]([status])

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        super().close()
