"""`memeflow eval`'s results for several models: one table, or JSON."""

import math
from typing import Any

from memeflow.evaluation.tasks import KS

RANDOM_WEIGHTS_NOTE = ("random weights: the quality columns of the rows marked * are chance-level "
                       "noise and say nothing about any model; only their speeds mean something")


def _cell(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _columns(result: dict[str, Any]) -> list[float | None]:
    zero, t2i, i2i = (result.get(task) for task in ("zero_shot", "text_to_image",
                                                    "image_to_image"))
    return [zero["top1"] if zero else None,
            *[t2i["recall"][k] if t2i else None for k in KS],
            *[i2i["recall"][k] if i2i else None for k in KS]]


def _chance(result: dict[str, Any]) -> list[float | None]:
    zero, t2i, i2i = (result.get(task) for task in ("zero_shot", "text_to_image",
                                                    "image_to_image"))
    return [zero["chance"] if zero else None,
            *[t2i["chance"][k] if t2i else None for k in KS],
            *[i2i["chance"][k] if i2i else None for k in KS]]


def table(results: list[dict[str, Any]]) -> str:
    """Models side by side: top-1, T->I and I->I recall@1/5/10, images/s, text p50 (ms);
    a `chance` row first (from the first model's datasets, the same for every model)."""
    header = ["model", "top-1", "T>I R@1", "R@5", "R@10", "I>I R@1", "R@5", "R@10",
              "img/s", "text p50 ms"]
    rows = [["chance", *[_cell(v) for v in _chance(results[0])], "", ""]] if results else []
    for result in results:
        name = result["model"] + (" *" if result["random_weights"] else "")
        rows.append([name, *[_cell(v) for v in _columns(result)],
                     _cell(result["images_per_second"], 1), _cell(result["text_p50_ms"], 1)])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *rows]]
    sizes = results[0]["sizes"] if results else {}
    if sizes:
        lines.append("on " + ", ".join(f"{name}: {text}" for name, text in sizes.items()))
    if any(r["random_weights"] for r in results):
        lines.append(f"* {RANDOM_WEIGHTS_NOTE}")
    return "\n".join(lines)
