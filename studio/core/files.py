"""Files the studio writes for a person (converted and optimized models, reports, saved copies):
written whole or not at all, never over their own source, and a full disk said as a full disk.

A new file is written beside its destination, under a hidden temporary folder of the same
filesystem, and moved onto the destination in one step (`os.replace`) only once it is complete and
checked: a failure half-way, a full disk or a cancel leaves whatever was there before untouched.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from studio.core.errors import ExitStatus, StudioError

DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
NOT_ALLOWED = {errno.EACCES, errno.EPERM, errno.EROFS}


class WriteError(StudioError):
    """A file the studio makes cannot be written where it was asked to be."""

    exit_status = ExitStatus.FAILED


def write_error(exc: OSError, path: Path) -> WriteError:
    """The sentence for an OSError met while writing `path`: the disk, not the model, is at fault."""
    reason = exc.strerror or str(exc)
    if exc.errno in DISK_FULL:
        hint = (f"Free some space on the disk that holds {path.parent}, or choose a folder on "
                "another disk.")
    elif exc.errno == errno.EFBIG:
        hint = "A file-size limit (ulimit -f) stops the write: raise it, or write a smaller model."
    elif exc.errno in NOT_ALLOWED:
        hint = "Choose a folder you may write to."
    else:
        hint = "Check the disk and the folder, then try again."
    return WriteError(f"Slipway could not write '{path.name}': {reason}.", hint, detail=repr(exc))


def check_not_a_source(output: Path, *sources: Path) -> None:
    """Refuse to write over a file the output is made from: a failure half-way would lose both."""
    target = Path(output).resolve()
    for source in sources:
        same = target == Path(source).resolve()
        if not same and target.exists() and Path(source).exists():
            same = os.path.samefile(target, source)  # a hard link or another path to it
        if same:
            raise WriteError(f"'{Path(output).name}' is the model it would be made from.",
                             "Choose another output file; the source stays as it is.")


class PendingFile:
    """A file being written: `path` is where to write it, `commit()` puts it in place."""

    def __init__(self, destination: Path, path: Path) -> None:
        self.destination = destination
        self.path = path
        self.committed = False

    def commit(self) -> Path:
        try:
            os.replace(self.path, self.destination)
        except OSError as exc:
            raise write_error(exc, self.destination) from exc
        self.committed = True
        return self.destination


@contextmanager
def pending_file(destination: str | Path) -> Iterator[PendingFile]:
    """Write `destination` through a PendingFile; what is not committed by the end of the block
    (an error, a cancel, or a decision not to keep it) is deleted, and the destination is as it
    was. The pending file has the destination's own name, so what reads it sees that name."""
    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".slipway-", dir=destination.parent))
    except OSError as exc:
        raise write_error(exc, destination) from exc
    try:
        yield PendingFile(destination, folder / destination.name)
    except OSError as exc:
        raise write_error(exc, destination) from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_text(destination: str | Path, text: str) -> Path:
    with pending_file(destination) as pending:
        pending.path.write_text(text, encoding="utf-8")
        return pending.commit()


def copy_file(source: str | Path, destination: str | Path) -> Path:
    check_not_a_source(Path(destination), Path(source))
    with pending_file(destination) as pending:
        shutil.copyfile(source, pending.path)
        return pending.commit()
