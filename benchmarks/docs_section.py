"""One home for writing a benchmark's section of docs/benchmarks.md between its markers."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def replace_section(name: str, body: str) -> None:
    """Put `body` between `<!-- name:start -->` and `<!-- name:end -->`, appending the section
    when the document does not have it yet."""
    text = f"<!-- {name}:start -->\n{body.strip()}\n<!-- {name}:end -->"
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->",
                         re.S)
    updated = (pattern.sub(lambda _: text, current) if pattern.search(current)
               else current.rstrip() + "\n\n" + text + "\n")
    DOC.write_text(updated)
