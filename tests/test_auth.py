"""The API key checks, tried with no key, wrong keys and tricks, on real servers."""

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from memeflow.gateway.auth import ApiKeyCheck, GrpcApiKey, HttpApiKey, presented_key
from memeflow.protocol import client_headers

KEY = "s3cret-key"


async def echo_app(scope: dict, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


def call_http(
    path: str, headers: dict[str, str], key: str | None = KEY, method: str = "POST"
) -> tuple[int, bytes]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": path, "method": method,
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(HttpApiKey(echo_app, key)(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize("headers", [
    {},
    {"x-api-key": "wrong"},
    {"x-api-key": KEY[:-1]},
    {"x-api-key": ""},
    {"authorization": "Bearer wrong"},
    {"authorization": f"Basic {KEY}"},
    {"authorization": "Bearer"},
    {"authorization": f"Bearer {KEY}x"},
], ids=["none", "wrong", "prefix", "empty", "bearer-wrong", "basic", "bearer-empty", "longer"])
def test_http_without_the_right_key_is_refused(headers: dict[str, str]) -> None:
    status, body = call_http("/search", headers)
    assert status == 401
    assert "MEMEFLOW_API_KEY" in json.loads(body)["detail"]


def test_http_with_the_key_is_served() -> None:
    assert call_http("/search", {"x-api-key": KEY}) == (200, b"served")
    assert call_http("/search", {"Authorization": f"bearer {KEY}"}) == (200, b"served")
    assert call_http("/search", {}, key=None) == (200, b"served")  # no key configured: open


def test_the_search_pages_cookie_carries_the_key_and_only_the_right_one() -> None:
    assert call_http("/thumbnails/x", {"cookie": f"theme=dark; memeflow_key={KEY}"},
                     method="GET") == (200, b"served")
    assert call_http("/search", {"cookie": "memeflow_key=s3cret%2Dkey"}) == (200, b"served")
    for cookie in ("memeflow_key=wrong", "memeflow_key=", f"other_key={KEY}",
                   f'memeflow_key="{KEY}x"', "memeflow_key"):
        assert call_http("/search", {"cookie": cookie})[0] == 401, cookie


def test_http_health_paths_stay_open_and_nothing_else() -> None:
    assert call_http("/", {})[0] == 200
    assert call_http("/dry_run", {})[0] == 200
    assert call_http("/static/app.js", {}, method="GET")[0] == 200
    assert call_http("/favicon.ico", {}, method="GET")[0] == 200
    for path in ("/dry_run/../search", "//search", "/docs", "/openapi.json", "/dry_run/x",
                 "/static/../search", "/thumbnails/abc", "/files/abc", "/files", "/count",
                 "/status", "/favicon.ico/../search"):
        assert call_http(path, {})[0] == 401, path
        assert call_http(path, {}, method="GET")[0] == 401, path
    assert call_http("/static/app.js", {}, method="POST")[0] == 401


def test_client_headers_come_from_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMEFLOW_API_KEY", raising=False)
    assert client_headers() == {}
    monkeypatch.setenv("MEMEFLOW_API_KEY", KEY)
    assert presented_key(client_headers()) == KEY


async def _unary(request: bytes, context) -> bytes:
    return b"unary:" + request


async def _stream(requests: AsyncIterator[bytes], context) -> AsyncIterator[bytes]:
    async for request in requests:
        yield b"stream:" + request


async def _grpc_scenario() -> dict[str, object]:
    server = grpc.aio.server(interceptors=[GrpcApiKey(KEY)])
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "Stream": grpc.stream_stream_rpc_method_handler(_stream),
    }
    generic = grpc.method_handlers_generic_handler("jina.JinaRPC", handlers)
    server.add_generic_rpc_handlers([generic])
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    results: dict[str, object] = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            unary = channel.unary_unary("/jina.JinaRPC/Unary")
            stream = channel.stream_stream("/jina.JinaRPC/Stream")
            for name, metadata in {
                "none": None,
                "wrong": (("x-api-key", "nope"),),
                "basic": (("authorization", f"Basic {KEY}"),),
                "key": (("x-api-key", KEY),),
                "bearer": (("authorization", f"Bearer {KEY}"),),
            }.items():
                for kind in ("unary", "stream"):
                    try:
                        if kind == "unary":
                            reply = await unary(b"hi", metadata=metadata)
                        else:
                            reply = [r async for r in stream(iter([b"a", b"b"]), metadata=metadata)]
                        results[f"{kind}-{name}"] = reply
                    except grpc.aio.AioRpcError as error:
                        results[f"{kind}-{name}"] = (error.code(), error.details())
            check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            results["health"] = (await check).status
            try:
                missing = channel.unary_unary("/jina.JinaRPC/Missing")
                await missing(b"x", metadata=(("x-api-key", KEY),))
            except grpc.aio.AioRpcError as error:
                results["missing"] = error.code()
    finally:
        await server.stop(None)
    return results


def test_grpc_needs_the_key_but_health_checks_do_not() -> None:
    results = asyncio.run(_grpc_scenario())
    for name in ("none", "wrong", "basic"):
        for kind in ("unary", "stream"):
            code, details = results[f"{kind}-{name}"]
            assert code == grpc.StatusCode.UNAUTHENTICATED, (kind, name)
            assert "MEMEFLOW_API_KEY" in details
    for name in ("key", "bearer"):
        assert results[f"unary-{name}"] == b"unary:hi"
        assert results[f"stream-{name}"] == [b"stream:a", b"stream:b"]
    assert results["health"] == health_pb2.HealthCheckResponse.SERVING
    assert results["missing"] == grpc.StatusCode.UNIMPLEMENTED


def test_the_gateway_check_protects_a_fastapi_app() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    def build(check: ApiKeyCheck) -> TestClient:
        app = FastAPI()
        app.post("/search")(lambda: {"data": []})
        app.get("/")(lambda: {})
        check.protect_http(app)
        return TestClient(app)

    guarded = build(ApiKeyCheck(KEY))
    assert guarded.post("/search").status_code == 401
    assert guarded.post("/search", headers={"x-api-key": "nope"}).status_code == 401
    assert guarded.post("/search", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert guarded.get("/").status_code == 200
    assert build(ApiKeyCheck("")).post("/search").status_code == 200  # no key: open
    assert ApiKeyCheck("").grpc_interceptors() == []
    assert isinstance(ApiKeyCheck(KEY).grpc_interceptors()[0], GrpcApiKey)


def test_http_requests_the_gateway_would_answer_in_part_are_refused() -> None:
    from fastapi import FastAPI, Request
    from fastapi.testclient import TestClient

    from memeflow.gateway.checks import GatewayChecks
    from memeflow.gateway.http_limits import HttpRequestLimit

    app = FastAPI()

    @app.post("/index")
    async def index(request: Request) -> dict:
        return {"got": len((await request.json())["data"])}

    GatewayChecks(KEY).protect_http(app)
    client = TestClient(app)
    key = {"x-api-key": KEY}
    assert client.post("/index", json={"data": [{}] * 100}, headers=key).json() == {"got": 100}
    refused = client.post("/index", json={"data": [{}] * 101}, headers=key)
    assert refused.status_code == 413 and "101 documents" in refused.json()["detail"]
    assert client.post("/index", json={"data": [{}] * 101}).status_code == 401  # key first
    small = FastAPI()
    small.post("/index")(lambda: {})
    small.add_middleware(HttpRequestLimit, max_bytes=1000)
    too_big = TestClient(small).post("/index", content=b"x" * 1001)
    assert too_big.status_code == 413 and "MEMEFLOW_MAX_REQUEST_BYTES" in too_big.text
