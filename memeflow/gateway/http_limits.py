"""Size limits on HTTP requests, checked before Jina's HTTP gateway parses them.

Jina 3.34's HTTP gateway cuts the documents of one POST into requests of 100 and replies
with the first request's answer only: the other documents are sent on or not, with no
word to the client. So an HTTP request may carry at most 100 documents (more are refused
with the reason and the fix), and its body at most MEMEFLOW_MAX_REQUEST_BYTES.
"""

import json
from typing import Any

from memeflow import config
from memeflow.config import MAX_REQUEST_BYTES_ENV
from memeflow.gateway.auth import ASGIApp, Receive, Scope, Send
from memeflow.protocol import HTTP_MAX_DOCS


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


def _document_count(body: bytes) -> int | None:
    """How many documents a JSON body's `data` holds; None if it is not such a body (Jina
    answers those itself, with a 422)."""
    try:
        payload: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
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
        count = _document_count(body)
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
