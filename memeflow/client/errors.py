"""Errors from the service as people read them: one exception, one line naming the cause
and the fix, from whatever the service answered (over gRPC a reply whose header holds the
error with the service's stack frames, or a gRPC status; over HTTP the reply's JSON).

`RequestRefused`: the service refused what was sent (a bad parameter, too many documents,
a missing API key); change the request. `ServiceError`: the service failed on a valid
request; its log has the traceback. Both keep the service's stack frames, if any, in
`details`, for `memeflow --verbose`.
"""

import ast
import re
from collections.abc import Sequence
from typing import Any

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


def from_status(status: Any, endpoint: str) -> ServiceError:
    """From the error status in a gRPC reply's header (Jina's `StatusProto`: a description,
    and the exception's name, arguments and stack frames)."""
    exception = status.exception
    message = _message(exception.args, status.description)
    details = "".join(exception.stacks)
    if exception.name == REFUSAL_NAME:
        return RequestRefused(f"the service refused {endpoint}: {message}", details)
    return _fault(endpoint, f"{exception.name}: {message}", details)


def _fault(endpoint: str, cause: str, details: str = "") -> ServiceError:
    return ServiceError(f"the service failed on {endpoint} ({cause}); its log has the "
                        "traceback", details)


def from_http(content: Any, endpoint: str) -> ServiceError:
    """From the JSON of an HTTP error reply (any status but 200 and 404)."""
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


def from_rpc(code: str, details: str, endpoint: str, address: str) -> ServiceError:
    """From a gRPC status other than OK that is not about reaching the service (the
    caller turns UNAVAILABLE and DEADLINE_EXCEEDED into ConnectionError and TimeoutError):
    `code` is the status's name, e.g. "UNAUTHENTICATED"."""
    text = f"{code} {details.splitlines()[0] if details else ''}".strip()
    # The API key check (memeflow.gateway.auth); a request that does not parse.
    if code in ("UNAUTHENTICATED", "INVALID_ARGUMENT"):
        return RequestRefused(f"{address} refused {endpoint}: {text}")
    if code == "UNIMPLEMENTED":  # something else listens there
        return ServiceError(f"{address} is not a memeflow service ({text}): check --host or "
                            "MEMEFLOW_HOST")
    return _fault(endpoint, text)
