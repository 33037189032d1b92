"""A small JPEG preview of each indexed image, made from the image the encoder has already
decoded, so the original is read once. The indexer keeps it; the gateway serves it."""

import io

from PIL import Image

THUMBNAIL_SIDE = 256  # long side in pixels: sharp in a grid cell, a few kB each
THUMBNAIL_QUALITY = 80


def make_thumbnail(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A JPEG whose long side is at most `side` pixels, from an RGB image."""
    preview = image.copy()
    preview.thumbnail((side, side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    preview.convert("RGB").save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()
