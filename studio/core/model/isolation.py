"""Run model code in a child process: pickles execute code when loaded, libraries crash and hang.

The parent sends a JSON request on the child's stdin and reads a JSON reply from the child's
original stdout; everything the libraries print (LightGBM writes to stdout) is sent to stderr, which
the parent keeps as detail for the log. The parent can stop the child at any moment: on cancel, on
the time limit, or when the parent itself exits, so no loader outlives the studio.

The child side is `_child_main(ACTION)` (also `python -m studio.core.model.isolation ACTION`), where
ACTION names a function in `CHILD_ACTIONS` that takes the request dict and returns a
JSON-serializable dict.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.core.errors import Cancelled, ModelLoadError, StudioError
from studio.core.tasks import Progress, quiet

DEFAULT_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.05
# The child imports `studio` from where this process did; appended to sys.path, it shadows nothing.
STUDIO_ROOT = str(Path(__file__).resolve().parents[3])
CHILD_BOOTSTRAP = ("import sys; sys.path.append({root!r}); "
                   "from studio.core.model.isolation import _child_main; sys.exit(_child_main({action!r}))")


def die_with_parent() -> None:
    # Die with the parent: a loader must not outlive the studio (Linux only; harmless elsewhere).
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_isolated(action: str, request: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT_S,
                 progress: Progress | None = None, what: str = "Loading the model") -> dict[str, Any]:
    """Run CHILD_ACTIONS[action](request) in a fresh Python process and return its result.

    Raises the StudioError the child raised, a ModelLoadError when the child dies or runs past
    `timeout` seconds, and Cancelled when `progress` is cancelled (the child is killed at once).
    """
    progress = progress or quiet()
    # Replies can be large (a schema with many features); a file avoids pipe-buffer deadlocks.
    with tempfile.TemporaryFile() as reply, tempfile.TemporaryFile() as log:
        # -P keeps the current folder off the child's sys.path: files next to a model (an
        # xgboost.py, a json.py) must not stand in for the libraries an untrusted load imports.
        child = subprocess.Popen(
            [sys.executable, "-P", "-c", CHILD_BOOTSTRAP.format(root=STUDIO_ROOT, action=action)],
            stdin=subprocess.PIPE,
            stdout=reply,
            stderr=log,
            preexec_fn=die_with_parent if os.name == "posix" else None,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert child.stdin is not None
        try:
            child.stdin.write(json.dumps(request).encode())
            child.stdin.close()
        except BrokenPipeError:
            pass
        deadline = time.monotonic() + timeout
        try:
            while child.poll() is None:
                if progress.wait(POLL_INTERVAL_S):
                    raise Cancelled()
                if time.monotonic() > deadline:
                    raise ModelLoadError(
                        f"{what} took longer than {timeout:g} s and was stopped.",
                        "A file that loads this slowly may be waiting on something it should not; "
                        "if it is just large, raise the time limit in Settings (or --timeout).",
                    )
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        reply.seek(0)
        log.seek(0)
        return _result(child.returncode, reply.read(), log.read().decode(errors="replace"), what)


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


def _child_main(action: str) -> int:
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the model's libraries print goes to the log, not into the reply
    sys.stdout = sys.stderr
    try:
        request = json.loads(sys.stdin.read())
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
