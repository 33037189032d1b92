"""The image formats memeflow reads: what the client collects from folders and what the
encoder lets Pillow decode."""

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
    | {".avif", ".heic", ".heif"}
)
# Raster formats Pillow may try, in this order. Anything else (EPS, which runs
# Ghostscript; PSD; exotic formats with weak signatures) is refused as "not an image".
# HEIF (iPhone photos, .heic) comes from pillow-heif, which the decoder registers.
PILLOW_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO", "AVIF", "HEIF")
FORMAT_NAMES = "JPEG, PNG, GIF, WebP, BMP, TIFF, AVIF or HEIC"
