"""The load tester's own process: `engine.run` and `sweep.sweep` start it, send it the job, and hand
out what it streams back.

Why a process of its own: a load tester measures time. In the studio's process it shares the
interpreter with Qt's painting, the charts and the Monitor; while they hold it, answers wait to be
read and the wait is timed as the server's (switching pages during a run gave a 200 ms maximum and
a corrected p99 of 158 ms against a server answering in 3.5 ms). In a process of its own it runs
whatever the window does, and the CPU it reports (`LoadReport.client_cpu_percent`) is its own.

The process is a `PythonChild` (core/children.py), so it never outlives the studio, whichever
thread started it. The conversation, one JSON document per line:

    studio → tester (stdin)    the job: {"job": "run" | "sweep", "plan": {...}, "options": {...}}
                               then "cancel" (or end of file): stop, and report what was measured
    tester → studio (stdout)   {"partial": "Snapshot" | "SweepStep", "value": {...}} as they come,
                               then {"result": "LoadReport" | "SweepReport", "value": {...}}
                               or {"error": {"kind", "message", "hint", "detail"}}

The tester's side is `__main__.py` (`python -m studio.core.loadtest`).
"""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from studio.core.children import PythonChild
from studio.core.errors import Cancelled, StudioError
from studio.core.loadtest.plan import LoadPlan, LoadTestError
from studio.core.loadtest.results import WIRE_KINDS, LoadReport, SweepReport
from studio.core.tasks import Progress

TESTER_MODULE = "studio.core.loadtest"
STUDIO_ROOT = str(Path(__file__).resolve().parents[3])
"""Where the tester's process imports the studio from (appended to its sys.path: it shadows
nothing)."""
CANCEL = b"cancel\n"
POLL_S = 0.05
"""How often a cancel is looked for while waiting on the tester."""
REPORT_AFTER_CANCEL_S = 3.0
"""The report follows a cancel within about 100 ms; a tester that has not sent it after this long
is stopped, and the cancel is all there is to say."""
EXIT_WITHIN_S = 5.0
"""A tester that has reported (or was told to stop) exits within a fraction of a second, longer on
a busy machine; one still running after this long is stopped."""
ERRORS: dict[str, type[StudioError]] = {"LoadTestError": LoadTestError}
"""The errors the tester's process raises by name; anything else arrives as a StudioError."""
_END = object()


def plan_to_wire(plan: LoadPlan) -> dict[str, Any]:
    """The plan as JSON: its bodies as base64, since a payload file is sent as it is."""
    return {**asdict(plan), "payloads": [base64.b64encode(body).decode("ascii")
                                         for body in plan.payloads]}


def plan_from_wire(data: dict[str, Any]) -> LoadPlan:
    return LoadPlan(**{**data, "payloads": [base64.b64decode(body) for body in data["payloads"]]})


def in_tester_process(job: dict[str, Any], progress: Progress) -> LoadReport | SweepReport:
    """Run `job` in a new tester process and return its report, handing out its partial results
    through `progress.partial` from this thread. Cancelling `progress` asks the tester to stop; its
    report then says `cancelled`."""
    with tempfile.TemporaryFile() as log:  # its stderr, kept for the error's detail
        child = PythonChild(TESTER_MODULE, sys_path=[STUDIO_ROOT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=log)
        assert child.stdin is not None and child.stdout is not None
        lines: queue.Queue[bytes | object] = queue.Queue()
        cancel = threading.Event()
        # Two threads, so that neither a long job to write (thousands of bodies) nor a tester that
        # has not answered yet keeps this one from noticing a cancel.
        threads = [threading.Thread(target=_write, args=(child.stdin, job, cancel),
                                    name="load-tester-writer", daemon=True),
                   threading.Thread(target=_read, args=(child.stdout, lines),
                                    name="load-tester-reader", daemon=True)]
        for thread in threads:
            thread.start()
        try:
            return _follow(child, lines, cancel, progress, log)
        finally:
            cancel.set()  # the writer ends (or the tester, when it is still running)
            # The report is the caller's at once; the tester's exit is waited for elsewhere.
            threading.Thread(target=_reap, args=(child, threads), name="load-tester-reaper",
                             daemon=True).start()


def _reap(child: PythonChild, threads: list[threading.Thread]) -> None:
    """Let the tester end on its own, as it does once it has reported or been told to stop; stop
    it when it has not within EXIT_WITHIN_S."""
    try:
        child.wait(EXIT_WITHIN_S)
    except subprocess.TimeoutExpired:
        child.kill_group()
    for thread in threads:
        thread.join(1.0)
    if child.stdout is not None:
        child.stdout.close()


def _write(stdin: IO[bytes], job: dict[str, Any], cancel: threading.Event) -> None:
    try:
        stdin.write(json.dumps(job).encode() + b"\n")
        stdin.flush()
        cancel.wait()
        stdin.write(CANCEL)
        stdin.close()
    except (BrokenPipeError, ValueError, OSError):
        pass  # the tester has ended; what it said (or did not) is read on the other side


def _read(stdout: IO[bytes], lines: queue.Queue) -> None:
    try:
        for line in stdout:
            lines.put(line)
    except (ValueError, OSError):
        pass
    finally:
        lines.put(_END)


def _follow(child: PythonChild, lines: queue.Queue, cancel: threading.Event, progress: Progress,
            log: IO[bytes]) -> LoadReport | SweepReport:
    cancelled_at: float | None = None
    while True:
        try:
            line = lines.get(timeout=POLL_S)
        except queue.Empty:
            line = None
        if progress.cancelled and cancelled_at is None:
            cancel.set()
            cancelled_at = time.monotonic()
        if cancelled_at is not None and time.monotonic() - cancelled_at > REPORT_AFTER_CANCEL_S:
            raise Cancelled()
        if line is None:
            continue
        if line is _END:
            break
        document = json.loads(line)
        if "partial" in document:
            progress.partial(WIRE_KINDS[document["partial"]].from_wire(document["value"]))
        elif "result" in document:
            return WIRE_KINDS[document["result"]].from_wire(document["value"])
        elif "error" in document:
            error = document["error"]
            raise ERRORS.get(error["kind"], StudioError)(error["message"], error.get("hint"),
                                                         detail=error.get("detail"))
    try:
        code = child.wait(5)
    except subprocess.TimeoutExpired:
        code = None
    log.seek(0)
    cause = ("it was killed" if code is not None and code < 0 else
             f"exit status {code}" if code is not None else "it stopped answering")
    raise StudioError(f"The load tester's process ended before it reported ({cause}).",
                      "Run the test again; the details are in the log.",
                      detail=log.read().decode(errors="replace")[-4000:])
