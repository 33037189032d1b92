"""Keeping the index in step with folders: what `memeflow index` does through a client.

Each file is hashed; files whose path and bytes are indexed are left alone, moved, renamed
and copied files reuse their stored vector and preview (`memeflow.client.moves`), and the
rest are sent to be encoded, in batches. `prune` drops documents whose files are gone.
"""

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from memeflow import config
from memeflow.client.files import file_id, file_tags, scan_paths, sha256_file
from memeflow.client.moves import Reuse, plan_reuse, stored_path
from memeflow.documents import MatchDoc, MemeDoc
from memeflow.regular_files import NotRegularFile, read_regular
from memeflow.uris import path_uri

if TYPE_CHECKING:
    from memeflow.client.client import MemeClient


def reply_id(doc: MemeDoc | MatchDoc) -> str:
    """The id of a document the service sent back: every stored or answered one has one."""
    assert doc.id is not None
    return doc.id


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


def uri_prefixes(root: str) -> list[str]:
    """The uri prefixes of files under the folder `root`: its path when that is UTF-8, and
    its `file://` form, which names the files below it that are not."""
    encoded = "file://" + quote(os.fsencode(root), safe="/")
    try:
        root.encode("utf-8")
    except UnicodeEncodeError:
        return [encoded]
    return [root, encoded]


def index_paths(
client: "MemeClient",
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
            hashes[path] = sha256_file(path)
        except NotRegularFile as exc:  # swapped for a FIFO since the walk
            report.failed.append((path_uri(path), str(exc.strerror)))
        except OSError as exc:
            report.failed.append((path_uri(path), f"cannot read file: {exc.strerror or exc}"))
    reads_words = bool(client.status().get("ocr"))
    stored = client._stored_docs([file_id(p) for p in hashes])
    unknown, unread = [], []
    for path, digest in hashes.items():
        doc = stored.get(file_id(path))
        if doc is None or doc.tags.get("sha256") != digest:
            unknown.append(path)
        elif reads_words and doc.words is None:
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
    for start in range(0, len(to_encode), batch_size):
        paths = to_encode[start : start + batch_size]
        _index_batch(client, paths, hashes, report)
        if on_progress:
            on_progress(len(paths))
    return report


def _reuse_batch(client: "MemeClient", batch: list[Reuse], hashes: dict[Path, str],
                 report: IndexReport) -> None:
    """Store moved and copied files with their stored vectors and previews, straight in
    the indexer, then drop moved ones' old documents (in that order: a failure in
    between leaves a duplicate, never a loss)."""
    previews = client.thumbnails([r.source.id for r in batch])
    docs = [
        MemeDoc(id=file_id(r.path), uri=path_uri(r.path), embedding=r.source.embedding,
                thumbnail=previews.get(r.source.id), words=r.source.words,
                tags={**file_tags(r.path), "sha256": hashes[r.path]})
        for r in batch
    ]
    replies = {doc.id: doc for doc in client.upsert(docs)}
    moved_away = []
    for reuse, sent in zip(batch, docs, strict=True):
        assert sent.uri is not None  # every document above is made from a file
        error = replies[sent.id].error if sent.id in replies else "no reply from the index"
        if error:
            report.failed.append((sent.uri, error))
        elif reuse.moved:
            report.moved.append((reuse.source.uri or reuse.source.id, sent.uri))
            moved_away.append(reuse.source.id)
        else:
            report.copied.append(sent.uri)
    if moved_away:
        client.delete(moved_away)


def _index_batch(client: "MemeClient", batch: list[Path], hashes: dict[Path, str],
                 report: IndexReport) -> None:
    """Send files to be encoded; each reply says whether that file was stored."""
    docs = []
    for path in batch:
        try:
            data = read_regular(path)
        except NotRegularFile as exc:
            report.failed.append((path_uri(path), str(exc.strerror)))
            continue
        except OSError as exc:  # gone or locked since it was hashed
            report.failed.append((path_uri(path), f"cannot read file: {exc.strerror or exc}"))
            continue
        tags = {**file_tags(path), "sha256": hashes[path]}
        docs.append(client.image_doc(data, id=file_id(path), uri=path_uri(path), tags=tags))
    if not docs:
        return
    for doc in client.index(docs):
        if doc.error:
            file = doc.uri or doc.tags.get("file", reply_id(doc))
            report.failed.append((file, doc.error.removeprefix(f"{file}: ")))
        else:
            report.encoded.append(doc.uri or reply_id(doc))


def prune(client: "MemeClient", folders: Iterable[str | Path]) -> list[str]:
    """Remove the documents under `folders` whose files no longer exist; their paths."""
    gone = [(doc_id, uri) for folder in folders for doc_id, uri in client.documents_under(folder)
            if not os.path.exists(stored_path(uri) or uri)]
    if gone:
        client.delete([doc_id for doc_id, _ in gone])
    return [uri for _, uri in gone]
