"""The image formats memeflow reads: what the client collects from folders and what the
encoder lets Pillow decode."""

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
    | {".avif"}
)
# Raster formats Pillow may try, in this order. Anything else (EPS, which runs
# Ghostscript; PSD; exotic formats with weak signatures) is refused as "not an image".
PILLOW_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO", "AVIF")
FORMAT_NAMES = "JPEG, PNG, GIF, WebP, BMP, TIFF or AVIF"
