"""The notebooks run top to bottom, as a reader would run them."""

import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import MEMES, REPO, free_port

pytestmark = pytest.mark.flow


def test_quickstart_runs(tmp_path, monkeypatch) -> None:
    memes = tmp_path / "memes"
    for name in ("drake", "aag", "ackbar", "afraid", "agnes", "success"):
        shutil.copytree(MEMES / name, memes / name)
    monkeypatch.setenv("MEMEFLOW_NOTEBOOK_MEMES", str(memes))
    monkeypatch.setenv("MEMEFLOW_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.setenv("MEMEFLOW_GRPC_PORT", str(free_port()))
    monkeypatch.setenv("MEMEFLOW_HTTP_PORT", str(free_port()))
    notebook = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    workdir = tmp_path / "run"
    workdir.mkdir()
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    outputs = "".join(
        out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    assert "indexed, 0 unchanged, 0 failed" in outputs
    images = [out for cell in notebook.cells for out in cell.get("outputs", [])
              if "image/png" in out.get("data", {})]
    assert len(images) == 2  # the text-search grid and the image-search grid
    assert os.path.exists(workdir / "flow.log")
