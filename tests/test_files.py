"""Finding images and describing them with tags."""

import json
from pathlib import Path

from PIL import Image

from memeflow.client.files import file_id, file_tags, find_images


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
    assert list(find_images([tmp_path / "gone.jpg"])) == [(tmp_path / "gone.jpg").resolve()]


def test_tags_hold_file_folder_and_flat_sidecar_metadata(tmp_path) -> None:
    make_tree(tmp_path)
    tags = file_tags(tmp_path / "a" / "b" / "two.PNG")
    assert tags == {"file": "two.PNG", "folder": "b", "name": "Two Buttons",
                    "keywords": ["choice", "sweat"], "caption": "hard choice"}
    assert file_tags(tmp_path / "a" / "one.jpg") == {"file": "one.jpg", "folder": "a"}


def test_file_id_is_stable_per_path(tmp_path) -> None:
    assert file_id(tmp_path / "x.jpg") == file_id(tmp_path / "x.jpg")
    assert file_id(tmp_path / "x.jpg") != file_id(tmp_path / "y.jpg")
