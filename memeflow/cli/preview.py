"""Showing search results in the terminal (half-block thumbnails) or in the desktop's viewer.

A terminal cell holds one character; the upper half block "▀" drawn with one colour in
front and another behind shows two pixels, one above the other. That needs a colour
terminal, so previews are drawn only on a TTY that says it has 24-bit or 256 colours.
"""

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from PIL import Image

from memeflow.regular_files import read_regular

UPPER_HALF = "\u2580"
RESET = "\x1b[0m"
PREVIEW_MAX_BYTES = 50 * 2**20  # a larger file is shown as "(no preview)"
TRUECOLOR, PALETTE_256 = "truecolor", "256"


def colour_mode(stream: TextIO, environ: dict[str, str] | None = None) -> str | None:
    """`truecolor`, `256`, or None where a preview would come out as noise."""
    env = os.environ if environ is None else environ
    if not stream.isatty() or env.get("NO_COLOR") or env.get("TERM", "dumb") == "dumb":
        return None
    if env.get("COLORTERM", "").lower() in {"truecolor", "24bit"}:
        return TRUECOLOR
    return PALETTE_256 if "256color" in env.get("TERM", "") else None


def _cube(value: int) -> int:
    return round(value / 255 * 5)


def _sgr(rgb: tuple[int, int, int], mode: str, layer: int) -> str:
    """Select Graphic Rendition: layer 38 is the foreground, 48 the background."""
    if mode == TRUECOLOR:
        return f"\x1b[{layer};2;{rgb[0]};{rgb[1]};{rgb[2]}m"
    r, g, b = (_cube(v) for v in rgb)
    return f"\x1b[{layer};5;{16 + 36 * r + 6 * g + b}m"


def thumbnail(image: Image.Image, columns: int, rows: int, mode: str) -> list[str]:
    """The image fitted into `columns` x `rows` cells, centred; each line `columns` wide."""
    picture = image.convert("RGB")
    picture.thumbnail((columns, rows * 2), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (columns, rows * 2))
    canvas.paste(picture, ((columns - picture.width) // 2, (rows * 2 - picture.height) // 2))
    pixels: Any = canvas.load()  # (r, g, b) per pixel; Pillow's type covers every mode
    lines = []
    for row in range(rows):
        cells = [
            _sgr(pixels[x, 2 * row], mode, 38) + _sgr(pixels[x, 2 * row + 1], mode, 48) + UPPER_HALF
            for x in range(columns)
        ]
        lines.append("".join(cells) + RESET)
    return lines


def side_by_side(files: Sequence[str | None], labels: Sequence[str], mode: str,
                 columns: int = 24, rows: int = 12, gap: int = 2) -> str:
    """Thumbnails of local image files in a row, each with its label underneath; a file
    that cannot be read shows as a blank box that says so."""
    blocks = []
    for file, label in zip(files, labels, strict=True):
        try:
            # Bytes first: a FIFO or device where the file was must not block the preview.
            with Image.open(io.BytesIO(read_regular(file or "", PREVIEW_MAX_BYTES))) as image:
                block = thumbnail(image, columns, rows, mode)
        except (OSError, ValueError):
            block = ["(no preview)"[:columns].center(columns)] + [" " * columns] * (rows - 1)
        blocks.append([*block, label[:columns].ljust(columns)])
    return "\n".join((" " * gap).join(parts) for parts in zip(*blocks, strict=True))


def opener() -> list[str] | None:
    """The desktop's command that opens a file with its default application."""
    if sys.platform == "darwin":
        return ["open"]
    if sys.platform == "win32":
        return ["explorer"]
    found = shutil.which("xdg-open")
    return [found] if found else None


def open_files(files: Sequence[str]) -> None:
    """Opens each file in the desktop's viewer, without waiting for it to close."""
    command = opener()
    if command is None:
        raise OSError("no desktop opener found (xdg-open): open the files yourself")
    for file in files:
        subprocess.Popen([*command, file], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
