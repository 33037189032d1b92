"""Hostile and awkward inputs sent to a running service, over gRPC and HTTP.

Each input gets a valid result or a clear error on its own document while the rest of its
request is served, and the service goes on answering. One Flow serves the module, with a
root folder it may read and one local web server it may fetch from; every image is made
here with Pillow.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from docarray import DocList
from jina.excepts import BadServer
from PIL import Image

from memeflow.cli.serve import FlowProcess
from memeflow.client import MemeClient, RequestRefused, ServiceError
from memeflow.documents import MemeDoc
from tests.conftest import REPO, Service, free_port, local_http_server, serving
from tests.test_images import BLUE, RED, cmyk_profile, encode, noise

pytestmark = pytest.mark.flow

PAGE = b"<!doctype html><html><body>a page, not a picture</body></html>"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'


def png(colour: tuple[int, int, int] = RED) -> bytes:
    return encode(Image.new("RGB", (64, 64), colour), "PNG")


def animation(fmt: str, **params: object) -> bytes:
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, BLUE, (0, 255, 0))]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **params)


def upright_and_rotated() -> tuple[bytes, bytes]:
    """A photo as it should look, and the same photo stored sideways with an EXIF tag."""
    upright = noise((96, 64))
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    return encode(upright, "PNG"), encode(sideways, "JPEG", quality=98, exif=exif.tobytes())


def hostile_images() -> dict[str, tuple[bytes, str | None]]:
    """name -> (bytes, None if it must be indexed, else a pattern its error must match)."""
    jpeg, full_png = encode(noise((256, 256)), "JPEG", quality=90), encode(noise((256, 256)), "PNG")
    deep = Image.fromarray(np.linspace(0, 65535, 64 * 64, dtype=np.uint16).reshape(64, 64))
    alpha = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    alpha.paste((0, 0, 255, 255), (0, 0, 32, 64))
    cmyk = Image.new("CMYK", (64, 64), (0, 255, 255, 0))
    upright, rotated = upright_and_rotated()
    return {
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated or corrupt"),
        "truncated.png": (full_png[: len(full_png) // 2], "truncated or corrupt"),
        "zero-bytes.jpg": (b"", "empty|neither text nor image"),  # gRPC sends b"" as no blob
        "page.jpg": (PAGE, "HTML page"),
        "notes.jpg": (b"shopping list: milk, eggs\n", "not an image"),
        "drawing.svg": (SVG, "SVG"),
        "bomb.png": (encode(Image.new("1", (10000, 9000), 1), "PNG"), "decompression-bomb"),
        "pixel.png": (encode(Image.new("RGB", (1, 1), RED), "PNG"), None),
        "strip.png": (encode(Image.new("RGB", (10000, 1), RED), "PNG"), None),
        "tower.png": (encode(Image.new("RGB", (1, 10000), BLUE), "PNG"), None),
        "anim.gif": (animation("GIF"), None),
        "anim.webp": (animation("WEBP", lossless=True), None),
        "anim.apng": (animation("PNG"), None),
        "cmyk.jpg": (encode(cmyk, "JPEG"), None),
        "cmyk-icc.jpg": (encode(cmyk, "JPEG", icc_profile=cmyk_profile((50, 20, -30))), None),
        "deep.png": (encode(deep, "PNG"), None),
        "alpha.png": (encode(alpha, "PNG"), None),
        "grey.jpg": (encode(Image.new("L", (64, 64), 90), "JPEG"), None),
        "upright.png": (upright, None),
        "rotated.jpg": (rotated, None),
    }


class _Images(BaseHTTPRequestHandler):
    """A web server the service may fetch from (127.0.0.1) that also tries to send it away."""

    def do_GET(self) -> None:
        if self.path == "/meme.png":
            body = png(BLUE)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:  # any other path: off to the same machine under a name that is not allowed
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/meme.png")
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    with local_http_server(_Images) as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("files")
    (base / "memes").mkdir()
    (base / "memes" / "ok.png").write_bytes(png())
    (base / "secret.png").write_bytes(png(BLUE))
    (base / "memes" / "link-out.png").symlink_to(base / "secret.png")
    return base / "memes"


API_KEY = "hostile-module-key"


@pytest.fixture(scope="module")
def service(tmp_path_factory, web: str, root: Path) -> Iterator[Service]:
    """A Flow with roots, one fetch host and an API key; this process's clients send it."""
    env = dict(MEMEFLOW_ROOTS=str(root), MEMEFLOW_FETCH_HOSTS=web, MEMEFLOW_API_KEY=API_KEY,
               no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
    with pytest.MonkeyPatch.context() as patch, \
            serving(tmp_path_factory.mktemp("hostile"), **env) as running:
        patch.setenv("MEMEFLOW_API_KEY", API_KEY)
        yield running


@pytest.fixture(scope="module")
def client(service: Service) -> MemeClient:
    return MemeClient(service.env["MEMEFLOW_HOST"])


def http(service: Service | SimpleNamespace, method: str, path: str, body: bytes | None = None,
         key: str | None = API_KEY, headers: dict[str, str] | None = None) -> tuple[int, str]:
    headers = ({"Content-Type": "application/json"} | ({"x-api-key": key} if key else {})
               | (headers or {}))
    request = urllib.request.Request(f"{service.http}{path}", data=body, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def post(service: Service, endpoint: str, docs: list[dict], **parameters: object) -> list[dict]:
    status, text = http(service, "POST", endpoint,
                        json.dumps({"data": docs, "parameters": parameters}).encode())
    assert status == 200, text
    return json.loads(text)["data"]


def test_hostile_images_fail_alone_in_one_request(client: MemeClient, service: Service) -> None:
    cases = hostile_images()
    docs = [MemeDoc(id=name, blob=data) for name, (data, _) in cases.items()]
    replies = {doc.id: doc for doc in client._post("/index", docs)}
    assert set(replies) == set(cases)
    for name, (_, expected) in cases.items():
        reply = replies[name]
        if expected is None:
            assert reply.error is None, f"{name}: {reply.error}"
        else:
            assert reply.error and re.search(expected, reply.error), (name, reply.error)
            assert "\n" not in reply.error
        assert reply.blob is None and reply.embedding is None
    good = {name for name, (_, expected) in cases.items() if expected is None}
    assert set(client.stored(list(cases))) == good
    # The EXIF tag was applied: the sideways photo finds its upright original.
    hits = client.search_image(cases["rotated.jpg"][0], top_k=2)
    assert {hits[0]["id"], hits[1]["id"]} == {"rotated.jpg", "upright.png"}
    log = service.log_path.read_text()
    assert "DecompressionBombWarning" not in log and "Traceback" not in log
    client.delete(list(good))


def test_awkward_texts_over_grpc_and_http(client: MemeClient, service: Service) -> None:
    texts = {
        "long": "drake " * 2000 + "the end",  # 10,007 characters, cut at 77 tokens
        "emoji": "😂🔥💯 when the tests pass on the first try 🎉",
        "arabic": "عندما ينجح الكود من أول مرة",
        "hebrew": "כשהקוד עובד בפעם הראשונה",
        "nul": "nul\x00in\x00the\x00middle",
    }
    refused = {"empty": "", "blank": " \t\n\u3000 "}
    docs = [MemeDoc(id=k, text=v) for k, v in {**texts, **refused}.items()]
    replies = {doc.id: doc for doc in client._post("/index", docs)}
    assert all(replies[k].error is None for k in texts), {k: replies[k].error for k in texts}
    assert all("neither text nor image" in replies[k].error for k in refused)
    for name, text in texts.items():
        assert client.search_text(text, top_k=1)[0]["id"] == name  # gRPC
        (result,) = post(service, "/search", [{"text": text}], top_k=1)  # HTTP, as JSON
        assert result["matches"][0]["id"] == name
    # A 200-word query in the command line's syntax is text (not a path "too long"), cut at
    # 77 tokens like any other: the same hits over gRPC and HTTP.
    words = "drake " * 200
    hits = MemeClient(f"http://127.0.0.1:{service.http_port}").search_query(words, top_k=3)
    assert [h["id"] for h in client.search_query(words, top_k=3)] == [h["id"] for h in hits]
    assert len(hits) == 3
    client.delete(list(texts))


def test_bad_embeddings_fail_alone(client: MemeClient) -> None:
    good = np.random.default_rng(3).standard_normal(512).astype(np.float32)
    nan, inf = good.copy(), good.copy()
    nan[7], inf[9] = np.nan, np.inf
    docs = [
        MemeDoc(id="short", embedding=good[:3]),
        MemeDoc(id="long", embedding=np.concatenate([good, good[:1]])),
        MemeDoc(id="matrix", embedding=np.stack([good, good])),
        MemeDoc(id="nan", embedding=nan),
        MemeDoc(id="inf", embedding=inf),
        MemeDoc(id="zero", embedding=np.zeros(512, np.float32)),
        MemeDoc(id="good", embedding=good),
    ]
    replies = {doc.id: doc for doc in client._post("/index", docs)}
    for name in ("short", "long", "matrix"):
        assert "512" in replies[name].error, replies[name].error
    for name in ("nan", "inf", "zero"):
        assert "NaN/inf" in replies[name].error
    assert replies["good"].error is None
    assert set(client.stored([d.id for d in docs])) == {"good"}
    hits = client.search(MemeDoc(embedding=good), top_k=1)
    assert hits[0]["id"] == "good" and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    client.delete(["good"])


def test_no_file_outside_the_roots_over_grpc_and_http(
    client: MemeClient, service: Service, root: Path
) -> None:
    escapes = [
        "file:///etc/passwd",
        "/etc/passwd",
        "../../../../../../etc/passwd",
        f"{root}/../secret.png",
        f"file://{root}/../secret.png",
        str(root / "link-out.png"),
    ]
    for endpoint in ("/index", "/search"):
        over_grpc = client._post(endpoint, [MemeDoc(uri=uri) for uri in escapes])
        over_http = post(service, endpoint, [{"uri": uri} for uri in escapes])
        for uri, by_grpc, by_http in zip(escapes, over_grpc, over_http, strict=True):
            for error in (by_grpc.error, by_http["error"]):
                assert error.startswith(f"{uri}: outside the folders"), error
                assert "MEMEFLOW_ROOTS" in error and "root:" not in error
            assert not by_grpc.matches and not by_http["matches"]
    inside = post(service, "/index", [{"uri": str(root / "ok.png")}])
    assert inside[0]["error"] is None
    assert inside[0]["id"] in client.stored([inside[0]["id"]])
    assert client.count() == 1
    client.delete([inside[0]["id"]])


def test_urls_only_from_allowed_hosts(client: MemeClient, service: Service, web: str) -> None:
    port = web.split(":")[1]
    allowed, other = f"http://{web}/meme.png", f"http://localhost:{port}/meme.png"
    replies = post(service, "/index", [{"uri": allowed}, {"uri": other},
                                       {"uri": f"http://{web}/elsewhere"}])
    assert replies[0]["error"] is None
    assert replies[1]["error"] == (
        f"{other}: host 'localhost' is not one the service may fetch from (MEMEFLOW_FETCH_HOSTS)")
    assert "redirects to" in replies[2]["error"] and "another host" in replies[2]["error"]
    assert set(client.stored([r["id"] for r in replies if r["id"]])) == {replies[0]["id"]}
    client.delete([replies[0]["id"]])


def test_malformed_http_and_unknown_endpoints(client: MemeClient, service: Service) -> None:
    for body in (b"{not json", b'{"data": "nope"}', b'{"data": [{"text": 5}], "parameters": 3}'):
        status, text = http(service, "POST", "/search", body)
        assert status == 422, (body, status, text)
    assert http(service, "POST", "/no-such-endpoint", b'{"data": []}')[0] == 404
    assert http(service, "GET", "/../../etc/passwd")[0] == 404
    status, text = http(service, "POST", "/search", json.dumps(
        {"data": [{"text": "ok"}], "parameters": {"top_k": "all"}}).encode())
    assert status == 400 and "top_k must be a whole number" in text
    assert client.count() == 0  # and the service still answers


def test_ten_thousand_documents(client: MemeClient, service: Service) -> None:
    vectors = np.random.default_rng(4).standard_normal((10_000, 512)).astype(np.float32)
    docs = [MemeDoc(id=f"bulk-{i}", embedding=v) for i, v in enumerate(vectors)]
    # The client sends them as 100 requests of 100; all are indexed.
    replies = client._post("/index", docs)
    assert len(replies) == 10_000 and not [d.error for d in replies if d.error]
    assert client.count() == 10_000
    # One gRPC request of 10,000 is over the per-request limit: refused whole, with the fix.
    for endpoint in ("/index", "/upsert"):  # /upsert skips the encoder
        with pytest.raises(Exception, match=r"10000 documents, over the limit of 1000"):
            client._client.post(endpoint, inputs=DocList[MemeDoc](docs[:10_000]),
                                request_size=10_000, return_type=DocList[MemeDoc],
                                **client._auth)
    # Over HTTP, more than 100 documents are refused (Jina's gateway would answer 100 and
    # drop the rest without a word); 100 get an answer each.
    status, text = http(service, "POST", "/index", json.dumps(
        {"data": [{"id": f"empty-{i}"} for i in range(10_000)]}).encode())
    assert status == 413 and "request holds 10000 documents" in text, text[:300]
    status, text = http(service, "POST", "/index", json.dumps(
        {"data": [{"id": f"empty-{i}"} for i in range(100)]}).encode())
    assert status == 200
    answers = json.loads(text)["data"]
    assert len(answers) == 100
    assert all("neither text nor image" in doc["error"] for doc in answers)
    assert client.count() == 10_000
    hits = client.search(MemeDoc(embedding=vectors[1234]), top_k=1)
    assert hits[0]["id"] == "bulk-1234"
    client.clear()


def test_the_api_key_guards_both_protocols(service: Service, monkeypatch) -> None:
    query = json.dumps({"data": [{"text": "a cat"}], "parameters": {"top_k": 1}}).encode()
    for key in (None, "wrong", API_KEY[:-1]):
        status, text = http(service, "POST", "/search", query, key=key)
        assert status == 401 and "MEMEFLOW_API_KEY" in text
        if key is None:
            monkeypatch.delenv("MEMEFLOW_API_KEY")
        else:
            monkeypatch.setenv("MEMEFLOW_API_KEY", key)
        with pytest.raises(Exception, match="UNAUTHENTICATED"):
            MemeClient(service.env["MEMEFLOW_HOST"]).count()
        with pytest.raises(Exception, match="UNAUTHENTICATED"):
            MemeClient(service.env["MEMEFLOW_HOST"]).search_text("a cat")
    assert http(service, "POST", "/search", query)[0] == 200
    monkeypatch.setenv("MEMEFLOW_API_KEY", API_KEY)
    assert MemeClient(service.env["MEMEFLOW_HOST"]).count() >= 0
    jina = Path(sys.executable).parent / "jina"  # health checks need no key
    for address in (f"grpc://127.0.0.1:{service.grpc_port}", service.http):
        env = {k: v for k, v in service.env.items() if k != "MEMEFLOW_API_KEY"}
        ping = subprocess.run([str(jina), "ping", "flow", address], capture_output=True,
                              timeout=120, env=env, check=False)
        assert ping.returncode == 0, ping.stdout


# Each is refused as a whole, by name: HTTP 400 (not Jina's 500), gRPC Jina's RequestError.
REFUSED_PARAMETERS = [
    ({"top_k": 0}, "top_k"), ({"top_k": -1}, "top_k"), ({"top_k": "abc"}, "top_k"),
    ({"top_k": None}, "top_k"), ({"top_k": 2.5}, "top_k"), ({"offset": -1}, "offset"),
    ({"where": "folder"}, "where"), ({"where": {"year": {"$gte": "new"}}}, r"where\['year'\]"),
    ({"min_score": "high"}, "min_score"), ({"ocr_weight": -1}, "ocr_weight"),
    ({"dedup": True, "dedup_distance": -2}, "dedup_distance"), ({"group_by": 3}, "group_by"),
    ({"return_embeddings": "maybe"}, "return_embeddings"),
]


def log_counts(log: Path, lines_after: int, expected_refusals: int) -> tuple[int, int]:
    """(refusal lines, lines with a traceback) in the service log after `lines_after`,
    once the expected refusals are there (the log is forwarded by `memeflow serve`)."""
    deadline = time.monotonic() + 30
    while True:
        lines = log.read_text().splitlines()[lines_after:]
        refused = sum("refused /" in line for line in lines)
        if refused >= expected_refusals or time.monotonic() > deadline:
            return refused, sum("Traceback" in line for line in lines)
        time.sleep(0.2)


def test_bad_parameters_are_the_callers_error(client: MemeClient, service: Service) -> None:
    start = len(service.log_path.read_text().splitlines())
    for parameters, name in REFUSED_PARAMETERS:
        status, text = http(service, "POST", "/search", json.dumps(
            {"data": [{"text": "a cat"}], "parameters": parameters}).encode())
        assert status == 400, (parameters, status, text)
        assert re.match(f"{name}.* must be ", json.loads(text)["detail"]), text
        with pytest.raises(RequestRefused, match=f"the service refused /search: {name}"):
            client.search_text("a cat", **parameters)  # gRPC
    # Jina's own client gets Jina's error status, named as the caller's.
    with pytest.raises(BadServer) as raised:
        client._client.post("/search", inputs=DocList[MemeDoc]([MemeDoc(text="a cat")]),
                            parameters={"top_k": 0}, return_type=DocList[MemeDoc],
                            **client._auth)
    exception = raised.value.args[0].status.exception
    assert (exception.name, list(exception.args)) == (
        "RequestError", ["top_k must be a whole number >= 1, got 0.0"])
    for parameters in ({"uri_prefix": 5}, {"tag": ["sha256"]}, {"return_embeddings": "x"}):
        status, text = http(service, "POST", "/find", json.dumps(
            {"data": [], "parameters": parameters}).encode())
        assert status == 400 and " must be " in json.loads(text)["detail"], text
    refusals = 2 * len(REFUSED_PARAMETERS) + 1 + 3
    assert log_counts(service.log_path, start, refusals) == (refusals, 0)  # one line each
    assert client.count() >= 0  # and the service still answers


def test_requests_invalid_as_a_whole_are_the_callers_error(
    client: MemeClient, service: Service
) -> None:
    start = len(service.log_path.read_text().splitlines())
    vectors = np.random.default_rng(5).standard_normal((1001, 3)).astype(np.float32)
    over = [MemeDoc(id=f"over-{i}", embedding=v) for i, v in enumerate(vectors)]
    with pytest.raises(RequestRefused, match="1001 documents, over the limit of 1000"):
        client.upsert(over, request_size=1001)
    # An index of 3-d vectors cannot answer the model's 512-d queries.
    client.clear()
    assert [doc.error for doc in client.upsert(over[:1])] == [None]
    query = json.dumps({"data": [{"text": "a cat"}]}).encode()
    status, text = http(service, "POST", "/search", query)
    assert status == 400 and "query embedding is 512-d but the index holds 3-d" in text, text
    with pytest.raises(RequestRefused, match="512-d but the index holds 3-d vectors: send a 3-d"):
        client.search_text("a cat")
    client.clear()
    assert log_counts(service.log_path, start, 3) == (3, 0)


PROBE = '''
from docarray import DocList
from jina import requests

from memeflow.documents import MemeDoc
from memeflow.params import RequestError
from memeflow.refusals import RefusingExecutor


class Probe(RefusingExecutor):
    """Refuses (group_by "refuse") or breaks (group_by "fail") on demand."""

    @requests(on="/search")
    def search(self, docs: DocList[MemeDoc], parameters: dict, **kwargs) -> DocList[MemeDoc]:
        if parameters.get("group_by") == "fail":
            raise RuntimeError("the probe broke")
        if parameters.get("group_by") == "refuse":
            raise RequestError("group_by refuse: leave it out")
        return docs
'''


@pytest.fixture(scope="module")
def probe_flow(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """memeflow's gateway before an executor that refuses or breaks when asked."""
    folder = tmp_path_factory.mktemp("probe")
    (folder / "probe.py").write_text(PROBE)
    flow = {"jtype": "Flow", "with": {"protocol": ["grpc", "http"]},
            "gateway": {"uses": str(REPO / "memeflow" / "gateway" / "config.yml")},
            "executors": [{"name": "probe", "uses": "Probe", "py_modules": ["probe.py"]}]}
    (folder / "flow.yml").write_text(yaml.safe_dump(flow, sort_keys=False))
    ports = SimpleNamespace(grpc_port=free_port(), http_port=free_port(), log=folder / "log")
    ports.http = f"http://127.0.0.1:{ports.http_port}"
    with ports.log.open("w") as log:
        with pytest.MonkeyPatch.context() as patch:  # what the Flow's processes inherit
            patch.setenv("MEMEFLOW_GRPC_PORT", str(ports.grpc_port))
            patch.setenv("MEMEFLOW_HTTP_PORT", str(ports.http_port))
            patch.delenv("MEMEFLOW_API_KEY", raising=False)  # the default: no key
            patch.setenv("MEMEFLOW_ALLOWED_HOSTS", "memes.lan")
            flow = FlowProcess(folder / "flow.yml", log=log)
            flow.start().wait_ready()
        try:
            yield ports
        finally:
            flow.stop()


def test_a_fault_of_the_service_stays_a_500_with_its_traceback(probe_flow: SimpleNamespace
                                                               ) -> None:
    def search(group_by: str) -> tuple[int, str]:
        return http(probe_flow, "POST", "/search", json.dumps(
            {"data": [{"text": "a cat"}], "parameters": {"group_by": group_by}}).encode())

    assert search("folder")[0] == 200
    status, text = search("refuse")
    assert (status, json.loads(text)["detail"]) == (400, "group_by refuse: leave it out")
    start = len(probe_flow.log.read_text().splitlines())
    status, text = search("fail")
    assert status == 500 and "the probe broke" in text
    deadline = time.monotonic() + 30
    while "the probe broke" not in probe_flow.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = probe_flow.log.read_text().splitlines()
    assert sum("Traceback" in line for line in lines[start:]) == 1
    assert sum("refused /search: group_by refuse" in line for line in lines) == 1
    for protocol, port in (("grpc", probe_flow.grpc_port), ("http", probe_flow.http_port)):
        client = MemeClient(f"{protocol}://127.0.0.1:{port}")
        with pytest.raises(RequestRefused, match="refused /search: group_by refuse: leave"):
            client.search_text("a cat", group_by="refuse")
        with pytest.raises(ServiceError, match=r"failed on /search \(RuntimeError: the probe "
                           r"broke\); its log has the traceback") as failed:
            client.search_text("a cat", group_by="fail")
        assert not isinstance(failed.value, RequestRefused)
    # The command line: one line, exit 1; --verbose adds the tracebacks.
    memeflow = [str(Path(sys.executable).parent / "memeflow"),
                "--host", f"grpc://127.0.0.1:{probe_flow.grpc_port}"]
    for args, message in ((["search", "cat", "--group-by", "refuse"], "refused /search"),
                          (["search", "cat", "--group-by", "fail"], "failed on /search")):
        run = subprocess.run([*memeflow, *args], capture_output=True, text=True, timeout=120,
                             env=os.environ, check=False)
        assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
        assert run.stderr.startswith(f"memeflow: the service {message}"), run.stderr
        verbose = subprocess.run([*memeflow, "--verbose", *args], capture_output=True,
                                 text=True, timeout=120, env=os.environ, check=False)
        assert verbose.returncode == 1 and "Traceback" in verbose.stderr
        assert verbose.stderr.splitlines()[-1] == run.stderr.strip()


# --- DNS rebinding: the Host and Origin guard without an API key --------------------------

ROUTES = [("POST", "/search", b'{"data": [{"text": "a cat"}]}'),
          ("POST", "/index", b'{"data": []}'), ("POST", "/delete", b'{"data": []}'),
          ("POST", "/clear", b'{"data": []}'),
          ("POST", "/count", b'{"data": []}'), ("GET", "/", None), ("GET", "/?q=cat", None),
          ("GET", "/static/app.js", None), ("GET", "/thumbnails/some-id", None),
          ("GET", "/docs", None), ("GET", "/openapi.json", None)]


def test_pages_of_other_sites_cannot_drive_a_service_without_a_key(
    probe_flow: SimpleNamespace, service: Service
) -> None:
    port = probe_flow.http_port
    start = len(probe_flow.log.read_text().splitlines())
    refused = [{"Host": f"attacker.example:{port}"},  # a rebound name
               {"Host": f"localhost.attacker.example:{port}"},
               {"Origin": "http://attacker.example"},  # another site's fetch or form
               {"Origin": "null"},
               {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}]  # its <img>
    for method, path, body in ROUTES:
        for headers in refused:
            status, text = http(probe_flow, method, path, body, key=None, headers=headers)
            assert status == 403, (method, path, headers, status)
            assert "MEMEFLOW_ALLOWED_HOSTS" in json.loads(text)["detail"]
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"memes.lan:{port}"):
            status, _ = http(probe_flow, method, path, body, key=None, headers={
                "Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"})
            assert status != 403, (method, path, host, status)
    lines = probe_flow.log.read_text().splitlines()[start:]
    assert sum("refused" in line and "MEMEFLOW_ALLOWED_HOSTS" in line for line in lines) == \
        len(ROUTES) * len(refused)
    assert not any("Traceback" in line for line in lines)
    # Following a link from another site to the page still opens it.
    assert http(probe_flow, "GET", "/?q=cat", key=None, headers={
        "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})[0] == 200
    # gRPC has no such guard: no browser can speak it (HTTP/2 with trailers); a page's
    # HTTP/1.1 request to that port is not answered.
    with socket.create_connection(("127.0.0.1", probe_flow.grpc_port), timeout=10) as sock:
        sock.sendall(b"POST /jina.JinaRPC/Call HTTP/1.1\r\nHost: attacker.example\r\n"
                     b"Content-Type: application/grpc\r\nContent-Length: 2\r\n\r\nxx")
        try:
            answer = sock.recv(100)
        except OSError:
            answer = b""
    assert not answer.startswith(b"HTTP/1.1 2")
    # With an API key the key is the guard: a page has no key (the cookie is its name's).
    query = json.dumps({"data": [{"text": "a cat"}], "parameters": {"top_k": 1}}).encode()
    assert http(service, "POST", "/search", query, key=None,
                headers={"Host": "attacker.example"})[0] == 401


# --- malformed requests: a 4xx and one log line, over HTTP and gRPC ------------------------


def raw_grpc(service: Service, method: str, body: bytes) -> tuple[str, str]:
    """Sends `body` as it is; (the answer's exception name, its description)."""
    import grpc
    from jina.proto import jina_pb2

    with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        metadata = (("x-api-key", API_KEY),)
        if method == "stream":
            call = channel.stream_stream("/jina.JinaRPC/Call", request_serializer=bytes,
                                         response_deserializer=bytes)
            (answer,) = list(call(iter([body]), metadata=metadata, timeout=120))
        else:
            call = channel.unary_unary("/jina.JinaSingleDataRequestRPC/process_single_data",
                                       request_serializer=bytes, response_deserializer=bytes)
            answer = call(body, metadata=metadata, timeout=120)
    status = jina_pb2.DataRequestProto.FromString(answer).header.status
    return status.exception.name, status.description


def nested(depth: int, kind: str = "list") -> object:
    value: object = "deep"
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def test_malformed_requests_are_the_callers_error(client: MemeClient, service: Service) -> None:
    from tests.test_guards import request_bytes

    start = len(service.log_path.read_text().splitlines())
    bodies = {  # each the example or one of its kind, anywhere in the body
        "text": rb'{"data": [{"text": "cat \ud800"}]}',
        "uri": rb'{"data": [{"uri": "x\udc00.jpg"}]}',
        "tag name": rb'{"data": [{"text": "cat", "tags": {"\udc00": 1}}]}',
        "tag value": rb'{"data": [{"text": "cat", "tags": {"t": ["a", "\udfff"]}}]}',
        "parameter": rb'{"data": [{"text": "cat"}], "parameters": {"group_by": "\ud800"}}',
        "where 50 lists": json.dumps({"data": [{"text": "cat"}], "parameters": {
            "where": {"folder": {"$in": nested(50)}}}}).encode(),
        "tags 40 deep": json.dumps({"data": [{"text": "cat", "tags": {"t": nested(40, "dict")
                                                                      }}]}).encode(),
        "where 100,000 lists": b'{"data": [{"text": "cat"}], "parameters": {"where": '
                               + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    }
    for name, body in bodies.items():
        for endpoint in ("/index", "/search"):
            status, text = http(service, "POST", endpoint, body)
            assert status == 400, (name, endpoint, status, text[:300])
            assert re.search(r"not Unicode text|more than \d+ deep", json.loads(text)["detail"])
    # At the stated depth a document's tags are stored, and every search still answers.
    limit = json.dumps({"data": [{"id": "at-limit", "text": "cat",
                                  "tags": {"t": nested(12, "dict")}}]}).encode()
    assert http(service, "POST", "/index", limit)[0] == 200
    assert client.search_text("cat", top_k=3)[0]["id"] == "at-limit"
    # gRPC: bytes that are not UTF-8 (a surrogate as UTF-8), nesting past protobuf's limit
    # or past the gateway's: Jina's refusal status, on the streaming and the unary call.
    not_utf8 = request_bytes().replace(b"MARK", b"\xed\xa0\x80!")
    for body, reason in ((not_utf8, "not UTF-8"), (request_bytes({"x": nested(40, "dict")}),
                                                   "not valid protobuf"),
                         (request_bytes({"x": nested(25, "dict")}), "over 64 levels")):
        for method in ("stream", "unary"):
            name, description = raw_grpc(service, method, body)
            assert name == "RequestError" and reason in description, (method, description)
    with pytest.raises(RequestRefused, match="over 64 levels deep"):
        client.search_text("cat", where={"t": {"$in": nested(30)}})
    refusals = 2 * len(bodies) + 6 + 1
    lines = service.log_path.read_text().splitlines()[start:]
    deadline = time.monotonic() + 30
    while sum("refused" in line for line in lines) < refusals and time.monotonic() < deadline:
        time.sleep(0.2)
        lines = service.log_path.read_text().splitlines()[start:]
    assert sum("refused" in line for line in lines) == refusals
    assert not any("Traceback" in line or "ERROR" in line for line in lines), lines[:5]
    assert client.search_text("cat", top_k=1)[0]["id"] == "at-limit"  # still answering
    # The command line: a search text or --where value whose bytes are not UTF-8 (a lone
    # surrogate in Python) is one line naming it, before anything is sent.
    for args in (["search", os.fsdecode(b"cat \xff")],
                 ["search", "cat", "--where", os.fsdecode(b"folder=\xffx")]):
        run = service.cli(*args)
        assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
        assert "\\xff" in run.stderr and "not Unicode text" in run.stderr, run.stderr
    client.delete(["at-limit"])


# --- the command line: outside text made safe, odd files, --where strings -----------------

HOSTILE_NAME = "x\x1b[2J\x1b]0;pwned\a.png"


def test_the_command_line_shows_outside_text_safely(service: Service, client: MemeClient,
                                                    tmp_path: Path) -> None:
    folder = tmp_path / "names"
    folder.mkdir()
    for i, name in enumerate([HOSTILE_NAME, "two\nlines.png", "rlo\u202egnp.exe.png"]):
        (folder / name).write_bytes(png((40 * i, 0, 0)))
    (folder / "meta.json").write_text(json.dumps({"caption": "\x1b[31mred\x1b[0m"}))
    os.mkfifo(folder / "pipe\x1b[1m.jpg")  # fails, and its failure line is shown too
    indexed = service.cli("index", str(folder), str(folder / "pipe\x1b[1m.jpg"))
    assert indexed.returncode == 0, indexed.stderr
    out = indexed.stdout + indexed.stderr
    assert "\x1b" not in out and "\a" not in out, out
    assert "not a regular file: a named pipe (FIFO)" in out and "pipe\\x1b[1m.jpg" in out
    searched = service.cli("search", "red", "-k", "3", "--preview", "always")
    assert searched.returncode == 0, searched.stderr
    hits = searched.stdout.splitlines()[-3:]  # after the preview's rows: one line per hit
    assert {h.split(maxsplit=3)[-1].split("/")[-1] for h in hits} == {
        "x\\x1b[2J\\x1b]0;pwned\\x07.png", "two\\nlines.png", "rlo\\u202egnp.exe.png"}
    for dangerous in ("\x1b[2J", "\x1b]0;", "\a", "\u202e", "two\nlines"):
        assert dangerous not in searched.stdout  # the preview's own colours stay
    as_json = json.loads(service.cli("search", "red", "-k", "3", "--json").stdout)
    assert {Path(h["uri"]).name for h in as_json} == {
        HOSTILE_NAME, "two\nlines.png", "rlo\u202egnp.exe.png"}  # unchanged
    ranked = service.cli("rank", str(folder / HOSTILE_NAME), "a \x1b[2J cat", "b")
    assert ranked.returncode == 0 and "\x1b" not in ranked.stdout
    assert "a \\x1b[2J cat" in ranked.stdout
    missing = service.cli("search", "--image", str(folder / "gone\x1b[2J.png"))
    assert missing.returncode == 1 and "\x1b" not in missing.stderr
    assert missing.stderr.count("\n") == 1 and "gone\\x1b[2J.png" in missing.stderr
    client.delete([h["id"] for h in as_json])


def test_a_fifo_named_on_the_command_line_fails_alone(service: Service, client: MemeClient,
                                                      tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "d" / "pipe.jpg")
    (tmp_path / "d" / "ok.png").write_bytes(png())
    (tmp_path / "dev.png").symlink_to("/dev/zero")
    run = service.cli("index", str(tmp_path / "d" / "pipe.jpg"), str(tmp_path / "dev.png"),
                      str(tmp_path / "d" / "ok.png"), timeout=120)  # it hung forever
    assert run.returncode == 0, run.stderr
    assert f"failed: {tmp_path}/d/pipe.jpg: not a regular file: a named pipe (FIFO)" in run.stdout
    assert f"failed: {tmp_path}/dev.png: not a regular file: a character device" in run.stdout
    assert "1 encoded" in run.stdout and "2 failed" in run.stdout
    with pytest.raises(OSError, match="not a regular file"):
        client.search_image(tmp_path / "d" / "pipe.jpg")
    client.clear()


def test_where_states_a_string_exactly(service: Service, client: MemeClient) -> None:
    vectors = np.random.default_rng(8).standard_normal((4, 512)).astype(np.float32)
    tags = [{"zip": "007", "version": "1.10", "flag": "true"},
            {"zip": 7, "version": 1.1, "flag": True}, {"zip": "7"}, {"zip": "008"}]
    client.upsert([MemeDoc(id=f"w{i}", embedding=v, tags=t)
                   for i, (v, t) in enumerate(zip(vectors, tags, strict=True))])

    def found(*conditions: str) -> set[str]:
        args = [arg for condition in conditions for arg in ("--where", condition)]
        run = service.cli("search", "anything", "-k", "10", "--json", *args)
        assert run.returncode == 0, run.stderr
        return {hit["id"] for hit in json.loads(run.stdout)}

    assert found('zip="007"') == {"w0"}  # before: sent as 7, found w1
    assert found("zip=007") == found("zip=7") == {"w1"}
    assert found("zip='7'") == {"w2"}
    assert found('version="1.10"') == {"w0"} and found("version=1.10") == {"w1"}
    assert found('flag="true"') == {"w0"} and found("flag=true") == {"w1"}
    assert found('zip="007"|"008"') == {"w0", "w3"}
    status, text = http(service, "POST", "/search", json.dumps(  # as HTTP states it
        {"data": [{"text": "anything"}], "parameters": {"where": {"zip": "007"}}}).encode())
    assert status == 200
    assert {m["id"] for m in json.loads(text)["data"][0]["matches"]} == {"w0"}
    assert "'zip=\"007\"'" in service.cli("search", "--help").stdout.replace("\n", " ")
    client.clear()
