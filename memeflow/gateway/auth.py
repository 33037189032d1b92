"""An optional API key for the gateway, checked on HTTP and on gRPC.

With `MEMEFLOW_API_KEY` set, every call must carry the key, as `Authorization: Bearer KEY`
or `x-api-key: KEY` (HTTP headers or gRPC metadata), or over HTTP as the `memeflow_key`
cookie the search page sets when asked for the key (a browser sends no headers with an
`<img>`, and thumbnails need the key too); without it, calls are open, which is right for
a service bound to localhost. Health checks stay open either way, so `jina ping`,
the gRPC health check and load balancers keep working: they reveal nothing indexed.
"""

import hmac
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import unquote

import grpc

from memeflow import config
from memeflow.config import API_KEY_ENV
from memeflow.protocol import KEY_HEADER

KEY_COOKIE = "memeflow_key"  # set by the search page (gateway/static/app.js)
OPEN_HTTP_PATHS = frozenset({"/", "/dry_run", "/favicon.ico"})  # health probes; the icon
OPEN_HTTP_PREFIX = "/static/"  # the search page's scripts and styles
OPEN_GRPC_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/jina.JinaGatewayDryRunRPC/dry_run",  # `jina ping` over gRPC
    }
)
MAX_DRAINED = 100  # requests read from a refused stream before it is closed
REFUSAL = (
    f"missing or wrong API key: send it as 'Authorization: Bearer KEY' or '{KEY_HEADER}: KEY' "
    f"(the key the server has in {API_KEY_ENV})"
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _open_path(method: str, path: str) -> bool:
    """Health checks, and the search page's own files (no data in them), need no key."""
    if path in OPEN_HTTP_PATHS:
        return True
    return method == "GET" and path.startswith(OPEN_HTTP_PREFIX) and ".." not in path


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a call carries; header names are lower-case (HTTP/2, ASGI and gRPC agree)."""
    if headers.get(KEY_HEADER):
        return headers[KEY_HEADER]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return _cookie_key(headers.get("cookie", ""))


def _cookie_key(header: str) -> str | None:
    if KEY_COOKIE not in header:
        return None
    try:
        morsel = SimpleCookie(header).get(KEY_COOKIE)
    except CookieError:
        return None
    return unquote(morsel.value) or None if morsel else None


def key_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison, so response times do not spell out the key."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


class HttpApiKey:
    """ASGI middleware: 401 for a call without the right key, except on open paths."""

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.key is None or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if scope["type"] == "http" and _open_path(scope["method"], scope["path"]):
            return await self.app(scope, receive, send)
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])
        }
        if key_matches(presented_key(headers), self.key):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": REFUSAL[:120]})
            return None
        body = json.dumps({"detail": REFUSAL}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return None


def _metadata(details: grpc.HandlerCallDetails) -> dict[str, str]:
    pairs: Iterable[tuple[str, str | bytes]] = details.invocation_metadata or ()
    return {name.lower(): value for name, value in pairs if isinstance(value, str)}


async def _deny(request: object, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)


async def _deny_streaming(
    requests: AsyncIterable[object], context: grpc.aio.ServicerContext
) -> None:
    """Reads what the client is still sending, then refuses: refusing mid-stream lets the
    client see INTERNAL ("Internal error from Core") instead of UNAUTHENTICATED. Bounded,
    so a client without the key cannot keep the handler reading forever."""
    count = 0
    async for _ in requests:
        count += 1
        if count >= MAX_DRAINED:
            break
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)


async def _deny_stream(request: object, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    """grpc.aio runs a streaming reply only from an async generator; this one yields nothing."""
    if hasattr(request, "__aiter__"):
        await _deny_streaming(request, context)
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)
    yield None  # never reached: abort raises


def _denying(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that refuses the call."""
    codec = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_deny_stream, **codec)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_deny_streaming, **codec)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_deny_stream, **codec)
    return grpc.unary_unary_rpc_method_handler(_deny, **codec)


class GrpcApiKey(grpc.aio.ServerInterceptor):
    """gRPC server interceptor: UNAUTHENTICATED without the right key, except health checks."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method in OPEN_GRPC_METHODS:
            return handler
        if key_matches(presented_key(_metadata(handler_call_details)), self.key):
            return handler
        return _denying(handler)


class ApiKeyCheck:
    """The gateway's access check on both ports: the key from MEMEFLOW_API_KEY, or none."""

    def __init__(self, key: str | None = None) -> None:
        self.key = key if key is not None else config.api_key()

    def protect_http(self, app: Any) -> None:
        """Adds the key check to a FastAPI/Starlette app before it starts serving."""
        if self.key:
            app.add_middleware(HttpApiKey, key=self.key)

    def grpc_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [GrpcApiKey(self.key)] if self.key else []
