"""Each model family serves through the Flow as a user runs it: `MEMEFLOW_MODEL=FOLDER
memeflow serve`, index, search by text and by image, and `memeflow status` names the model,
its family, dimension and runtime. Random weights: plumbing only, never quality.
"""

import json
import shutil
from pathlib import Path

import pytest

from memeflow.client import MemeClient
from tests import families
from tests.conftest import serving

pytestmark = pytest.mark.flow

BUILDERS = {  # family -> folder of its published architecture with the small vocabulary
    "siglip": lambda root: families.siglip_folder(root, shrink_vocab=True),
    "siglip2": lambda root: families.siglip2_folder(root, shrink_vocab=True),
    "metaclip2": lambda root: families.metaclip2_folder(root, shrink_vocab=True),
    "openclip": lambda root: families.open_clip_folder(root, "MobileCLIP2-S0"),
}
DIMS = {"siglip": 768, "siglip2": 768, "metaclip2": 512, "openclip": 512}


@pytest.mark.parametrize("family", list(BUILDERS))
def test_family_serves_through_the_flow(family, tmp_path, meme_files) -> None:
    if family == "openclip":
        families.open_clip_or_skip()
    model = BUILDERS[family](tmp_path / "models")
    library = tmp_path / "library"
    library.mkdir()
    picked = meme_files[:: len(meme_files) // 6][:6]
    for number, path in enumerate(picked):
        shutil.copy(path, library / f"{number}{path.suffix}")
    with serving(tmp_path, MEMEFLOW_MODEL=str(model), MEMEFLOW_RUNTIME="torch") as service:
        indexed = service.cli("index", str(library))
        assert indexed.returncode == 0, indexed.stderr
        assert indexed.stdout.strip().splitlines()[-1].startswith("6 encoded")
        client = MemeClient(service.env["MEMEFLOW_HOST"])
        query = sorted(library.iterdir())[2]
        hits = client.search_image(query, top_k=3)
        assert Path(hits[0]["tags"]["file"]).name == query.name and hits[0]["score"] > 0.99
        texts = client.search_text("a cat at a dinner table", top_k=6)
        assert len(texts) == 6
        status = json.loads(service.cli("status", "--json").stdout)
        assert (status["model"], status["family"], status["dim"], status["runtime"]) == (
            str(model), family, DIMS[family], "torch")
        plain = service.cli("status").stdout
        assert f"({family} family)" in plain and "torch" in plain
