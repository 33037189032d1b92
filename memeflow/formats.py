"""The image and video formats memeflow reads: what the client collects from folders, what
the encoder lets Pillow decode, and what it hands to PyAV (FFmpeg) as a video (by its
bytes: `looks_like_video`)."""

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

EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # Matroska and WebM
# ISO base media files (MP4, MOV) are AVIF and HEIC images too: these brands are images.
IMAGE_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc",
                          b"hevx", b"mif1", b"msf1", b"mif2"})
QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def looks_like_video(data: bytes) -> bool:
    """Whether `data` starts as a Matroska/WebM file or an MP4/MOV file that is no AVIF or
    HEIC image (by its `ftyp` brands), or a QuickTime file without `ftyp`."""
    if data.startswith(EBML_MAGIC):
        return True
    box = data[4:8]
    if box == b"ftyp":
        size = int.from_bytes(data[:4], "big")
        brands = data[8:12], *(data[i : i + 4] for i in range(16, min(size, 64), 4))
        return not any(brand in IMAGE_BRANDS for brand in brands)
    return box in QUICKTIME_ATOMS
