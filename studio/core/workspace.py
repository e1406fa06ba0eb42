"""Where the studio writes what it makes (converted and optimized models, build contexts).

Under $XDG_CACHE_HOME/slipway-studio/work (~/.cache/...): one folder per run, named after the model
and the time, so nothing a user saved elsewhere is ever overwritten.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slipway-studio"


def new_work_dir(name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "model"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        suffix = "" if attempt == 0 else f"-{attempt}"
        folder = cache_root() / "work" / f"{safe}-{stamp}{suffix}"
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise RuntimeError("no free work folder name")  # unreachable in practice
