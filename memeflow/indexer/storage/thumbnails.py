"""Small previews of indexed images, kept in the indexer's workspace and looked up by id:
where the embedded backend keeps them (`memeflow.indexer.backends.previews`).

The encoder makes them (`memeflow.encoder.thumbnail`); the indexer stores each one under
a name hashed from the document id, so no id a client sends can name a path outside the
thumbnail folder.
"""

import contextlib
import hashlib
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from memeflow.indexer.backends.previews import Previews
from memeflow.indexer.storage.atomic import write_bytes, write_many


class ThumbnailStore(Previews):
    """One file per document id in `folder`, named by a hash of the id."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, doc_id: str) -> Path:
        return self.folder / f"{hashlib.sha256(doc_id.encode()).hexdigest()[:40]}.jpg"

    def put(self, doc_id: str, data: bytes) -> None:
        """Write atomically: a reader never sees half a file."""
        write_bytes(self.path(doc_id), data)

    def put_many(self, previews: Mapping[str, bytes]) -> None:
        """All of a request's previews with one fsync of the folder, not one per preview
        (two fsyncs each made a request of 32 memes wait about 0.3 s)."""
        write_many({self.path(doc_id): data for doc_id, data in previews.items()})

    def get(self, doc_id: str) -> bytes | None:
        try:
            return self.path(doc_id).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, doc_ids: Iterable[str]) -> None:
        for doc_id in doc_ids:
            with contextlib.suppress(FileNotFoundError):
                self.path(doc_id).unlink()

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
