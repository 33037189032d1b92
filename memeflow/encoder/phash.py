"""A perceptual hash per indexed image, kept in its `phash` tag, by which the indexer
collapses near-duplicates (`memeflow.indexer.search.collapse`)."""

from PIL import Image


def perceptual_hash(image: Image.Image) -> str:
    """The image's 64-bit perceptual hash as 16 hex digits (stored in the `phash` tag)."""
    import imagehash  # here: it loads scipy, which only the encoder needs

    return str(imagehash.phash(image))
