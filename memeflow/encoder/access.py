"""Who may make the service read what: local files under configured roots, URLs of allowed
hosts, and how large a request, an image or a video may be.

A search service takes `uri`s from anyone who can reach it. Without a policy an HTTP client
could ask it to read `/etc/passwd` or to fetch from hosts on the service's private network.
So the encoder reads a local path only under `MEMEFLOW_ROOTS` (none by default: the CLI and
the client send image bytes, so nothing else needs paths) and fetches `http(s)` only from
the hosts in `MEMEFLOW_FETCH_HOSTS` (none by default), never following a redirect to
another host. Every refusal is an `ImageLoadError` naming the uri and the setting to change.
"""

import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from memeflow import config
from memeflow.config import (
    DEFAULT_FETCH_TIMEOUT,
    DEFAULT_MAX_DOCS,
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_VIDEO_BYTES,
    FETCH_HOSTS_ENV,
    MAX_IMAGE_BYTES_ENV,
    ROOTS_ENV,
)
from memeflow.encoder.fetch import read_source
from memeflow.formats import looks_like_video
from memeflow.params import check_request_size
from memeflow.uris import ImageLoadError, describe_source, is_fetched, is_local, local_path


def _host_key(host: str | None, port: int | None) -> tuple[str, int | None]:
    return (host or "").lower().rstrip("."), port


@dataclass(frozen=True)
class AccessPolicy:
    """What the encoder may read for a document that names its image by `uri`.

    roots: real (symlink-free) folders under which local files may be read.
    fetch_hosts: `host` or `host:port` entries that http(s) URLs may name.
    """

    roots: tuple[Path, ...] = ()
    fetch_hosts: frozenset[str] = field(default_factory=frozenset)
    fetch_timeout: float = DEFAULT_FETCH_TIMEOUT
    max_docs: int = DEFAULT_MAX_DOCS
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_video_bytes: int = DEFAULT_MAX_VIDEO_BYTES  # a video may be larger than an image
    max_pixels: int | None = None  # None: Pillow's decompression-bomb limit

    @classmethod
    def from_env(cls) -> "AccessPolicy":
        """The policy from MEMEFLOW_* variables; unset ones keep the safe defaults."""
        return cls(
            roots=config.read_roots(),
            fetch_hosts=config.fetch_hosts(),
            fetch_timeout=config.fetch_timeout(),
            max_docs=config.max_docs(),
            max_image_bytes=config.max_image_bytes(),
            max_video_bytes=config.max_video_bytes(),
            max_pixels=config.max_pixels(),
        )

    @property
    def pixel_limit(self) -> int | None:
        """The lower of our limit and Pillow's: Pillow refuses past twice its own anyway."""
        pillow = Image.MAX_IMAGE_PIXELS
        if self.max_pixels is None or pillow is None:
            return self.max_pixels or pillow
        return min(self.max_pixels, pillow)

    def check_request(self, count: int) -> None:
        """Refuse a request of more than `max_docs` documents (`RequestTooLargeError`)."""
        check_request_size(count, self.max_docs)

    def check_path(self, uri: str) -> str:
        """The real path of a local `uri` inside a root; refuses `../` and symlinks out."""
        path = local_path(uri) or uri
        if not self.roots:
            raise ImageLoadError(
                f"{uri}: the service reads no local files ({ROOTS_ENV} is not set); send "
                "the image bytes (blob, or a data: URI over HTTP) or set it on the server"
            )
        real = Path(os.path.realpath(path))
        if not any(real == root or root in real.parents for root in self.roots):
            raise ImageLoadError(
                f"{uri}: outside the folders the service may read ({ROOTS_ENV}); send the "
                "image bytes instead"
            )
        return str(real)

    def check_url(self, url: str) -> None:
        """Refuses URLs unless fetching is on and the URL's host is allowed."""
        if not self.fetch_hosts:
            raise ImageLoadError(
                f"{url}: the service fetches no URLs ({FETCH_HOSTS_ENV} is not set); send "
                "the image bytes or set it on the server to the hosts it may fetch from"
            )
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise ImageLoadError(f"{url}: malformed port in URL") from None
        host, _ = _host_key(parts.hostname, port)
        if host not in self.fetch_hosts and f"{host}:{port}" not in self.fetch_hosts:
            raise ImageLoadError(
                f"{url}: host {host!r} is not one the service may fetch from ({FETCH_HOSTS_ENV})"
            )

    @staticmethod
    def _same_host(url: str) -> Callable[[str], None]:
        """A redirect check: the service follows redirects only within the host it asked."""
        origin = urllib.parse.urlsplit(url)

        def check(target: str) -> None:
            moved = urllib.parse.urlsplit(target)
            if not is_fetched(target) or _host_key(
                moved.hostname, moved.port
            ) != _host_key(origin.hostname, origin.port):
                raise ImageLoadError(
                    f"{url}: redirects to {target}, another host; the service follows "
                    "redirects only within the host it was given"
                )

        return check

    def read(self, uri: str | None, blob: bytes | None) -> bytes:
        """A document's image or video bytes, if this policy lets the service read them:
        up to `max_video_bytes` for a video, `max_image_bytes` for anything else."""
        data = self._read(uri, blob, max(self.max_image_bytes, self.max_video_bytes))
        if len(data) > self.max_image_bytes and not looks_like_video(data):
            raise ImageLoadError(
                f"{describe_source(uri, blob)}: {len(data)} bytes is over the "
                f"{self.max_image_bytes}-byte limit for one image ({MAX_IMAGE_BYTES_ENV})"
            )
        return data

    def _read(self, uri: str | None, blob: bytes | None, max_bytes: int) -> bytes:
        if blob is None and uri:
            if is_fetched(uri):
                self.check_url(uri)
                return read_source(
                    uri,
                    None,
                    max_bytes=max_bytes,
                    timeout=self.fetch_timeout,
                    redirect_check=self._same_host(uri),
                )
            if is_local(uri):
                return read_source(self.check_path(uri), None, max_bytes=max_bytes)
        return read_source(uri, blob, max_bytes=max_bytes)
