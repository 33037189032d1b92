"""Filters on indexes: the rows whose tags pass a `where` (`memeflow.indexer.filters`),
found through the `tag_values` table instead of by checking every document.

Each document has one `tag_values` row per tag (`element` 0: the value itself when it is a
string, number or bool, else NULL, and `number`, the value as a range condition reads it)
and one per element of a list tag (`element` 1). So:

- equality and `$in` with strings, numbers or bools are look-ups in the (tag, value) index,
  which answer a list tag by its elements, as the filter's definition does;
- numeric ranges are look-ups in the (tag, number) index;
- `$exists` reads the tag's entries; `$ne`, `$nin` and `{"$exists": false}` are the rows
  the positive condition does not give;
- what no index answers exactly (`$contains`, equality with null, a list or an object)
  is checked on the stored tags of the rows the other conditions left: all of them when
  there are no others (a scan, as the README says).

SQLite compares the values as Python does for these types: `1 = 1.0`, `true = 1`, and a
string never equals a number (the column has no declared type, so nothing is converted).
"""

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from memeflow.indexer.filters import RANGE_OPS, Condition, Where, as_number

INT64 = (-(2**63), 2**63 - 1)
SQL_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
NEGATED = {"$ne": "$eq", "$nin": "$in"}
TagRow = tuple[int, str, int, Any, float | None]


def indexable(value: Any) -> bool:
    """A value the (tag, value) index holds and compares as Python would: a string, a bool,
    an int of 64 bits, or a float that is not NaN (SQLite stores NaN as NULL) and not
    beyond 64-bit ints (it may equal a larger int, which the index does not hold)."""
    if isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return INT64[0] <= value <= INT64[1]
    return isinstance(value, float) and value == value and abs(value) < 2.0**63


def tag_rows(row: int, tags: Mapping[str, Any]) -> list[TagRow]:
    """The `tag_values` rows (row, tag, element, value, number) of one document's tags."""
    found: list[TagRow] = []
    for tag, value in tags.items():
        number = as_number(value)
        found.append((row, tag, 0, value if indexable(value) else None,
                       number if number is not None and number == number else None))
        if isinstance(value, list):
            found.extend((row, tag, 1, item, None) for item in value if indexable(item))
    return found


def _rows(conn: sqlite3.Connection, sql: str, args: Iterable[Any]) -> np.ndarray:
    """The distinct rows a `SELECT row ...` gives, sorted (int64)."""
    found = np.fromiter((row for (row,) in conn.execute(sql, tuple(args))), dtype=np.int64)
    return np.unique(found)


def _positive(conn: sqlite3.Connection, tag: str, op: str, operand: Any) -> np.ndarray | None:
    """Rows passing `{tag: {op: operand}}` from an index, or None when none answers exactly."""
    if op == "$exists":
        return _rows(conn, "SELECT row FROM tag_values WHERE tag = ? AND element = 0", (tag,))
    wanted = [operand] if op == "$eq" else operand if op == "$in" else None
    if wanted is None or not all(indexable(value) for value in wanted):
        return None
    if not wanted:
        return np.empty(0, np.int64)
    return _rows(conn, "SELECT row FROM tag_values WHERE tag = ? AND value IN "
                 "(SELECT value FROM json_each(?))", (tag, json.dumps(wanted)))


def _ranges(conn: sqlite3.Connection, tag: str, bounds: list[tuple[str, Any]]) -> np.ndarray:
    """Rows whose tag, read as a number, is within every bound (one index range scan)."""
    test = " AND ".join(f"number {SQL_RANGE[op]} ?" for op, _ in bounds)
    args = [float(operand) for _, operand in bounds]
    return _rows(conn, f"SELECT row FROM tag_values WHERE tag = ? AND {test}", (tag, *args))


def matching_rows(conn: sqlite3.Connection, where: Where, count: int) -> np.ndarray:
    """The rows (0..count-1, sorted int64) of the documents whose tags pass `where`."""
    sets: list[np.ndarray] = []
    unindexed: list[Condition] = []
    ranges: dict[str, list[tuple[str, Any]]] = {}
    for condition in where.conditions:
        tag, op, operand = condition.tag, condition.op, condition.operand
        if op in RANGE_OPS:
            ranges.setdefault(tag, []).append((op, operand))
            continue
        negated = op in NEGATED or (op == "$exists" and not operand)
        found = _positive(conn, tag, NEGATED.get(op, op), True if op == "$exists" else operand)
        if found is None:
            unindexed.append(condition)
        else:
            sets.append(np.setdiff1d(np.arange(count), found, assume_unique=True)
                        if negated else found)
    sets.extend(_ranges(conn, tag, bounds) for tag, bounds in ranges.items())
    sets.sort(key=len)
    rows = sets[0] if sets else np.arange(count, dtype=np.int64)
    for other in sets[1:]:
        rows = np.intersect1d(rows, other, assume_unique=True)
    if unindexed and len(rows):
        rows = _checked(conn, rows, unindexed, everything=not sets)
    return rows.astype(np.int64)


def _passes(tags: Mapping[str, Any], conditions: list[Condition]) -> bool:
    return all(condition.matches(tags) for condition in conditions)


def _checked(conn: sqlite3.Connection, rows: np.ndarray, conditions: list[Condition],
             everything: bool) -> np.ndarray:
    """The `rows` whose stored tags pass `conditions`, checked one document at a time."""
    if everything:
        found = conn.execute("SELECT row, tags FROM documents")
    else:
        found = conn.execute("SELECT row, tags FROM documents WHERE row IN "
                             "(SELECT value FROM json_each(?))", (json.dumps(rows.tolist()),))
    kept = [row for row, tags in found if _passes(json.loads(tags), conditions)]
    return np.unique(np.array(kept, dtype=np.int64))
