"""The `memeflow search` flags for filters, paging, collapsing and hub correction, and
their translation into /search parameters."""

import argparse
from typing import Any


def add_search_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--where", action="append", default=[], metavar="COND",
        help="only memes whose tags match: TAG=VALUE, TAG=V1|V2, TAG!=VALUE, TAG~TEXT "
        "(contains), TAG>=N, TAG<=N, TAG>N, TAG<N; repeat to combine (AND). A VALUE that "
        "reads as a number or true/false is one; in quotes it is that exact string: "
        "--where 'zip=\"007\"' (single quotes keep the shell from removing the double "
        "ones), 'version=\"1.10\"|\"1.2\"'")
    parser.add_argument("--min-score", type=float, default=None, metavar="S",
                        help="leave out results scoring below S")
    parser.add_argument("--offset", type=int, default=0, metavar="N",
                        help="skip the first N results (paging; default 0)")
    parser.add_argument("--dedup", action="store_true",
                        help="collapse exact and near-duplicate pictures into the best one")
    parser.add_argument("--group-by", metavar="TAG", default=None,
                        help="one result per value of TAG (e.g. folder: one per template)")
    parser.add_argument("--hub-correction", action="store_true",
                        help="re-rank so pictures close to every query stop coming first")
    parser.add_argument("--ocr-weight", type=float, default=None, metavar="W",
                        help="say of the words written on memes against the picture in text "
                        "searches (0: picture only; default $MEMEFLOW_OCR_WEIGHT or 1)")


def search_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The /search parameters the flags ask for; only those set, so defaults stay the
    service's. Raises FilterError (a ValueError) for an unreadable --where."""
    parameters: dict[str, Any] = {}
    if args.where:
        parameters["where"] = parse_cli_where(args.where)
    if args.min_score is not None:
        parameters["min_score"] = args.min_score
    if args.offset:
        parameters["offset"] = args.offset
    if args.dedup:
        parameters["dedup"] = True
    if args.group_by:
        parameters["group_by"] = args.group_by
    if args.hub_correction:
        parameters["hub_correction"] = True
    if args.ocr_weight is not None:
        parameters["ocr_weight"] = args.ocr_weight
    return parameters


QUOTES = ("\"", "'")


def _quoted(text: str) -> str | None:
    """The string inside matching quotes (`"007"`, `'1.10'`), or None when not quoted."""
    if len(text) >= 2 and text[0] in QUOTES and text[-1] == text[0]:
        return text[1:-1]
    return None


def _scalar(text: str) -> Any:
    """CLI values: a quoted value is that string exactly; unquoted, numbers and booleans as
    such, everything else a string."""
    if (exact := _quoted(text)) is not None:
        return exact
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number


def _alternatives(text: str) -> list[str]:
    """`V1|V2|...` split at the bars outside quotes, each part stripped."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in QUOTES:
            quote = char
        elif char == "|":
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


CLI_OPERATORS = (("!=", "$ne"), (">=", "$gte"), ("<=", "$lte"), (">", "$gt"), ("<", "$lt"),
                 ("~", "$contains"), ("=", "$eq"))


def parse_cli_where(expressions: list[str]) -> dict[str, Any]:
    """`--where` flags to a `where` object: TAG=V, TAG=V1|V2 (any of), TAG!=V, TAG~TEXT
    (contains), TAG>=N, TAG<=N, TAG>N, TAG<N. Flags on the same tag combine (AND). A value
    in quotes ("007", '1.10') is that string; TEXT is always a string."""
    where: dict[str, dict[str, Any]] = {}
    for expression in expressions:
        # The earliest operator wins (two-character ones first at a tie), so `a=b>c`
        # compares tag `a` with the string `b>c`.
        positions = [(expression.find(sym), -len(sym), sym, op)
                     for sym, op in CLI_OPERATORS if sym in expression]
        if not positions or not expression[: min(positions)[0]].strip():
            raise ValueError(
                f"cannot read --where {expression!r}: write TAG=VALUE, TAG=V1|V2, TAG!=VALUE, "
                "TAG~TEXT, TAG>=N, TAG<=N, TAG>N or TAG<N"
            )
        start, _, sym, op = min(positions)
        tag, raw = expression[:start].strip(), expression[start + len(sym):].strip()
        conditions = where.setdefault(tag, {})
        alternatives = _alternatives(raw) if op == "$eq" else [raw]
        if len(alternatives) > 1:
            conditions["$in"] = [_scalar(v) for v in alternatives]
        elif op == "$contains":
            conditions[op] = raw if (exact := _quoted(raw)) is None else exact
        else:
            conditions[op] = _scalar(raw)
    return where
