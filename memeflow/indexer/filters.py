"""Conditions on a meme's tags, as `/search` takes them in its `where` parameter.

The format is JSON-friendly so it travels unchanged over gRPC and HTTP:

    {"folder": "sad-boehner",                      # equals (a list tag: holds the value)
     "name": {"$in": ["Drake", "Sad John Boehner"]},
     "keywords": {"$contains": "cat"},             # substring of a string, member of a list
     "year": {"$gte": 2010, "$lt": 2020},          # numeric range (HTTP's 3.0 equals 3)
     "source": {"$exists": true}}

Every condition must hold (AND). A missing tag fails every condition but
`{"$exists": false}` and `$ne` / `$nin`.

This module defines what a condition means, as a check of one document's tags
(`Where.matches`); `memeflow.indexer.indexes.where_sql` answers the same conditions from the
database's indexes, and falls back to this check where an index cannot answer exactly.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from memeflow.params import RequestError

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


def as_number(value: Any) -> float | None:
    """The value as a range condition reads it: a number, or a string that parses as one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):
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
    number = as_number(value)
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
        if op in RANGE_OPS and as_number(wanted) is None:
            raise FilterError(f"where[{tag!r}][{op!r}] must be a number, got {wanted!r}")
        conditions.append((op, wanted))
    return conditions


@dataclass(frozen=True)
class Condition:
    """One operator on one tag: `{tag: {op: operand}}`."""

    tag: str
    op: str
    operand: Any

    def matches(self, tags: Mapping[str, Any]) -> bool:
        return _check(self.op, tags.get(self.tag, MISSING), self.operand)


@dataclass(frozen=True)
class Where:
    """A checked `where`: every condition must hold."""

    conditions: tuple[Condition, ...]

    def matches(self, tags: Mapping[str, Any]) -> bool:
        """Whether a document with these tags passes (the definition of every operator)."""
        return all(condition.matches(tags) for condition in self.conditions)


def compile_where(where: Any) -> Where | None:
    """The conditions of a `where` parameter, or None when there is nothing to check.
    Raises FilterError (a 400) naming the tag and the fix."""
    if where is None or where == {}:
        return None
    if not isinstance(where, dict):
        raise FilterError(f"where must be an object of tag conditions, got {where!r:.80}")
    return Where(tuple(Condition(str(tag), op, wanted)
                       for tag, spec in where.items() for op, wanted in _conditions(tag, spec)))
