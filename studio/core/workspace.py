"""Where the studio writes what it makes (converted and optimized models, build contexts), and
what it keeps about itself.

Under $XDG_CACHE_HOME/slipway-studio/work (~/.cache/...): one folder per run, named after the model
and the time, so nothing a user saved elsewhere is ever overwritten. The oldest are pruned so that
the last KEEP_WORK_DIRS runs remain.

Under $XDG_DATA_HOME/slipway-studio (~/.local/share/...): the installation id, made once, which
marks the containers this installation starts (a cache may be wiped; this must not be).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path

INSTALLATION_ID_FILE = "installation-id"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slipway-studio"


def data_root() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "slipway-studio"


def _read_installation_id(path: Path) -> str | None:
    try:
        return str(uuid.UUID(path.read_text().strip()))
    except (FileNotFoundError, ValueError):
        return None


def installation_id() -> str:
    """This installation's id: a UUID made the first time it is asked for, then kept.

    Two studios starting at once must agree on one id: the file appears whole (a hard link to a
    finished file) and only when there is none yet, so the later one reads the earlier one's."""
    path = data_root() / INSTALLATION_ID_FILE
    found = _read_installation_id(path)
    if found is not None:
        return found
    path.parent.mkdir(parents=True, exist_ok=True)
    made = path.with_name(f".{INSTALLATION_ID_FILE}.{uuid.uuid4().hex}")
    made.write_text(f"{uuid.uuid4()}\n")
    try:
        os.link(made, path)
    except FileExistsError:
        if _read_installation_id(path) is None:  # a damaged file: ours replaces it
            os.replace(made, path)
    finally:
        made.unlink(missing_ok=True)
    return str(_read_installation_id(path))


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
