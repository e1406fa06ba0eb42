"""Run model code in a child process: pickles execute code when loaded, libraries crash and hang.

The parent sends a JSON request on the child's stdin and reads a JSON reply from the child's
original stdout; everything the libraries print (LightGBM writes to stdout) is sent to stderr, which
the parent keeps as detail for the log. The parent can stop the child at any moment: on cancel, on
the time limit, or when the parent itself exits (the child is a `PythonChild`, see core/children.py),
so no loader outlives the studio.

The child is kept apart from the studio, not just from its crashes:
- its environment holds only what Python and the model libraries need (`PASSED_ENVIRONMENT`, HOME
  and TMPDIR in a private temporary folder), never the studio's secrets (cloud keys, tokens, the
  API key a server is started with);
- it works in an empty temporary folder of its own, removed afterwards with HOME and TMPDIR;
- it runs under resource limits: memory (RLIMIT_DATA, by default the machine's memory), the size
  of any file it writes (RLIMIT_FSIZE, large enough for any ONNX file a conversion writes) and no
  core dumps;
- it leads its own session, and its whole process group is killed when it is done, cancelled or
  out of time, so whatever the model's code started goes with it.
It is not a sandbox: model code that runs here can still read and write the user's files.

The child side is `_child_main(ACTION)` (also `python -m studio.core.model.isolation ACTION`), where
ACTION names a function in `CHILD_ACTIONS` that takes the request dict and returns a
JSON-serializable dict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.core.children import PythonChild
from studio.core.errors import Cancelled, ModelLoadError, StudioError
from studio.core.tasks import Progress, quiet

DEFAULT_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.05
# The child imports `studio` from where this process did; appended to sys.path, it shadows nothing.
STUDIO_ROOT = str(Path(__file__).resolve().parents[3])
DEFAULT_FILE_SIZE_LIMIT = 8 * 2**30
"""Bytes any one file the child writes may reach: four times the 2 GiB an ONNX file can hold."""
PASSED_ENVIRONMENT = (
    "PATH", "LANG", "LC_ALL", "LC_CTYPE",
    # Where Python and native libraries are found; a pickle may name the user's own modules.
    "PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "SYSTEMROOT",
    # How many threads the numeric libraries start, as the user chose.
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
PATH_FIELDS = ("path", "output", "reference")
"""Request fields that name files: made absolute here, since the child works in its own folder."""


def machine_memory() -> int | None:
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def run_isolated(action: str, request: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT_S,
                 progress: Progress | None = None, what: str = "Loading the model",
                 memory_limit: int | None = None,
                 file_size_limit: int = DEFAULT_FILE_SIZE_LIMIT) -> dict[str, Any]:
    """Run CHILD_ACTIONS[action](request) in a fresh Python process and return its result.

    Raises the StudioError the child raised, a ModelLoadError when the child dies, runs out of
    memory or runs past `timeout` seconds, and Cancelled when `progress` is cancelled (the child
    and all it started are killed at once). `memory_limit` (bytes) defaults to the machine's memory.
    """
    progress = progress or quiet()
    limits = {"memory": memory_limit or machine_memory(), "file_size": file_size_limit}
    request = {key: str(Path(value).absolute()) if key in PATH_FIELDS and value else value
               for key, value in request.items()}
    # Replies can be large (a schema with many features); a file avoids pipe-buffer deadlocks.
    with tempfile.TemporaryFile() as reply, tempfile.TemporaryFile() as log, \
            tempfile.TemporaryDirectory(prefix="slipway-loader-", ignore_cleanup_errors=True) as own:
        private = Path(own)
        for folder in ("work", "home", "tmp"):
            (private / folder).mkdir()
        # An empty working folder, kept off sys.path too (PythonChild runs `python -P`): files next
        # to a model (an xgboost.py, a json.py) must never stand in for the libraries a load imports.
        child = PythonChild(
            "studio.core.model.isolation", [action], sys_path=[STUDIO_ROOT],
            stdin=subprocess.PIPE, stdout=reply, stderr=log, cwd=private / "work",
            env=_child_environment(private), start_new_session=True,
        )
        assert child.stdin is not None
        try:
            child.stdin.write(json.dumps({"limits": limits, "request": request}).encode())
            child.stdin.close()
        except BrokenPipeError:
            pass
        deadline = time.monotonic() + timeout
        try:
            while not child.has_exited():
                if progress.wait(POLL_INTERVAL_S):
                    raise Cancelled()
                if time.monotonic() > deadline:
                    raise ModelLoadError(
                        f"{what} took longer than {timeout:g} s and was stopped.",
                        "A file that loads this slowly may be waiting on something it should not; "
                        "if it is just large, raise the time limit in Settings (or --timeout).",
                    )
        finally:
            child.kill_group()  # also what the model's code left running after a normal exit
        reply.seek(0)
        log.seek(0)
        return _result(child.returncode, reply.read(), log.read().decode(errors="replace"), what)


def _child_environment(private: Path) -> dict[str, str]:
    environment = {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ}
    environment.update(HOME=str(private / "home"), TMPDIR=str(private / "tmp"),
                       PYTHONUNBUFFERED="1")
    return environment


def _result(returncode: int, reply: bytes, log: str, what: str) -> dict[str, Any]:
    try:
        message = json.loads(reply) if reply else None
    except json.JSONDecodeError:
        message = None
    if message is None:
        cause = f"signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
        raise ModelLoadError(
            f"{what} crashed the loader process ({cause}).",
            "The file may be damaged or need more memory; the details are in the log.",
            detail=log[-4000:],
        )
    if message.get("ok"):
        return message["result"]
    error = message["error"]
    kind = _error_class(error.get("kind", ""))
    raise kind(error["message"], error.get("hint"), detail=(error.get("detail") or "") + log[-4000:])


def _error_class(name: str) -> type[StudioError]:
    """The StudioError subclass the child raised, so callers can tell a conversion error from a
    load error; ModelLoadError for anything unknown."""
    pending = [StudioError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == name and cls.__init__ is StudioError.__init__:
            return cls
        pending += cls.__subclasses__()
    return ModelLoadError


# --- the child side -----------------------------------------------------------------------------

# Each action imports only what it needs: a model load should not pay for the converter's imports.
CHILD_ACTIONS = {
    "inspect": ("studio.core.model.formats.sklearn", "inspect_in_child"),
    "convert": ("studio.core.optimize.convert", "convert_in_child"),
}


def _action(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    import importlib

    module, function = CHILD_ACTIONS[name]
    return getattr(importlib.import_module(module), function)


_DOING = {"inspect": "Loading", "convert": "Converting"}


def _limit_resources(limits: dict[str, int | None]) -> None:
    """Soft and hard limits alike: code in the child cannot raise them back."""
    try:
        import resource
    except ImportError:  # not a POSIX system: no limits to set
        return
    for which, value in ((resource.RLIMIT_DATA, limits["memory"]),
                         (resource.RLIMIT_FSIZE, limits["file_size"]), (resource.RLIMIT_CORE, 0)):
        if value is None:
            continue
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):  # a system that does not enforce this one
            pass


def _child_main(action: str) -> int:
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the model's libraries print goes to the log, not into the reply
    sys.stdout = sys.stderr
    limits: dict[str, Any] = {}
    try:
        message = json.loads(sys.stdin.read())
        limits, request = message["limits"], message["request"]
        _limit_resources(limits)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = _action(action)(request)
        result.setdefault("warnings", [])
        result["warnings"] += sorted({str(w.message).splitlines()[0] for w in caught
                                      if issubclass(w.category, UserWarning)})
        json.dump({"ok": True, "result": result}, reply)
    except StudioError as exc:
        json.dump({"ok": False, "error": {"kind": type(exc).__name__, "message": exc.message,
                                          "hint": exc.hint, "detail": exc.detail}}, reply)
    except MemoryError:
        limit = f" ({limits['memory'] / 2**30:.1f} GiB)" if limits.get("memory") else ""
        json.dump({"ok": False, "error": {
            "message": f"{_DOING.get(action, action)} the model needed more memory than the "
                       f"loader may use{limit}.",
            "hint": "A model really this large needs a machine with more memory; a small file "
                    "that asks for this much is damaged or made to exhaust memory.",
            "detail": traceback.format_exc(),
        }}, reply)
    except BaseException as exc:  # the child reports everything; the parent decides
        json.dump({"ok": False, "error": {
            "message": f"{_DOING.get(action, action)} failed inside the model's own code: "
                       f"{type(exc).__name__}: {exc}",
            "hint": "The file may have been saved by a different version of its library; "
                    "the full traceback is in the log.",
            "detail": traceback.format_exc(),
        }}, reply)
    reply.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1]))
