"""The wheel is the product: built, installed into a new virtualenv outside the checkout,
its `memeflow` serves the Flow shipped inside it, indexes, searches and shows the page.

The new virtualenv reaches the dependencies already installed for the tests through a
`.pth` line (a full install downloads about 1.3 GB); memeflow itself comes only from the
wheel, and nothing runs from the checkout.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.flow

SOURCE_IGNORE = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "build", "dist",
                                       "__pycache__", "test-artifacts", "workspace", "data")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """memeflow's wheel, built from a copy of the checkout (a build writes into its tree)."""
    source = tmp_path_factory.mktemp("source") / "memeflow"
    shutil.copytree(REPO, source, ignore=SOURCE_IGNORE, symlinks=True)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out), str(source)], check=True, cwd=out)
    (built,) = out.glob("memeflow-*.whl")
    return built


def test_the_wheel_holds_the_flow_and_the_page(wheel) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("memeflow/flow.yml", "memeflow/gateway/config.yml",
                 "memeflow/gateway/static/index.html", "memeflow/gateway/static/app.js",
                 "memeflow/gateway/static/media.js",
                 "memeflow/gateway/static/style.css"):
        assert data in names, data


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The bin folder of a new virtualenv holding the wheel."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], check=True, capture_output=True, text=True)
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib.stdout.strip()) / "test-dependencies.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                    str(wheel)], check=True)
    return venv / "bin"


def test_an_installed_wheel_serves_indexes_searches_and_shows_the_page(
        installed, meme_files, tmp_path) -> None:
    here = tmp_path / "elsewhere"  # not the checkout: nothing may come from it
    here.mkdir()
    grpc_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(MEMEFLOW_WORKSPACE=str(tmp_path / "workspace"), MEMEFLOW_GRPC_PORT=str(grpc_port),
               MEMEFLOW_HTTP_PORT=str(http_port), MEMEFLOW_HOST=f"grpc://127.0.0.1:{grpc_port}")
    memeflow = str(installed / "memeflow")
    where = subprocess.run([str(installed / "python"), "-c", "import memeflow; print(memeflow"
                            ".__file__)"], env=env, cwd=here, capture_output=True, text=True)
    assert str(installed.parent) in where.stdout, where.stdout  # the wheel's copy, not REPO's
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        serve = subprocess.Popen([memeflow, "serve"], env=env, cwd=here, stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while b"memeflow is ready" not in log.read_bytes():
            assert serve.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        memes = [str(path) for path in meme_files[:3]]
        run = subprocess.run([memeflow, "index", *memes], env=env, cwd=here,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0 and "3 encoded" in run.stdout, run.stderr
        run = subprocess.run([memeflow, "search", "--image", memes[1], "--json", "-k", "1"],
                             env=env, cwd=here, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)[0]["uri"] == memes[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=60) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        serve.terminate()
        serve.wait(60)
