"""The load tester's own process: `run` and `sweep` send their job to it and hand out what it
streams back, so nothing the studio's process does is timed as the server's or counted as the
tester's CPU; a cancel still ends the run promptly, and a tester that dies is said as such.

The servers are real (HTTP on this machine); the assertions are about which process did what and
about big ratios, never tight timings.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from load_servers import HttpServer

from studio.core.errors import StudioError
from studio.core.loadtest import tester
from studio.core.loadtest.engine import run
from studio.core.loadtest.plan import LoadPlan, LoadTestError
from studio.core.loadtest.results import Snapshot
from studio.core.loadtest.sweep import SweepReport, SweepStep, sweep
from studio.core.tasks import Progress

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as running:
        yield running


@pytest.fixture
def children(monkeypatch) -> list[tester.PythonChild]:
    """Every tester process started, as it was started."""
    started: list[tester.PythonChild] = []

    class Recorded(tester.PythonChild):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(tester, "PythonChild", Recorded)
    return started


def test_a_run_happens_in_another_process_and_streams_its_snapshots(server, children):
    seen: list[tuple[Snapshot, int]] = []
    progress = Progress(on_partial=lambda part: seen.append((part, threading.get_ident())))
    report = run(LoadPlan(server.url, connections=2, duration_s=1.5), progress)

    assert len(children) == 1
    assert report.tester_pid == children[0].pid != os.getpid()
    assert children[0].wait(10) == 0, "the tester's process ends on its own once it has reported"
    assert report.errors == 0 and report.completed == server.received - _in_flight(report)
    # The snapshots arrived one by one, on the caller's thread, as the engine's own objects.
    assert len(seen) >= 4
    assert all(isinstance(part, Snapshot) for part, _ in seen)
    assert {ident for _, ident in seen} == {threading.get_ident()}
    assert [s.overall.count for s, _ in seen] == sorted(s.overall.count for s, _ in seen)
    assert [s.elapsed_s for s in report.timeline] == [s.elapsed_s for s, _ in seen]


def _in_flight(report) -> int:
    """Answers that were on their way when the measured time ended count in the report only."""
    return report.sent - report.completed - report.errors


def test_the_testers_cpu_is_its_own_not_the_studios(server):
    """This process spins a core for the whole run; the light open-loop tester reports only the
    CPU it used itself (in the studio's process the spinning would be counted as its own)."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        report = run(LoadPlan(server.url, mode="open", rate=100, connections=2, duration_s=1.5))
    finally:
        stop.set()
        spinner.join()
    assert report.completed > 100 and report.errors == 0
    assert report.client_cpu_percent < 50


def test_cancel_ends_a_long_run_within_a_second_and_reports_what_was_measured(server, children):
    progress = Progress()
    cancelled_at: list[float] = []

    def cancel() -> None:
        cancelled_at.append(time.perf_counter())
        progress.cancel()

    timer = threading.Timer(1.0, cancel)
    timer.start()
    try:
        report = run(LoadPlan(server.url, connections=2, duration_s=30.0), progress)
    finally:
        timer.cancel()
    ended = time.perf_counter()
    assert cancelled_at, "the run ended before it was cancelled"
    assert ended - cancelled_at[0] < 1.0
    assert report.cancelled and report.completed > 0
    assert report.duration_s < 10
    assert children[0].wait(10) == 0


def test_a_tester_that_dies_is_said_as_such(server, children):
    """A tester killed mid-run (out of memory, a user's kill) is an error naming how it ended,
    not a hang and not an empty report."""
    progress = Progress(on_partial=lambda _: children[0].kill() if children else None)
    with pytest.raises(StudioError, match=r"ended before it reported \(it was killed\)"):
        run(LoadPlan(server.url, connections=2, duration_s=30.0), progress)


def test_a_bad_plan_is_refused_before_any_process_starts(children):
    with pytest.raises(LoadTestError, match="at least one connection"):
        run(LoadPlan("http://127.0.0.1:9", connections=0, duration_s=1.0))
    assert children == []


def test_a_sweep_runs_in_the_testers_process_and_streams_its_steps(server, children):
    parts: list[object] = []
    report = sweep(LoadPlan(server.url, connections=4), slo_p99_ms=1000.0, start_rate=50,
                   step_s=0.5, refine=0, max_steps=2, progress=Progress(on_partial=parts.append))
    assert isinstance(report, SweepReport) and len(children) == 1
    steps = [part for part in parts if isinstance(part, SweepStep)]
    assert [s.rate for s in steps] == [s.rate for s in report.steps] == [50, 75]
    assert all(s.met for s in steps)
    assert any(isinstance(part, Snapshot) for part in parts)
