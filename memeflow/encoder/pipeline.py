"""Turn a request's documents into embeddings, one bad document never failing the rest.

Images are read, decoded and preprocessed in worker threads while the model embeds the
previous batch; texts are embedded in batches; documents that bring their own vector
are checked and passed through.
"""

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager

import torch

from memeflow.documents import HASH_TAG, MemeDoc, content_id
from memeflow.encoder.access import AccessPolicy
from memeflow.encoder.decode import CLIP_SIDE, central_crop, decode_image
from memeflow.encoder.fetch import read_source
from memeflow.encoder.ocr import OcrReader, read_words
from memeflow.encoder.phash import perceptual_hash
from memeflow.encoder.text_model import EncoderModel
from memeflow.encoder.thumbnail import make_thumbnail
from memeflow.uris import ImageLoadError, describe_source, is_data_uri, normalise_uri
from memeflow.vectors import check_own_vector

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


def _prepare_image(
    model: EncoderModel,
    doc: MemeDoc,
    policy: AccessPolicy | None,
    timer: Timer,
    thumbnail: bool = False,
    ocr: OcrReader | None = None,
) -> torch.Tensor:
    """Read and preprocess one document's image; names the document's source on failure.

    With a `policy` the read obeys its roots, hosts and size limits (the service); without
    one any path or URL is read (a library caller reading its own files). With
    `thumbnail`, also keeps a small preview of the decoded image on the document; with
    `ocr`, reads the words on it from the same decoded image (at a resolution fit for
    reading, not just for CLIP's 224 pixels).
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
        image = decode_image(data, source=source, max_pixels=max_pixels, min_side=min_side)
        if thumbnail:
            doc.thumbnail = make_thumbnail(image)
        doc.tags = {**doc.tags, HASH_TAG: perceptual_hash(image)}  # for collapsing duplicates
    if ocr is not None and doc.words is None:
        with timer("ocr_seconds"):
            doc.words = read_words(ocr, image, source)
    return model.preprocess(central_crop(image))


def _batches(items: Sequence[MemeDoc], size: int) -> Iterator[Sequence[MemeDoc]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def embed_images(
    model: EncoderModel,
    docs: Sequence[MemeDoc],
    pool: ThreadPoolExecutor,
    batch_size: int,
    policy: AccessPolicy | None = None,
    timer: Timer = _untimed,
    thumbnails: bool = False,
    ocr: OcrReader | None = None,
) -> None:
    """Embed the images of `docs`, preparing batch i+1 in `pool` while the model runs batch i
    (and, with `ocr`, reading their words there too)."""
    batches = list(_batches(docs, batch_size))
    pending: list[list[Future[torch.Tensor]]] = []

    def submit(batch: Sequence[MemeDoc]) -> None:
        pending.append(
            [pool.submit(_prepare_image, model, doc, policy, timer, thumbnails, ocr)
             for doc in batch]
        )

    if batches:
        submit(batches[0])
    for index, batch in enumerate(batches):
        futures = pending[index]
        if index + 1 < len(batches):
            submit(batches[index + 1])
        ready: list[MemeDoc] = []
        pixels: list[torch.Tensor] = []
        for doc, future in zip(batch, futures, strict=True):
            try:
                pixels.append(future.result())
                ready.append(doc)
            except ImageLoadError as exc:
                doc.error = str(exc)
            except Exception as exc:  # a decoder bug must not cost the rest of the request
                doc.error = f"{describe_source(doc.uri, doc.blob)}: could not read image ({exc!r})"
        if ready:
            with timer("embed_images_seconds"):
                vectors = model.embed_pixels(torch.stack(pixels))
            for doc, vector in zip(ready, vectors, strict=True):
                doc.embedding = vector


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
) -> None:
    """Give every readable document an embedding and every unreadable one an `error`.

    An image wins over a text when a document has both (the text is then a caption).
    `policy` limits what may be read (see `_prepare_image`); `timer` times each phase.
    `thumbnails` keeps a preview of each image (for /index); `by_id` lets a document
    with only an id through for the indexer to search with its stored vector (/search);
    `ocr` sets `words` on each image document to the text written on it (/index).
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
    embed_images(model, images, pool, batch_size, policy, timer, thumbnails, ocr)
    embed_texts(model, texts, batch_size, timer)
    for doc in docs:
        doc.blob = None  # never carried further: the indexer and the client need no bytes
        if is_data_uri(doc.uri):
            doc.uri = None
