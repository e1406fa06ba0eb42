"""The load test engine against real HTTP servers on this machine: a stall mid-run shows in both
modes and a steady server shows none, errors are counted as the server sent them, and runs end on
time whatever the server does.

The engine runs in this process here (`run_in_this_process`), as it does in the tester's own
process; test_tester_process.py holds the process around it. The machine is shared and small, so
the assertions are about counts, orderings and big ratios (a one-second stall against millisecond
answers), never about tight timings.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import threading
import time
from collections.abc import Iterator

import pytest
from load_servers import (
    Answer,
    Close,
    HttpServer,
    Raw,
    Request,
    refused_address,
    unaccepting_address,
)

from studio.core.loadtest.engine import run, run_in_this_process
from studio.core.loadtest.plan import LoadPlan, LoadTestError
from studio.core.loadtest.results import LoadReport, Snapshot
from studio.core.tasks import Progress

pytestmark = pytest.mark.timeout(60)

ERROR_BODY = b'{"error":"the model ran out of memory"}'


@pytest.fixture
def server() -> Iterator[HttpServer]:
    """A server answering every request at once with a small JSON body."""
    with HttpServer() as running:
        yield running


@pytest.fixture
def refused_url() -> Iterator[str]:
    sock, url = refused_address()
    try:
        yield url
    finally:
        sock.close()


class Stall:
    """Answers at once, except that every request arriving between `begin` and `end` seconds after
    the first one is held until `end`: a one-second stall (a GC pause, a stuck batch) mid-run."""

    def __init__(self, begin: float = 0.5, end: float = 1.5) -> None:
        self.begin, self.end = begin, end
        self.first: float | None = None
        self.held = 0
        self.longest_hold_ms = 0.0
        """The longest a request was held: a client must have seen at least this latency."""

    async def __call__(self, request: Request) -> Answer:
        if self.first is None:
            self.first = request.received
        at = request.received - self.first
        if self.begin <= at < self.end:
            self.held += 1
            self.longest_hold_ms = max(self.longest_hold_ms, (self.end - at) * 1000)
            await asyncio.sleep(self.end - at)
        return Answer()


async def every_third_fails(request: Request) -> Answer:
    return Answer(500, ERROR_BODY) if request.index % 3 == 2 else Answer()


async def never_answer(request: Request) -> Answer:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def close_instead(request: Request) -> Close:
    return Close()


# --- a stall mid-run ---------------------------------------------------------------------------

def test_open_loop_shows_a_one_second_stall_in_its_percentiles():
    stall = Stall()
    with HttpServer(stall) as server:
        report = run_in_this_process(LoadPlan(server.url, mode="open", rate=200, connections=8,
                                              duration_s=2.0))
    assert stall.longest_hold_ms >= 500, "the stall did not happen"
    assert report.errors == 0 and report.completed == report.sent == server.received
    assert report.latency_from == "intended send time"
    # ~200 of ~400 requests were due during the stall; every one waited, for up to a second.
    assert report.p99_ms >= 500
    assert report.latency.max_ms >= 0.95 * stall.longest_hold_ms
    assert report.late_sends >= 50
    assert report.max_send_lag_ms >= 500
    assert report.delayed_sends == 0 and report.corrected is None  # open loop needs no correction


def test_closed_loop_does_not_hide_a_one_second_stall():
    stall = Stall()
    with HttpServer(stall) as server:
        report = run_in_this_process(LoadPlan(server.url, mode="closed", connections=4,
                                              duration_s=2.0))
    assert stall.longest_hold_ms >= 500, "the stall did not happen"
    assert report.errors == 0 and report.completed == report.sent == server.received
    assert report.latency_from == "actual send time"
    # The four workers sat out the stall: four requests saw it, among thousands...
    assert stall.held == 4
    assert report.latency.max_ms >= 0.95 * stall.longest_hold_ms
    assert report.p50_ms < 100
    # ...but the report counts the sends a steady client would have made meanwhile, and its
    # corrected percentiles show the stall.
    assert report.delayed_sends >= 200
    assert report.corrected is not None
    assert report.corrected.p99_ms >= 500
    assert report.corrected.count == report.latency.count + report.delayed_sends
    assert report.corrected.mean_ms > report.latency.mean_ms


def test_a_steady_server_needs_no_correction():
    """A server that answers everything in 2 ms never stalls: no send was delayed, and the
    corrected percentiles are the measured ones (the first answers of fresh connections, and the
    tester's own pauses, are not stalls). Through the tester's own process, as the studio runs it.

    2 ms, not at once: a server answering at once keeps both of a small machine's cores busy with
    the tester, and the scheduler then stops it for a time slice (about 4 ms) now and then, which is
    a stall against its 0.4 ms answers. A shared machine can stop any server for a moment, so of
    five runs one must show no stall (a correction that misfires does in every run), unless the
    server's own event loop stood still for a stall's length in all five.
    """

    async def two_ms(request: Request) -> Answer:
        await asyncio.sleep(0.002)
        return Answer()

    runs = []
    for _ in range(5):
        with HttpServer(two_ms) as server:
            report = run(LoadPlan(server.url, mode="closed", connections=8, duration_s=2.0))
        runs.append((report.delayed_sends, server.longest_pause_s * 1000, report.stall_threshold_ms))
        if report.delayed_sends == 0:
            break
    else:
        if all(pause >= 0.8 * threshold for _, pause, threshold in runs):
            pytest.skip("the machine stopped the server for a stall's length in every run")
    assert report.errors == 0 and report.completed > 1000
    assert report.delayed_sends == 0, f"(delayed sends, server pause ms, threshold ms): {runs}"
    assert report.corrected is not None
    assert report.corrected.p99_ms == report.latency.p99_ms
    assert report.corrected.p50_ms == report.latency.p50_ms
    assert report.stall_threshold_ms == pytest.approx(10 * report.latency.p99_ms, rel=0.02)


# --- errors ------------------------------------------------------------------------------------

def test_http_errors_are_counted_as_the_server_sent_them():
    connections = 4
    with HttpServer(every_third_fails) as server:
        report = run_in_this_process(LoadPlan(server.url, connections=connections, duration_s=0.6))
    sent_500, sent_200 = server.statuses[500], server.statuses[200]
    assert sent_500 > 30 and sent_200 > 60
    assert set(report.errors_by_kind) == {"HTTP 500"}
    assert abs(report.errors_by_kind["HTTP 500"] - sent_500) <= connections
    assert abs(report.completed - sent_200) <= connections
    assert report.errors == report.errors_by_kind["HTTP 500"]
    assert report.error_samples["HTTP 500"] == ERROR_BODY.decode()
    assert report.error_ratio == pytest.approx(1 / 3, abs=0.05)
    assert report.latency.count == report.completed  # only 2xx answers are latencies


def test_a_server_that_never_answers_gives_timeouts():
    with HttpServer(never_answer) as server:
        started = time.perf_counter()
        report = run_in_this_process(LoadPlan(server.url, connections=2, duration_s=0.7,
                                              timeout_s=0.3))
        took = time.perf_counter() - started
    assert report.completed == 0
    assert set(report.errors_by_kind) == {"timeout"}
    # Each connection times out about every 0.3 s, then sends again on a fresh connection.
    assert report.errors_by_kind["timeout"] >= 4
    assert report.errors_by_kind["timeout"] <= server.received
    assert "0.3 s" in report.error_samples["timeout"]
    assert took < 0.7 + 0.3 + 1.5  # the run, one timeout to drain, and slack
    assert math.isnan(report.p99_ms)


def test_open_loop_requests_waiting_for_a_stuck_connection_are_not_sent_in_time():
    with HttpServer(never_answer) as server:
        report = run_in_this_process(LoadPlan(server.url, mode="open", rate=50, connections=1,
                                              duration_s=0.6, timeout_s=0.25))
    assert report.completed == 0
    assert report.errors_by_kind.get("timeout", 0) >= 1
    assert report.errors_by_kind.get("not sent in time", 0) >= 10
    assert "free connection" in report.error_samples["not sent in time"]
    # Every request that came due is accounted for, sent or not: about 30 in 0.6 s.
    assert 25 <= report.errors <= 35


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_nothing_listening_gives_connection_refused_and_the_run_ends_on_time(refused_url, mode):
    plan = LoadPlan(refused_url, mode=mode, rate=100 if mode == "open" else None, connections=4,
                    duration_s=0.6)
    started = time.perf_counter()
    report = run_in_this_process(plan)
    took = time.perf_counter() - started
    assert 0.55 <= took < 1.6
    assert report.duration_s == pytest.approx(0.6, abs=0.2)
    assert report.completed == 0 and report.sent == 0
    assert report.errors_by_kind["connection refused"] >= 10
    assert set(report.errors_by_kind) <= {"connection refused", "not sent in time"}
    assert "refused" in report.error_samples["connection refused"].lower()


def test_a_server_closing_the_connection_mid_request_gives_connection_closed():
    with HttpServer(close_instead) as server:
        report = run_in_this_process(LoadPlan(server.url, connections=2, duration_s=0.5))
    assert server.closed > 0
    assert report.completed == 0
    assert set(report.errors_by_kind) == {"connection closed"}
    assert abs(report.errors - server.closed) <= 2
    assert "closed the connection" in report.error_samples["connection closed"]


def test_a_reply_that_is_not_http_is_an_error_not_an_answer():
    async def garbage(request: Request) -> Raw:
        return Raw(b"this is not HTTP at all\r\n\r\n")

    with HttpServer(garbage) as server:
        report = run_in_this_process(LoadPlan(server.url, connections=2, duration_s=0.5))
    assert server.received > 0
    assert report.completed == 0
    assert report.errors == report.sent
    assert set(report.errors_by_kind) == {"bad HTTP response"}


# --- how much is sent ----------------------------------------------------------------------------

def test_closed_loop_with_a_request_count_sends_exactly_that_many(server):
    report = run_in_this_process(LoadPlan(server.url, connections=4, requests=500))
    assert server.received == 500
    assert report.sent == 500
    assert report.completed + report.errors == 500
    assert report.completed == 500
    assert report.latency.count == 500
    assert "500 requests" in report.plan


def test_open_loop_with_a_request_count_sends_exactly_that_many(server):
    report = run_in_this_process(LoadPlan(server.url, mode="open", rate=400, connections=4,
                                          requests=120))
    assert server.received == 120
    assert report.sent == report.completed == 120
    # 120 requests at 400 per second: the run takes the time they take, not the 10 s default.
    assert report.duration_s < 2.0


def test_open_loop_sends_at_the_constant_rate(server):
    report = run_in_this_process(LoadPlan(server.url, mode="open", rate=300, connections=4,
                                          duration_s=1.0))
    assert report.sent == pytest.approx(300, rel=0.10)
    assert server.received == report.sent
    assert report.completed == report.sent and report.errors == 0
    assert report.offered_rate == 300
    assert report.throughput == pytest.approx(300, rel=0.10)


def test_open_loop_sends_poisson_arrivals_at_the_mean_rate(server):
    report = run_in_this_process(LoadPlan(server.url, mode="open", rate=300, arrival="poisson",
                                          connections=4, duration_s=1.0, seed=3))
    assert report.sent == pytest.approx(300, rel=0.20)
    assert server.received == report.sent
    assert "poisson" in report.plan


def test_requests_carry_the_payloads_in_turn_and_the_headers():
    bodies = [b'{"i":0}', b'{"i":1}', b'{"i":2}']
    with HttpServer() as server:
        run_in_this_process(LoadPlan(server.url, route="/predict/batch", payloads=bodies,
                                     connections=1, requests=7,
                                     headers={"Authorization": "Bearer secret"}))
    with HttpServer() as get:
        run_in_this_process(LoadPlan(get.url, route="/health", connections=1, requests=2))
    assert [r.body for r in server.requests] == [*bodies, *bodies, bodies[0]]
    for request in server.requests:
        assert (request.method, request.path) == ("POST", "/predict/batch")
        assert request.headers["authorization"] == "Bearer secret"
        assert request.headers["content-type"] == "application/json"
        assert int(request.headers["content-length"]) == len(request.body)
    assert [(r.method, r.path, r.body) for r in get.requests] == [("GET", "/health", b"")] * 2


def test_a_base_url_with_a_path_is_honoured_or_refused(server):
    """ModelClient sends to base path + route (http://host/models/iris + /predict); the load test
    must hit the same place, or refuse the URL, never silently load another path."""
    plan = LoadPlan(server.url + "/models/iris", connections=1, requests=3)
    try:
        run_in_this_process(plan)
    except LoadTestError:
        return
    assert {r.path for r in server.requests} == {"/models/iris/predict"}


# --- warm-up and snapshots -----------------------------------------------------------------------

def test_warm_up_requests_are_not_in_the_report():
    """Requests arriving in the first 0.4 s are answered 300 ms later with a 503 (a cold server);
    warm-up lasts 0.5 s, so some of those answers come after measuring started: none may be
    counted. The status marks a warm-up answer whatever the machine's timing."""
    cold_until = 0.0
    cold_answered_at: list[float] = []

    async def cold_then_fast(request: Request) -> Answer:
        if request.received < cold_until:
            await asyncio.sleep(0.3)
            cold_answered_at.append(time.perf_counter())
            return Answer(status=503)
        return Answer()

    snapshots: list[Snapshot] = []
    with HttpServer(cold_then_fast) as server:
        started = time.perf_counter()
        cold_until = started + 0.4
        report = run_in_this_process(LoadPlan(server.url, connections=2, warmup_s=0.5,
                                              duration_s=0.6),
                                     Progress(on_partial=snapshots.append))
    assert max(cold_answered_at) > started + 0.5, "no warm-up answer came after measuring began"
    assert server.received > report.sent > 0
    assert report.completed + report.errors == report.sent
    assert report.errors == 0 and not report.errors_by_kind  # no cold answer was measured
    assert report.duration_s == pytest.approx(0.6, abs=0.2)
    assert any(s.warming_up for s in snapshots)
    assert all(s.elapsed_s >= 0 for s in report.timeline)
    assert all(s.sent == 0 and s.completed == 0 for s in snapshots if s.warming_up)


def test_snapshots_come_about_every_quarter_second(server):
    snapshots: list[Snapshot] = []
    report = run_in_this_process(LoadPlan(server.url, connections=2, duration_s=2.0),
                                 Progress(on_partial=snapshots.append))
    assert 6 <= len(snapshots) <= 10
    elapsed = [s.elapsed_s for s in snapshots]
    assert elapsed == sorted(elapsed) and len(set(elapsed)) == len(elapsed)
    counts = [s.overall.count for s in snapshots]
    assert counts == sorted(counts)
    # The timeline ends when sending ends; the answers then in flight count in the report only.
    assert snapshots[-1].sent == report.sent
    assert 0 <= report.latency.count - counts[-1] <= 2
    assert report.latency.count == report.completed
    assert sum(s.throughput > 0 for s in snapshots) >= 5
    # The timeline is the snapshots of the measured time, the very same ones.
    measured = [s for s in snapshots if not s.warming_up]
    assert len(report.timeline) == len(measured)
    assert all(a is b for a, b in zip(report.timeline, measured))


@pytest.mark.parametrize("duration_s", [1.1, 1.2])
def test_the_last_window_is_weighted_by_its_real_length(server, duration_s):
    """A run that ends part way into a 250 ms window: the timeline's last point is that window's
    answers over its real length (ending with the measured time, not with the tick that noticed
    it), so a steady server draws no cliff at the end."""
    report = run_in_this_process(LoadPlan(server.url, connections=2, duration_s=duration_s))
    rates = [s.throughput for s in report.timeline]
    ends = [s.elapsed_s for s in report.timeline]
    assert ends[-1] == pytest.approx(duration_s)  # it ends with the measured time, not later
    lengths = [b - a for a, b in zip([0.0, *ends], ends)]
    # Every window's rate is its answers over its own length: together, the run's answers.
    assert sum(r * t for r, t in zip(rates, lengths)) == pytest.approx(
        report.throughput * report.duration_s)
    assert len(rates) >= 2


# --- cancelling ----------------------------------------------------------------------------------

def test_cancelling_from_another_thread_ends_a_long_run_within_a_second(server):
    progress = Progress()
    cancelled_at: list[float] = []

    def cancel() -> None:
        cancelled_at.append(time.perf_counter())
        progress.cancel()

    timer = threading.Timer(0.5, cancel)
    timer.start()
    try:
        report = run_in_this_process(LoadPlan(server.url, connections=2, duration_s=30.0), progress)
    finally:
        timer.cancel()
    ended = time.perf_counter()
    assert cancelled_at, "the run ended before it was cancelled"
    assert ended - cancelled_at[0] < 1.0
    assert report.cancelled
    assert report.duration_s < 2.0
    assert report.completed > 0  # what was measured before the cancel is reported


def test_cancelling_while_in_flight_answers_drain_ends_the_run():
    progress = Progress()
    with HttpServer(never_answer) as server:
        timer = threading.Timer(0.4, progress.cancel)  # the run ends at 0.2 s, then drains
        timer.start()
        started = time.perf_counter()
        try:
            report = run_in_this_process(LoadPlan(server.url, connections=1, duration_s=0.2,
                                                  timeout_s=1.5),
                                         progress)
        finally:
            timer.cancel()
        took = time.perf_counter() - started
    assert took < 1.2
    assert report.cancelled


# --- the report as data --------------------------------------------------------------------------

def _json(report: LoadReport) -> dict:
    return json.loads(json.dumps(report.to_dict(), allow_nan=False))


def test_a_report_with_nothing_measured_is_valid_json(refused_url):
    report = run_in_this_process(LoadPlan(refused_url, connections=2, duration_s=0.5))
    assert report.completed == 0 and math.isnan(report.p99_ms)
    data = _json(report)
    assert data["latency"]["p99_ms"] is None and data["latency"]["count"] == 0
    assert data["corrected"] is None and data["distribution"] == []
    assert data["errors_by_kind"]["connection refused"] == report.errors
    assert data["timeline"] and data["timeline"][0]["overall"]["p50_ms"] is None


def test_a_measured_report_round_trips_through_json(server):
    report = run_in_this_process(LoadPlan(server.url, mode="open", rate=100, connections=2,
                                          duration_s=0.5))
    data = _json(report)
    assert data["latency"]["p99_ms"] == report.p99_ms
    assert data["sent"] == report.sent and data["mode"] == "open"
    percentiles = [p for p, _ in data["distribution"]]
    latencies = [v for _, v in data["distribution"]]
    assert percentiles == sorted(percentiles) and latencies == sorted(latencies)
    assert percentiles[-1] == 100.0


# --- hygiene -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_finished_run_leaves_nothing_running(caplog, mode):
    """The run ends while its connection attempts are still in flight (the server does not accept):
    they are stopped with it, not left to be torn down with its closed event loop."""
    with unaccepting_address() as url:
        started = time.perf_counter()
        report = run_in_this_process(LoadPlan(url, mode=mode, rate=50 if mode == "open" else None,
                                              connections=2, duration_s=0.3, timeout_s=1.0))
        assert time.perf_counter() - started < 2.0
    gc.collect()
    assert report.completed == 0
    errors = [r.getMessage().splitlines()[0] for r in caplog.records
              if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert errors == []


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_server_that_never_accepts_is_reported_not_silent(mode):
    """A run shorter than the timeout against a server that does not accept connections: the
    requests that could not go out are errors, not an empty report."""
    with unaccepting_address() as url:
        report = run_in_this_process(LoadPlan(url, mode=mode, rate=50 if mode == "open" else None,
                                              connections=2, duration_s=0.3, timeout_s=1.0))
    assert report.completed == 0
    assert report.errors > 0
    assert set(report.errors_by_kind) == {"not sent in time"}
