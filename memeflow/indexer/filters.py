"""Conditions on a meme's tags, as `/search` takes them in its `where` parameter.

The format is JSON-friendly so it travels unchanged over gRPC and HTTP:

    {"folder": "sad-boehner",                      # equals (a list tag: holds the value)
     "name": {"$in": ["Drake", "Sad John Boehner"]},
     "keywords": {"$contains": "cat"},             # substring of a string, member of a list
     "year": {"$gte": 2010, "$lt": 2020},          # numeric range (HTTP's 3.0 equals 3)
     "source": {"$exists": true}}

Every condition must hold (AND). A missing tag fails every condition but
`{"$exists": false}` and `$ne` / `$nin`.
"""

from collections.abc import Callable, Mapping
from typing import Any

from memeflow.params import RequestError

Predicate = Callable[[Mapping[str, Any]], bool]
MISSING = object()
RANGE_OPS: dict[str, Callable[[float, float], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}
OPERATORS = ("$eq", "$ne", "$in", "$nin", "$contains", "$exists", *RANGE_OPS)


class FilterError(RequestError):
    """A `where` the service cannot read; the message names the tag and the fix."""


def _equals(value: Any, wanted: Any) -> bool:
    if isinstance(value, list) and not isinstance(wanted, list):
        return wanted in value
    return value == wanted


def _contains(value: Any, wanted: Any) -> bool:
    if isinstance(value, str):
        return str(wanted).lower() in value.lower()
    if isinstance(value, list):
        return any(_contains(item, wanted) if isinstance(item, str) else item == wanted
                   for item in value)
    return False


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _check(op: str, value: Any, wanted: Any) -> bool:
    if op == "$exists":
        return (value is not MISSING) == bool(wanted)
    if op == "$ne":
        return value is MISSING or not _equals(value, wanted)
    if op == "$nin":
        return value is MISSING or not any(_equals(value, w) for w in wanted)
    if value is MISSING:
        return False
    if op == "$eq":
        return _equals(value, wanted)
    if op == "$in":
        return any(_equals(value, w) for w in wanted)
    if op == "$contains":
        return _contains(value, wanted)
    number = _number(value)
    return number is not None and RANGE_OPS[op](number, float(wanted))


def _conditions(tag: str, spec: Any) -> list[tuple[str, Any]]:
    """[(operator, operand)] for one tag, each checked so a bad one fails the request early."""
    if not isinstance(spec, dict):
        return [("$eq", spec)]
    if not spec:
        raise FilterError(f"where[{tag!r}] is empty: give a value or operators like {{'$gte': 1}}")
    conditions = []
    for op, wanted in spec.items():
        if op not in OPERATORS:
            raise FilterError(
                f"where[{tag!r}] has unknown operator {op!r}: use one of {', '.join(OPERATORS)}"
            )
        if op in ("$in", "$nin") and not isinstance(wanted, list):
            raise FilterError(f"where[{tag!r}][{op!r}] must be a list, got {wanted!r}")
        if op in RANGE_OPS and _number(wanted) is None:
            raise FilterError(f"where[{tag!r}][{op!r}] must be a number, got {wanted!r}")
        conditions.append((op, wanted))
    return conditions


def compile_where(where: Any) -> Predicate | None:
    """A predicate over a record's tags, or None when there is nothing to check."""
    if where is None or where == {}:
        return None
    if not isinstance(where, dict):
        raise FilterError(f"where must be an object of tag conditions, got {where!r:.80}")
    checks = [(tag, _conditions(tag, spec)) for tag, spec in where.items()]

    def matches(tags: Mapping[str, Any]) -> bool:
        return all(
            _check(op, tags.get(tag, MISSING), wanted)
            for tag, conditions in checks
            for op, wanted in conditions
        )

    return matches
