"""The notebooks run top to bottom, as a reader would run them."""

import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import MEMES, REPO, SHARED, free_port

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


def run_notebook(name: str, workdir) -> nbformat.NotebookNode:
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return notebook


def outputs_of(notebook: nbformat.NotebookNode) -> tuple[str, int]:
    """The printed text of every cell, and how many pictures the cells drew."""
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    text = "".join(out.get("text", "") for out in outputs)
    return text, sum("image/png" in out.get("data", {}) for out in outputs)


@pytest.mark.parametrize(("name", "printed", "pictures"), [
    ("clip_experiments.ipynb", "top-1 accuracy on 30 images", 2),  # bars per image, heat map
    ("hubs.ipynb", "query-bank softmax", 2),  # wins per meme, the biggest hubs
])
def test_experiment_notebook_runs(name, printed, pictures, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEMEFLOW_NOTEBOOK_DATA", str(SHARED / "data"))
    # hub_analysis.py, as in jupyter, and this tree's memeflow, not whichever one is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "notebooks"), str(REPO)]))
    text, drawn = outputs_of(run_notebook(name, tmp_path))
    assert printed in text and "random weights: True" in text
    assert drawn == pictures


def test_notebooks_are_kept_without_outputs() -> None:
    """Outputs stay out of git: they would be random-weight pictures and noisy diffs."""
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name
