"""Terminal thumbnails: drawn only where they render, and the right size."""

import io

from PIL import Image

from memeflow.cli.preview import PALETTE_256, TRUECOLOR, colour_mode, side_by_side, thumbnail


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_mode_follows_the_terminal() -> None:
    assert colour_mode(io.StringIO(), {"COLORTERM": "truecolor", "TERM": "xterm"}) is None  # pipe
    tty = FakeTerminal()
    assert colour_mode(tty, {"COLORTERM": "truecolor", "TERM": "xterm"}) == TRUECOLOR
    assert colour_mode(tty, {"TERM": "xterm-256color"}) == PALETTE_256
    assert colour_mode(tty, {"TERM": "xterm"}) is None
    assert colour_mode(tty, {"TERM": "dumb", "COLORTERM": "truecolor"}) is None
    assert colour_mode(tty, {"TERM": "xterm-256color", "NO_COLOR": "1"}) is None


def test_thumbnail_is_two_pixels_per_cell_in_the_image_colours() -> None:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    lines = thumbnail(image, columns=10, rows=5, mode=TRUECOLOR)
    assert len(lines) == 5
    assert all(line.count("\u2580") == 10 for line in lines)
    # 40x20 fits 10x5 pixels: rows 0-1 and 8-9 of the 10 are black padding, the middle red
    assert "\x1b[38;2;255;0;0m" in lines[2] and "\x1b[38;2;255;0;0m" not in lines[0]
    assert "\x1b[38;5;196m" in thumbnail(image, 10, 5, PALETTE_256)[2]  # red in the 6x6x6 cube


def test_side_by_side_labels_each_and_marks_unreadable_files(tmp_path) -> None:
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "a.png")
    text = side_by_side([str(tmp_path / "a.png"), str(tmp_path / "gone.png")],
                        ["1. a", "2. gone, cut"], TRUECOLOR, columns=6, rows=3)
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].endswith("  (no pr") and lines[1].endswith("\x1b[0m" + " " * 8)
    assert lines[3] == "1. a    2. gon"  # every label as wide as its picture
