"""The workspace's format version, its migrations, and the model its vectors belong to."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from memeflow import workspace
from memeflow.encoder.identity import (
    ModelMismatchError,
    check_workspace_model,
    fingerprint_cosines,
    model_identity,
    probe_image,
    same_model,
)
from memeflow.indexer.backends.embedded import LOCK, EmbeddedCollection
from memeflow.indexer.storage import legacy
from memeflow.indexer.storage.database import DATABASE
from memeflow.workspace import FORMAT, META_FILE, WorkspaceError, open_workspace
from tests.conftest import REPO


def unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def identity(name: str, fingerprint: np.ndarray, seed: int | None = None) -> dict:
    return {"name": name, "dim": fingerprint.shape[1], "random_seed": seed,
            "fingerprint": fingerprint.tolist()}


def old_workspace(path: Path) -> Path:
    """A workspace as the snapshot + log store wrote it before `memeflow.json` existed
    (format 1): tests/workspaces/format-2 without that file."""
    shutil.copytree(REPO / "tests" / "workspaces" / "format-2", path)
    (path / META_FILE).unlink()
    return path


def test_the_workspace_module_knows_the_old_store_files() -> None:
    assert workspace.STORE_FILES == (legacy.SNAPSHOT, legacy.LOG)


def test_an_old_workspace_is_stamped_and_its_indexer_moves_it_into_the_database(
    tmp_path,
) -> None:
    root = old_workspace(tmp_path / "ws")
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    meta = open_workspace(root)
    assert meta["format"] == FORMAT == 3
    assert meta["model"] is None and meta["unknown_model_vectors"] is True
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.name in before} == before
    reopened = EmbeddedCollection(root)  # the indexer, at its first start
    assert len(reopened) == 38 and reopened.get(["m01"])[0]["uri"] == "/memes/m01.jpg"
    reopened.close()
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [
        DATABASE, LOCK, META_FILE]
    assert open_workspace(root) == meta  # migrated once, opened as is afterwards


def test_an_empty_folder_holds_no_vectors_of_any_model(tmp_path) -> None:
    meta = open_workspace(tmp_path / "new")
    assert meta["format"] == FORMAT and meta["unknown_model_vectors"] is False
    assert json.loads((tmp_path / "new" / META_FILE).read_text()) == meta


def test_a_workspace_of_a_newer_memeflow_is_refused(tmp_path) -> None:
    root = old_workspace(tmp_path / "ws")
    (root / META_FILE).write_text(json.dumps({"format": FORMAT + 1}))
    with pytest.raises(WorkspaceError, match=f"newer memeflow \\(format {FORMAT + 1}"):
        open_workspace(root)
    assert json.loads((root / META_FILE).read_text()) == {"format": FORMAT + 1}


def test_a_damaged_metadata_file_is_refused_not_replaced(tmp_path) -> None:
    root = old_workspace(tmp_path / "ws")
    (root / META_FILE).write_text("{ not json")
    with pytest.raises(WorkspaceError, match="damaged"):
        open_workspace(root)
    assert (root / META_FILE).read_text() == "{ not json"


def test_a_stamped_format_1_workspace_is_migrated(tmp_path) -> None:
    root = old_workspace(tmp_path / "ws")
    (root / META_FILE).write_text(json.dumps({"format": 1}))
    assert open_workspace(root)["unknown_model_vectors"] is True


def test_the_running_model_is_adopted_by_an_old_workspace(tmp_path) -> None:
    rng = np.random.default_rng(1)
    root = old_workspace(tmp_path / "ws")
    first, other = identity("a", unit_rows(rng, 4, 8)), identity("b", unit_rows(rng, 4, 8))
    check_workspace_model(root, first)
    assert json.loads((root / META_FILE).read_text())["model"] == first
    with pytest.raises(ModelMismatchError, match=r"holds vectors of a \(8-d\), not of b"):
        check_workspace_model(root, other)


def test_a_workspace_takes_its_model_with_its_first_vectors(tmp_path) -> None:
    rng = np.random.default_rng(2)
    root = tmp_path / "ws"
    a, b = identity("a", unit_rows(rng, 4, 8)), identity("b", unit_rows(rng, 4, 16))
    check_workspace_model(root, a)
    check_workspace_model(root, b)  # nothing stored yet: any model may start on it
    assert workspace.bind_model(root)["model"] == b  # the model that made the first vectors
    with pytest.raises(ModelMismatchError) as refused:
        check_workspace_model(root, a)
    message = str(refused.value)
    assert "b (16-d)" in message and "a (8-d)" in message and "dimensions differ" in message
    assert "MEMEFLOW_WORKSPACE" in message and "memeflow index" in message
    workspace.forget_model(root)  # /clear
    check_workspace_model(root, a)


def test_vectors_stored_without_an_encoder_are_adopted_by_the_next_one(tmp_path) -> None:
    root = tmp_path / "ws"
    open_workspace(root)
    assert workspace.bind_model(root)["unknown_model_vectors"] is True
    a = identity("a", unit_rows(np.random.default_rng(3), 4, 8))
    check_workspace_model(root, a)
    assert json.loads((root / META_FILE).read_text())["model"] == a


def test_fingerprints_agree_within_runtime_noise_only() -> None:
    rng = np.random.default_rng(4)
    probes = unit_rows(rng, 4, 512)
    # int8 and ONNX runtimes of one checkpoint: cosines of about 0.999 per probe.
    noisy = probes + 0.045 / np.sqrt(512) * rng.standard_normal(probes.shape)
    assert 0.998 < fingerprint_cosines(identity("a", probes), identity("a", noisy)).min() < 1
    assert same_model(identity("a", probes), identity("a-int8", noisy))
    # Another checkpoint of the same size: unrelated directions.
    assert not same_model(identity("a", probes), identity("b", unit_rows(rng, 4, 512)))
    # The same weights give way on one probe only: still another model.
    changed = probes.copy()
    changed[3] = unit_rows(rng, 1, 512)[0]
    assert not same_model(identity("a", probes), identity("a", changed))
    assert not same_model(identity("a", probes), identity("a", unit_rows(rng, 4, 256)))


def test_fingerprints_with_probes_added_later_compare_the_common_ones() -> None:
    probes = unit_rows(np.random.default_rng(5), 5, 32)
    assert same_model(identity("a", probes[:4]), identity("a", probes))


def test_the_probe_image_is_the_same_every_time() -> None:
    image = probe_image()
    assert image.size == (224, 224) and image.mode == "RGB"
    assert image.tobytes() == probe_image().tobytes()
    assert len(set(np.asarray(image).reshape(-1, 3)[:, 0].tolist())) > 200  # a gradient


def test_a_model_recognises_itself_and_not_other_random_weights(clip_model, monkeypatch) -> None:
    """The real fingerprint: the same weights loaded again match; another seed does not."""
    from memeflow.encoder.model import ClipModel

    mine = model_identity(clip_model)
    assert np.shape(mine["fingerprint"]) == (4, clip_model.dim)
    assert mine["random_seed"] == 0
    clip_model.text_cache.clear()
    assert fingerprint_cosines(mine, model_identity(clip_model)).min() > 0.9999
    monkeypatch.setenv("MEMEFLOW_RANDOM_SEED", "1")
    other = ClipModel(clip_model.name, allow_random=True)
    theirs = model_identity(other)
    assert theirs["random_seed"] == 1 and not same_model(mine, theirs)


def test_serve_refuses_a_model_folder_of_another_dimension_before_starting(tmp_path) -> None:
    from memeflow.encoder.identity import preflight_model

    root, folder = tmp_path / "ws", tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"projection_dim": 16}))
    preflight_model(root, str(folder), folder, None)  # nothing stored: anything goes
    check_workspace_model(root, identity("a", unit_rows(np.random.default_rng(6), 4, 8)))
    workspace.bind_model(root)
    with pytest.raises(ModelMismatchError, match=f"not of {folder} \\(16-d\\)"):
        preflight_model(root, str(folder), folder, None)
    preflight_model(root, "org/model", None, None)  # a hub id: the encoder checks it
    (folder / "config.json").write_text(json.dumps({"projection_dim": 8}))
    preflight_model(root, str(folder), folder, None)  # same size: the fingerprint decides


def test_the_indexer_binds_the_model_at_its_first_vectors_and_forgets_it_at_clear(
        tmp_path, monkeypatch) -> None:
    from docarray import DocList

    from memeflow.documents import MemeDoc
    from memeflow.indexer.executor import MemeIndexer, QueryDimensionError

    monkeypatch.delenv("MEMEFLOW_WORKSPACE", raising=False)
    root = tmp_path / "ws"
    indexer = MemeIndexer(workspace=str(root))
    running = identity("a", unit_rows(np.random.default_rng(7), 4, 8))
    check_workspace_model(root, running)  # the encoder, starting
    vector = np.ones(8, dtype=np.float32)
    indexer.index(DocList[MemeDoc]([MemeDoc(id="x", embedding=vector)]), {})
    assert workspace.read_meta(root)["model"] == running
    with pytest.raises(QueryDimensionError, match="3-d but the index holds 8-d") as wrong:
        indexer.search(DocList[MemeDoc]([MemeDoc(embedding=np.ones(3))]), {})
    assert isinstance(wrong.value, ValueError)  # the client's mistake: a 4xx at the gateway
    indexer.clear(DocList[MemeDoc]())
    assert workspace.read_meta(root)["model"] is None
    indexer.close()


def test_an_old_sharded_workspace_moves_each_shard_into_its_database(tmp_path) -> None:
    root = tmp_path / "ws"
    for shard in ("shard-0-of-2", "shard-1-of-2"):
        old_workspace(root / shard)
    shutil.copy(REPO / "tests" / "workspaces" / "format-2" / META_FILE, root / META_FILE)
    assert open_workspace(root)["format"] == FORMAT
    for shard in ("shard-0-of-2", "shard-1-of-2"):
        store = EmbeddedCollection(root / shard)  # each shard's indexer, at its first start
        assert len(store) == 38
        store.close()
        assert not (root / shard / legacy.SNAPSHOT).exists()
