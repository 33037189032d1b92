"""Which full-size files the gateway serves (memeflow.gateway.files), and how GET
/files/{id} sends them (whole, or one byte range), without a Flow: the indexer's look-up of
stored uris is a dict here, the files are real ones in a temporary folder, and the page's
app is called directly as ASGI (the Flow-level tests are in test_web.py)."""

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from clips import video_bytes
from PIL import Image

from memeflow.encoder.access import AccessPolicy
from memeflow.gateway.files import (
    FileRefused,
    IndexedFiles,
    ServedFile,
    content_disposition,
    media_type,
)
from memeflow.gateway.gateway import STATIC
from memeflow.gateway.page import CHUNK_BYTES, ThumbnailCache, load_assets, search_page
from tests.conftest import MEMES


def png(size: tuple[int, int] = (8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "memes"
    folder.mkdir()
    (folder / "ok.png").write_bytes(png())
    (folder / "notes.png").write_text("not a picture")
    (folder / "big.png").write_bytes(png() + b"\0" * 4096)  # trailing bytes: still a PNG
    (folder / "sub").mkdir()
    (tmp_path / "secret.png").write_bytes(png())
    (folder / "link-out.png").symlink_to(tmp_path / "secret.png")
    (folder / "link-in.png").symlink_to(folder / "ok.png")
    return folder


def files_of(root: Path | None, stored: dict[str, str | None], max_bytes: int = 2**20
             ) -> IndexedFiles:
    async def look_up(ids: list[str]) -> dict[str, str | None]:
        return {i: stored[i] for i in ids if i in stored}

    roots = (Path(root).resolve(),) if root else ()
    return IndexedFiles(look_up, AccessPolicy(roots=roots, max_image_bytes=max_bytes))


def refusal(files: IndexedFiles, doc_id: str) -> tuple[int, str]:
    with pytest.raises(FileRefused) as refused:
        asyncio.run(files.file(doc_id))
    return refused.value.status, refused.value.message


def whole(served: ServedFile) -> bytes:
    try:
        return served.read(0, served.size)
    finally:
        served.close()


def test_a_file_under_the_roots_is_served_with_its_type_and_name(root: Path) -> None:
    files = files_of(root, {"a": str(root / "ok.png"), "b": f"file://{root}/link-in.png"})
    served = asyncio.run(files.file("a"))
    assert (served.media_type, served.name, served.size) == ("image/png", "ok.png", len(png()))
    assert whole(served) == png()
    linked = asyncio.run(files.file("b"))  # a link that stays inside: its own name
    assert whole(linked) == png() and linked.name == "link-in.png"


def test_what_the_policy_would_not_read_is_refused(root: Path) -> None:
    stored = {
        "out": str(root / "link-out.png"),
        "dots": f"{root}/../secret.png",
        "etc": "/etc/passwd",
        "url": "https://example.com/meme.png",
        "bytes": None,
        "folder": str(root / "sub"),
        "gone": str(root / "deleted.png"),
        "text": str(root / "notes.png"),
        "big": str(root / "big.png"),
    }
    files = files_of(root, stored, max_bytes=len(png()) + 10)
    for doc_id in ("out", "dots", "etc"):
        status, message = refusal(files, doc_id)
        assert status == 403 and "outside the folders" in message and "MEMEFLOW_ROOTS" in message
    assert refusal(files, "url") == (
        403, "document 'url' was not indexed from a file on the server (it has no local path)")
    assert refusal(files, "bytes")[0] == 403
    assert refusal(files, "folder") == (403, f"{root / 'sub'}: not a regular file")
    assert refusal(files, "gone") == (404, f"{root / 'deleted.png'}: the file is gone")
    assert refusal(files, "text")[0] == 415
    status, message = refusal(files, "big")
    assert status == 403 and "big.png" in message
    assert refusal(files, "never-indexed") == (404, "no indexed document has id 'never-indexed'")


def test_without_roots_nothing_is_served_and_the_setting_is_named(root: Path) -> None:
    files = files_of(None, {"a": str(root / "ok.png")})
    assert not files.serves_files
    status, message = refusal(files, "a")
    assert status == 403 and "MEMEFLOW_ROOTS is not set" in message
    answers = asyncio.run(files.availability(["a"]))
    assert "MEMEFLOW_ROOTS is not set" in (answers["a"] or "")


def test_availability_answers_each_id_without_reading(root: Path) -> None:
    files = files_of(root, {"a": str(root / "ok.png"), "out": str(root / "link-out.png")})
    answers = asyncio.run(files.availability(["a", "out", "nope"]))
    assert answers["a"] is None
    assert "outside the folders" in (answers["out"] or "")
    assert answers["nope"] == "no indexed document has id 'nope'"
    with pytest.raises(FileRefused, match="at most 100"):
        asyncio.run(files.availability([str(i) for i in range(101)]))


def test_media_types_and_download_names() -> None:
    assert media_type(png()) == "image/png"
    gif = io.BytesIO()
    Image.new("P", (4, 4)).save(gif, "GIF")
    assert media_type(gif.getvalue()) == "image/gif"
    assert media_type(b"GIF89a") is None  # a header and nothing after it
    assert media_type(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None
    assert content_disposition("attachment", "drake.jpg") == (
        "attachment; filename=\"drake.jpg\"; filename*=UTF-8''drake.jpg")
    assert content_disposition("inline", 'ça "va".png') == (
        "inline; filename=\"_a _va_.png\"; filename*=UTF-8''%C3%A7a%20%22va%22.png")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of one short video per container memeflow serves, made from two memes."""
    folder = tmp_path_factory.mktemp("videos")
    for suffix in ("webm", "mkv", "mp4", "mov"):
        (folder / f"clip.{suffix}").write_bytes(video_bytes(
            [(Image.open(MEMES / name / "default.jpg"), 2) for name in ("drake", "doge")],
            f".{suffix}", side=160))  # over 7,000 bytes: the ranges below fall inside
    (folder / "big.webm").write_bytes((folder / "clip.webm").read_bytes() + b"\0" * 2**20)
    (folder / "fake.mp4").write_bytes(b"not a video at all, whatever the name says")
    return folder


def test_videos_are_served_with_their_media_type(videos: Path) -> None:
    kinds = {"webm": "video/webm", "mkv": "video/x-matroska", "mp4": "video/mp4",
             "mov": "video/quicktime"}
    files = files_of(videos, {kind: str(videos / f"clip.{kind}") for kind in kinds}
                     | {"fake": str(videos / "fake.mp4")})
    for kind, expected in kinds.items():
        served = asyncio.run(files.file(kind))
        assert (served.media_type, served.name) == (expected, f"clip.{kind}")
        assert whole(served) == (videos / f"clip.{kind}").read_bytes()
    assert refusal(files, "fake") == (
        415, f"{videos / 'fake.mp4'}: not an image or video in a format memeflow reads")


def http_get(app: Any, path: str, headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, str], list[bytes]]:
    """Status, headers and the body's chunks of a GET, sent to an ASGI app directly."""
    sent: list[dict[str, Any]] = []

    async def exchange() -> None:
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client stays until the answer is sent
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 51001),
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        }
        await app(scope, receive, send)

    asyncio.run(exchange())
    start = sent[0]
    head = {k.decode(): v.decode() for k, v in start["headers"]}
    chunks = [m["body"] for m in sent[1:] if m["type"] == "http.response.body" and m["body"]]
    return start["status"], head, chunks


@pytest.fixture(scope="module")
def app(videos: Path) -> Any:
    async def no_thumbnail(doc_id: str) -> bytes | None:
        return None

    stored = {"clip": str(videos / "clip.webm"), "big": str(videos / "big.webm"),
              "mov": str(videos / "clip.mov"), "out": "/etc/passwd"}
    return search_page(load_assets(STATIC), ThumbnailCache(no_thumbnail),
                       files_of(videos, stored, max_bytes=4 * 2**20))


@pytest.mark.parametrize(("asked", "start", "end"), [
    ("bytes=0-99", 0, 99),  # the first bytes, as a browser asks to read a video's header
    ("bytes=1000-1999", 1000, 1999),  # the middle, after a seek
    ("bytes=-500", -500, None),  # the last 500 bytes (where an MP4 may keep its index)
    ("bytes=4000-", 4000, None),  # from a byte to the end
    ("bytes=7000-999999", 7000, None),  # a last byte past the end is cut at the end
])
def test_one_byte_range_is_sent_as_206(app: Any, videos: Path, asked: str, start: int,
                                       end: int | None) -> None:
    data = (videos / "clip.webm").read_bytes()
    part = data[start:None if end is None else end + 1]
    status, head, chunks = http_get(app, "/files/clip", {"Range": asked})
    first = start % len(data)
    assert status == 206 and b"".join(chunks) == part
    assert head["content-range"] == f"bytes {first}-{first + len(part) - 1}/{len(data)}"
    assert head["content-length"] == str(len(part))
    assert (head["content-type"], head["accept-ranges"]) == ("video/webm", "bytes")


def test_the_whole_file_says_it_takes_ranges(app: Any, videos: Path) -> None:
    status, head, chunks = http_get(app, "/files/mov")
    data = (videos / "clip.mov").read_bytes()
    assert (status, b"".join(chunks), head["content-type"]) == (200, data, "video/quicktime")
    assert head["accept-ranges"] == "bytes" and "content-range" not in head
    assert head["content-disposition"].startswith('inline; filename="clip.mov"')


@pytest.mark.parametrize("asked",
                         ["bytes=0-1,5-6", "bytes=abc", "items=0-5", "bytes=9-3", "bytes=-",
                          "bytes=" + "9" * 5000 + "-",  # more digits than int() takes
                          "bytes=" + " " * 8000 + "5"])
def test_several_or_malformed_ranges_get_the_whole_file(app: Any, videos: Path, asked: str
                                                       ) -> None:
    status, head, chunks = http_get(app, "/files/clip", {"Range": asked})
    assert status == 200 and b"".join(chunks) == (videos / "clip.webm").read_bytes()
    assert "content-range" not in head


@pytest.mark.parametrize("past_the_end", [0, 1])
def test_a_range_past_the_end_is_416_with_the_size(app: Any, videos: Path,
                                                   past_the_end: int) -> None:
    size = (videos / "clip.webm").stat().st_size
    for asked in (f"bytes={size + past_the_end}-", "bytes=-0"):
        status, head, chunks = http_get(app, "/files/clip", {"Range": asked})
        assert (status, head["content-range"]) == (416, f"bytes */{size}")
        assert b"not within the file" in b"".join(chunks)


def test_if_range_sends_a_range_only_of_the_same_file(app: Any, videos: Path) -> None:
    etag = http_get(app, "/files/clip")[1]["etag"]
    same = http_get(app, "/files/clip", {"Range": "bytes=0-9", "If-Range": etag})
    changed = http_get(app, "/files/clip", {"Range": "bytes=0-9", "If-Range": '"older"'})
    assert (same[0], len(b"".join(same[2]))) == (206, 10)
    assert (changed[0], b"".join(changed[2])) == (200, (videos / "clip.webm").read_bytes())


def test_a_large_file_goes_out_in_chunks(app: Any, videos: Path) -> None:
    data = (videos / "big.webm").read_bytes()
    status, _, chunks = http_get(app, "/files/big")
    assert status == 200 and b"".join(chunks) == data
    assert len(chunks) == -(-len(data) // CHUNK_BYTES) and max(map(len, chunks)) == CHUNK_BYTES


def test_a_video_is_held_to_the_video_limit_not_the_image_limit(videos: Path) -> None:
    """What the encoder indexes, the page can play: a video up to MEMEFLOW_MAX_VIDEO_BYTES
    is served although it is over the (smaller) limit for one image, and a QuickTime file
    that starts with its `moov` atom, not `ftyp`, is a video too."""
    clip = (videos / "clip.webm").read_bytes()
    quicktime = videos / "atoms.mov"
    quicktime.write_bytes(b"\0\0\0\x08moov" + b"\0" * 100)
    stored = {"clip": str(videos / "clip.webm"), "qt": str(quicktime)}
    roots = (videos.resolve(),)
    policy = AccessPolicy(roots=roots, max_image_bytes=len(clip) - 1, max_video_bytes=len(clip))

    async def look_up(ids: list[str]) -> dict[str, str | None]:
        return {doc_id: stored[doc_id] for doc_id in ids if doc_id in stored}

    files = IndexedFiles(look_up, policy)
    served = asyncio.run(files.file("clip"))
    assert (served.media_type, whole(served)) == ("video/webm", clip)
    served = asyncio.run(files.file("qt"))
    assert served.media_type == "video/quicktime"
    served.close()
    smaller = IndexedFiles(look_up, AccessPolicy(roots=roots, max_image_bytes=10,
                                                 max_video_bytes=len(clip) - 1))
    assert refusal(smaller, "clip") == (403, f"{videos / 'clip.webm'}: {len(clip)} bytes is "
                                        f"over the {len(clip) - 1}-byte limit for one video "
                                        "(MEMEFLOW_MAX_VIDEO_BYTES)")


def test_ranges_keep_the_routes_guards(app: Any) -> None:
    assert http_get(app, "/files/out", {"Range": "bytes=0-9"})[0] == 403
    assert http_get(app, "/files/nope", {"Range": "bytes=0-9"})[0] == 404
    assert http_get(app, "/files/..%2Fclip", {"Range": "bytes=0-9"})[0] == 400
