"""Limits on HTTP requests, checked before Jina's HTTP gateway parses them.

Jina 3.34's HTTP gateway cuts the documents of one POST into requests of 100 and replies
with the first request's answer only: the other documents are sent on or not, with no
word to the client. So an HTTP request may carry at most 100 documents (more are refused
with the reason and the fix), and its body at most MEMEFLOW_MAX_REQUEST_BYTES.

A JSON body is also refused (400, one log line) when it nests arrays and objects more than
`MAX_JSON_DEPTH` deep, or holds a string that is not Unicode text (a lone surrogate such
as `"\\ud800"`, which JSON's escapes allow and UTF-8 cannot carry), anywhere: in a
document, its tags, or the parameters. Jina would answer both with a 500 and tracebacks:
the depth becomes protobuf nesting that an executor cannot parse back, and a stored
document with deep tags broke every later search. Every check here is iterative: Python's
own JSON parser gives up around 1,000 levels, which is refused the same way.
"""

import json
import logging
from typing import Any

from memeflow import config
from memeflow.config import MAX_REQUEST_BYTES_ENV
from memeflow.gateway.auth import ASGIApp, Receive, Scope, Send
from memeflow.protocol import HTTP_MAX_DOCS
from memeflow.uris import terminal_safe

logger = logging.getLogger(__name__)

# Arrays and objects inside one another, the body itself counting as 1: room for any tags
# (`{"data": [{"tags": {...}}]}` leaves 12 levels) and `where` filters, and, as protobuf,
# under the gateway's gRPC limit (memeflow.gateway.grpc_limits.MAX_PROTO_DEPTH).
MAX_JSON_DEPTH = 16


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _first_problem(payload: Any, max_depth: int) -> str | None:
    """Why a parsed JSON body is refused (too deep, or a string that is not Unicode
    text), or None. Iterative, so no depth can exhaust the stack."""
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                return (f"the body nests arrays and objects more than {max_depth} deep: "
                        "flatten its tags or parameters")
            if isinstance(value, dict):
                stack.extend((key, depth) for key in value)
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                return (f"the body holds a string that is not Unicode text (a lone surrogate "
                        f"{value[exc.start]!a} in \"{terminal_safe(value[:60])}\"): send "
                        "valid UTF-8")
    return None


def check_body(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> tuple[Any, str | None]:
    """(the parsed JSON body, or None if it is not JSON; why it is refused, or None).
    A body that is not JSON is Jina's to answer (422)."""
    try:
        payload = json.loads(body)
    except RecursionError:
        return None, (f"the body nests arrays and objects more than {max_depth} deep: "
                      "flatten its tags or parameters")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return payload, _first_problem(payload, max_depth)


def _document_count(payload: Any) -> int | None:
    """How many documents a JSON body's `data` holds; None if it is not such a body."""
    data = payload.get("data") if isinstance(payload, dict) else None
    return len(data) if isinstance(data, list) else None


class HttpRequestLimit:
    """ASGI middleware: 413 for a POST over the byte limit or with more than 100 documents."""

    def __init__(
        self, app: ASGIApp, max_docs: int = HTTP_MAX_DOCS, max_bytes: int | None = None
    ) -> None:
        self.app, self.max_docs = app, max_docs
        self.max_bytes = max_bytes if max_bytes is not None else config.max_request_bytes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await _refuse(
                    send, 413, f"request body over {self.max_bytes} bytes "
                    f"({MAX_REQUEST_BYTES_ENV}): send fewer or smaller documents per request",
                )
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        payload, problem = check_body(body)
        if problem is not None:
            logger.warning("refused POST %s: %s", terminal_safe(scope["path"]), problem)
            return await _refuse(send, 400, problem)
        count = _document_count(payload)
        if count is not None and count > self.max_docs:
            return await _refuse(
                send, 413, f"request holds {count} documents; over HTTP send at most "
                f"{self.max_docs} per request (or use gRPC, which takes up to MEMEFLOW_MAX_DOCS)",
            )
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)
