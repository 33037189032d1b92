"""Which model made a workspace's vectors, so a Flow never mixes the vectors of two models.

A model's identity is its name, its dimension and a fingerprint: its vectors of a few fixed
probe texts and one synthetic image drawn here. Two identities are the same model when the
dimensions match and every probe's vectors agree to a cosine of at least `MIN_COSINE`: the
torch, int8 and ONNX runtimes of the same weights agree to about 0.999, while another
checkpoint, or other random weights, land near 0. The name is only for messages: the same
weights under another name (a downloaded folder of a Hugging Face id) are the same model.

The check runs in the encoder at start (it has the model; see `memeflow.workspace`
for how the identity reaches the workspace, and `memeflow.model_record` for where it is
kept when the documents live in a Milvus server), so `memeflow serve` with another model on a
workspace exits at once with the message of `ModelMismatchError`, instead of serving
searches that fail or, worse, mix two models' vectors silently.
"""

import json
import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from memeflow import workspace
from memeflow.encoder.source import ModelLoadError
from memeflow.model_record import ModelRecord, WorkspaceRecord

logger = logging.getLogger(__name__)

MIN_COSINE = 0.99
# Never change or reorder these (stored fingerprints were made from them); append only.
PROBE_TEXTS = (
    "a photo of a cat",
    "two people arguing at a dinner table",
    "when the code works on the first try",
)
PROBE_IMAGE_SIZE = 224

Identity = dict[str, Any]


class ModelMismatchError(ModelLoadError):
    """The workspace holds the vectors of another model; the message names both and the fix."""


class Encodes(Protocol):
    """What a fingerprint needs of `ClipModel`."""

    name: str
    dim: int
    random_seed: int | None

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...

    def embed_images(self, images: list[Image.Image]) -> np.ndarray: ...


def probe_image() -> Image.Image:
    """A 224 x 224 RGB image, the same on every machine: red and green gradients across and
    down, blue a checkerboard of 28-pixel squares."""
    y, x = np.mgrid[0:PROBE_IMAGE_SIZE, 0:PROBE_IMAGE_SIZE]
    top = PROBE_IMAGE_SIZE - 1
    pixels = np.stack([x * 255 // top, y * 255 // top, (x // 28 + y // 28) % 2 * 255], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def model_identity(model: Encodes) -> Identity:
    """Name, dimension, random-weights seed (None for real weights) and the fingerprint:
    (len(PROBE_TEXTS) + 1, dim) unit vectors as lists, texts first."""
    vectors = np.vstack([model.embed_texts(list(PROBE_TEXTS)),
                         model.embed_images([probe_image()])])
    return {"name": model.name, "dim": int(model.dim), "random_seed": model.random_seed,
            "fingerprint": np.round(vectors.astype(np.float64), 6).tolist()}


def fingerprint_cosines(a: Identity, b: Identity) -> np.ndarray:
    """The cosine of each probe's two vectors; empty when the dimensions differ."""
    if a["dim"] != b["dim"]:
        return np.empty(0)
    rows = min(len(a["fingerprint"]), len(b["fingerprint"]))  # probes only ever get appended
    x = np.asarray(a["fingerprint"][:rows], dtype=np.float64)
    y = np.asarray(b["fingerprint"][:rows], dtype=np.float64)
    return (x * y).sum(axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


def same_model(a: Identity, b: Identity, min_cosine: float = MIN_COSINE) -> bool:
    """Whether vectors of `a` and `b` can be searched together (see the module docstring)."""
    cosines = fingerprint_cosines(a, b)
    return cosines.size > 0 and float(cosines.min()) >= min_cosine


def describe(identity: Identity) -> str:
    """The model for a message: its name, its dimension and, for random weights, the seed."""
    seed = identity.get("random_seed")
    extra = "" if seed is None else f", random weights of seed {seed}"
    return f"{identity['name']} ({identity['dim']}-d{extra})"


def _setting(identity: Identity) -> str:
    """The environment that brings the model of `identity` back."""
    seed = identity.get("random_seed")
    return f"MEMEFLOW_MODEL={identity['name']}" + (
        "" if seed is None else f" MEMEFLOW_RANDOM_SEED={seed} MEMEFLOW_ALLOW_RANDOM_WEIGHTS=1")


def mismatch(record: ModelRecord, stored: Identity, running: Identity, how: str) -> str:
    """Why the index (`record.what`: a workspace, a Milvus collection) refuses the model,
    and the three ways on."""
    return (
        f"{record.what} holds vectors of {describe(stored)}, not of {describe(running)}: "
        f"{how}. {record.elsewhere}; or keep it: {_setting(stored)}"
    )


def _record(where: Path | ModelRecord) -> ModelRecord:
    return WorkspaceRecord(where) if isinstance(where, Path) else where


def preflight_model(where: Path | ModelRecord, name: str, folder: Path | None,
                    random_seed: int | None) -> None:
    """Before any process starts: refuse a local model folder whose dimension differs from
    the vectors of the index (a workspace's, or the record `memeflow.model_record` gives)
    (read from its config.json, in milliseconds); the encoder compares the fingerprints at
    start. Raises ModelMismatchError, WorkspaceError."""
    record = _record(where)
    stored = (record.read() or {}).get("model")
    if stored is None or folder is None:
        return
    try:
        dim = json.loads((folder / "config.json").read_text())["projection_dim"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # the encoder says what is wrong with the folder
    running = {"name": name, "dim": dim, "random_seed": random_seed}
    if dim != stored["dim"]:
        raise ModelMismatchError(mismatch(record, stored, running, "the dimensions differ"))


def check_workspace_model(root: Path, running: Identity) -> None:
    """`check_model` of the workspace `root`'s record (`memeflow.json`)."""
    check_model(WorkspaceRecord(root), running)


def check_model(record: ModelRecord, running: Identity) -> None:
    """At encoder start: refuse an index holding another model's vectors; else record
    `running` as the model of the vectors to come (or adopt it for vectors of an unknown
    model, from an older memeflow). Raises ModelMismatchError, or WorkspaceError."""
    adopted = []

    def check(meta: workspace.Meta) -> None:
        stored = meta.get("model")
        if stored is not None and not same_model(stored, running):
            cosines = fingerprint_cosines(stored, running)
            how = (f"their vectors of the same probes differ (cosine {cosines.min() + 0.0:.2f})"
                   if cosines.size else "the dimensions differ")
            raise ModelMismatchError(mismatch(record, stored, running, how))
        if stored is None and meta.get("unknown_model_vectors"):
            meta["model"], meta["unknown_model_vectors"] = running, False
            adopted.append(True)
        meta["running_model"] = running

    record.update(check)
    if adopted:
        logger.warning("%s holds vectors of an unrecorded model (an older memeflow made it): "
                       "taking them as %s's", record.what, describe(running))
