"""Request parameters as the executors read them: the gateway sends JSON numbers as floats."""

from collections.abc import Mapping
from typing import Any

DEFAULT_TOP_K = 10


def flag(parameters: Mapping[str, Any], name: str) -> bool:
    value = parameters.get(name, False)
    return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}


def top_k(parameters: Mapping[str, Any]) -> int:
    """A whole number >= 1 (HTTP turns 2 into 2.0); anything else is refused by name."""
    return whole(parameters, "top_k", DEFAULT_TOP_K, minimum=1)

def whole(parameters: Mapping[str, Any], name: str, default: int, minimum: int = 0) -> int:
    """A whole-number parameter (HTTP sends 3 as 3.0); anything else is refused by name."""
    raw = parameters.get(name, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not value.is_integer() or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {raw!r}")
    return int(value)


def number(parameters: Mapping[str, Any], name: str) -> float | None:
    """An optional number; None when absent."""
    raw = parameters.get(name)
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError(f"{name} must be a number, got {raw!r}")
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
