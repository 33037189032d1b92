"""`memeflow reindex`: a 260-meme service moves to another model (another dimension, too)
while search keeps answering; unreadable files are listed; failures leave it serving; a
restart serves the new model's workspace."""

import contextlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memeflow.client import MemeClient
from memeflow.moved_workspace import read_move, record_path

from .conftest import MEMES, NO_WEIGHTS_MODEL, post_json, serving

pytestmark = pytest.mark.flow


def model_of_dim(folder: Path, dim: int) -> Path:
    """The no-weights architecture with another projection size: a model of its own."""
    shutil.copytree(NO_WEIGHTS_MODEL, folder)
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(re.sub(r'"projection_dim": \d+',
                                               f'"projection_dim": {dim}', config))
    return folder


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """A service holding the 260 memes and one copy whose file is then deleted."""
    root = tmp_path_factory.mktemp("reindex")
    with serving(root) as service:
        gone = root / "gone" / "copy.jpg"
        gone.parent.mkdir()
        shutil.copy(next(MEMES.rglob("*.jpg")), gone)
        run = service.cli("index", "-q", str(MEMES), str(gone), timeout=900)
        assert run.returncode == 0, run.stderr
        gone.unlink()
        yield service, root


def test_a_failed_switch_leaves_the_service_serving_its_model(indexed, tmp_path) -> None:
    service, _ = indexed
    client = MemeClient(service.env["MEMEFLOW_HOST"])
    before = client.status()
    # The new model cannot start: refused before anything changes.
    run = service.cli("reindex", "--model", str(tmp_path / "no-such-model"),
                      "--workspace", str(tmp_path / "new"))
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("memeflow: cannot start")
    assert "the service still serves what it served" in run.stderr
    # The service itself fails to prepare (a workspace holding another model's vectors):
    # the switch is aborted and the service keeps its model and index.
    states = client.switch("prepare", model=str(tmp_path / "no-such-model"),
                           workspace=str(tmp_path / "other"))
    deadline = time.monotonic() + 120
    while not states["encoder"].startswith("failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        states = client.switch("poll")
    assert states["encoder"].startswith("failed: ModelLoadError"), states
    assert client.switch("abort") == {"encoder": "abort", "indexer": "abort"}
    with pytest.raises(Exception, match="nothing is ready to switch"):
        client.switch("commit")
    after = client.status()
    assert {k: after[k] for k in ("model", "workspace", "count", "dim")} == {
        k: before[k] for k in ("model", "workspace", "count", "dim")}
    assert len(client.search_text("a cat", top_k=3)) == 3


def test_reindex_switches_260_memes_to_another_model_while_search_answers(indexed) -> None:
    service, root = indexed
    # Beside the module's workspace: the next test restarts the service on it, after this
    # test's folder is gone.
    model = model_of_dim(root / "model-256", 256)
    client = MemeClient(service.env["MEMEFLOW_HOST"])
    before = client.status()
    assert before["dim"] == 512 and before["count"] == 261
    reindex = subprocess.Popen(
        [str(Path(sys.executable).parent / "memeflow"), "reindex", "--model", str(model),
         "--json"], env=service.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    polls, failures, dims = 0, [], set()
    try:
        while True:  # search over both protocols during the whole reindex and switch
            done = reindex.poll() is not None
            try:
                if polls % 2:
                    hits = client.search_text(f"meme number {polls}", top_k=5)
                else:
                    reply = post_json(service, "/search", {
                        "data": [{"text": f"meme number {polls}"}],
                        "parameters": {"top_k": 5, "return_embeddings": True}})
                    hits = reply["data"][0]["matches"]
                    dims.add(len(hits[0]["embedding"]))
                if len(hits) != 5:
                    failures.append(f"{len(hits)} hits")
            except Exception as exc:  # any failed request fails the test
                failures.append(repr(exc))
            polls += 1
            if done:
                break
    finally:
        if reindex.poll() is None:
            reindex.kill()
    out, err = reindex.communicate(timeout=60)
    assert reindex.returncode == 0, err
    assert failures == []
    assert polls >= 20 and dims == {512, 256}  # searched before and after the switch
    report = json.loads(out)
    gone = str(root / "gone" / "copy.jpg")
    assert report["encoded"] == 260
    assert [f["document"].endswith(gone) for f in report["failed"]] == [True]
    assert "No such file" in report["failed"][0]["reason"]
    after = client.status()
    assert after["model"] == str(model) and after["dim"] == 256 and after["count"] == 260
    assert after["workspace"] == report["workspace"] != before["workspace"]
    assert Path(report["workspace"]).parent == Path(before["workspace"]).parent
    # The ids, uris and tags came over; the old workspace is kept as it was.
    meme = next(MEMES.rglob("*.jpg"))
    hits = client.search_image(meme, top_k=1)
    assert Path(hits[0]["uri"]).name == meme.name and hits[0]["score"] > 0.99
    assert (Path(before["workspace"]) / "index.db").is_file()
    assert "encoding 261 documents again" in err
    # The move is recorded beside the old workspace, for `memeflow serve` to follow.
    assert report["old_workspace"] == before["workspace"]
    assert report["move_record"] == str(record_path(Path(before["workspace"])))
    assert read_move(Path(before["workspace"])).workspace == Path(report["workspace"])


def test_serve_started_again_as_before_serves_the_new_model_and_workspace(indexed) -> None:
    """After the reindex above, a stop and a start with the settings of the first start."""
    service, _ = indexed
    old = Path(service.env["MEMEFLOW_WORKSPACE"]).resolve()
    move = read_move(old)
    assert move is not None, "runs after test_reindex_switches_260_memes_..., which moves it"
    assert service.stop() == 0
    # The old model named (these tests name the no-weights model in MEMEFLOW_MODEL, as a
    # user naming a local model does): refused at once, in one line naming both and the fix.
    run = service.cli("serve", timeout=60)
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert f"names {service.env['MEMEFLOW_MODEL']}, but workspace {old} moved to " \
           f"{move.workspace} with model {move.model}" in last, last
    # Named the workspace only, as a user who did not name a model: the new index, whole.
    del service.env["MEMEFLOW_MODEL"]
    service.start()
    client = MemeClient(service.env["MEMEFLOW_HOST"])
    status = client.status()
    assert (status["model"], status["workspace"]) == (move.model, str(move.workspace))
    assert (status["count"], status["dim"]) == (260, 256)
    reply = post_json(service, "/search", {"data": [{"text": "a cat"}],
                                           "parameters": {"top_k": 5, "return_embeddings": True}})
    assert [len(hit["embedding"]) for hit in reply["data"][0]["matches"]] == [256] * 5
    shown = service.cli("status")
    assert f"model:     {move.model}" in shown.stdout
    assert f"workspace: {move.workspace}" in shown.stdout
    assert f"workspace {old} moved to {move.workspace}" in service.log_path.read_text()
    # The old workspace is kept as it was at the switch (README: how to remove it).
    with contextlib.closing(sqlite3.connect(f"file:{old / 'index.db'}?mode=ro", uri=True)) as db:
        assert db.execute("select count(*) from documents").fetchone() == (261,)


def test_reindex_sends_files_in_requests_bounded_in_count_and_bytes(tmp_path, monkeypatch
                                                                    ) -> None:
    """As `memeflow index` sends them: a folder of videos never makes one request of
    gigabytes; a file that is gone fails alone and still counts as done."""
    from memeflow import config
    from memeflow.cli.reindex import ReindexReport, encode_again
    from memeflow.documents import MemeDoc

    monkeypatch.setattr(config, "DEFAULT_INDEX_BATCH_BYTES", 100)
    docs = []
    for index, size in enumerate((60, 60, 60, 10, 10)):
        (tmp_path / f"{index}.mp4").write_bytes(b"x" * size)
        docs.append(MemeDoc(id=str(index), uri=str(tmp_path / f"{index}.mp4")))
    docs.insert(3, MemeDoc(id="gone", uri=str(tmp_path / "gone.mp4")))
    requests: list[list[str]] = []
    progress: list[int] = []

    class Target:
        def image_doc(self, data: bytes, **fields: object) -> MemeDoc:
            return MemeDoc(blob=data, **fields)

        def index(self, batch: list[MemeDoc]) -> list[MemeDoc]:
            requests.append([str(doc.id) for doc in batch])
            return batch

    report = ReindexReport(model="new", workspace=str(tmp_path / "new"))
    encode_again(docs, Target(), 3, report, progress.append)  # type: ignore[arg-type]
    assert requests == [["0", "1"], ["2", "3", "4"]]  # 120 bytes, then 3 files
    assert report.encoded == 5 and [name for name, _ in report.failed] == [docs[3].uri]
    assert sum(progress) == 6
