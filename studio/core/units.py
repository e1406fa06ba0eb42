"""How figures and text are written: for people (sizes, measured figures, aligned tables, text
from a model file made safe to show) and for JSON (which has no NaN)."""

from __future__ import annotations

import math
import unicodedata
from typing import Any


def human_size(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def figure(value: float | None, spec: str = ".3f", unit: str = "", missing: str = "–") -> str:
    """A measured figure as text, or `missing` when nothing was measured (None or NaN)."""
    if value is None or not math.isfinite(value):
        return missing
    return f"{value:{spec}}{unit}"


def text_table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Left-aligned columns, the first row being the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


def finite_json(value: Any) -> Any:
    """`value` with every NaN and infinity made None: JSON has no NaN, and an unmeasured figure
    is null in a report, not a number."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def printable(text: object) -> str:
    """`text` safe to show a person: control characters (terminal escapes, carriage returns,
    newlines) and invisible format characters (right-to-left overrides) become visible escapes
    such as \\x1b. A model file's metadata is written by whoever made the file: shown raw, it
    could recolour a terminal, hide what precedes it or reorder what a reader sees."""
    return "".join(
        char if char == "\t" or unicodedata.category(char) not in ("Cc", "Cf")
        else char.encode("unicode_escape").decode("ascii")
        for char in str(text))
