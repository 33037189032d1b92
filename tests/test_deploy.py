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


def export(kind: str, out: Path, flow: str = "deploy/flow.yml") -> None:
    env = dict(os.environ, JINA_GATEWAY_IMAGE=GATEWAY_IMAGE)
    run = subprocess.run([JINA, "export", kind, flow, str(out)], cwd=REPO, env=env,
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
        assert f"COPY executors/{folder}/config.yml /srv/{folder}/" in dockerfile
        # the exporters run `--uses config.yml` in the working directory, and compose
        # mounts a volume on /app
        assert f"WORKDIR /srv/{folder}" in dockerfile
        assert f"memeflow/{folder.replace('_', '-')}:0.1.0" in dockerfile
    indexer = (REPO / "executors" / "meme_indexer" / "Dockerfile").read_text()
    assert "--extras milvus" in indexer  # pymilvus, for MEMEFLOW_INDEX=http://HOST:19530
    encoder = (REPO / "executors" / "clip_encoder" / "Dockerfile").read_text()
    assert "milvus]'" in encoder  # it reads the model identity from Milvus at start


def test_the_gateway_image_runs_its_config() -> None:
    dockerfile = (REPO / "deploy" / "gateway" / "Dockerfile").read_text()
    assert "memeflow/gateway:0.1.0" in dockerfile
    assert "WORKDIR /app/gateway" in dockerfile  # exporters pass `--uses config.yml`
    assert "memeflow/gateway/config.yml" in dockerfile


MILVUS_INDEX = "http://my-release-milvus:19530"


def documents_of(folder: Path) -> dict[str, list[dict]]:
    return {f.parent.name: list(yaml.safe_load_all(f.read_text()))
            for f in sorted(folder.rglob("*.yml"))}


def test_kubernetes_export_with_milvus_runs_replicated_stateless_indexers(tmp_path) -> None:
    export("kubernetes", tmp_path / "k8s", "deploy/flow-milvus.yml")
    exported = documents_of(tmp_path / "k8s")
    assert set(exported) == {"gateway", "encoder", "indexer"}  # no shard heads, no merger
    deployments = {doc["metadata"]["name"]: doc for docs in exported.values() for doc in docs
                   if doc and doc["kind"] in ("Deployment", "StatefulSet")}
    assert set(deployments) == {"gateway", "encoder", "indexer"}
    assert deployments["indexer"]["kind"] == "Deployment"
    assert deployments["indexer"]["spec"]["replicas"] > 1
    assert deployments["encoder"]["spec"]["replicas"] > 1
    template = deployments["indexer"]["spec"]["template"]
    assert template["metadata"]["labels"]["shard_id"] == "0"
    assert "volumes" not in template["spec"]  # nothing of its own to keep
    for name in ("indexer", "encoder"):  # the encoder checks its model against Milvus's
        config = next(doc for doc in exported[name] if doc and doc["kind"] == "ConfigMap")
        assert config["data"]["MEMEFLOW_INDEX"] == MILVUS_INDEX
    assert images_in(documents_of(tmp_path / "k8s")["indexer"]) == {
        "memeflow/meme-indexer:0.1.0"}


def test_milvus_values_install_standalone_under_the_name_the_indexers_use() -> None:
    values = yaml.safe_load((REPO / "deploy/kubernetes/milvus-standalone.values.yaml")
                            .read_text())
    assert values["cluster"]["enabled"] is False
    assert values["etcd"]["replicaCount"] == 1 and values["minio"]["mode"] == "standalone"
    guide = (REPO / "deploy/README.md").read_text()
    assert "helm repo add milvus https://zilliztech.github.io/milvus-helm/" in guide
    # the chart names the Service <release>-milvus
    assert "helm install my-release milvus/milvus" in guide and MILVUS_INDEX in guide


def test_docker_compose_with_milvus_standalone_reaches_it_from_every_indexer(tmp_path) -> None:
    export("docker-compose", tmp_path / "memeflow.yml", "deploy/flow-milvus.yml")
    memeflow = yaml.safe_load((tmp_path / "memeflow.yml").read_text())
    milvus = yaml.safe_load((REPO / "deploy/milvus/docker-compose.yml").read_text())
    assert {"etcd", "minio", "standalone"} <= set(milvus["services"])
    assert milvus["services"]["standalone"]["image"].startswith("milvusdb/milvus:v2.5")
    assert not set(milvus["services"]) & set(memeflow["services"])  # one project, both files
    indexers = {name: service for name, service in memeflow["services"].items()
                if name.startswith("indexer")}
    encoders = [service for name, service in memeflow["services"].items()
                if name.startswith("encoder")]
    assert len(encoders) > 1
    assert all(f"MEMEFLOW_INDEX={MILVUS_INDEX}" in service["environment"] for service in encoders)
    assert len(indexers) > 1 and not any("head" in name for name in memeflow["services"])
    host = MILVUS_INDEX.split("//")[1].split(":")[0]
    for service in indexers.values():
        assert f"MEMEFLOW_INDEX={MILVUS_INDEX}" in service["environment"]
        for network in service["networks"]:  # Milvus answers on their network by that name
            assert host in milvus["services"]["standalone"]["networks"][network]["aliases"]
            assert network in milvus["networks"]
    gateway = " ".join(memeflow["services"]["gateway"]["command"])
    assert all(f"{name}:" in gateway for name in indexers)  # it spreads requests over them
