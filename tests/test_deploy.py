"""`jina export` turns deploy/flow.yml into deployable YAML naming each executor's image."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

JINA = str(Path(sys.executable).parent / "jina")
IMAGES = {"memeflow/clip-encoder:0.1.0", "memeflow/meme-indexer:0.1.0",
          "memeflow/shard-merger:0.1.0", "memeflow/gateway:0.1.0"}
GATEWAY_IMAGE = "jinaai/jina:3.34.0-py311-standard"


def export(kind: str, out: Path) -> None:
    env = dict(os.environ, JINA_GATEWAY_IMAGE=GATEWAY_IMAGE)
    run = subprocess.run([JINA, "export", kind, "deploy/flow.yml", str(out)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def images_in(documents: list) -> set[str]:
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("image"), str):
                found.add(node["image"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(documents)
    return found


def test_kubernetes_export_names_every_image(tmp_path) -> None:
    export("kubernetes", tmp_path / "k8s")
    documents = [doc for f in sorted((tmp_path / "k8s").rglob("*.yml"))
                 for doc in yaml.safe_load_all(f.read_text())]
    assert images_in(documents) == IMAGES | {GATEWAY_IMAGE}
    folders = {p.name for p in (tmp_path / "k8s").iterdir()}
    assert folders == {"gateway", "encoder", "indexer"}


def test_docker_compose_export_names_every_image(tmp_path) -> None:
    export("docker-compose", tmp_path / "docker-compose.yml")
    compose = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
    assert images_in([compose]) == IMAGES | {GATEWAY_IMAGE}


def test_each_executor_has_a_dockerfile_running_its_config() -> None:
    for folder in ("clip_encoder", "meme_indexer", "shard_merger"):
        dockerfile = (REPO / "executors" / folder / "Dockerfile").read_text()
        assert f"executors/{folder}/config.yml" in dockerfile
        assert f"memeflow/{folder.replace('_', '-')}:0.1.0" in dockerfile


def test_the_gateway_image_runs_its_config() -> None:
    dockerfile = (REPO / "deploy" / "gateway" / "Dockerfile").read_text()
    assert "memeflow/gateway:0.1.0" in dockerfile
    assert "WORKDIR /app/gateway" in dockerfile  # exporters pass `--uses config.yml`
    assert "memeflow/gateway/config.yml" in dockerfile
