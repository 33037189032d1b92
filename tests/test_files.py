"""Finding images and describing them with tags: odd names, hidden and ignored files,
links, and files that cannot be read."""

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from memeflow.client.files import file_id, file_tags, find_images, scan_paths, sha256_file
from memeflow.documents import MemeDoc
from memeflow.uris import local_path, normalise_uri, path_uri, printable

LATIN1 = os.fsdecode(b"caf\xe9")  # "café" in Latin-1: not UTF-8, as on an old disk


def make_tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "a" / "one.jpg")
    Image.new("RGB", (4, 4)).save(root / "a" / "b" / "two.PNG")
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / "b" / "meta.yml").write_text(
        "name: Two Buttons\nkeywords: [choice, sweat]\ntext: [{anchor_x: 0.1}]\n")
    (root / "a" / "b" / "two.json").write_text(json.dumps({"caption": "hard choice"}))


def test_find_images_recurses_and_filters_by_type(tmp_path) -> None:
    make_tree(tmp_path)
    found = list(find_images([tmp_path]))
    assert {p.name for p in found} == {"one.jpg", "two.PNG"}  # any case of suffix, no .txt
    assert found == sorted(found)
    assert all(p.is_absolute() for p in found)


def test_named_files_are_kept_even_if_missing(tmp_path) -> None:
    """A missing file is reported as failed by the indexer, not silently dropped."""
    assert list(find_images([tmp_path / "gone.jpg"])) == [tmp_path / "gone.jpg"]


def test_tags_hold_file_folder_and_flat_sidecar_metadata(tmp_path) -> None:
    make_tree(tmp_path)
    tags = file_tags(tmp_path / "a" / "b" / "two.PNG")
    assert tags == {"file": "two.PNG", "folder": "b", "name": "Two Buttons",
                    "keywords": ["choice", "sweat"], "caption": "hard choice"}
    assert file_tags(tmp_path / "a" / "one.jpg") == {"file": "one.jpg", "folder": "a"}


def test_file_id_is_stable_per_path(tmp_path) -> None:
    assert file_id(tmp_path / "x.jpg") == file_id(tmp_path / "x.jpg")
    assert file_id(tmp_path / "x.jpg") != file_id(tmp_path / "y.jpg")


def image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path, "PNG")
    return path


# --- names that are not UTF-8 -------------------------------------------------------------


def test_names_that_are_not_utf8_are_found_and_travel_as_file_uris(tmp_path) -> None:
    photo = image(tmp_path / LATIN1 / f"{LATIN1}.png")  # in a folder not UTF-8 either
    plain = image(tmp_path / "plain" / "ok.png")
    assert list(find_images([tmp_path])) == [photo, plain]

    uri = path_uri(photo)
    assert uri.isascii() and uri.startswith("file:///") and "caf%E9/caf%E9.png" in uri
    assert local_path(uri) == str(photo) and os.path.isfile(local_path(uri))
    assert normalise_uri(uri) == uri  # the encoder keeps the client's uri as sent
    assert path_uri(plain) == str(plain)  # ordinary names keep their plain path (and id)
    assert file_id(photo) == file_id(Path(str(photo))) != file_id(plain)

    tags = file_tags(photo)
    assert tags["file"] == "caf\\xe9.png" and tags["folder"] == "caf\\xe9"
    doc = MemeDoc(id=file_id(photo), uri=uri, tags={**tags, "sha256": sha256_file(photo)})
    assert MemeDoc.from_protobuf(doc.to_protobuf()).uri == uri  # protobuf takes it
    assert json.loads(json.dumps({"uri": uri}))["uri"] == uri


def test_printable_shows_odd_bytes_and_keeps_unicode() -> None:
    assert printable(f"/m/{LATIN1}.jpg") == "/m/caf\\xe9.jpg"
    assert printable("/m/café 😀.jpg") == "/m/café 😀.jpg"
    assert printable("\ud800").isascii()  # a lone surrogate no OS call made
    printable(f"/m/{LATIN1}.jpg").encode("utf-8")  # a strict stream takes it


def test_sidecars_with_odd_strings_or_bytes_give_clean_tags(tmp_path) -> None:
    photo = image(tmp_path / "a.png")
    (tmp_path / "a.json").write_text('{"caption": "x\\udce9", "n": 1}')
    (tmp_path / "meta.yml").write_bytes(b"name: \xff\xfe not utf-8\n")  # ignored
    tags = file_tags(photo)
    assert tags["caption"] == "x\\xe9" and tags["n"] == 1 and "name" not in tags


# --- what is skipped ---------------------------------------------------------------------


HIDDEN = [".hidden/a.png", ".b.png", "._c.png", "@eaDir/d.png", "#recycle/e.png",
          "$RECYCLE.BIN/f.png", "System Volume Information/g.png", ".Trashes/h.png",
          "sub/.git/i.png"]


def test_hidden_and_system_files_are_skipped_unless_asked(tmp_path) -> None:
    for name in [*HIDDEN, "sub/keep.png"]:
        image(tmp_path / name)
    scan = scan_paths([tmp_path])
    assert scan.files == [tmp_path / "sub" / "keep.png"] and scan.failed == []
    skipped = [".hidden", ".b.png", "._c.png", "@eaDir", "#recycle", "$RECYCLE.BIN",
               "System Volume Information", ".Trashes", "sub/.git"]  # a folder counts once
    assert sorted(scan.skipped) == sorted(tmp_path / name for name in skipped)
    everything = scan_paths([tmp_path], include_hidden=True)
    assert len(everything.files) == len(HIDDEN) + 1 and everything.skipped == []
    named = tmp_path / "._c.png"  # a file the user names is never skipped
    assert scan_paths([named]).files == [named]


def test_memeflowignore_excludes_relative_to_its_folder(tmp_path) -> None:
    for name in ["a.png", "b.jpg", "keep/a.png", "keep/b.jpg", "keep/drafts/c.jpg",
                 "other/drafts/d.jpg", "other/local.jpg", "local.jpg"]:
        image(tmp_path / name)
    (tmp_path / ".memeflowignore").write_text("*.png\n# a comment\n/local.jpg\n")
    (tmp_path / "keep" / ".memeflowignore").write_text("!a.png\ndrafts/\n")
    scan = scan_paths([tmp_path])
    found = {str(p.relative_to(tmp_path)) for p in scan.files}
    assert found == {"b.jpg", "keep/a.png", "keep/b.jpg", "other/drafts/d.jpg", "other/local.jpg"}
    assert {str(p.relative_to(tmp_path)) for p in scan.skipped} == {
        "a.png", "local.jpg", "keep/drafts"}
    assert scan_paths([tmp_path / "a.png"]).files == [tmp_path / "a.png"]  # named: kept


# --- links -------------------------------------------------------------------------------


def test_paths_are_kept_as_reached_through_links(tmp_path) -> None:
    real = image(tmp_path / "real" / "memes" / "a.png").parent
    (tmp_path / "link").symlink_to(real)
    assert list(find_images([tmp_path / "link"])) == [tmp_path / "link" / "a.png"]
    assert list(find_images([tmp_path / "link" / "a.png"])) == [tmp_path / "link" / "a.png"]


def test_link_loops_and_folders_reached_twice_are_walked_once(tmp_path) -> None:
    image(tmp_path / "a" / "one.png")
    (tmp_path / "a" / "loop").symlink_to(tmp_path)  # back to the top
    (tmp_path / "b").symlink_to(tmp_path / "a")  # a second way into a/
    (tmp_path / "a" / "same.png").symlink_to(tmp_path / "a" / "one.png")  # the same file
    scan = scan_paths([tmp_path, tmp_path / "a"])
    assert scan.files == [tmp_path / "a" / "one.png"]
    assert set(scan.skipped) == {tmp_path / "a", tmp_path / "a" / "loop", tmp_path / "b",
                                 tmp_path / "a" / "same.png"}


# --- files that cannot be read fail alone ---------------------------------------------------


def test_unreadable_entries_fail_alone_with_their_reason(tmp_path, monkeypatch) -> None:
    good = image(tmp_path / "good.png")
    (tmp_path / "broken.png").symlink_to(tmp_path / "gone.png")
    os.mkfifo(tmp_path / "pipe.jpg")  # reading it would block for ever
    image(tmp_path / "locked" / "x.png")
    real_scandir = os.scandir

    def scandir(path):  # root may read anything: a refusal is simulated
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    scan = scan_paths([tmp_path])
    assert scan.files == [good]
    assert dict(scan.failed) == {
        tmp_path / "broken.png": "broken link: its target is gone",
        tmp_path / "locked": "cannot list folder: Permission denied",
        tmp_path / "pipe.jpg": "not a regular file: a named pipe (FIFO)"}


def test_unreadable_sidecars_and_ignore_files_do_not_stop_the_walk(tmp_path, monkeypatch
                                                                   ) -> None:
    photo = image(tmp_path / "a.png")
    (tmp_path / "a.json").mkdir()  # a folder where a sidecar would be
    (tmp_path / ".memeflowignore").mkdir()
    assert file_tags(photo) == {"file": "a.png", "folder": tmp_path.name}
    scan = scan_paths([tmp_path])
    assert scan.files == [photo]
    assert [(p.name, r.startswith("cannot read ignore file")) for p, r in scan.failed] == [
        (".memeflowignore", True)]


@pytest.mark.parametrize("name", ["caf\xe9.jpg", "x.jpg"])
def test_path_uri_is_absolute_and_keeps_links(tmp_path, monkeypatch, name) -> None:
    monkeypatch.chdir(tmp_path)
    assert local_path(path_uri(name)) == str(tmp_path / name)


def test_a_file_over_the_size_limits_fails_unread_and_the_rest_is_sent(tmp_path, monkeypatch
                                                                       ) -> None:
    """A file larger than the service would take (the larger of its image and video limits,
    as set here) fails with a reason naming the settings, before it is read into memory;
    the other files of the batch go on."""
    from memeflow.client.sync import IndexReport, _index_batch

    monkeypatch.setenv("MEMEFLOW_MAX_IMAGE_BYTES", "1000")
    monkeypatch.setenv("MEMEFLOW_MAX_VIDEO_BYTES", "4000")
    film = tmp_path / "film.mp4"
    with film.open("wb") as file:
        file.truncate(3 * 2**30)  # 3 GB, sparse: reading it would take that much memory
    small = image(tmp_path / "small.png")
    sent: list[dict] = []

    class Service:
        def image_fields(self, data: bytes, uri: str | None = None) -> dict:
            return {"uri": uri}

        def post(self, endpoint: str, docs: list[dict], **parameters: object) -> list[dict]:
            sent.extend(docs)
            return [{**doc, "error": None} for doc in docs]

    report = IndexReport()
    _index_batch(Service(), [film, small], {film: "0" * 64, small: "1" * 64}, report)
    assert [doc["uri"] for doc in sent] == [path_uri(small)]
    assert report.failed == [(path_uri(film), (
        f"{3 * 2**30} bytes is over the 4000-byte limit for one file (MEMEFLOW_MAX_VIDEO_BYTES "
        "for videos, MEMEFLOW_MAX_IMAGE_BYTES for images): raise it, or leave the file out"))]
