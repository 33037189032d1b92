"""Errors from the service as people read them: one exception, one line naming the cause
and the fix, whatever Jina's client raised (over gRPC the whole error header with the
service's stack frames; over HTTP the reply's JSON).

`RequestRefused`: the service refused what was sent (a bad parameter, too many documents,
a missing API key); change the request. `ServiceError`: the service failed on a valid
request; its log has the traceback. Both keep Jina's exception as `__cause__` and the
service's stack frames, if any, in `details`, for `memeflow --verbose`.
"""

import ast
import re
from collections.abc import Sequence
from typing import Any

import grpc

from memeflow.params import REFUSAL_NAME

_REPR = re.compile(r"^(\w+)\((.*)\)$", re.DOTALL)  # Jina's HTTP 500 detail: repr(exception)


class ServiceError(RuntimeError):
    """The service failed on a request; `details` holds its stack frames when it sent them."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class RequestRefused(ServiceError, ValueError):
    """The service refused the request as the caller's mistake (HTTP 400, gRPC's
    `RequestError` status, 401, 413); the message says what to change."""


def _message(args: Sequence[Any], fallback: str) -> str:
    """An exception's words: its first argument that is not a number (OSError(errno,
    text) sends the errno first)."""
    words = [str(arg) for arg in args if not str(arg).lstrip("-").isdigit()]
    return words[0] if words else fallback


def _from_status(status: Any, endpoint: str) -> ServiceError:
    """From Jina's error header (`header.status`, sent over gRPC)."""
    exception = status.exception
    message = _message(exception.args, status.description)
    details = "".join(exception.stacks)
    if exception.name == REFUSAL_NAME:
        return RequestRefused(f"the service refused {endpoint}: {message}", details)
    return _fault(endpoint, f"{exception.name}: {message}", details)


def _fault(endpoint: str, cause: str, details: str = "") -> ServiceError:
    return ServiceError(f"the service failed on {endpoint} ({cause}); its log has the "
                        "traceback", details)


def _from_http(content: Any, endpoint: str) -> ServiceError:
    """From the JSON of an HTTP error reply (Jina's client raises ValueError(content))."""
    status = content.get("header", {}).get("status", {}) if isinstance(content, dict) else {}
    exception = status.get("exception") or {}
    if exception.get("name") == REFUSAL_NAME:
        message = _message(exception.get("args") or (), status.get("description", ""))
        return RequestRefused(f"the service refused {endpoint}: {message}")
    detail = content.get("detail") if isinstance(content, dict) else content
    if isinstance(detail, str) and (jina_500 := _REPR.match(detail)):
        try:
            args = ast.literal_eval(f"({jina_500[2]},)")
        except (SyntaxError, ValueError):
            args = (jina_500[2],)
        return _fault(endpoint, f"{jina_500[1]}: {_message(args, jina_500[2])}")
    if isinstance(detail, list):  # FastAPI's 422: where in the body, and what is wrong
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', ())))}: {d.get('msg')}"
                           for d in detail if isinstance(d, dict))
    return RequestRefused(f"the service refused {endpoint}: {detail}")  # 401, 413, 422


def service_error(error: BaseException, endpoint: str, address: str) -> ServiceError | None:
    """The one-line error for what Jina's client raised on a call, or None when it is not
    an answer from the service (unreachable: the caller keeps ConnectionError)."""
    from jina.excepts import BadServer, BadServerFlow

    if isinstance(error, BadServer) and error.args and hasattr(error.args[0], "status"):
        return _from_status(error.args[0].status, endpoint)
    if isinstance(error, grpc.aio.AioRpcError | BadServerFlow):
        text = (f"{error.code().name} {error.details()}" if isinstance(error, grpc.RpcError)
                else str(error).removeprefix("gRPC error: ").split("\n")[0])
        text = text.removeprefix("StatusCode.")
        # The API key check (memeflow.gateway.auth); a request that does not parse.
        if text.startswith(("UNAUTHENTICATED", "INVALID_ARGUMENT")):
            return RequestRefused(f"{address} refused {endpoint}: {text}")
        return _fault(endpoint, text)
    if type(error) is ValueError and error.args and isinstance(error.args[0], dict):
        return _from_http(error.args[0], endpoint)  # Jina's HTTP client: the reply's JSON
    return None
