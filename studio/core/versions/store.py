"""Model files kept once, by content: `objects/<sha256>/<original name>`.

A file's key is its sha256; a folder's (an MLflow model folder, stored whole) is the sha256 of its
sorted list of relative paths and file hashes, so the same content is one object however often it
is recorded. An object is copied into a staging folder beside the objects (one filesystem) while
it is hashed, and renamed into place in one step: a reader never sees half an object, and two
writers storing the same content leave one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from studio.core.files import write_error
from studio.core.tasks import Progress, quiet

CHUNK = 1 << 20
STAGING_PREFIX = ".staging-"


@dataclass(frozen=True)
class Content:
    """What a file or folder holds, as the store keys it."""

    sha256: str
    size: int


def _hash_file(path: Path, copy_to: Path | None, progress: Progress) -> Content:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as source, \
            open(copy_to, "wb") if copy_to is not None else nullcontext() as target:
        while block := source.read(CHUNK):
            progress.check()
            digest.update(block)
            size += len(block)
            if target is not None:
                target.write(block)
    return Content(digest.hexdigest(), size)


def _folder_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.rglob("*") if p.is_file()),
                  key=lambda p: p.relative_to(folder).as_posix())


def _hash_folder(folder: Path, copy_to: Path | None, progress: Progress) -> Content:
    listing = hashlib.sha256()
    size = 0
    for path in _folder_files(folder):
        relative = path.relative_to(folder)
        target = None
        if copy_to is not None:
            target = copy_to / relative
            target.parent.mkdir(parents=True, exist_ok=True)
        content = _hash_file(path, target, progress)
        listing.update(f"{relative.as_posix()}\0{content.sha256}\n".encode())
        size += content.size
    return Content(listing.hexdigest(), size)


def content_of(path: Path, progress: Progress | None = None) -> Content:
    """The key and size of a file or folder, read but not copied."""
    progress = progress or quiet()
    return _hash_folder(path, None, progress) if path.is_dir() else _hash_file(path, None, progress)


class Staged:
    """A copy of a model in the staging area, hashed as it was copied; `place()` moves it into
    the store, `discard()` removes it."""

    def __init__(self, store: ObjectStore, folder: Path, name: str, content: Content):
        self.store = store
        self.folder = folder
        self.name = name
        self.content = content

    def place(self) -> Path:
        """Put the copy in place unless an intact object with this content is there already."""
        final = self.store.folder_of(self.content.sha256)
        if self.store.intact(self.content.sha256, self.name, self.content.size):
            self.discard()
            return final / self.name
        if final.exists():  # damaged or partial: this copy replaces it
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(self.folder, final)
        except OSError as exc:
            raise write_error(exc, final) from exc
        return final / self.name

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class ObjectStore:
    def __init__(self, root: Path):
        self.root = root

    def folder_of(self, sha256: str) -> Path:
        return self.root / sha256

    def path_of(self, sha256: str, name: str) -> Path:
        return self.folder_of(sha256) / name

    def stage(self, source: Path, progress: Progress | None = None) -> Staged:
        """Copy `source` (a file or a folder) into the staging area, hashing it on the way."""
        progress = progress or quiet()
        folder = self.root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        try:
            folder.mkdir(parents=True)
            target = folder / source.name
            if source.is_dir():
                target.mkdir()
                content = _hash_folder(source, target, progress)
            else:
                content = _hash_file(source, target, progress)
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise write_error(exc, folder) from exc
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return Staged(self, folder, source.name, content)

    def intact(self, sha256: str, name: str, size: int) -> bool:
        """The object is there with its size: the quick check made before every store (a full
        check, `verify`, reads it whole)."""
        path = self.path_of(sha256, name)
        try:
            if path.is_dir():
                return sum(p.stat().st_size for p in _folder_files(path)) == size
            return path.stat().st_size == size
        except OSError:
            return False

    def verify(self, sha256: str, name: str, progress: Progress | None = None) -> str | None:
        """None when the object holds what its key says; else what is wrong with it."""
        path = self.path_of(sha256, name)
        if not path.exists():
            return "missing"
        try:
            found = content_of(path, progress)
        except OSError as exc:
            return f"unreadable ({exc.strerror or exc})"
        return None if found.sha256 == sha256 else "changed"

    def remove(self, sha256: str) -> None:
        shutil.rmtree(self.folder_of(sha256), ignore_errors=True)

    def sweep_staging(self) -> None:
        """Remove copies left by a process that died while storing (never a live one's: only
        those older than a day)."""
        if not self.root.is_dir():
            return
        for folder in self.root.glob(f"{STAGING_PREFIX}*"):
            try:
                if time.time() - folder.stat().st_mtime > 86_400:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                continue
