"""Decoding image bytes into RGB for CLIP, whatever mode, orientation or shape they have.

Every failure becomes an `ImageLoadError` whose message names the input and the reason,
so one bad meme is reported on its document instead of failing a whole request. The
decoder runs in worker threads: it changes no Pillow globals (the decompression-bomb
limit and `LOAD_TRUNCATED_IMAGES` stay as they are) and installs no warning filters.
"""

import functools
import io
import logging
import struct

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from memeflow.formats import FORMAT_NAMES, PILLOW_FORMATS
from memeflow.uris import ImageLoadError

logger = logging.getLogger(__name__)

CLIP_SIDE = 224  # the side of CLIP's input square: decoding finer than that is waste

# What Pillow raises for broken files: a truncated stream is an OSError, a bad header a
# SyntaxError, a short field a struct.error, an early end an EOFError.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError)

_UNSIGNED_16 = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


@functools.cache
def _formats() -> tuple[str, ...]:
    """The wanted formats this Pillow build has: `Image.open` fails on unknown names.

    HEIF/HEIC is read by pillow-heif's plugin, registered here once (it adds an opener
    and changes no other Pillow setting); without the package HEIC is "not an image".
    """
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        logger.warning("pillow-heif is not installed: HEIC/HEIF images cannot be read")
    else:
        register_heif_opener()
    Image.init()
    return tuple(name for name in PILLOW_FORMATS if name in Image.OPEN)


def readable_formats() -> tuple[str, ...]:
    """Pillow's names of the formats memeflow reads that this installation can open."""
    return _formats()


def _not_an_image(data: bytes, source: str) -> ImageLoadError:
    """Name the usual suspects (SVG, an HTML page for a URL) so users know what to fix."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    hint = ""
    if b"<svg" in head or (head.startswith(b"<?xml") and b"<svg" in data[:8192].lower()):
        hint = ": this is an SVG (vector) file; convert it to PNG or JPEG"
    elif head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        hint = ": this is an HTML page; link the image itself, not the page showing it"
    elif not data:
        hint = ": no data (0 bytes)"
    return ImageLoadError(f"{source}: not an image Pillow can read ({FORMAT_NAMES}){hint}")


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit and float greyscale to 0..255; `convert('L')` would clip."""
    values = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low = float(values.min()) if values.size else 0.0
    high = float(values.max()) if values.size else 0.0
    if img.mode in _UNSIGNED_16:
        scale = 65535.0
    elif img.mode == "F" and low >= 0.0 and high <= 1.0:
        scale = 1.0  # float images are usually 0..1
    elif low >= 0.0 and high <= 255.0:
        scale = 255.0
    elif low >= 0.0 and high <= 65535.0:
        scale = 65535.0  # 'I' from a 16-bit file
    else:
        values, scale = values - low, (high - low) or 1.0
    pixels = np.clip(np.rint(values * (255.0 / scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    """Use the embedded ICC profile when there is one: naive CMYK maths shifts colours."""
    icc = img.info.get("icc_profile")
    if icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                img, profile, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
            logger.debug("ignoring unusable CMYK ICC profile: %s", exc)
    return img.convert("RGB")


def _flatten(img: Image.Image) -> Image.Image:
    """Transparent pixels become white, as a meme shows on a page, not black or noise."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """An RGB image from any mode Pillow decodes to."""
    mode = img.mode
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    if mode in _UNSIGNED_16 or mode in ("I", "F") or mode.startswith("I;"):
        return _to_8bit(img).convert("RGB")
    if mode == "La":
        img, mode = img.convert("LA"), "LA"  # premultiplied; Pillow has no La -> RGBA
    if mode in _ALPHA_MODES or "transparency" in img.info:
        return _flatten(img)
    if mode == "RGB":
        return img
    return img.convert("RGB")


def _orient(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation (phone photos); a broken EXIF block is ignored, not fatal."""
    try:
        return ImageOps.exif_transpose(img)
    except (*DECODE_ERRORS, KeyError, TypeError) as exc:
        logger.debug("ignoring unreadable EXIF orientation: %s", exc)
        return img.copy()


def decode_image(
    data: bytes, *, source: str = "image", min_side: int = CLIP_SIDE, max_pixels: int | None = None
) -> Image.Image:
    """Decode bytes into an RGB PIL image ready for CLIP preprocessing.

    The first frame of an animation is used; a JPEG is decoded at a reduced scale when
    that keeps its shorter side >= `min_side` (CLIP shrinks it to 224 anyway). Images of
    more than `max_pixels` (default: Pillow's decompression-bomb limit) are refused.
    """
    if not data:
        raise ImageLoadError(f"{source}: empty image data (0 bytes)")
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with Image.open(io.BytesIO(data), formats=_formats()) as img:
            pixels = img.width * img.height
            if limit is not None and pixels > limit:
                raise ImageLoadError(
                    f"{source}: {img.width}x{img.height} = {pixels} pixels is over the "
                    f"decompression-bomb limit of {limit} pixels; scale the image down"
                )
            if min_side > 0:
                img.draft("RGB", (min_side, min_side))  # JPEG only: 1/2, 1/4, 1/8 scale
            img.load()
            oriented = _orient(img)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise _not_an_image(data, source) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{source}: image too large to decode safely ({exc})") from None
    except DECODE_ERRORS as exc:
        raise ImageLoadError(f"{source}: truncated or corrupt image ({exc})") from None
    try:
        return to_rgb(oriented)
    except (ValueError, OSError) as exc:
        raise ImageLoadError(
            f"{source}: cannot convert a {oriented.mode} image to RGB ({exc})"
        ) from None


def central_crop(img: Image.Image, max_ratio: float = 4.0) -> Image.Image:
    """The centre of a very long or tall image, at most `max_ratio` times its short side.

    CLIP scales the short side to 224 and keeps the central square; on a 10000x1 strip that
    first scaling makes a 2,240,000x224 image (about a minute and 6 GB). Cropping the long
    side beforehand keeps that central square and costs nothing.
    """
    width, height = img.size
    short, long_side = min(width, height), max(width, height)
    keep = max(1, round(short * max_ratio))
    if long_side <= keep:
        return img
    start = (long_side - keep) // 2
    box = (start, 0, start + keep, height) if width > height else (0, start, width, start + keep)
    return img.crop(box)
