"""Request parameters as the executors read them: the gateway sends JSON numbers as floats.

A parameter the service cannot read refuses the whole request with `RequestError`: the
caller's mistake, which the gateway answers with HTTP 400 (`memeflow.refusals`).
"""

import math
from collections.abc import Mapping
from typing import Any

DEFAULT_TOP_K = 10


class RequestError(ValueError):
    """A request the service refuses as a whole because of what the caller sent (a bad
    parameter, too many documents); the message names the input and the fix."""


REFUSAL_NAME = RequestError.__name__  # the exception name a refusal carries to the client


_TRUE, _FALSE = {"1", "1.0", "true", "yes"}, {"0", "0.0", "false", "no", "none"}


def flag(parameters: Mapping[str, Any], name: str) -> bool:
    """A yes/no parameter: true/false, 1/0 (HTTP sends 1 as 1.0), "yes"/"no"; absent or
    null is no. Anything else is refused by name rather than read as no."""
    value = parameters.get(name, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE | _FALSE:
        raise RequestError(f"{name} must be true or false, got {value!r}")
    return text in _TRUE


def top_k(parameters: Mapping[str, Any]) -> int:
    """A whole number >= 1 (HTTP turns 2 into 2.0); anything else is refused by name."""
    return whole(parameters, "top_k", DEFAULT_TOP_K, minimum=1)


def whole(parameters: Mapping[str, Any], name: str, default: int, minimum: int = 0) -> int:
    """A whole-number parameter (HTTP sends 3 as 3.0); anything else is refused by name."""
    raw = parameters.get(name, default)
    try:
        value = math.nan if isinstance(raw, bool) else float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not value.is_integer() or value < minimum:
        raise RequestError(f"{name} must be a whole number >= {minimum}, got {raw!r}")
    return int(value)


def text(parameters: Mapping[str, Any], name: str) -> str | None:
    """An optional string (a tag name, a path prefix); None when absent or null."""
    raw = parameters.get(name)
    if raw is not None and not isinstance(raw, str):
        raise RequestError(f"{name} must be a string, got {raw!r}")
    return raw


def number(parameters: Mapping[str, Any], name: str) -> float | None:
    """An optional finite number; None when absent or null."""
    raw = parameters.get(name)
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise RequestError(f"{name} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise RequestError(f"{name} must be a number, got {raw!r}")
    return value


class RequestTooLargeError(RequestError):
    """A whole request is refused: it holds more documents than the service takes at once."""


def check_request_size(count: int, limit: int) -> None:
    """Refuse a request of more than `limit` documents (MEMEFLOW_MAX_DOCS); both executors
    check it, since `/upsert` reaches the indexer without passing the encoder."""
    if count > limit:
        raise RequestTooLargeError(
            f"request holds {count} documents, over the limit of {limit} "
            "(MEMEFLOW_MAX_DOCS): send them in smaller requests"
        )
