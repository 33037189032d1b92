"""The read policy tried from the outside: paths out of the roots, hosts not allowed, limits."""

import io
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from PIL import Image

from memeflow.encoder.access import AccessPolicy
from memeflow.encoder.decode import decode_image
from memeflow.params import RequestTooLargeError
from memeflow.uris import ImageLoadError
from tests.conftest import local_http_server


def png(size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root holding one image, beside a secret outside it."""
    inside = tmp_path / "memes"
    inside.mkdir()
    (inside / "ok.png").write_bytes(png())
    (tmp_path / "secret.png").write_bytes(png())
    return inside


def test_no_roots_reads_no_files(root: Path) -> None:
    policy = AccessPolicy()
    for uri in (str(root / "ok.png"), f"file://{root / 'ok.png'}", "/etc/passwd", "file:///etc/passwd"):
        with pytest.raises(ImageLoadError, match="reads no local files") as info:
            policy.read(uri, None)
        assert str(info.value).startswith(f"{uri}: ") and "MEMEFLOW_ROOTS" in str(info.value)


def test_roots_allow_inside_and_refuse_every_way_out(root: Path) -> None:
    policy = AccessPolicy(roots=(root.resolve(),))
    assert policy.read(str(root / "ok.png"), None) == png()
    assert policy.read(f"file://{root / 'ok.png'}", None) == png()
    (root / "link-out.png").symlink_to(root.parent / "secret.png")
    (root / "dir-out").symlink_to("/etc")
    escapes = [
        "/etc/passwd",
        "file:///etc/passwd",
        "file://localhost/etc/passwd",
        f"{root}/../secret.png",
        f"file://{root}/../secret.png",
        f"{root}/../../../../../../etc/passwd",
        str(root / "link-out.png"),  # a symlink inside the root pointing out of it
        str(root / "dir-out" / "passwd"),
        f"{root}-sibling/x.png",  # shares the root's name as a prefix, not its folder
    ]
    for uri in escapes:
        with pytest.raises(ImageLoadError, match="outside the folders") as info:
            policy.read(uri, None)
        assert str(info.value).startswith(f"{uri}: ")


def test_relative_paths_resolve_against_the_service_folder(root: Path, monkeypatch) -> None:
    monkeypatch.chdir(root)
    policy = AccessPolicy(roots=(root.resolve(),))
    assert policy.read("ok.png", None) == png()
    with pytest.raises(ImageLoadError, match="outside the folders"):
        policy.read("../secret.png", None)


def test_bytes_need_no_root() -> None:
    """What the CLI sends: bytes with the file's path as a label, never read by the service."""
    assert AccessPolicy().read("/etc/passwd", png()) == png()


def test_roots_from_env(root: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEMEFLOW_ROOTS", f"{root}{os.pathsep}/nonexistent")
    policy = AccessPolicy.from_env()
    assert policy.read(str(root / "ok.png"), None) == png()
    monkeypatch.setenv("MEMEFLOW_MAX_DOCS", "zero")
    with pytest.raises(ValueError, match="MEMEFLOW_MAX_DOCS='zero' is not a number"):
        AccessPolicy.from_env()


def test_request_and_image_limits(root: Path) -> None:
    policy = AccessPolicy(roots=(root.resolve(),), max_docs=3, max_image_bytes=50, max_pixels=63)
    policy.check_request(3)
    with pytest.raises(RequestTooLargeError, match=r"4 documents, over the limit of 3"):
        policy.check_request(4)
    with pytest.raises(ImageLoadError, match="over the 50-byte limit"):
        policy.read(str(root / "ok.png"), None)
    with pytest.raises(ImageLoadError, match="over the 50-byte limit"):
        policy.read(None, png())
    with pytest.raises(ImageLoadError, match=r"64 pixels is over the .* limit of 63"):
        decode_image(png(), max_pixels=policy.pixel_limit)
    assert AccessPolicy(max_pixels=10**12).pixel_limit == Image.MAX_IMAGE_PIXELS  # only lowers


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        port = self.server.server_address[1]
        if self.path == "/meme.png":
            body = png()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/same-host":
            self.send_response(302)
            self.send_header("Location", "/meme.png")
            self.end_headers()
        elif self.path == "/other-host":  # same machine, another host name
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{port}/meme.png")
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with local_http_server(_Handler) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def base(server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    return server


def test_urls_are_off_by_default(base: str) -> None:
    with pytest.raises(ImageLoadError, match=r"fetches no URLs \(MEMEFLOW_FETCH_HOSTS"):
        AccessPolicy().read(f"{base}/meme.png", None)


def test_only_allowed_hosts_are_fetched(base: str) -> None:
    port = base.rsplit(":", 1)[1]
    for allowed in ("127.0.0.1", f"127.0.0.1:{port}"):
        policy = AccessPolicy(fetch_hosts=frozenset({allowed}))
        assert policy.read(f"{base}/meme.png", None) == png()
        assert policy.read(f"{base}/same-host", None) == png()
    policy = AccessPolicy(fetch_hosts=frozenset({"127.0.0.1:1"}))  # the host, another port
    with pytest.raises(ImageLoadError, match=r"host '127\.0\.0\.1' is not one"):
        policy.read(f"{base}/meme.png", None)
    for trick in (f"http://localhost:{port}/meme.png", f"http://127.0.0.1@localhost:{port}/meme.png"):
        with pytest.raises(ImageLoadError, match="host 'localhost' is not one"):
            AccessPolicy(fetch_hosts=frozenset({"127.0.0.1"})).read(trick, None)


def test_no_redirect_to_another_host(base: str) -> None:
    policy = AccessPolicy(fetch_hosts=frozenset({"127.0.0.1", "localhost"}))
    with pytest.raises(ImageLoadError, match=r"redirects to http://localhost:.*another host"):
        policy.read(f"{base}/other-host", None)
