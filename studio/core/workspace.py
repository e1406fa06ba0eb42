"""Where the studio writes what it makes (converted and optimized models, build contexts).

Under $XDG_CACHE_HOME/slipway-studio/work (~/.cache/...): one folder per run, named after the model
and the time, so nothing a user saved elsewhere is ever overwritten. The oldest are pruned so that
the last KEEP_WORK_DIRS runs remain.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slipway-studio"


KEEP_WORK_DIRS = 40


def prune_work_dirs(keep: int = KEEP_WORK_DIRS) -> None:
    """Remove the oldest run folders beyond `keep`: each deploy and optimization writes one."""
    root = cache_root() / "work"
    if not root.is_dir():
        return
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for folder in folders[:-keep] if keep else folders:
        shutil.rmtree(folder, ignore_errors=True)


def new_work_dir(name: str) -> Path:
    prune_work_dirs()
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
