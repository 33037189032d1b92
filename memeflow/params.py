"""Request parameters as the executors read them: the gateway sends JSON numbers as floats."""

from typing import Any

DEFAULT_TOP_K = 10


def flag(parameters: dict[str, Any], name: str) -> bool:
    value = parameters.get(name, False)
    return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}


def top_k(parameters: dict[str, Any]) -> int:
    """A whole number >= 1 (HTTP turns 2 into 2.0); anything else is refused by name."""
    raw = parameters.get("top_k", DEFAULT_TOP_K)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not value.is_integer() or value < 1:
        raise ValueError(f"top_k must be a whole number >= 1, got {raw!r}")
    return int(value)
