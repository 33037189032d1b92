"""The move record `memeflow reindex` leaves beside the old workspace, and how `memeflow
serve` and `memeflow status` follow it (no Flow here; tests/test_reindex.py restarts one)."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memeflow.moved_workspace import follow, read_move, record_move, record_path
from memeflow.workspace import WorkspaceError

from .conftest import REPO, free_port


def workspaces(root: Path, *names: str) -> list[Path]:
    folders = [root / name for name in names]
    for folder in folders:
        folder.mkdir()
    return folders


def test_serve_follows_a_chain_of_moves_to_the_last_workspace_and_its_model(tmp_path) -> None:
    old, middle, new = workspaces(tmp_path, "index", "index--b", "index--c")
    record_move(old, middle, "model-b")
    record_move(middle, new, "model-c")
    for named in (None, "model-c"):  # no model named, or the new one
        served = follow(old, named)
        assert (served.model, served.workspace) == ("model-c", new)
        assert [move.workspace for move in served.moves] == [middle, new]
        assert served.note is not None and str(new) in served.note
    # The old workspace removed (as reindex says): the record beside it still leads on.
    shutil.rmtree(old)
    assert follow(old, None).workspace == new
    # A workspace that did not move is served as named.
    assert follow(new, "model-x").workspace == new and follow(new, "model-x").moves == ()


def test_a_workspace_reached_through_a_link_is_followed(tmp_path) -> None:
    """The indexer names the workspace as it was configured (a link, say ~/memes-index ->
    /data/index); serve finds the record whichever way it reaches the same folder."""
    real, new = workspaces(tmp_path, "index", "index--b")
    link = tmp_path / "link-to-index"
    link.symlink_to(real)
    record_move(link, new, "model-b")
    for reached in (link, real):
        assert follow(reached, None).workspace == new


def test_another_model_named_on_a_moved_workspace_is_refused_naming_both_and_the_fix(
        tmp_path) -> None:
    old, new = workspaces(tmp_path, "index", "index--b")
    record_move(old, new, "model-b")
    with pytest.raises(WorkspaceError) as refused:
        follow(old, "model-a")
    message = str(refused.value)
    assert "\n" not in message
    for part in ("names model-a", f"workspace {old} moved to {new} with model model-b",
                 "unset it", f"remove {record_path(old)} to serve the old index"):
        assert part in message, message
    # Removing the record, as the message says, goes back to the old index.
    record_path(old).unlink()
    assert follow(old, "model-a").workspace == old


def test_a_move_back_into_an_earlier_workspace_drops_its_record(tmp_path) -> None:
    old, new = workspaces(tmp_path, "index", "index--b")
    record_move(old, new, "model-b")
    record_move(new, old, "model-a")  # a second reindex, into the first folder again
    assert read_move(old) is None and not record_path(old).exists()
    assert (follow(new, None).model, follow(new, None).workspace) == ("model-a", old)
    assert follow(old, "model-a").moves == ()


def test_records_that_lead_nowhere_are_refused_with_the_record_to_remove(tmp_path) -> None:
    old, new = workspaces(tmp_path, "index", "index--b")
    record_move(old, new, "model-b")
    new.rmdir()
    with pytest.raises(WorkspaceError, match=f"which is gone: remove {record_path(old)}"):
        follow(old, None)
    new.mkdir()  # a loop written by hand: old -> new -> old
    record_path(new).write_text(json.dumps({"workspace": str(old), "model": "model-a"}))
    with pytest.raises(WorkspaceError, match="make a loop"):
        follow(old, None)
    record_path(old).write_text("{not json")
    with pytest.raises(WorkspaceError, match=f"{record_path(old)} is damaged"):
        follow(old, None)


def memeflow(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The command line with its default workspace under `tmp_path` and no model named."""
    settings = {k: v for k, v in os.environ.items() if k not in ("MEMEFLOW_MODEL",
                                                                 "MEMEFLOW_WORKSPACE")}
    settings.update(XDG_DATA_HOME=str(tmp_path), MEMEFLOW_GRPC_PORT=str(free_port()), **env)
    return subprocess.run([str(Path(sys.executable).parent / "memeflow"), *args],
                          env=settings, capture_output=True, text=True, timeout=120,
                          cwd=REPO, check=False)


def test_serve_and_status_use_the_moved_default_workspace(tmp_path) -> None:
    (tmp_path / "memeflow").mkdir()
    old, new = workspaces(tmp_path / "memeflow", "index", "index--b")
    record_move(old, new, "/models/model-b")
    # `status` with no service answering says what `serve` here would use.
    run = memeflow(tmp_path, "status")
    assert run.returncode == 3
    assert "model:     /models/model-b" in run.stdout and f"workspace: {new}" in run.stdout
    # `serve` naming the old model refuses at once, in one line naming both.
    started = time.monotonic()
    run = memeflow(tmp_path, "serve", "--model", "/models/model-a")
    assert run.returncode == 2 and time.monotonic() - started < 30
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("memeflow: cannot start: MEMEFLOW_MODEL (or --model) names "
                           "/models/model-a, but workspace "), last
    assert f"moved to {new} with model /models/model-b" in last
    # Without a model named it goes on to the moved workspace's model (a folder that is
    # not there here: the model check names it, after the line saying where it went).
    run = memeflow(tmp_path, "serve")
    assert run.returncode == 2
    assert f"memeflow: workspace {old} moved to {new}" in run.stderr
    assert "/models/model-b" in run.stderr.strip().splitlines()[-1]


def test_reindex_names_the_record_the_old_workspace_and_a_model_setting_in_the_way(
        tmp_path, monkeypatch, capsys) -> None:
    from memeflow.cli.main import _after_reindex
    from memeflow.cli.reindex import ReindexReport

    old, new = tmp_path / "index", tmp_path / "index--b"
    report = ReindexReport(model="/models/b", workspace=str(new), old_workspace=str(old),
                           move_record=str(record_path(old)))
    monkeypatch.setenv("MEMEFLOW_MODEL", "/models/a")
    _after_reindex(report)
    out, err = capsys.readouterr()
    assert f"recorded in {record_path(old)}" in out and f"`rm -r {old}` removes it" in out
    assert "MEMEFLOW_MODEL is /models/a here" in err and "set it to /models/b" in err
    # The service could not write the record: the settings to start it with instead.
    _after_reindex(ReindexReport(model="/models/b", workspace=str(new), old_workspace=str(old),
                                 not_recorded="[Errno 30] Read-only file system"))
    out, _ = capsys.readouterr()
    assert "could not be recorded ([Errno 30] Read-only file system)" in out
    assert f"MEMEFLOW_MODEL=/models/b MEMEFLOW_WORKSPACE={new} memeflow serve" in out
