"""The image and video formats memeflow reads: what the client collects from folders, what
the encoder lets Pillow decode, and what it hands to PyAV (FFmpeg) as a video."""

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
    | {".avif", ".heic", ".heif"}
)
# Raster formats Pillow may try, in this order. Anything else (EPS, which runs
# Ghostscript; PSD; exotic formats with weak signatures) is refused as "not an image".
# HEIF (iPhone photos, .heic) comes from pillow-heif, which the decoder registers.
PILLOW_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO", "AVIF", "HEIF")
FORMAT_NAMES = "JPEG, PNG, GIF, WebP, BMP, TIFF, AVIF or HEIC"
# Videos: one document each, with the vectors of a few sampled frames (memeflow.encoder.frames).
VIDEO_SUFFIXES: frozenset[str] = frozenset({".mp4", ".m4v", ".webm", ".mov", ".mkv"})
VIDEO_FORMAT_NAMES = "MP4, WebM, MOV or MKV"
# What `memeflow index` collects from folders.
MEDIA_SUFFIXES: frozenset[str] = IMAGE_SUFFIXES | VIDEO_SUFFIXES
