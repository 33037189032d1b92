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


def run_json(service, *args: str):
    run = service.cli(*args, "--json")
    assert run.returncode == 0, run.stderr
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
    assert client._thumbnails([file_id(probe)])  # the search page's preview moved along
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
    assert status["dim"] == 512 and status["count"] == client.count()
    assert status["workspace"] == service.env["MEMEFLOW_WORKSPACE"]
    assert status["ports"] == {"grpc": service.grpc_port, "http": service.http_port}
    text = service.cli("status").stdout
    assert "answering" in text and "random weights" in text and f"{status['count']}" in text


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
