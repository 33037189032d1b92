"""Which full-size files the gateway serves (memeflow.gateway.files), without a Flow: the
indexer's look-up of stored uris is a dict here, the files are real ones in a temporary
folder (the Flow-level tests are in test_web.py)."""

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image

from memeflow.encoder.access import AccessPolicy
from memeflow.gateway.files import FileRefused, IndexedFiles, content_disposition, media_type


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


def test_a_file_under_the_roots_is_served_with_its_type_and_name(root: Path) -> None:
    files = files_of(root, {"a": str(root / "ok.png"), "b": f"file://{root}/link-in.png"})
    served = asyncio.run(files.file("a"))
    assert (served.body, served.media_type, served.name) == (png(), "image/png", "ok.png")
    linked = asyncio.run(files.file("b"))  # a link that stays inside: its own name
    assert linked.body == png() and linked.name == "link-in.png"


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
