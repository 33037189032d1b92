"""Reading and decoding images: every odd or broken file is made here, in the test."""

import base64
import io
import os
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from memeflow.encoder.decode import decode_image, to_rgb
from memeflow.encoder.fetch import read_source
from memeflow.formats import IMAGE_SUFFIXES
from memeflow.uris import ImageLoadError, describe_source, normalise_uri

TEMPLATES = Path(__file__).resolve().parents[2] / "shared" / "data" / "memes" / "templates"

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Incompressible pixels, so a cut file loses image data, not just trailing metadata."""
    channels = len(mode)
    values = np.random.default_rng(0).integers(0, 256, (size[1], size[0], channels), np.uint8)
    return Image.fromarray(values.squeeze(), mode)


def close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def cmyk_profile(lab: tuple[float, float, float]) -> bytes:
    """A minimal ICC v2 CMYK profile that maps every ink mix to one Lab colour.

    Its output is far from what plain CMYK maths gives, so a test can tell whether the
    decoder honoured the embedded profile.
    """

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    text = b"test CMYK\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8 + 3 + 67)
    white = s15(0.9642) + s15(1.0) + s15(0.8249)
    identity = b"".join(s15(1.0 if r == c else 0.0) for r in range(3) for c in range(3))
    ramp = bytes(range(256))
    lab8 = bytes([round(lab[0] * 255 / 100), round(lab[1] + 128), round(lab[2] + 128)])
    lut = b"mft1" + bytes(4) + bytes([4, 3, 2, 0]) + identity + ramp * 4 + lab8 * 16 + ramp * 3
    tags = [(b"desc", desc), (b"wtpt", b"XYZ " + bytes(4) + white), (b"A2B0", lut)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += bytes(-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", offset + len(body))
        + bytes(4)
        + bytes([2, 0x10, 0, 0])
        + b"prtrCMYKLab "
        + bytes(12)
        + b"acsp"
        + bytes(28)
        + white
        + bytes(48)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


# --- names and locations ---------------------------------------------------------------


def test_image_suffixes_are_lower_case_image_types() -> None:
    for suffix in (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".apng",
                   ".avif", ".heic", ".heif"):
        assert suffix in IMAGE_SUFFIXES
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)
    assert not {".txt", ".json", ".yml", ".svg", ".html"} & IMAGE_SUFFIXES


def test_describe_source() -> None:
    assert describe_source("/memes/drake.jpg", None) == "/memes/drake.jpg"
    assert describe_source("https://x.test/a.png", b"ignored") == "https://x.test/a.png"
    assert describe_source(None, b"12345") == "blob (5 bytes)"
    payload = base64.b64encode(bytes(1234)).decode()
    assert describe_source(f"data:image/png;base64,{payload}", None) == (
        "data:image/png;base64,… (1234 bytes)"
    )
    assert describe_source("data:text/plain,a%20b", None) == "data:text/plain,… (3 bytes)"
    long_uri = "data:image/png;base64," + "A" * 1_000_000
    assert len(describe_source(long_uri, None)) < 100
    assert "malformed" in describe_source("data:image/png;base64" + "A" * 500, None)
    assert describe_source(None, None)


def test_normalise_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert normalise_uri("a.jpg") == str(tmp_path / "a.jpg")
    assert normalise_uri("sub/../b.jpg") == str(tmp_path / "b.jpg")
    assert normalise_uri("~/c.jpg") == str(tmp_path / "home" / "c.jpg")
    assert normalise_uri("file:///memes/a%20b.jpg") == "/memes/a b.jpg"
    assert normalise_uri("file://localhost/memes/x.jpg") == "/memes/x.jpg"
    for unchanged in ("data:image/png;base64,AAAA", "http://x.test/a.jpg", "https://x.test/b"):
        assert normalise_uri(unchanged) == unchanged
    with pytest.raises(ImageLoadError, match="otherhost"):
        normalise_uri("file://otherhost/share/x.jpg")
    # A path that is not UTF-8 keeps its bytes as a file:// URL, however it was spelled.
    latin1 = os.fsdecode(b"/memes/caf\xe9.jpg")
    assert normalise_uri(latin1) == "file:///memes/caf%E9.jpg"
    assert normalise_uri("file:///memes/./caf%E9.jpg") == "file:///memes/caf%E9.jpg"
    assert normalise_uri("file:///memes/caf%C3%A9.jpg") == "/memes/café.jpg"  # UTF-8: a path


def test_read_source_reads_a_file_url_whose_path_is_not_utf8(tmp_path: Path) -> None:
    name = tmp_path / os.fsdecode(b"caf\xe9.png")
    name.write_bytes(b"latin-1 bytes")
    uri = normalise_uri(str(name))
    assert uri.startswith("file://") and read_source(uri, None) == b"latin-1 bytes"
    with pytest.raises(ImageLoadError) as info:
        read_source(uri.replace(".png", ".gif"), None)
    assert "caf\\xe9.gif" in str(info.value)  # named as bytes: the message is UTF-8
    str(info.value).encode("utf-8")


# --- reading bytes ---------------------------------------------------------------------


def test_read_source_prefers_blob_and_reads_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "m.png").write_bytes(b"file bytes")
    assert read_source(str(tmp_path / "m.png"), b"blob bytes") == b"blob bytes"
    assert read_source(str(tmp_path / "m.png"), None) == b"file bytes"
    assert read_source((tmp_path / "m.png").as_uri(), None) == b"file bytes"
    monkeypatch.chdir(tmp_path)
    assert read_source("m.png", None) == b"file bytes"
    assert read_source("./sub/../m.png", None) == b"file bytes"


def _missing(tmp: Path) -> Path:
    return tmp / "missing.jpg"


def _missing_parent(tmp: Path) -> Path:
    return tmp / "nodir" / "x.jpg"


def _directory(tmp: Path) -> Path:
    return tmp


def _zero_bytes(tmp: Path) -> Path:
    (tmp / "empty.jpg").write_bytes(b"")
    return tmp / "empty.jpg"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "fifo.jpg")  # opening it would block forever
    return tmp / "fifo.jpg"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_missing, "file not found: {path}"),
        (_missing_parent, "file not found: {path}"),
        (_directory, "{path} is a directory"),
        (_zero_bytes, "empty file (0 bytes): {path}"),
        (_fifo, "{path} is not a regular file"),
    ],
    ids=["missing", "missing-parent", "directory", "zero-bytes", "fifo"],
)
def test_read_source_file_errors_name_the_path(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(ImageLoadError) as info:
        read_source(str(path), None)
    assert message.format(path=path) in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_read_source_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(ImageLoadError, match="permission denied"):
        read_source(str(path), None)


def test_read_source_needs_an_input_and_a_known_scheme() -> None:
    with pytest.raises(ImageLoadError, match="set `uri`"):
        read_source(None, None)
    with pytest.raises(ImageLoadError, match="set `uri`"):
        read_source("", None)
    with pytest.raises(ImageLoadError, match=r"ftp://x.test/a.jpg: unsupported URI scheme 'ftp:'"):
        read_source("ftp://x.test/a.jpg", None)
    with pytest.raises(ImageLoadError, match="empty"):
        read_source(None, b"")


def test_read_source_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(bytes(101))
    assert len(read_source(str(path), None, max_bytes=101)) == 101
    with pytest.raises(ImageLoadError, match=rf"{path}: 101 bytes is over the 100-byte limit"):
        read_source(str(path), None, max_bytes=100)
    with pytest.raises(ImageLoadError, match=r"blob \(101 bytes\).*100-byte limit"):
        read_source(None, bytes(101), max_bytes=100)
    uri = "data:image/png;base64," + base64.b64encode(bytes(101)).decode()
    with pytest.raises(ImageLoadError, match="limit"):
        read_source(uri, None, max_bytes=100)


def test_read_source_refuses_character_devices() -> None:
    """/dev/zero never ends: it must be refused, not read until memory runs out."""
    with pytest.raises(ImageLoadError, match="not a regular file"):
        read_source("/dev/zero", None)


def test_read_source_data_uris() -> None:
    png = encode(Image.new("RGB", (3, 2), RED), "PNG")
    b64 = base64.b64encode(png).decode()
    assert read_source(f"data:image/png;base64,{b64}", None) == png
    assert read_source(f"DATA:image/png;BASE64,{b64}", None) == png
    wrapped = "\n".join(b64[i : i + 20] for i in range(0, len(b64), 20))
    assert read_source(f"data:image/png;base64,{wrapped}", None) == png
    assert read_source(f"data:image/png;base64,{b64.rstrip('=')}", None) == png
    assert read_source("data:;base64," + base64.urlsafe_b64encode(png).decode(), None) == png
    assert read_source("data:image/png;base64," + b64.replace("+", "%2B"), None) == png
    assert read_source("data:text/plain,a%20b%00", None) == b"a b\x00"
    assert decode_image(read_source(f"data:image/png;base64,{b64}", None)).size == (3, 2)


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("data:image/png;base64", "expected 'data:"),
        ("data:image/png;base64,!!!!", "bad base64"),
        ("data:image/png;base64,A", "bad base64"),
        ("data:image/png;base64,", "no data"),
        ("data:image/png,", "no data"),
    ],
)
def test_read_source_malformed_data_uris(uri: str, reason: str) -> None:
    with pytest.raises(ImageLoadError, match=reason) as info:
        read_source(uri, None)
    assert str(info.value).startswith("data:image/png")


# --- http(s) against a local server ----------------------------------------------------

PNG_BODY = encode(Image.new("RGB", (4, 4), BLUE), "PNG")


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/meme.png":
            self._send(200, PNG_BODY)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/meme.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/big":
            self._send(200, bytes(5000))
        elif self.path == "/streamed":  # no Content-Length: the limit must hold while reading
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(bytes(1000))
        elif self.path == "/empty":
            self._send(200, b"")
        elif self.path == "/page":
            self._send(200, b"<!DOCTYPE html><html><body><img src=meme.png></body></html>")
        else:
            self._send(404, b"nope")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def base(server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The local server's URL, never sent through a proxy set in the environment."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    return server


def test_http_reads_an_image(base: str) -> None:
    assert read_source(f"{base}/meme.png", None) == PNG_BODY
    assert read_source(f"{base}/redirect", None) == PNG_BODY
    assert decode_image(read_source(f"{base}/meme.png", None)).getpixel((0, 0)) == BLUE


def test_http_errors(base: str) -> None:
    with pytest.raises(ImageLoadError, match=rf"^{base}/missing.png: HTTP 404"):
        read_source(f"{base}/missing.png", None)
    with pytest.raises(ImageLoadError, match="empty"):
        read_source(f"{base}/empty", None)
    with pytest.raises(ImageLoadError, match="5000 bytes is over the 4096-byte limit"):
        read_source(f"{base}/big", None, max_bytes=4096)
    with pytest.raises(ImageLoadError, match="more than 4096 bytes"):
        read_source(f"{base}/streamed", None, max_bytes=4096)
    assert len(read_source(f"{base}/streamed", None, max_bytes=10_000)) == 10_000


def test_http_connection_refused() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as closed:
        port = closed.server_address[1]  # bound, then closed: nothing listens there
    with pytest.raises(ImageLoadError, match=rf"127.0.0.1:{port}/a.png: cannot fetch"):
        read_source(f"http://127.0.0.1:{port}/a.png", None, timeout=2)


def test_http_html_page_is_explained(base: str) -> None:
    data = read_source(f"{base}/page", None)
    with pytest.raises(ImageLoadError, match="HTML page"):
        decode_image(data, source=f"{base}/page")


# --- decoding: formats and modes -------------------------------------------------------


def test_decode_returns_a_detached_rgb_image() -> None:
    img = decode_image(encode(Image.new("RGB", (30, 20), RED), "PNG"))
    assert img.mode == "RGB"
    assert img.size == (30, 20)
    assert getattr(img, "fp", None) is None
    assert img.getpixel((29, 19)) == RED


def test_decode_real_meme_template() -> None:
    path = TEMPLATES / "drake" / "default.jpg"
    if not path.is_file():
        pytest.skip(f"meme templates not found at {TEMPLATES}")
    with Image.open(path) as original:
        size = original.size
    img = decode_image(path.read_bytes(), source=str(path))
    assert img.mode == "RGB"
    assert min(img.size) >= min(224, *size)
    assert np.asarray(img).std() > 10  # real picture content, not a blank frame


@pytest.mark.parametrize("size", [(1, 1), (10000, 1), (1, 10000)])
def test_decode_extreme_but_valid_sizes(size: tuple[int, int]) -> None:
    img = decode_image(encode(Image.new("RGB", size, RED), "PNG"))
    assert img.size == size
    assert img.getpixel((size[0] - 1, size[1] - 1)) == RED


def test_transparent_palette_png_is_white() -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([*RED, *BLUE] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    decoded = decode_image(encode(img, "PNG", transparency=0))
    assert decoded.getpixel((0, 0)) == WHITE
    assert decoded.getpixel((1, 0)) == BLUE


def test_transparent_gif_is_white() -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([*RED, *BLUE] + [0] * 762)
    img.putpixel((1, 0), 1)
    decoded = decode_image(encode(img, "GIF", transparency=0))
    assert decoded.getpixel((0, 0)) == WHITE
    assert decoded.getpixel((1, 0)) == BLUE


def test_rgba_is_flattened_on_white() -> None:
    img = Image.new("RGBA", (3, 1))
    img.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    decoded = decode_image(encode(img, "PNG"))
    assert decoded.getpixel((0, 0)) == WHITE
    assert decoded.getpixel((1, 0)) == BLUE
    assert close(decoded.getpixel((2, 0)), (127, 127, 127), 2)
    webp = decode_image(encode(img, "WEBP", lossless=True))
    assert webp.getpixel((0, 0)) == WHITE


def test_la_and_rgb_colour_key_are_flattened_on_white() -> None:
    la = Image.new("LA", (2, 1))
    la.putdata([(0, 0), (50, 255)])
    decoded = decode_image(encode(la, "PNG"))
    assert decoded.getpixel((0, 0)) == WHITE
    assert decoded.getpixel((1, 0)) == (50, 50, 50)
    keyed = Image.new("RGB", (2, 1), RED)
    keyed.putpixel((1, 0), BLUE)
    decoded = decode_image(encode(keyed, "PNG", transparency=RED))
    assert decoded.getpixel((0, 0)) == WHITE
    assert decoded.getpixel((1, 0)) == BLUE


def test_greyscale_and_bilevel_become_rgb() -> None:
    assert decode_image(encode(Image.new("L", (4, 4), 77), "PNG")).getpixel((0, 0)) == (77,) * 3
    bilevel = Image.new("1", (4, 4), 0)
    bilevel.putpixel((3, 3), 1)
    decoded = decode_image(encode(bilevel, "PNG"))
    assert decoded.mode == "RGB"
    assert decoded.getpixel((0, 0)) == (0, 0, 0)
    assert decoded.getpixel((3, 3)) == WHITE


def _grey16(values: list[int], mode: str = "I;16") -> Image.Image:
    row = np.array([values], dtype=">u2" if mode == "I;16B" else "<u2")
    return Image.frombytes(mode, (len(values), 1), row.tobytes())


@pytest.mark.parametrize(
    ("img", "fmt"),
    [
        (_grey16([0, 32768, 65535]), "PNG"),
        (_grey16([0, 32768, 65535], "I;16B"), "TIFF"),
        (_grey16([0, 32768, 65535]).convert("I"), "TIFF"),
    ],
    ids=["png-16", "tiff-16-big-endian", "tiff-32-int"],
)
def test_16_bit_greyscale_is_scaled_not_clipped(img: Image.Image, fmt: str) -> None:
    decoded = decode_image(encode(img, fmt))
    assert [decoded.getpixel((x, 0)) for x in range(3)] == [(0,) * 3, (128,) * 3, (255,) * 3]


def test_float_greyscale_is_scaled() -> None:
    values = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    decoded = decode_image(encode(Image.fromarray(values), "TIFF"))
    assert [decoded.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_cmyk_without_profile() -> None:
    cyan = Image.new("CMYK", (8, 8), (255, 0, 0, 0))
    for fmt in ("JPEG", "TIFF"):
        assert close(decode_image(encode(cyan, fmt)).getpixel((4, 4)), (0, 255, 255))


def test_cmyk_uses_the_embedded_icc_profile() -> None:
    icc = cmyk_profile((53.2, 80.1, 67.2))  # every ink mix is red in this profile
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    cyan = Image.new("CMYK", (8, 8), (255, 0, 0, 0))
    r, g, b = decode_image(encode(cyan, "JPEG", icc_profile=icc)).getpixel((4, 4))
    assert r > g + 60 and r > b + 60  # red per the profile, not naive cyan


def test_cmyk_with_broken_profile_falls_back() -> None:
    cyan = Image.new("CMYK", (8, 8), (255, 0, 0, 0))
    decoded = decode_image(encode(cyan, "JPEG", icc_profile=b"not an ICC profile" * 8))
    assert close(decoded.getpixel((4, 4)), (0, 255, 255))


def test_ycbcr_and_lab_become_rgb() -> None:
    ycbcr = Image.new("RGB", (4, 4), RED).convert("YCbCr")
    assert close(decode_image(encode(ycbcr, "TIFF")).getpixel((0, 0)), RED)
    srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    lab_image = ImageCms.applyTransform(
        Image.new("RGB", (4, 4), RED), ImageCms.buildTransform(srgb, lab, "RGB", "LAB")
    )
    data = encode(lab_image, "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "LAB"
    assert close(decode_image(data).getpixel((0, 0)), RED)


def test_in_memory_modes_without_a_file_format() -> None:
    """HSV and premultiplied alpha cannot be saved, but decoders can produce them."""
    assert close(to_rgb(Image.new("RGB", (2, 2), BLUE).convert("HSV")).getpixel((0, 0)), BLUE)
    assert to_rgb(Image.new("La", (1, 1), (90, 0))).getpixel((0, 0)) == WHITE
    assert to_rgb(Image.new("RGBa", (1, 1), (0, 0, 0, 0))).getpixel((0, 0)) == WHITE


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    decoded = decode_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.size == (20, 40)
    assert close(decoded.getpixel((10, 5)), RED, 30)  # the left side is now on top
    assert close(decoded.getpixel((10, 35)), BLUE, 30)


def heic(img: Image.Image, **params: object) -> bytes:
    """A HEIC file as an iPhone writes it (HEVC in HEIF), made by pillow-heif."""
    import pillow_heif

    buffer = io.BytesIO()
    pillow_heif.from_pillow(img).save(buffer, quality=95, **params)
    return buffer.getvalue()


def test_heic_is_decoded() -> None:
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 20, 20))
    data = heic(img)
    assert data[4:12] == b"ftypheic"
    decoded = decode_image(data, source="photo.heic")
    assert decoded.mode == "RGB" and decoded.size == (40, 20)
    assert close(decoded.getpixel((5, 5)), RED) and close(decoded.getpixel((35, 15)), BLUE)


def test_heic_orientation_and_alpha() -> None:
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, as phones do
    upright = decode_image(heic(img, exif=exif.tobytes()))
    assert upright.size == (20, 40) and close(upright.getpixel((10, 5)), RED)
    clear = decode_image(heic(Image.new("RGBA", (16, 16), (255, 0, 0, 0))))
    assert close(clear.getpixel((4, 4)), WHITE)


def test_broken_heic_and_avif_still_works() -> None:
    data = heic(Image.new("RGB", (64, 64), RED))
    with pytest.raises(ImageLoadError, match=r"^photo.heic: .*HEIC"):
        decode_image(data[: len(data) // 2], source="photo.heic")
    avif = decode_image(encode(Image.new("RGB", (16, 16), RED), "AVIF", quality=95))
    assert close(avif.getpixel((8, 8)), RED)


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})],
    ids=["gif", "webp", "apng"],
)
def test_animation_gives_first_frame(fmt: str, params: dict[str, object]) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, BLUE, (0, 255, 0))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **params)
    with Image.open(io.BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 3
    assert decode_image(data).getpixel((4, 4)) == RED


# --- decoding: large JPEGs are decoded at a reduced scale ------------------------------


@pytest.fixture(scope="module")
def photo_4000x3000() -> bytes:
    return encode(Image.new("RGB", (4000, 3000), (30, 120, 200)), "JPEG", quality=80)


def test_large_jpeg_is_drafted_but_keeps_min_side(photo_4000x3000: bytes) -> None:
    img = decode_image(photo_4000x3000)
    assert img.mode == "RGB"
    assert 224 <= min(img.size) < 3000
    assert img.size[0] * 3 == img.size[1] * 4  # aspect ratio kept
    assert close(img.getpixel((10, 10)), (30, 120, 200), 4)


@pytest.mark.parametrize("min_side", [300, 800, 1000, 2999])
def test_draft_never_goes_below_min_side(photo_4000x3000: bytes, min_side: int) -> None:
    assert min(decode_image(photo_4000x3000, min_side=min_side).size) >= min_side


def test_small_jpeg_is_not_shrunk() -> None:
    assert decode_image(encode(Image.new("RGB", (300, 250), RED), "JPEG")).size == (300, 250)


# --- decoding: failures ----------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_over_pixel_limit_is_refused_and_limit_kept() -> None:
    limit = Image.MAX_IMAGE_PIXELS
    bomb = encode(Image.new("1", (10000, 9000), 1), "PNG")  # 90,000,000 pixels, ~22 KB
    with pytest.raises(ImageLoadError) as info:
        decode_image(bomb, source="bomb.png")
    message = str(info.value)
    assert message.startswith("bomb.png: ")
    assert "90000000" in message and str(limit) in message
    assert limit == Image.MAX_IMAGE_PIXELS  # not loosened globally
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # `python -W error` turns Pillow's warning into a raise
        with pytest.raises(ImageLoadError, match=r"^bomb\.png: "):
            decode_image(bomb, source="bomb.png")


def test_far_over_pixel_limit_is_refused() -> None:
    bomb = encode(Image.new("1", (20000, 9000), 1), "PNG")  # over twice the limit
    with pytest.raises(ImageLoadError, match=r"^huge.png: .*180000000 pixels"):
        decode_image(bomb, source="huge.png")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixel_limit_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(ImageLoadError, match=r"10000 pixels.*limit of 5000"):
        decode_image(data)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_limit_holds_across_threads() -> None:
    good = encode(Image.new("RGB", (64, 48), RED), "PNG")
    bomb = encode(Image.new("1", (10000, 9000), 1), "PNG")

    def attempt(data: bytes) -> str:
        try:
            return str(decode_image(data).size)
        except ImageLoadError:
            return "refused"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, [good, bomb] * 16))
    assert results == ["(64, 48)", "refused"] * 16


def test_truncated_jpeg() -> None:
    data = encode(noise((256, 256)), "JPEG", quality=90)
    with pytest.raises(ImageLoadError, match=r"^cut.jpg: truncated or corrupt image"):
        decode_image(data[: len(data) // 2], source="cut.jpg")


def test_truncated_png() -> None:
    data = encode(noise((256, 256)), "PNG")
    with pytest.raises(ImageLoadError, match=r"^cut.png: truncated or corrupt image"):
        decode_image(data[: len(data) // 2], source="cut.png")


def test_corrupt_png_checksum() -> None:
    data = bytearray(encode(noise((64, 64)), "PNG"))
    start = data.index(b"IDAT") + 100
    data[start : start + 50] = bytes(50)
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        decode_image(bytes(data), source="bad.png")


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (b"this is not an image\n", "not an image Pillow can read"),
        (bytes(range(256)) * 4, "not an image Pillow can read"),
        (SVG, "SVG"),
        (b"\xef\xbb\xbf<svg><rect/></svg>", "SVG"),
        (b"<!doctype html><html><title>404</title></html>", "HTML page"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", "not an image Pillow can read"),
        (b"", "empty"),
    ],
    ids=["text", "binary", "svg", "svg-bom", "html", "eps", "zero-bytes"],
)
def test_not_an_image(data: bytes, hint: str) -> None:
    with pytest.raises(ImageLoadError, match=hint) as info:
        decode_image(data, source="meme.jpg")
    assert str(info.value).startswith("meme.jpg: ")
    assert "\n" not in str(info.value)


def test_text_saved_as_jpg_through_read_source(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list: milk, eggs\n")
    with pytest.raises(ImageLoadError, match=rf"^{path}: not an image"):
        decode_image(read_source(str(path), None), source=describe_source(str(path), None))
