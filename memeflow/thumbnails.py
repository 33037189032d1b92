"""Small previews of indexed images, kept in the indexer's workspace and looked up by id.

The encoder makes a thumbnail from the image it has already decoded, so the original is
read once; the indexer stores it under a name hashed from the document id, so no id a
client sends can name a path outside the thumbnail folder.
"""

import contextlib
import hashlib
import io
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

THUMBNAIL_SIDE = 256  # long side in pixels: sharp in a grid cell, a few kB each
THUMBNAIL_QUALITY = 80
THUMBNAIL_TYPE = "image/jpeg"


def make_thumbnail(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A JPEG whose long side is at most `side` pixels, from an RGB image."""
    preview = image.copy()
    preview.thumbnail((side, side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    preview.convert("RGB").save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


class ThumbnailStore:
    """One file per document id in `folder`, named by a hash of the id."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, doc_id: str) -> Path:
        return self.folder / f"{hashlib.sha256(doc_id.encode()).hexdigest()[:40]}.jpg"

    def put(self, doc_id: str, data: bytes) -> None:
        """Write atomically: a reader never sees half a file."""
        target = self.path(doc_id)
        partial = target.with_suffix(".tmp")
        partial.write_bytes(data)
        os.replace(partial, target)

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
