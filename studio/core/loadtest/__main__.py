"""The load tester's own process (`python -m studio.core.loadtest`), as tester.py starts it: read
the job from stdin, run it on the engine here, and write its partial results and its report to
stdout, one JSON document per line (the conversation is described in tester.py).

Nothing else may reach stdout: the libraries' own output goes to stderr, which the studio keeps for
the log.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from typing import IO, Any

from studio.core.errors import StudioError
from studio.core.loadtest.engine import run_in_this_process
from studio.core.loadtest.results import to_wire
from studio.core.loadtest.sweep import sweep_in_this_process
from studio.core.loadtest.tester import CANCEL, plan_from_wire
from studio.core.tasks import Progress


def _watch(progress: Progress) -> None:
    """Stop the run when the studio says so, or when it goes away (end of file)."""
    for line in sys.stdin.buffer:
        if line == CANCEL:
            break
    progress.cancel()


def _run(job: dict[str, Any], progress: Progress):
    plan = plan_from_wire(job["plan"])
    if job["job"] == "sweep":
        return sweep_in_this_process(plan, progress=progress, **job["options"])
    return run_in_this_process(plan, progress)


def main() -> int:
    # Ctrl-C in a terminal reaches the whole process group; the studio handles it and sends
    # "cancel", so the report still comes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out: IO[bytes] = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(document: dict[str, Any]) -> None:
        out.write(json.dumps(document).encode() + b"\n")
        out.flush()

    line = sys.stdin.buffer.readline()
    if not line:
        return 0
    job = json.loads(line)
    progress = Progress(on_partial=lambda value: send(
        {"partial": type(value).__name__, "value": to_wire(value)}))
    threading.Thread(target=_watch, args=(progress,), name="cancel", daemon=True).start()
    try:
        result = _run(job, progress)
    except StudioError as exc:
        send({"error": {"kind": type(exc).__name__, "message": exc.message, "hint": exc.hint,
                        "detail": exc.detail}})
        return 0
    except Exception as exc:  # noqa: BLE001 - a bug: said as such, the story in the detail
        send({"error": {"kind": "StudioError",
                        "message": f"The load tester failed unexpectedly ({type(exc).__name__}: "
                                   f"{exc}).",
                        "hint": "This is a bug in Slipway Studio; the details are in the log.",
                        "detail": traceback.format_exc()}})
        return 1
    send({"result": type(result).__name__, "value": to_wire(result)})
    return 0


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    # Ended at once, everything said: the cancel watcher may still be blocked reading stdin, and
    # an interpreter finalizing under a daemon thread inside a buffered read aborts.
    os._exit(status)
