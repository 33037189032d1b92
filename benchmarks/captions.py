"""Draw captions into meme templates the way a meme generator does, to test reading them back.

A template's `config.yml` lists its text boxes (anchor and scale as fractions of the image,
a style such as `upper`, a colour) and example caption lines; the caption font is a single
TrueType file. Each line goes into its box, wrapped and shrunk until it fits, with a dark
outline so it stays readable on any picture.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageDraw, ImageFont

IMAGE_NAMES = ("default.jpg", "default.png", "default.gif")


@dataclass(frozen=True)
class Template:
    """One meme template: its image, text boxes and example caption lines."""

    name: str
    image: Path
    boxes: list[dict[str, Any]]
    captions: list[str]


def load_templates(folder: Path) -> list[Template]:
    """Templates with a still default image, at least one text box and one example line."""
    templates = []
    for config in sorted(folder.glob("*/config.yml")):
        image = next((config.parent / n for n in IMAGE_NAMES if (config.parent / n).exists()), None)
        spec = yaml.safe_load(config.read_text()) or {}
        boxes, captions = spec.get("text") or [], [str(c) for c in spec.get("example") or []]
        if image is not None and boxes and any(c.strip() for c in captions):
            templates.append(Template(config.parent.name, image, boxes, captions))
    return templates


def _styled(text: str, style: str | None) -> str:
    return text.upper() if style == "upper" else text.lower() if style == "lower" else text


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """Greedy word wrap to `width` pixels."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(candidate, font=font) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return "\n".join(lines)


def _fit(
    draw: ImageDraw.ImageDraw, text: str, font_path: Path, box: tuple[int, int]
) -> tuple[str, ImageFont.FreeTypeFont]:
    """The largest font size (and wrapping) at which `text` fits into `box`."""
    width, height = box
    for size in range(max(12, height), 11, -2):
        font = ImageFont.truetype(str(font_path), size)
        wrapped = _wrap(draw, text, font, width)
        left, top, right, bottom = draw.multiline_textbbox((0, 0), wrapped, font=font)
        if right - left <= width and bottom - top <= height:
            return wrapped, font
    font = ImageFont.truetype(str(font_path), 12)
    return _wrap(draw, text, font, width), font


def render(template: Template, font_path: Path, max_side: int = 600) -> Image.Image:
    """The template's image with its example lines drawn into its text boxes, in order."""
    with Image.open(template.image) as source:
        image = source.convert("RGB")
    image.thumbnail((max_side, max_side))
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for box, caption in zip(template.boxes, template.captions, strict=False):
        if not caption.strip():
            continue
        box_w, box_h = box.get("scale_x", 1.0) * width, box.get("scale_y", 0.2) * height
        center = (
            box.get("anchor_x", 0.0) * width + box_w / 2,
            box.get("anchor_y", 0.0) * height + box_h / 2,
        )
        margin = (int(box_w * 0.95), int(box_h * 0.9))
        text, font = _fit(draw, _styled(caption, box.get("style")), font_path, margin)
        fill = box.get("color") or "white"
        outline = "black" if fill != "black" else "white"
        stroke = max(1, font.size // 15)
        draw.multiline_text(
            center, text, font=font, fill=fill, anchor="mm", align="center",
            stroke_width=stroke, stroke_fill=outline,
        )
    return image
