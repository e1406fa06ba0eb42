"""A file the user may not read is refused with "permission denied", by core and by
`slipway inspect`.

Tests usually run as root here, and root reads a chmod-000 file anyway. So as root the check runs
as user 65534 (nobody): `slipway inspect` in a subprocess when nobody can start this Python, and
otherwise in a forked copy of this process that drops to uid 65534 before it opens the file (the
interpreter may live under /root, which nobody cannot enter).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from studio.core.errors import ModelLoadError
from studio.core.model.artifact import load

NOBODY = 65534
EXIT_NOT_LOADABLE = 3
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_posix = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
needs_cli = pytest.mark.skipif(importlib.util.find_spec("studio.cli") is None,
                               reason="studio.cli is not written yet")


@pytest.fixture
def world_dir():
    """A 0o755 folder under /tmp, so that user nobody can reach the files in it."""
    folder = Path(tempfile.mkdtemp(prefix="slipway-perm-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def unreadable_model(world_dir, squeezenet_onnx) -> Path:
    path = world_dir / "locked.onnx"
    shutil.copy(squeezenet_onnx, path)
    path.chmod(0o000)
    return path


@functools.cache
def nobody_can_run_python() -> bool:
    try:
        result = subprocess.run([sys.executable, "-c", "import studio.core.model.artifact"],
                                user=NOBODY, group=NOBODY, cwd="/tmp", capture_output=True,
                                timeout=60, check=False)
    except (PermissionError, OSError):
        return False
    return result.returncode == 0


def run_as_nobody(work: Callable[[], int]) -> tuple[int, str]:
    """Run `work()` in a forked child that is user nobody; return its exit status and stderr."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(read_end)
            os.dup2(write_end, 2)
            sys.stderr = os.fdopen(2, "w", closefd=False)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = work()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - report anything to the parent
            traceback.print_exc()
            code = 98
        finally:
            try:
                sys.stderr.flush()
            finally:
                os._exit(code)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as reader:
        while chunk := reader.read(4096):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def _load_reporting(path: Path) -> int:
    try:
        load(path)
    except ModelLoadError as exc:
        print(f"{type(exc).__name__}: {exc.message}", file=sys.stderr)
        return EXIT_NOT_LOADABLE
    return 0


@needs_posix
def test_core_refuses_an_unreadable_file_with_permission_denied(unreadable_model):
    expected = "Slipway Studio may not read 'locked.onnx': permission denied."
    if not IS_ROOT:
        with pytest.raises(ModelLoadError) as caught:
            load(unreadable_model)
        assert caught.value.message == expected
        assert "chmod u+r" in caught.value.hint
        return
    code, stderr = run_as_nobody(lambda: _load_reporting(unreadable_model))
    assert (code, stderr.strip()) == (EXIT_NOT_LOADABLE, f"ModelLoadError: {expected}")


@needs_posix
@pytest.mark.skipif(not IS_ROOT, reason="needs root to make a folder nobody may enter")
def test_core_refuses_a_file_in_a_folder_it_may_not_enter(world_dir, squeezenet_onnx):
    private = world_dir / "private"
    private.mkdir(mode=0o700)
    path = private / "model.onnx"
    shutil.copy(squeezenet_onnx, path)
    code, stderr = run_as_nobody(lambda: _load_reporting(path))
    expected = ("ModelLoadError: Slipway Studio may not read 'model.onnx': permission denied on a "
                "folder that holds it.")
    assert (code, stderr.strip()) == (EXIT_NOT_LOADABLE, expected)


@needs_posix
def test_core_refuses_an_mlflow_folder_whose_mlmodel_it_may_not_read(world_dir):
    folder = world_dir / "mlflow_model"
    folder.mkdir(mode=0o755)
    (folder / "MLmodel").write_text("flavors:\n  sklearn: {pickled_model: model.pkl}\n")
    (folder / "MLmodel").chmod(0o000)
    expected = "Slipway Studio may not read the MLmodel file in 'mlflow_model': permission denied."
    if not IS_ROOT:
        with pytest.raises(ModelLoadError) as caught:
            load(folder)
        assert caught.value.message == expected
        return
    code, stderr = run_as_nobody(lambda: _load_reporting(folder))
    assert (code, stderr.strip()) == (EXIT_NOT_LOADABLE, f"ModelLoadError: {expected}")


@needs_posix
@needs_cli
def test_slipway_inspect_exits_3_with_permission_denied_on_stderr(unreadable_model):
    if not IS_ROOT:
        result = subprocess.run([sys.executable, "-m", "studio.cli", "inspect",
                                 str(unreadable_model)], capture_output=True, text=True,
                                timeout=120, check=False)
        code, stderr = result.returncode, result.stderr
    elif nobody_can_run_python():
        result = subprocess.run([sys.executable, "-m", "studio.cli", "inspect",
                                 str(unreadable_model)], user=NOBODY, group=NOBODY, cwd="/tmp",
                                capture_output=True, text=True, timeout=120, check=False)
        code, stderr = result.returncode, result.stderr
    else:
        from studio import cli

        code, stderr = run_as_nobody(lambda: cli.main(["inspect", str(unreadable_model)]))
    assert code == EXIT_NOT_LOADABLE, stderr
    assert "permission denied" in stderr
    assert "locked.onnx" in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, "the reason is one line"
