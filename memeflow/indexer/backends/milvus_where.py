"""Tag filters (`memeflow.indexer.filters`) as Milvus boolean expressions.

The Milvus collection keeps, beside each document's `tags` (JSON), what makes the
filters' definition expressible exactly:

- `tag_names` (ARRAY of VARCHAR): every tag the document has, so `$exists` is
  `array_contains` (Milvus's `exists` and `is null` treat a tag whose value is null as
  missing; the definition does not);
- `valued_tags`: the tags whose value is not null, so `$ne` / `$nin` pass a document
  whose tag is missing or null (a comparison with a missing key is neither true nor false
  in Milvus, and `not` of it passes nothing);
- `numbers` (JSON): each tag's value as a range condition reads it (`filters.as_number`:
  numbers and numeric strings, never bools), so `$gt`... compare numbers only.

Equality with a string, a bool, a 64-bit int or a finite float is `tags[t] == v` or
`json_contains_any(tags[t], [v])` (a list tag holds it); 1 and 1.0 equal `true`, and 0 `false`,
as in Python. What Milvus cannot compare exactly (`$contains`, which is case-insensitive,
and equality with null, a list, an object, NaN, an infinity, an int beyond 64 bits or a
float from 2**63 up, which such an int kept as a float may equal) is left as a
`residual`: the backend checks it on the stored tags of the documents the expression
leaves (`Where.matches`), as the embedded backend does for what its indexes cannot answer.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from memeflow.indexer.filters import RANGE_OPS, Condition, Where, as_number

INT64 = (-(2**63), 2**63 - 1)
FLOAT_MAX = 1.7976931348623157e308  # JSON has no infinity: ±inf is kept as ±FLOAT_MAX
NEGATED = {"$ne": "$eq", "$nin": "$in"}


@dataclass(frozen=True)
class MilvusFilter:
    """A `where` for Milvus: `expression` (None: no condition for Milvus) selects a superset
    of the passing documents, exact when `residual` is empty; `empty` when nothing can pass."""

    expression: str | None
    residual: tuple[Condition, ...] = ()
    empty: bool = False


def comparable(value: Any) -> bool:
    """A value Milvus compares as Python does: a str, a bool, a 64-bit int, a finite float."""
    if isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return INT64[0] <= value <= INT64[1]
    return isinstance(value, float) and math.isfinite(value)


def exact_operand(value: Any) -> bool:
    """An equality operand Milvus compares with every stored tag as Python does: a comparable
    value, but no float of magnitude 2**63 or more, which the float Milvus keeps for an int
    beyond 64 bits may equal though the int does not (2.0**70 against 2**70 + 1)."""
    return comparable(value) and not (isinstance(value, float) and abs(value) >= 2.0**63)


def quoted(text: str) -> str:
    """`text` as a Milvus string literal: the quote, the backslash and the line breaks
    escaped, every other character as it is. Milvus reads JSON's `\\u` escapes (of the
    other control characters), Milvus Lite does not; both read the raw characters."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r"))
    return f'"{escaped}"'


def ids_in(ids: Iterable[str]) -> str:
    """The expression selecting the rows whose `id` is one of `ids` (each `quoted`)."""
    return f"id in [{', '.join(map(quoted, ids))}]"


def literal(value: Any) -> str:
    """A Milvus expression literal for a comparable value (strings JSON-quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return quoted(value)


def _key(field: str, tag: str) -> str:
    return f"{field}[{quoted(tag)}]"


def equals_any(tag: str, wanted: list[Any], *, elements: bool = True) -> str:
    """`tags[tag]` equals one of `wanted` (comparable values), or, with `elements`, is a
    list holding one of them."""
    values: list[Any] = []
    for value in wanted:
        values.append(value)
        # Python: True == 1 == 1.0, False == 0 == 0.0; Milvus may compare types strictly.
        if isinstance(value, bool):
            values.append(int(value))
        elif isinstance(value, int | float) and value in (0, 1):
            values.append(bool(value))
    key = _key("tags", tag)
    values = list({(type(v), v): v for v in values}.values())  # 1 and True both stay
    tests = [f"{key} == {literal(v)}" for v in values]
    if elements:  # json_contains_any: Milvus Lite parses no negative json_contains argument
        kinds: dict[type, list[Any]] = {}  # one array literal per type: Milvus's are uniform
        for value in values:
            kinds.setdefault(bool if isinstance(value, bool) else str if isinstance(value, str)
                             else float, []).append(value)
        tests += [f"json_contains_any({key}, [{', '.join(map(literal, same))}])"
                  for same in kinds.values()]
    return "(" + " or ".join(tests) + ")"


def _has(field: str, tag: str) -> str:
    return f"array_contains({field}, {literal(tag)})"


def _bound(operand: Any) -> float:
    number = as_number(operand)
    assert number is not None  # filters._conditions checked it
    return max(-FLOAT_MAX, min(FLOAT_MAX, number))


def stored_number(value: Any) -> float | None:
    """What `numbers` keeps for a tag value: as a range condition reads it, ±inf clamped to
    ±FLOAT_MAX, None for NaN and for what is no number."""
    number = as_number(value)
    if number is None or number != number:
        return None
    return max(-FLOAT_MAX, min(FLOAT_MAX, number))


def _expressed(condition: Condition) -> str | None:
    """The exact expression of one condition, None when Milvus cannot say it exactly."""
    tag, op, operand = condition.tag, condition.op, condition.operand
    if op == "$exists":
        return _has("tag_names", tag) if operand else f"not {_has('tag_names', tag)}"
    if op in RANGE_OPS:
        sign = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
        return f"{_key('numbers', tag)} {sign} {literal(_bound(operand))}"
    if op == "$contains":
        return None
    wanted = [operand] if op in ("$eq", "$ne") else list(operand)
    if not all(exact_operand(value) for value in wanted):
        return None
    if op in NEGATED:
        if not wanted:
            return ""  # $nin []: every document passes
        return f"(not {_has('valued_tags', tag)} or not {equals_any(tag, wanted)})"
    return equals_any(tag, wanted) if wanted else None


def compile_where(where: Where | None) -> MilvusFilter:
    """The Milvus filter of a checked `where` (None: everything passes)."""
    if where is None:
        return MilvusFilter(None)
    parts: list[str] = []
    residual: list[Condition] = []
    for condition in where.conditions:
        if condition.op == "$in" and condition.operand == []:
            return MilvusFilter(None, empty=True)
        expression = _expressed(condition)
        if expression is None:
            residual.append(condition)
            if condition.op not in NEGATED:  # a positive condition needs the tag at least
                parts.append(_has("tag_names", condition.tag))
        elif expression:
            parts.append(expression)
    unique = list(dict.fromkeys(parts))
    return MilvusFilter(" and ".join(unique) if unique else None, tuple(residual))


def json_safe(value: Any) -> Any:
    """`value` as Milvus's JSON holds it: NaN and infinities (not JSON) become null, ints
    beyond 64 bits floats (compared as floats; the exact tags are kept as text beside)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and not comparable(value):
        return float(value)
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    return value


def filter_fields(tags: dict[str, Any]) -> dict[str, Any]:
    """The fields the filters read for a document with these tags: `tags` (as JSON can
    hold them), `tag_names`, `valued_tags` and `numbers`."""
    safe = json_safe(tags)
    numbers = {tag: number for tag, value in tags.items()
               if (number := stored_number(value)) is not None}
    return {"tags": safe, "tag_names": list(safe),
            "valued_tags": [tag for tag, value in safe.items() if value is not None],
            "numbers": numbers}
