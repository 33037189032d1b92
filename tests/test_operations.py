"""Operating the service: where it listens, its Prometheus metrics, its health checks.

One Flow with metrics on (MEMEFLOW_METRICS_PORT) serves the module.
"""

import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from memeflow.cli.exposure import free_port_run
from memeflow.client import MemeClient
from memeflow.documents import MemeDoc
from tests.conftest import Service, processes_with, serving
from tests.test_hostile import png

pytestmark = pytest.mark.flow


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    metrics = str(free_port_run(3))  # gateway, encoder, indexer
    with serving(tmp_path_factory.mktemp("operations"), MEMEFLOW_METRICS_PORT=metrics) as running:
        yield running


@pytest.fixture(scope="module")
def client(service: Service) -> MemeClient:
    return MemeClient(service.env["MEMEFLOW_HOST"])


def listening(marker: str) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the Flow's processes listen on."""
    inodes = set()
    for pid in processes_with(marker):
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    loopback = {"0100007F", "0" * 24 + "01000000", "0" * 16 + "FFFF0000" + "0100007F"}  # ::ffff:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                host, port = fields[1].split(":")
                found.add(("loopback" if host in loopback else host, int(port, 16)))
    return found


def test_the_flow_listens_on_loopback_only(service: Service) -> None:
    sockets = listening(service.marker)
    metrics = int(service.env["MEMEFLOW_METRICS_PORT"])
    expected = {service.grpc_port, service.http_port, metrics, metrics + 1, metrics + 2}
    assert expected <= {port for _, port in sockets}
    assert {host for host, _ in sockets} == {"loopback"}, sockets  # executors included


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
        return reply.read().decode()


def observed(text: str, metric: str) -> float:
    counts = re.findall(rf"^{metric}_count{{[^}}]*}} (\S+)$", text, re.MULTILINE)
    return sum(float(count) for count in counts)


def test_metrics_time_each_phase_and_health_checks_answer(
    client: MemeClient, service: Service
) -> None:
    client._post("/index", [MemeDoc(id="measured", text="a cat in a box")])
    client.search_text("a cat in a box", top_k=3)
    client.search_image(png(), top_k=3)
    base = int(service.env["MEMEFLOW_METRICS_PORT"])
    gateway, encoder, indexer = scrape(base), scrape(base + 1), scrape(base + 2)
    for metric in ("jina_encode_seconds", "jina_read_seconds", "jina_decode_seconds",
                   "jina_embed_images_seconds", "jina_embed_texts_seconds"):
        assert observed(encoder, metric) >= 1, metric
    assert observed(indexer, "jina_search_seconds") >= 2
    assert observed(indexer, "jina_index_seconds") >= 1
    assert "jina_receiving_request_seconds" in gateway
    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    client.delete(["measured"])
