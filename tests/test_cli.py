"""The `memeflow` command as scripts and people use it: moved files, pruning, status,
JSON output, previews, and errors that name the input and the fix.

One service for the module; the tests build on each other in file order.
"""

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from memeflow.client.files import file_id
from memeflow.uris import local_path, path_uri
from tests.conftest import MEMES, free_port

pytestmark = pytest.mark.flow

FOLDERS = ("drake", "aag", "ackbar", "afraid")


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """A few meme folders in a temporary place of their own, free to move and delete."""
    root = tmp_path_factory.mktemp("library") / "memes"
    for name in FOLDERS:
        shutil.copytree(MEMES / name, root / name)
    return root


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in {".jpg", ".png", ".gif"})


@pytest.fixture(scope="module")
def client(service):
    """For the checks around the command under test: it answers without a process start."""
    from memeflow.client import MemeClient

    return MemeClient(service.env["MEMEFLOW_HOST"])


def run_json(service, *args: str, code: int = 0):
    run = service.cli(*args, "--json")
    assert run.returncode == code, run.stderr
    return json.loads(run.stdout)


def test_moved_folder_is_recognised_not_encoded(service, client, library) -> None:
    files = images_in(library)
    first = run_json(service, "index", str(library))
    assert first["encoded"] == len(files) and first["failed"] == []

    moved = library.with_name("moved-memes")
    library.rename(moved)
    run = service.cli("index", str(moved))
    assert run.returncode == 0, run.stderr
    summary = f"0 encoded, {len(files)} moved, 0 copied, 0 unchanged, 0 failed"
    assert run.stdout.strip().splitlines()[-1] == summary
    assert client.count() == len(files)  # the old entries are gone

    probe = moved / "drake" / "default.jpg"
    hits = run_json(service, "search", "--image", str(probe), "-k", "3")
    assert hits[0]["uri"] == str(probe) and hits[0]["score"] > 0.99
    assert client.thumbnails([file_id(probe)])  # the search page's preview moved along
    text_hits = client.search_text("a frog", top_k=len(files))
    assert {h["uri"] for h in text_hits} == {str(moved / f.relative_to(library)) for f in files}
    moved.rename(library)  # back, for the next tests
    again = client.index_paths([library])
    assert (len(again.encoded), len(again.moved)) == (0, len(files))


def test_a_copy_reuses_the_stored_vector(service, client, library) -> None:
    original = library / "ackbar" / "default.jpg"
    shutil.copy(original, library / "ackbar" / "copy.jpg")
    report = run_json(service, "index", str(library))
    assert (report["encoded"], report["moved"], report["copied"]) == (0, 0, 1)
    hits = client.search_image(original, top_k=2)
    assert {h["uri"] for h in hits} == {str(original), str(library / "ackbar" / "copy.jpg")}


def test_prune_removes_only_documents_whose_files_are_gone(service, client, library) -> None:
    before = client.count()
    (library / "ackbar" / "copy.jpg").unlink()
    gone_folder = library / "afraid"
    gone = len(images_in(gone_folder))
    shutil.rmtree(gone_folder)
    report = run_json(service, "index", "--prune", str(library))
    assert report["pruned"] == 1 + gone and report["encoded"] == 0
    assert client.count() == before - 1 - gone
    uris = {h["uri"] for h in client.search_text("x", top_k=100)}
    assert not any(uri.startswith(str(gone_folder)) for uri in uris)
    assert str(library / "drake" / "default.jpg") in uris

    # A folder that is gone altogether: nothing to index, its documents pruned, no error.
    shutil.rmtree(library / "aag")
    run = service.cli("index", "--prune", str(library / "aag"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("0 failed, 1 pruned")


def test_status_reports_the_service(service, client) -> None:
    status = run_json(service, "status")
    assert status["answering"] is True
    assert status["model"] == os.environ["MEMEFLOW_MODEL"] and status["random_weights"] is True
    assert status["family"] == "clip"
    assert status["dim"] == 512 and status["count"] == client.count()
    assert status["workspace"] == service.env["MEMEFLOW_WORKSPACE"]
    assert status["ports"] == {"grpc": service.grpc_port, "http": service.http_port}
    text = service.cli("status").stdout
    assert "answering" in text and "random weights" in text and f"{status['count']}" in text
    assert "(clip family)" in text


def test_status_says_which_runtime_precision_and_device_auto_chose(service) -> None:
    import importlib.util

    import torch

    from memeflow.encoder.hardware import cpu_features

    status = run_json(service, "status")  # the service runs the defaults: runtime auto
    on_gpu = torch.cuda.is_available()
    expected = ("torch" if on_gpu or importlib.util.find_spec("openvino") is None
                else "openvino")
    assert status["runtime"] == expected and status["device"] == ("cuda:0" if on_gpu else "cpu")
    assert status["precision"] in {"f32", "bf16", "f16"}
    assert status["cpu_features"] == cpu_features() and status["cpu"]
    text = service.cli("status").stdout
    assert f"{expected} {status['precision']} on {status['device']}" in text
    assert all(flag in text for flag in status["cpu_features"])


def test_search_preview_draws_thumbnails_only_when_asked_or_on_a_terminal(service, library
                                                                         ) -> None:
    plain = service.cli("search", "--image", str(library / "drake" / "default.jpg"), "-k", "2")
    assert "\x1b[" not in plain.stdout and len(plain.stdout.splitlines()) == 2
    drawn = service.cli("search", "--image", str(library / "drake" / "default.jpg"), "-k", "2",
                        "--preview", "always")
    lines = drawn.stdout.splitlines()
    assert "\x1b[38;2;" in lines[0] and "\u2580" in lines[0]  # 24-bit half blocks
    assert lines[12].startswith("1. 1.000 default.jpg")  # the label under 12 rows of pixels
    assert lines[-2].split()[-1] == str(library / "drake" / "default.jpg")


def test_open_hands_the_best_results_to_the_desktop_opener(service, library, tmp_path) -> None:
    record = tmp_path / "opened.txt"
    fake = tmp_path / "bin" / "xdg-open"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$1" >> {record}\n')
    fake.chmod(0o755)
    env_path = f"{fake.parent}{os.pathsep}{service.env['PATH']}"
    service.env["PATH"], saved = env_path, service.env["PATH"]
    try:
        run = service.cli("search", "--image", str(library / "drake" / "default.jpg"), "--open")
    finally:
        service.env["PATH"] = saved
    assert run.returncode == 0, run.stderr
    for _ in range(50):
        if record.exists():
            break
        time.sleep(0.1)
    assert record.read_text().split() == [str(library / "drake" / "default.jpg")]


def test_json_of_count_and_delete(service, client) -> None:
    assert run_json(service, "count") == {"count": client.count()}
    assert run_json(service, "delete", "no-such-id") == {"deleted": 0}


def test_errors_name_the_input_and_the_fix(service, tmp_path) -> None:
    missing = service.cli("index", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert f"no such file or folder: {tmp_path / 'nowhere'}" in missing.stderr
    assert "--prune" in missing.stderr

    no_image = service.cli("search", "--image", str(tmp_path / "nope.jpg"))
    assert no_image.returncode == 1 and str(tmp_path / "nope.jpg") in no_image.stderr

    bad_k = service.cli("search", "cat", "-k", "0")
    assert bad_k.returncode == 2 and "-k" in bad_k.stderr

    bad_host = service.cli("--host", "ftp://example:1", "count")
    assert bad_host.returncode == 2 and "ftp://example:1" in bad_host.stderr

    nobody = f"grpc://127.0.0.1:{free_port()}"
    for command in (["search", "cat"], ["status"]):
        run = service.cli("--host", nobody, *command)
        assert run.returncode == 3, (command, run.stderr)
        assert nobody in run.stderr + run.stdout and "memeflow serve" in run.stderr + run.stdout


# --- real folders: odd names, hidden and ignored files, links, HEIC ----------------------

LATIN1 = os.fsdecode(b"caf\xe9")  # "café" in Latin-1: not UTF-8, as copied from an old disk


def noise_image(path: Path, seed: int, fmt: str | None = None) -> Path:
    """An image no other test indexed (a shared meme's bytes would be a copy)."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "HEIC":
        import pillow_heif

        pillow_heif.from_pillow(Image.fromarray(pixels)).save(path, quality=90)
    else:
        Image.fromarray(pixels).save(path, fmt or "PNG")
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real") / "photos"
    noise_image(root / LATIN1 / f"{LATIN1}.jpg", 1, "JPEG")  # folder and file not UTF-8
    noise_image(root / "iphone.heic", 2, "HEIC")
    noise_image(root / "ok.png", 3)
    for seed, hidden in enumerate([".hidden/x.png", "@eaDir/thumb.png", "._ok.png"], 10):
        noise_image(root / hidden, seed)
    noise_image(root / "drafts" / "y.png", 20)
    (root / ".memeflowignore").write_text("drafts/\n")
    (root / "broken.jpg").symlink_to(root / "gone.jpg")
    (root / "again").symlink_to(root)  # a loop: walked once
    return root


def test_odd_names_hidden_files_links_and_heic_do_not_stop_indexing(service, client, photos
                                                                    ) -> None:
    run = service.cli("index", str(photos))  # stdout is strict UTF-8: odd names must not crash
    assert run.returncode == 1, run.stderr  # a file failed: exit 1, the rest is indexed
    *failed, summary = run.stdout.strip().splitlines()
    assert summary == "3 encoded, 0 moved, 0 copied, 0 unchanged, 1 failed, 5 skipped"
    assert failed == [f"failed: {photos / 'broken.jpg'}: broken link: its target is gone"]
    again = run_json(service, "index", str(photos), code=1)  # the broken link: still failed
    assert (again["unchanged"], again["skipped"], len(again["failed"])) == (3, 5, 1)

    odd = photos / LATIN1 / f"{LATIN1}.jpg"
    hits = run_json(service, "search", "--image", str(odd), "-k", "1")
    uri = hits[0]["uri"]
    assert uri == "file://" + str(photos) + "/caf%E9/caf%E9.jpg" and hits[0]["score"] > 0.99
    assert local_path(uri) == str(odd)  # the uri leads back to the file's bytes
    heic = client.search_image(photos / "iphone.heic", top_k=1)[0]
    assert heic["uri"] == str(photos / "iphone.heic") and heic["score"] > 0.99


def test_a_renamed_odd_name_is_moved_and_a_deleted_one_pruned(service, client, photos) -> None:
    odd = photos / LATIN1 / f"{LATIN1}.jpg"
    renamed = odd.with_name(os.fsdecode(b"na\xefve.jpg"))
    odd.rename(renamed)
    report = run_json(service, "index", str(photos), code=1)  # with the broken link
    assert (report["encoded"], report["moved"]) == (0, 1)
    assert report["moves"] == [{"from": path_uri(odd), "to": path_uri(renamed)}]
    renamed.unlink()
    report = run_json(service, "index", "--prune", str(photos), code=1)
    assert report["pruned"] == 1
    assert not [h for h in client.search_text("x", top_k=client.count())
                if "%" in (h["uri"] or "")]


def test_hidden_files_on_request_and_paths_kept_as_reached_through_a_link(client, photos
                                                                         ) -> None:
    report = client.index_paths([photos], include_hidden=True)
    assert sorted(report.encoded) == sorted(
        str(photos / name) for name in (".hidden/x.png", "@eaDir/thumb.png", "._ok.png"))
    assert sorted(report.skipped) == [str(photos / "again"), str(photos / "drafts")]

    link = photos.with_name("linked")
    link.symlink_to(photos)
    through = client.index_paths([link])  # the same files by another path: re-filed, once
    assert (len(through.encoded), len(through.moved)) == (0, 2)
    uris = {h["uri"] for h in client.search_text("x", top_k=client.count())}
    assert {str(link / "ok.png"), str(link / "iphone.heic")} <= uris
    assert not {str(photos / "ok.png"), str(photos / "iphone.heic")} & uris


def test_files_that_vanish_mid_run_fail_alone(client, photos, monkeypatch) -> None:
    import memeflow.client.sync as client_module

    fresh = [noise_image(photos / "late" / f"{n}.png", 30 + n) for n in range(3)]
    hash_file = client_module.sha256_file

    def hash_then_lose(path: Path) -> str:  # gone after hashing, before its bytes are read
        digest = hash_file(path)
        if path == fresh[0]:
            path.unlink()
        if path == fresh[1]:
            raise PermissionError(13, "Permission denied")  # root reads anything: simulated
        return digest

    monkeypatch.setattr(client_module, "sha256_file", hash_then_lose)
    report = client.index_paths([photos / "late"])
    assert report.encoded == [str(fresh[2])]
    assert dict(report.failed) == {str(fresh[0]): "cannot read file: No such file or directory",
                                   str(fresh[1]): "cannot read file: Permission denied"}


def test_a_long_query_is_text(service, client) -> None:
    """`memeflow search "$(python3 -c 'print("cat " * 200)')"` once failed with "[Errno 36]
    File name too long": the query is text, cut at 77 tokens by the model."""
    assert client.count() > 0
    run = service.cli("search", "cat " * 200, "-k", "3", "--json")
    assert run.returncode == 0, run.stderr
    assert len(json.loads(run.stdout)) == 3 and run.stderr == ""


def test_a_refused_request_is_one_line(service) -> None:
    """The service's refusal is one line naming the parameter (not Jina's stack frames),
    exit 1; --verbose adds the tracebacks."""
    run = service.cli("search", "cat", "--offset", "-1")
    assert run.returncode == 1
    assert run.stderr == ("memeflow: the service refused /search: offset must be a whole "
                          "number >= 0, got -1.0\n")
    verbose = service.cli("--verbose", "search", "cat", "--offset", "-1")
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == run.stderr.strip()


def test_version_is_the_installed_package_version(capsys) -> None:
    from importlib.metadata import version

    from memeflow.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"memeflow {version('memeflow')}\n"


def test_a_moved_or_copied_file_keeps_what_was_derived_from_its_pixels(service, client,
                                                                         tmp_path) -> None:
    """The answers of duplicate collapsing and hub correction, which read the perceptual
    hash and hubness the encoder derived, are the same after a move and a copy as before."""
    folder = tmp_path / "rewrites"
    folder.mkdir()
    for name in FOLDERS:
        shutil.copy(MEMES / name / "default.jpg", folder / f"{name}.jpg")
    run_json(service, "index", str(folder))
    only_here = {"where": {"folder": "rewrites"}}

    def answers(**options) -> list[tuple[str, float]]:
        hits = client.search_text("a frog", top_k=10, **only_here, **options)
        return [(Path(h["uri"]).name, h["score"]) for h in hits]

    before_hub, before_dedup = answers(hub_correction=True), answers(dedup=True)
    derived = client.stored([file_id(folder / "drake.jpg")])[file_id(folder / "drake.jpg")]
    assert {"phash", "hubness"} <= set(derived)

    (folder / "drake.jpg").rename(folder / "renamed.jpg")
    shutil.copy(folder / "renamed.jpg", folder / "copy.jpg")
    report = run_json(service, "index", str(folder))
    assert (report["encoded"], report["moved"], report["copied"]) == (0, 1, 1)
    for name in ("renamed.jpg", "copy.jpg"):
        tags = client.stored([file_id(folder / name)])[file_id(folder / name)]
        assert {k: tags[k] for k in ("phash", "hubness")} == {
            k: derived[k] for k in ("phash", "hubness")}
        assert tags["file"] == name

    rename = {"drake.jpg": "renamed.jpg"}
    after_hub = dict(answers(hub_correction=True))
    for name, score in before_hub:
        assert after_hub[rename.get(name, name)] == pytest.approx(score, abs=1e-6)
    assert after_hub["copy.jpg"] == pytest.approx(after_hub["renamed.jpg"], abs=1e-6)
    after_dedup = answers(dedup=True)  # the byte-identical copy collapses into one hit
    assert len(after_dedup) == len(before_dedup)
    assert [s for _, s in after_dedup] == pytest.approx([s for _, s in before_dedup], abs=1e-6)
    assert {rename.get(n, n) for n, _ in before_dedup} ^ {n for n, _ in after_dedup} <= {
        "renamed.jpg", "copy.jpg"}  # either of the two stands for both

    # Stored again from its own vector without the derived tags (a re-upsert): kept; a
    # different picture under the same id: not.
    renamed_id = file_id(folder / "renamed.jpg")
    (found,) = client.find_by_hash([derived["sha256"]])[derived["sha256"]][:1]
    bare = {"id": renamed_id, "uri": str(folder / "renamed.jpg"), "embedding": found.embedding,
            "tags": {"file": "renamed.jpg", "folder": "rewrites", "note": "re-filed"}}
    assert [d.error for d in client.upsert([bare])] == [None]
    tags = client.stored([renamed_id])[renamed_id]
    assert tags["note"] == "re-filed" and tags["phash"] == derived["phash"]
    other = {**bare, "embedding": found.embedding[::-1].copy()}
    assert [d.error for d in client.upsert([other])] == [None]
    assert "phash" not in client.stored([renamed_id])[renamed_id]
    client.delete([file_id(folder / n) for n in ("renamed.jpg", "copy.jpg", *(
        f"{name}.jpg" for name in FOLDERS[1:]))])


def test_index_names_what_it_moved_copied_pruned_and_failed_and_exits_1_on_a_failure(
        service, client, tmp_path) -> None:
    folder = tmp_path / "my memes"
    folder.mkdir()
    noise_image(folder / "drake meme.jpg", 101, "JPEG")  # bytes no other test indexed
    noise_image(folder / "ackbar.jpg", 102, "JPEG")
    (folder / "empty.jpg").write_bytes(b"")
    run = service.cli("index", "-q", str(folder))
    assert run.returncode == 1, run.stderr  # one file failed (the README's exit code 1)
    assert run.stdout.splitlines() == [
        f"failed: '{folder}/empty.jpg': empty file (0 bytes)",
        "2 encoded, 0 moved, 0 copied, 0 unchanged, 1 failed"]

    (folder / "empty.jpg").unlink()
    (folder / "drake meme.jpg").rename(folder / "renamed drake.jpg")
    shutil.copy(folder / "ackbar.jpg", folder / "copy of ackbar.jpg")
    (folder / "ackbar.jpg").unlink()  # gone: the next run hints at --prune
    run = service.cli("index", "-q", str(folder))
    assert run.returncode == 0, run.stderr
    assert set(run.stdout.splitlines()[:2]) == {
        f"moved: '{folder}/drake meme.jpg' -> '{folder}/renamed drake.jpg'",
        f"moved: '{folder}/ackbar.jpg' -> '{folder}/copy of ackbar.jpg'"}
    shutil.copy(folder / "renamed drake.jpg", folder / "again.jpg")
    (folder / "renamed drake.jpg").unlink()  # the copy's original, then gone
    run = service.cli("index", "-q", str(folder))
    assert f"moved: '{folder}/renamed drake.jpg' -> '{folder}/again.jpg'" in run.stdout
    shutil.copy(folder / "again.jpg", folder / "twin.jpg")
    run = service.cli("index", "-q", str(folder))
    assert run.stdout.splitlines()[0] == f"copied: '{folder}/twin.jpg'"
    assert run.stderr == ""  # nothing indexed there is gone

    (folder / "twin.jpg").unlink()
    run = service.cli("index", "-q", str(folder))
    assert run.returncode == 0 and "1 indexed file under" in run.stderr
    assert f"`memeflow index --prune '{folder}'`" in run.stderr and run.stderr.count("\n") == 1
    assert run_json(service, "index", str(folder))["gone"] == [str(folder / "twin.jpg")]
    run = service.cli("index", "-q", "--prune", str(folder))
    assert run.stdout.splitlines()[0] == f"pruned: '{folder}/twin.jpg'" and run.stderr == ""


def test_list_and_delete_by_path(service, client, tmp_path) -> None:
    folder = tmp_path / "to list"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.jpg", "a.jpg"):
        shutil.copy(MEMES / "afraid" / "default.jpg", folder / name)
    shutil.copy(MEMES / "aag" / "default.jpg", folder / "sub" / "c.jpg")
    service.cli("index", "-q", str(folder))
    listed = run_json(service, "list", str(folder))
    assert listed["total"] == 3
    assert [d["uri"] for d in listed["documents"]] == [
        str(folder / "a.jpg"), str(folder / "b.jpg"), str(folder / "sub" / "c.jpg")]
    assert listed["documents"][0]["id"] == file_id(folder / "a.jpg")
    page = service.cli("list", str(folder), "-n", "1", "--offset", "1").stdout.splitlines()
    assert page == [f"{file_id(folder / 'b.jpg')}  '{folder}/b.jpg'",
                    f"3 documents under '{folder}', 2-2 shown; more with --offset 2"]
    assert run_json(service, "list", str(folder / "a"))["total"] == 1  # any start of a path

    (folder / "b.jpg").unlink()  # gone from disk: still deleted by its path
    run = service.cli("delete", str(folder / "b.jpg"), str(folder / "sub"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"deleted: '{folder}/b.jpg'",
                                       f"deleted: '{folder}/sub/c.jpg'", "2 deleted"]
    assert [d["uri"] for d in run_json(service, "list", str(folder))["documents"]] == [
        str(folder / "a.jpg")]
    nothing = service.cli("delete", "--path", "nowhere.jpg")
    assert nothing.returncode == 1 and "nothing indexed at nowhere.jpg" in nothing.stderr
    client.delete([file_id(folder / "a.jpg")])


def test_status_of_another_host_shows_its_port_not_this_machines_defaults(service) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in service.env.items()
           if k not in ("MEMEFLOW_GRPC_PORT", "MEMEFLOW_HTTP_PORT")}  # this machine: defaults
    run = subprocess.run([str(Path(sys.executable).parent / "memeflow"), "--host",
                          f"grpc://127.0.0.1:{service.grpc_port}", "status", "--json"],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert json.loads(run.stdout)["ports"] == {"grpc": service.grpc_port, "http": None}


def test_clear_an_empty_index_and_its_search_say_so(service, client) -> None:
    """The last test of the module: it empties the index."""
    count = client.count()
    run = service.cli("clear", "--yes")
    assert run.returncode == 0
    assert run.stdout == f"{count} documents removed; the index is empty\n"
    run = service.cli("search", "a cat")
    assert run.returncode == 0 and run.stdout.startswith("no results: the index is empty")
    assert run_json(service, "search", "a cat") == []
    lines = service.cli("status").stdout.splitlines()
    assert "documents: none: the index is empty" in lines
    assert "dimension: none yet: the index is empty" in lines


def test_a_clip_hit_says_when_it_matched(capsys) -> None:
    """A hit on a video or animated meme names the moment of its best frame, as people read
    a time in a clip; --json gives it in ms; a still's hit has neither."""
    import argparse

    from memeflow.cli.main import _show_hits, moment_text
    from memeflow.client.client import _hit

    assert [moment_text(ms) for ms in (0, 7250, 59_999, 3_723_000)] == [
        "0:00.00", "0:07.25", "1:00.00", "1:02:03.00"]
    clip = _hit(1, {"id": "a", "uri": "/m/clip.webm", "score": 0.9, "frame_ms": 6500})
    still = _hit(2, {"id": "b", "uri": "/m/still.jpg", "score": 0.8})
    assert clip["frame_ms"] == 6500 and "frame_ms" not in still
    _show_hits(argparse.Namespace(preview="never"), [clip, still])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("/m/clip.webm  at 0:06.50") and lines[1].endswith("/m/still.jpg")
