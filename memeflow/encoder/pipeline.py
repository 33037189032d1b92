"""Turn a request's documents into embeddings, one bad document never failing the rest.

Images and videos are read, decoded and preprocessed in worker threads while the model
embeds the previous batch; texts are embedded in batches; documents that bring their own vector
are checked and passed through.
"""

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch

from memeflow.documents import HASH_TAG, MemeDoc, content_id
from memeflow.encoder.access import AccessPolicy
from memeflow.encoder.decode import CLIP_SIDE, central_crop, decode_image
from memeflow.encoder.fetch import read_source
from memeflow.encoder.frames import (
    FRAMES_CUT_TAG,
    FrameLimits,
    Sampled,
    read_frames,
    representative,
)
from memeflow.encoder.ocr import OcrReader, read_words
from memeflow.encoder.phash import perceptual_hash
from memeflow.encoder.text_model import EncoderModel
from memeflow.encoder.thumbnail import THUMBNAIL_SIDE, make_thumbnail
from memeflow.uris import ImageLoadError, describe_source, is_data_uri, normalise_uri
from memeflow.vectors import check_own_vector

DEFAULT_LIMITS = FrameLimits()  # of animated images and videos: MEMEFLOW_MAX_FRAMES etc.
DEFAULT_BATCH_SIZE = 16  # images per model call; chosen by measurement (BENCHMARKS.md, "Encoding")
# A timer per phase, e.g. an executor's `self.monitor` (Prometheus); no timing by default.
Timer = Callable[[str], AbstractContextManager[object]]
PHASES: dict[str, str] = {
    "read_seconds": "Time to read one image's bytes (blob, file, data: URI or URL)",
    "decode_seconds": "Time to decode and preprocess one image",
    "embed_images_seconds": "Time to embed one batch of images",
    "embed_texts_seconds": "Time to embed one batch of texts",
    "ocr_seconds": "Time to read the words on one image (MEMEFLOW_OCR)",
}


def _untimed(name: str) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


NO_INPUT = "document has neither text nor image: set `text`, `uri` or `blob` (or `embedding`)"


def _has_image(doc: MemeDoc) -> bool:
    return doc.blob is not None or bool(doc.uri)


@dataclass
class _Prepared:
    """One document's preprocessed pixels ((k, 3, side, side): k = 1 for a still) and, for
    an animated image or a video, its sampled frames and their times (ms)."""

    pixels: torch.Tensor
    frames: Sampled | None = None


def _prepare_image(
    model: EncoderModel,
    doc: MemeDoc,
    policy: AccessPolicy | None,
    timer: Timer,
    thumbnail: bool = False,
    ocr: OcrReader | None = None,
    limits: FrameLimits = DEFAULT_LIMITS,
) -> _Prepared:
    """Read and preprocess one document's image or video; names its source on failure.

    With a `policy` the read obeys its roots, hosts and size limits (the service); without
    one any path or URL is read (a library caller reading its own files). With
    `thumbnail`, also keeps a small preview of the decoded image on the document; with
    `ocr`, reads the words on it from the same decoded image (at a resolution fit for
    reading, not just for CLIP's 224 pixels). An animated image or a video gives the
    frames `limits` let through (memeflow.encoder.frames); its preview and perceptual hash
    wait for the embeddings, which pick the frame that stands for it (`_finish_frames`).
    """
    with timer("read_seconds"):  # errors name the uri as sent, not as normalised
        data = policy.read(doc.uri, doc.blob) if policy else read_source(doc.uri, doc.blob)
    if doc.uri and not is_data_uri(doc.uri):
        doc.uri = normalise_uri(doc.uri)
    if doc.id is None:
        # pydantic validates the assignment: the str becomes an ID.
        doc.id = content_id(uri=doc.uri, data=data)  # type: ignore[assignment]
    with timer("decode_seconds"):
        source = describe_source(doc.uri, doc.blob)
        max_pixels = policy.pixel_limit if policy else None
        min_side = ocr.max_side if ocr else CLIP_SIDE
        sampled = read_frames(data, source=source, limits=limits,
                              side=max(min_side, THUMBNAIL_SIDE), max_pixels=max_pixels)
        if sampled is not None:
            if ocr is not None and doc.words is None:
                with timer("ocr_seconds"):
                    doc.words = distinct_words(read_words(ocr, image, source)
                                               for image in sampled.images)
            return _Prepared(torch.stack([model.preprocess(central_crop(image))
                                          for image in sampled.images]), sampled)
        image = decode_image(data, source=source, max_pixels=max_pixels, min_side=min_side)
        if thumbnail:
            doc.thumbnail = make_thumbnail(image)
        doc.tags = {**doc.tags, HASH_TAG: perceptual_hash(image)}  # for collapsing duplicates
    if ocr is not None and doc.words is None:
        with timer("ocr_seconds"):
            doc.words = read_words(ocr, image, source)
    return _Prepared(model.preprocess(central_crop(image)).unsqueeze(0))


def distinct_words(texts: Iterable[str | None]) -> str | None:
    """The words read on several frames, each once, in the order first seen; "" when the
    frames were read and showed none, None when the engine failed on every frame (the
    client then asks for them again)."""
    read = [text for text in texts if text is not None]
    if not read:
        return None
    return " ".join(dict.fromkeys(word for text in read for word in text.split()))


def _finish_frames(doc: MemeDoc, vectors: np.ndarray, sampled: Sampled, thumbnail: bool,
                   keep_frames: bool) -> None:
    """A multi-frame document's vector is its representative frame's ((k, dim) unit rows in
    `vectors`), as are its preview and perceptual hash; `frames`/`frame_ms` kept for /index."""
    best = representative(vectors)
    image = sampled.images[best]
    doc.embedding = vectors[best]
    if keep_frames:
        # pydantic validates the assignment: the array becomes an NdArray.
        doc.frames = np.ascontiguousarray(vectors, dtype=np.float32)  # type: ignore[assignment]
        doc.frame_ms = list(sampled.times_ms)
    if thumbnail:
        doc.thumbnail = make_thumbnail(image)
    tags = {**doc.tags, HASH_TAG: perceptual_hash(image)}
    if sampled.cut:
        tags[FRAMES_CUT_TAG] = sampled.cut
    doc.tags = tags


def _batches(items: Sequence[MemeDoc], size: int) -> Iterator[Sequence[MemeDoc]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _embed_rows(model: EncoderModel, pixels: torch.Tensor, batch_size: int) -> np.ndarray:
    """Unit vectors of `pixels` ((n, 3, side, side)), `batch_size` images per model call."""
    return np.concatenate([model.embed_pixels(pixels[start : start + batch_size])
                           for start in range(0, len(pixels), batch_size)])


def embed_images(
    model: EncoderModel,
    docs: Sequence[MemeDoc],
    pool: ThreadPoolExecutor,
    batch_size: int,
    policy: AccessPolicy | None = None,
    timer: Timer = _untimed,
    thumbnails: bool = False,
    ocr: OcrReader | None = None,
    limits: FrameLimits = DEFAULT_LIMITS,
    keep_frames: bool = False,
) -> None:
    """Embed the images of `docs`, preparing batch i+1 in `pool` while the model runs batch i
    (and, with `ocr`, reading their words there too). The frames of animated images and
    videos go through the model with the rest, `batch_size` images per call."""
    batches = list(_batches(docs, batch_size))
    pending: list[list[Future[_Prepared]]] = []

    def submit(batch: Sequence[MemeDoc]) -> None:
        pending.append(
            [pool.submit(_prepare_image, model, doc, policy, timer, thumbnails, ocr, limits)
             for doc in batch]
        )

    if batches:
        submit(batches[0])
    for index, batch in enumerate(batches):
        futures = pending[index]
        if index + 1 < len(batches):
            submit(batches[index + 1])
        ready: list[tuple[MemeDoc, _Prepared]] = []
        for doc, future in zip(batch, futures, strict=True):
            try:
                ready.append((doc, future.result()))
            except ImageLoadError as exc:
                doc.error = str(exc)
            except Exception as exc:  # a decoder bug must not cost the rest of the request
                doc.error = f"{describe_source(doc.uri, doc.blob)}: could not read image ({exc!r})"
        if not ready:
            continue
        with timer("embed_images_seconds"):
            vectors = _embed_rows(model, torch.cat([p.pixels for _, p in ready]), batch_size)
        at = 0
        for doc, prepared in ready:
            rows = vectors[at : at + len(prepared.pixels)]
            at += len(prepared.pixels)
            if prepared.frames is None:
                doc.embedding = rows[0]
            else:
                _finish_frames(doc, rows, prepared.frames, thumbnails, keep_frames)


def embed_texts(
    model: EncoderModel, docs: Sequence[MemeDoc], batch_size: int, timer: Timer = _untimed
) -> None:
    for batch in _batches(docs, batch_size):
        with timer("embed_texts_seconds"):
            # embed_documents sends only documents with a text.
            vectors = model.embed_texts([d.text for d in batch])  # type: ignore[misc]
        for doc, vector in zip(batch, vectors, strict=True):
            doc.embedding = vector
            if doc.id is None:
                assert doc.text is not None  # only documents with a text come here
                doc.id = content_id(data=doc.text.encode())  # type: ignore[assignment]  # as above


def _id_only(doc: MemeDoc) -> bool:
    return bool(doc.id) and not doc.text and not _has_image(doc) and doc.embedding is None


def embed_documents(
    model: EncoderModel,
    docs: Sequence[MemeDoc],
    pool: ThreadPoolExecutor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    policy: AccessPolicy | None = None,
    timer: Timer = _untimed,
    *,
    thumbnails: bool = False,
    by_id: bool = False,
    ocr: OcrReader | None = None,
    limits: FrameLimits = DEFAULT_LIMITS,
    keep_frames: bool = False,
) -> None:
    """Give every readable document an embedding and every unreadable one an `error`.

    An image wins over a text when a document has both (the text is then a caption).
    `policy` limits what may be read (see `_prepare_image`); `timer` times each phase.
    `thumbnails` keeps a preview of each image (for /index); `by_id` lets a document
    with only an id through for the indexer to search with its stored vector (/search);
    `ocr` sets `words` on each image document to the text written on it (/index).
    An animated image or a video is embedded by the frames `limits` let through; its
    `embedding` is the frame that stands for it, and with `keep_frames` (/index) `frames`
    and `frame_ms` hold them all (memeflow.encoder.frames).
    """
    images, texts = [], []
    for doc in docs:
        if doc.error:
            continue
        if doc.embedding is not None:
            check_own_vector(doc, model.dim, holder="the model makes")
        elif _has_image(doc):
            images.append(doc)
        elif doc.text and doc.text.strip():
            texts.append(doc)
        elif by_id and _id_only(doc):
            continue
        else:
            doc.error = NO_INPUT
    embed_images(model, images, pool, batch_size, policy, timer, thumbnails, ocr, limits,
                 keep_frames)
    embed_texts(model, texts, batch_size, timer)
    for doc in docs:
        doc.blob = None  # never carried further: the indexer and the client need no bytes
        if is_data_uri(doc.uri):
            doc.uri = None
