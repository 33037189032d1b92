"""Keeping the index in step with folders: what `memeflow index` does through a client.

Each file is hashed; files whose path and bytes are indexed are left alone, moved, renamed
and copied files reuse their stored vector and preview (`memeflow.client.moves`), and the
rest are sent to be encoded, in batches. `prune` drops documents whose files are gone.
A moved or copied file's document keeps what the encoder derived from its pixels (its
vector, preview, words and `memeflow.fields.DERIVED_TAGS`): nothing is computed again.

It talks to the service through `Service`, the part of `MemeClient` it needs (the client
imports this module; this module does not import the client).
"""

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from memeflow import config
from memeflow.client.files import file_id, file_tags, scan_paths, sha256_file
from memeflow.client.moves import Reuse, StoredDoc, plan_reuse, stored_path
from memeflow.fields import FRAMES_CUT_TAG, derived_tags
from memeflow.regular_files import NotRegularFile, read_regular
from memeflow.uris import path_uri

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class Service(Protocol):
    """What keeping folders in step needs of a running service (`MemeClient` has it)."""

    def status(self) -> dict[str, Any]: ...

    def documents(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def find_by_hash(self, digests: Sequence[str]) -> dict[str, list[StoredDoc]]: ...

    def thumbnails(self, ids: Sequence[str]) -> dict[str, bytes]: ...

    def image_fields(self, data: bytes, uri: str | None = None) -> dict[str, Any]: ...

    def post(self, endpoint: str, docs: Sequence[Mapping[str, Any]], chunk: int = ...,
             **parameters: Any) -> list[dict[str, Any]]: ...

    def delete(self, ids: Sequence[str]) -> int: ...

    def documents_under(self, folder: str | Path) -> list[tuple[str, str]]: ...


@dataclass
class IndexReport:
    """What `index_paths` did with each file (and `prune` with each gone one), each named
    by its uri (`memeflow.uris.path_uri`: its absolute path, or a `file://` URL when that
    path is not UTF-8)."""

    encoded: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (old path, new path)
    copied: list[str] = field(default_factory=list)  # same bytes as a document still indexed
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    pruned: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # hidden, system or .memeflowignore'd

    @property
    def indexed(self) -> list[str]:
        """Every file newly in the index, encoded or not."""
        return self.encoded + [new for _, new in self.moved] + self.copied

    def as_dict(self) -> dict[str, Any]:
        return {
            "encoded": len(self.encoded), "moved": len(self.moved), "copied": len(self.copied),
            "unchanged": len(self.unchanged), "pruned": len(self.pruned),
            "skipped": len(self.skipped),
            "failed": [{"file": f, "reason": r} for f, r in self.failed],
            "moves": [{"from": old, "to": new} for old, new in self.moved],
        }


def index_paths(
    client: Service,
    paths: Iterable[str | Path],
    batch_size: int = config.DEFAULT_INDEX_BATCH,
    on_progress: Callable[[int], object] | None = None,
    include_hidden: bool = False,
) -> IndexReport:
    """Index image files and folders. Files already indexed with the same bytes are
    left alone; moved, renamed and copied files reuse their stored vector
    (`memeflow.client.moves`). When the service reads the words on memes (MEMEFLOW_OCR)
    and a file was indexed without them, it is encoded again so that they are read.

    In folders, hidden and system files and folders and what `.memeflowignore` files
    exclude are skipped (`memeflow.client.files`); `include_hidden` keeps the hidden
    ones. A file that cannot be read fails alone, with its reason.
    `on_progress(n)` is called after each step with the number of files it settled.
    """
    report = IndexReport()
    scan = scan_paths(paths, include_hidden=include_hidden)
    report.skipped = [path_uri(p) for p in scan.skipped]
    report.failed = [(path_uri(p), reason) for p, reason in scan.failed]
    hashes: dict[Path, str] = {}
    for path in scan.files:
        try:
            digest = sha256_file(path)
        except NotRegularFile as exc:  # swapped for a FIFO since the walk
            report.failed.append((path_uri(path), str(exc.strerror)))
            continue
        except OSError as exc:
            report.failed.append((path_uri(path), f"cannot read file: {exc.strerror or exc}"))
            continue
        if digest == EMPTY_SHA256:  # said here, in a user's words, not by the decoder
            report.failed.append((path_uri(path), "empty file (0 bytes)"))
        else:
            hashes[path] = digest
    reads_words = bool(client.status().get("ocr"))
    stored = client.documents([file_id(p) for p in hashes])
    unknown, unread = [], []
    for path, digest in hashes.items():
        doc = stored.get(file_id(path))
        if doc is None or (doc.get("tags") or {}).get("sha256") != digest:
            unknown.append(path)
        elif reads_words and doc.get("words") is None:
            unread.append(path)
        else:
            report.unchanged.append(path_uri(path))
    if on_progress and (report.unchanged or report.failed):
        on_progress(len(report.unchanged) + len(report.failed))
    by_hash = client.find_by_hash(sorted({hashes[p] for p in unknown})) if unknown else {}
    if reads_words:  # a copy of a meme whose words were never read reads them itself
        by_hash = {digest: [doc for doc in docs if doc.words is not None]
                   for digest, docs in by_hash.items()}
    reuses, to_encode = plan_reuse(unknown, hashes, by_hash)
    to_encode += unread
    for start in range(0, len(reuses), config.DEFAULT_MAX_DOCS):
        batch = reuses[start : start + config.DEFAULT_MAX_DOCS]
        _reuse_batch(client, batch, hashes, report)
        if on_progress:
            on_progress(len(batch))
    for paths in _request_batches(to_encode, batch_size):
        _index_batch(client, paths, hashes, report)
        if on_progress:
            on_progress(len(paths))
    return report


def _request_batches(paths: list[Path], batch_size: int,
                     max_bytes: int = config.DEFAULT_INDEX_BATCH_BYTES) -> Iterator[list[Path]]:
    """`paths` in order, in batches of at most `batch_size` files and `max_bytes` bytes (a
    larger file goes alone): a folder of videos makes requests of megabytes, not gigabytes."""
    batch: list[Path] = []
    size = 0
    for path in paths:
        try:
            length = path.stat().st_size
        except OSError:  # gone since it was hashed: `_index_batch` reports it
            length = 0
        if batch and (len(batch) >= batch_size or size + length > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(path)
        size += length
    if batch:
        yield batch


def reused_doc(reuse: Reuse, digest: str, preview: bytes | None) -> dict[str, Any]:
    """The document of a moved or copied file: named by its new path, with its file's tags
    (name, folder, sidecars) and everything the encoder derived from the pixels it shares
    with the stored document (vector, preview, words, `DERIVED_TAGS`; an animated image's
    or video's frames, their times and `frames_cut`)."""
    source = reuse.source
    cut = {FRAMES_CUT_TAG: source.tags[FRAMES_CUT_TAG]} if FRAMES_CUT_TAG in source.tags else {}
    return {"id": file_id(reuse.path), "uri": path_uri(reuse.path),
            "embedding": source.embedding, "thumbnail": preview,
            "words": source.words, "frames": source.frames, "frame_ms": source.frame_ms,
            "tags": {**file_tags(reuse.path), **derived_tags(source.tags), **cut,
                     "sha256": digest}}


def _reuse_batch(client: Service, batch: list[Reuse], hashes: dict[Path, str],
                 report: IndexReport) -> None:
    """Store moved and copied files with their stored vectors and previews, straight in
    the indexer, then drop moved ones' old documents (in that order: a failure in
    between leaves a duplicate, never a loss)."""
    previews = client.thumbnails([r.source.id for r in batch])
    docs = [reused_doc(r, hashes[r.path], previews.get(r.source.id)) for r in batch]
    replies = {doc["id"]: doc
               for doc in client.post("/upsert", docs, chunk=config.DEFAULT_MAX_DOCS)}
    moved_away = []
    for reuse, sent in zip(batch, docs, strict=True):
        reply = replies.get(sent["id"])
        error = reply.get("error") if reply is not None else "no reply from the index"
        if error:
            report.failed.append((sent["uri"], error))
        elif reuse.moved:
            report.moved.append((reuse.source.uri or reuse.source.id, sent["uri"]))
            moved_away.append(reuse.source.id)
        else:
            report.copied.append(sent["uri"])
    if moved_away:
        client.delete(moved_away)


def _index_batch(client: Service, batch: list[Path], hashes: dict[Path, str],
                 report: IndexReport) -> None:
    """Send files to be encoded; each reply says whether that file was stored. A file over
    the larger of the service's size limits (as set here) fails here, unread: a 3 GB film
    is not read into memory to be refused."""
    docs = []
    limit = max(config.max_image_bytes(), config.max_video_bytes())
    for path in batch:
        try:
            if (size := path.stat().st_size) > limit:
                report.failed.append((path_uri(path), (
                    f"{size} bytes is over the {limit}-byte limit for one file "
                    f"({config.MAX_VIDEO_BYTES_ENV} for videos, {config.MAX_IMAGE_BYTES_ENV} "
                    "for images): raise it, or leave the file out")))
                continue
            data = read_regular(path)
        except NotRegularFile as exc:
            report.failed.append((path_uri(path), str(exc.strerror)))
            continue
        except OSError as exc:  # gone or locked since it was hashed
            report.failed.append((path_uri(path), f"cannot read file: {exc.strerror or exc}"))
            continue
        tags = {**file_tags(path), "sha256": hashes[path]}
        docs.append({"id": file_id(path), "tags": tags,
                     **client.image_fields(data, path_uri(path))})
    if not docs:
        return
    for doc in client.post("/index", docs):
        file = doc.get("uri") or (doc.get("tags") or {}).get("file") or doc["id"]
        if doc.get("error"):
            report.failed.append((file, doc["error"].removeprefix(f"{file}: ")))
        else:
            report.encoded.append(file)


def gone_documents(client: Service, folders: Iterable[str | Path]) -> list[tuple[str, str]]:
    """(id, uri) of the documents under `folders` whose files no longer exist."""
    return [(doc_id, uri) for folder in folders
            for doc_id, uri in client.documents_under(folder)
            if not os.path.exists(stored_path(uri) or uri)]


def prune(client: Service, folders: Iterable[str | Path]) -> list[str]:
    """Remove the documents under `folders` whose files no longer exist; their paths."""
    gone = gone_documents(client, folders)
    if gone:
        client.delete([doc_id for doc_id, _ in gone])
    return [uri for _, uri in gone]
