"""The load test engine: closed and open loops of HTTP/1.1 requests against a served model.

Longer than 500 lines because one run's state (`_Run`: connections, the schedule, the clock,
the accounting of answers, failures and the tester's own pauses) is shared by every callback of the
event loop, and reads best as one class.

`run(plan)` runs it in the tester's own process (tester.py), never in the studio's: a tester that
shares an interpreter with Qt's painting, the charts and the Monitor waits on them, and times that
wait as the server's. `run_in_this_process` is the engine itself, which that process runs.

Two ways to load a server, and why both:

* **Closed loop** (`mode="closed"`): N workers, each sending its next request when the previous one
  answers, as wrk, ab and Locust users do. It finds the maximum throughput. It also hides stalls:
  while the server is stuck, the workers wait instead of sending, so the requests a real client
  population would have sent in that time are never measured ("coordinated omission"). The report
  does not pretend otherwise: it counts those `delayed_sends` and gives latency percentiles
  corrected for them, computed as HdrHistogram's `record_corrected_value` does (results.py:
  `corrected_latencies`), for the time the server, not the tester, kept a worker waiting.
* **Open loop** (`mode="open"`): requests are due at a constant or Poisson arrival rate whatever
  the server does, as wrk2 and vegeta send them. Each latency is measured from the request's
  *intended* send time, so time spent waiting for a free connection counts, and a stall shows in
  the percentiles. Sends that leave more than `LATE_AFTER_S` after their intended time are counted
  as `late_sends`: the server, or the tester, fell behind.

The HTTP/1.1 client is built for this job: persistent keep-alive connections on the asyncio event
loop (uvloop where installed), requests pre-rendered to bytes, responses parsed by llhttp through
httptools, and everything driven from protocol callbacks rather than a coroutine per request.
General HTTP clients cost a load tester most of its CPU: against a bare ASGI app on the same machine
httpx's AsyncClient reaches a few hundred requests per second, aiohttp about 57% of wrk; this
client's figures against wrk are in docs/benchmarks.md.

Latencies are recorded in HDR histograms (microseconds, 2 significant digits). A snapshot every
250 ms gives throughput, percentiles for the interval and for the run so far, and errors by kind.
The clock starts once the connections are open: making a connection is not part of a request's
latency on a keep-alive client, and a first answer that waited on it would look like a stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import ssl
import time
from array import array
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httptools
import numpy as np

from studio.core.loadtest import tester
from studio.core.loadtest.plan import LoadPlan
from studio.core.loadtest.results import (
    ErrorKind,
    Latency,
    LoadReport,
    Snapshot,
    corrected_latencies,
    distribution,
    new_histogram,
    record_values,
)
from studio.core.tasks import Progress, quiet

SNAPSHOT_EVERY_S = 0.25
HOUSEKEEPING_EVERY_S = 0.05
"""How often timeouts are enforced and cancellation is noticed."""
PAUSE_TICK_S = 0.005
PAUSE_MIN_S = 0.002
"""A tick this much later than due means the tester's event loop stood still (the machine ran
something else, or the tester was busy): the time is the tester's, not the server's."""
STALL_CANDIDATE_US = 1000
"""Answers slower than this are kept (their send and answer times) for the stall correction:
its threshold is ten times a p99, and no p99 over HTTP is below 0.1 ms."""
OPEN_WITHIN_S = 0.5
"""How long the connections are given to open before the clock starts regardless (at most half
the timeout): a server that does not accept is then measured as such, not waited on."""
LATE_AFTER_S = 0.010
"""An open-loop send this long after its intended time is late. The tester's own scheduling jitter
is about a millisecond (event-loop timers tick in milliseconds); more means no connection was free or
the tester ran short of CPU."""
STUCK_CONNECT_S = 0.1
"""A connection still being made after this long is stuck: a local one takes microseconds."""
RECONNECT_AFTER_S = 0.05
"""A refused connection is retried after this pause, so a dead server is reported, not hammered."""
ERROR_SAMPLE_BYTES = 300


# --- the client ------------------------------------------------------------------------------------

class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, carrying one request at a time."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.intended = 0.0
        self.sent_at = 0.0
        self.error_body: bytearray | None = None
        self.aborted = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.run.failed(self, "bad HTTP response", f"{exc}: {bytes(data[:80])!r}")
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.lost(self)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.error_body = None

    def on_body(self, body: bytes) -> None:
        if self.parser.get_status_code() >= 300:
            if self.error_body is None:
                self.error_body = bytearray()
            if len(self.error_body) < ERROR_SAMPLE_BYTES:
                self.error_body += body[:ERROR_SAMPLE_BYTES]

    def on_message_complete(self) -> None:
        self.run.answered(self, self.parser.get_status_code(), self.parser.should_keep_alive())

    def send(self, request: bytes, intended: float) -> None:
        self.busy = True
        self.sent_at = time.perf_counter()
        self.intended = intended if intended else self.sent_at
        self.transport.write(request)  # type: ignore[union-attr]

    def abort(self) -> None:
        self.aborted = True
        if self.transport is not None:
            self.transport.abort()


class _Run:
    """The state of one running test. Everything happens on one event loop thread."""

    def __init__(self, plan: LoadPlan, progress: Progress,
                 on_snapshot: Callable[[Snapshot], None] | None) -> None:
        self.plan = plan
        self.progress = progress
        self.on_snapshot = on_snapshot
        parts = urlsplit(plan.url)
        self.host = parts.hostname or ""
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.requests = plan.rendered_requests()
        self.next_request = 0
        self.closed_loop = plan.mode == "closed"

        self.connections: list[_Connection] = []
        self.idle: deque[_Connection] = deque()
        self.pending: deque[float] = deque()  # open loop: intended times waiting for a connection
        self.connecting = 0
        self.dialing: dict[object, float] = {}
        """When each connection being made now began (not those pausing before a retry)."""
        self.connect_tasks: set[asyncio.Task] = set()
        self.opening = 0
        """First connection attempts not yet made or failed: the clock starts when none are."""
        self.started = False
        self.stopping = False

        self.histogram = new_histogram()  # the current interval; folded into `total` per snapshot
        self.total = new_histogram()
        self.latencies = array("q")  # the interval's latencies in µs, folded in per snapshot
        self.interval_sum_us = self.total_sum_us = 0
        self.sent = self.completed = self.errors = 0
        self.completed_in_window = 0
        self.interval_completed = self.interval_errors = 0
        self.errors_by_kind: dict[ErrorKind, int] = {}
        self.error_samples: dict[ErrorKind, str] = {}
        self.late_sends = 0
        self.max_lag = 0.0
        self.budget = plan.requests
        self.last_done = 0.0
        self.timeline: list[Snapshot] = []
        # Until the clock starts nothing is measured and nothing ends.
        self.start = self.measure_from = self.stop_at = math.inf
        self.slow_sent = array("d")  # closed loop: when each slow answer's request was sent...
        self.slow_done = array("d")  # ...and answered (see STALL_CANDIDATE_US)
        self.pauses: list[tuple[float, float]] = []  # the tester's own pauses, (from, to)

    # --- sending -----------------------------------------------------------------------------------

    def _send(self, conn: _Connection, intended: float) -> None:
        now = time.perf_counter()
        if intended:
            lag = now - intended
            if lag > LATE_AFTER_S and intended >= self.measure_from:
                self.late_sends += 1
                self.max_lag = max(self.max_lag, lag)
        request = self.requests[self.next_request]
        self.next_request = (self.next_request + 1) % len(self.requests)
        if (intended or now) >= self.measure_from:
            self.sent += 1
        conn.send(request, intended)

    def _take_budget(self, intended: float) -> bool:
        """Whether one more request may go out (counts only measured requests)."""
        if self.budget is None or intended < self.measure_from:
            return True
        if self.budget <= 0:
            return False
        self.budget -= 1
        return True

    def _next(self, conn: _Connection) -> None:
        """A connection is free: give it work, or park it."""
        if self.stopping or not self.started:
            self.idle.append(conn)
            return
        if self.closed_loop:
            now = time.perf_counter()
            # Nothing leaves after the measured time, though the clock checks it only every 50 ms.
            if now < self.stop_at and self._take_budget(now):
                self._send(conn, 0.0)
            else:
                self.idle.append(conn)
            return
        if self.pending:
            self._send(conn, self.pending.popleft())
        else:
            self.idle.append(conn)

    def due(self, intended: float) -> None:
        """Open loop: a request's intended send time has come."""
        if self.idle:
            self._send(self.idle.popleft(), intended)
        else:
            self.pending.append(intended)
            if not self.connections and not self.connecting:
                self._open_connection()

    # --- answers and failures ----------------------------------------------------------------------

    def answered(self, conn: _Connection, status: int, keep_alive: bool) -> None:
        now = self.last_done = time.perf_counter()
        conn.busy = False
        if conn.intended >= self.measure_from:
            if 200 <= status < 300:
                latency_us = int((now - conn.intended) * 1e6)
                self.latencies.append(latency_us)
                self.completed += 1
                if now <= self.stop_at:  # the timeline ends when sending ends
                    self.completed_in_window += 1
                    self.interval_completed += 1
                if latency_us > STALL_CANDIDATE_US and self.closed_loop:
                    self.slow_sent.append(conn.intended)
                    self.slow_done.append(now)
            else:
                sample = bytes(conn.error_body or b"").decode("utf-8", "replace").strip()
                self._error(f"HTTP {status}", sample)
        if keep_alive:
            self._next(conn)
        else:
            conn.abort()  # the server closes it; connection_lost opens a fresh one

    def failed(self, conn: _Connection, kind: ErrorKind, sample: str = "") -> None:
        """The request on `conn` failed without an answer."""
        if conn.busy:
            conn.busy = False
            if conn.intended >= self.measure_from:
                self._error(kind, sample)

    def _error(self, kind: ErrorKind, sample: str = "") -> None:
        self.last_done = time.perf_counter()
        self.errors += 1
        if self.last_done <= self.stop_at:
            self.interval_errors += 1
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
        if sample and kind not in self.error_samples:
            self.error_samples[kind] = sample[:ERROR_SAMPLE_BYTES]

    def lost(self, conn: _Connection) -> None:
        if not conn.aborted:
            self.failed(conn, "connection closed", "the server closed the connection mid-request")
        with contextlib.suppress(ValueError):
            self.connections.remove(conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        if not self.stopping:
            self._open_connection()

    # --- connections -------------------------------------------------------------------------------

    def _open_connection(self, delay: float = 0.0, first: bool = False) -> None:
        self.connecting += 1
        self.opening += first
        task = asyncio.get_running_loop().create_task(self._connect(delay, first))
        self.connect_tasks.add(task)  # held, so the run can end them and none is collected early
        task.add_done_callback(self.connect_tasks.discard)

    async def _connect(self, delay: float, first: bool = False) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            if self.stopping:
                return
            loop = asyncio.get_running_loop()
            dial = object()
            self.dialing[dial] = time.perf_counter()
            try:
                _, conn = await asyncio.wait_for(loop.create_connection(
                    lambda: _Connection(self), self.host, self.port,
                    ssl=ssl.create_default_context() if self.tls else None),
                    self.plan.timeout_s)
            except OSError as exc:  # TimeoutError is an OSError
                self._connect_failed(exc)
                return
            finally:
                del self.dialing[dial]
            if self.stopping:
                conn.abort()
                return
            self.connections.append(conn)
            self._next(conn)
        finally:
            self.connecting -= 1
            self.opening -= first

    def _connect_failed(self, exc: BaseException) -> None:
        kind = ("connection refused" if isinstance(exc, ConnectionRefusedError) else
                "timeout" if isinstance(exc, TimeoutError) else "connection failed")
        sample = _describe_os_error(exc)
        now = time.perf_counter()
        if self.closed_loop:
            # The request this worker would have sent fails.
            if now >= self.measure_from and self._take_budget(now):
                self._error(kind, sample)
        else:
            # Every request waiting for a connection fails: there is none to send it on.
            while self.pending:
                if self.pending.popleft() >= self.measure_from:
                    self._error(kind, sample)
        if not self.stopping:
            self._open_connection(RECONNECT_AFTER_S)

    # --- the clock -----------------------------------------------------------------------------------

    async def _schedule(self) -> None:
        """Open loop: make requests due at the planned arrival times, whatever the server does."""
        rate = float(self.plan.rate or 1.0)
        rng = np.random.default_rng(self.plan.seed)
        poisson = self.plan.arrival == "poisson"
        intended = self.start
        while not self.stopping:
            now = time.perf_counter()
            while intended <= now and not self.stopping:
                if intended >= self.stop_at or not self._take_budget(intended):
                    return  # the schedule ends with the measured time
                self.due(intended)
                intended += rng.exponential(1.0 / rate) if poisson else 1.0 / rate
            delay = intended - time.perf_counter()
            # Timers tick in milliseconds: sleep through long gaps, yield through short ones.
            await asyncio.sleep(max(0.001, delay))

    def _enforce_timeouts(self, now: float) -> None:
        limit = self.plan.timeout_s
        for conn in list(self.connections):
            if conn.busy and now - conn.sent_at > limit:
                self.failed(conn, "timeout", f"no answer within {limit:g} s")
                conn.abort()
        while self.pending and now - self.pending[0] > limit:
            if self.pending.popleft() >= self.measure_from:
                self._error("not sent in time",
                            f"waited over {limit:g} s for a free connection")

    def _fold_latencies(self) -> None:
        """Record the interval's latencies in its histogram."""
        if self.latencies:
            self.interval_sum_us += record_values(self.histogram,
                                                  np.frombuffer(self.latencies, dtype=np.int64))
            self.latencies = array("q")

    def _snapshot(self, start: float, end: float) -> Snapshot:
        """The window from `start` to `end`: its throughput over its real length."""
        self._fold_latencies()
        interval = Latency.of(self.histogram, self.interval_sum_us)
        self.total.add(self.histogram)
        self.total_sum_us += self.interval_sum_us
        self.histogram.reset()
        self.interval_sum_us = 0
        length = end - start
        snapshot = Snapshot(
            elapsed_s=end - self.measure_from,
            throughput=self.interval_completed / length if length > 0 else 0.0,
            error_rate=self.interval_errors / length if length > 0 else 0.0,
            interval=interval, overall=Latency.of(self.total, self.total_sum_us), sent=self.sent,
            completed=self.completed, errors=self.errors,
            inflight=sum(c.busy for c in self.connections), late_sends=self.late_sends,
            errors_by_kind=dict(self.errors_by_kind))
        self.interval_completed = self.interval_errors = 0
        if not snapshot.warming_up:
            self.timeline.append(snapshot)
        if self.on_snapshot is not None:
            self.on_snapshot(snapshot)
        return snapshot

    async def _watch_pauses(self) -> None:
        """Note every time the event loop stood still: a tick that comes late."""
        due = time.perf_counter() + PAUSE_TICK_S
        while True:
            await asyncio.sleep(PAUSE_TICK_S)
            now = time.perf_counter()
            if now - due > PAUSE_MIN_S:
                self.pauses.append((due, now))
            due = now + PAUSE_TICK_S

    async def _open_connections(self) -> None:
        """Open every connection, then start the clock: when all are made or have failed, or
        after OPEN_WITHIN_S (a server that does not accept is then measured as such)."""
        for _ in range(self.plan.connections):
            self._open_connection(first=True)
        open_by = time.perf_counter() + min(OPEN_WITHIN_S, self.plan.timeout_s / 2)
        while self.opening and time.perf_counter() < open_by and not self.progress.cancelled:
            await asyncio.sleep(0.001)
        self.start = time.perf_counter()
        self.measure_from = self.start + self.plan.warmup_s
        self.stop_at = (self.measure_from + self.plan.duration_s
                        if self.plan.duration_s is not None else math.inf)
        self.started = True
        ready = list(self.idle)
        self.idle.clear()
        for conn in ready:  # closed loop: the workers begin together
            self._next(conn)

    async def main(self) -> LoadReport:
        plan = self.plan
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        cpu_before = time.process_time()
        began = time.perf_counter()
        watcher = asyncio.create_task(self._watch_pauses())
        await self._open_connections()
        scheduler = None if self.closed_loop else asyncio.create_task(self._schedule())

        # Snapshots close windows on a grid of SNAPSHOT_EVERY_S from the start of measuring, so
        # the first measured window is a whole one; warm-up windows before it are shown as such.
        last_snapshot = self.start
        next_snapshot = self.start + min(SNAPSHOT_EVERY_S, plan.warmup_s or SNAPSHOT_EVERY_S)
        cancelled = False
        while True:
            await asyncio.sleep(HOUSEKEEPING_EVERY_S)
            now = time.perf_counter()
            self._enforce_timeouts(now)
            if self.progress.cancelled:
                cancelled = True
                self.stop_at = min(self.stop_at, now)
                break
            if now >= next_snapshot:
                if now < self.measure_from:
                    self._snapshot(last_snapshot, now)
                    last_snapshot = now
                    next_snapshot = min(now + SNAPSHOT_EVERY_S, self.measure_from)
                elif last_snapshot < self.measure_from:
                    last_snapshot = self.measure_from  # the rest of warm-up is not measured
                    next_snapshot = self.measure_from + SNAPSHOT_EVERY_S
                elif self.stop_at - now >= SNAPSHOT_EVERY_S / 2:
                    # (a window shorter than half of one would chart noise: the last one is
                    # longer instead)
                    self._snapshot(last_snapshot, now)
                    last_snapshot = now
                    next_snapshot = self.measure_from + SNAPSHOT_EVERY_S * math.ceil(
                        (now - self.measure_from) / SNAPSHOT_EVERY_S + 1e-9)
            if now >= self.stop_at:
                break
            if self.budget is not None and self.budget <= 0 and not self._busy() \
                    and not self.pending:
                self.stop_at = self.last_done  # the measured time ends with the last answer
                break

        # The last window ends with the measured time, not with the tick that noticed its end.
        end = min(now, self.stop_at)
        if end - max(last_snapshot, self.measure_from) > HOUSEKEEPING_EVERY_S / 2:
            self._snapshot(max(last_snapshot, self.measure_from), end)
        # Stop sending; answers already on their way are still measured, up to the timeout, and
        # count in the report (not in the timeline, which ends when sending ends).
        self.stopping = True
        if scheduler is not None:
            scheduler.cancel()
        while self.pending:
            if self.pending.popleft() >= self.measure_from:
                self._error("not sent in time", "the run ended before a connection was free")
        drain_until = time.perf_counter() + (0 if cancelled else plan.timeout_s + 0.1)
        while self._busy() and time.perf_counter() < drain_until:
            if self.progress.cancelled:
                cancelled = True
                break
            await asyncio.sleep(0.005)
            self._enforce_timeouts(time.perf_counter())
        now = time.perf_counter()
        if self.closed_loop and now >= self.measure_from:
            # Workers stuck connecting (a server that does not accept) never sent their request.
            stuck = sum(now - began > STUCK_CONNECT_S for began in self.dialing.values())
            for _ in range(stuck):
                self._error("not sent in time", "the server did not accept the connection")
        for conn in list(self.connections):
            conn.abort()
        for task in [*self.connect_tasks, watcher]:  # reconnects still waiting out their pause
            task.cancel()
        await asyncio.gather(*self.connect_tasks, watcher, return_exceptions=True)
        self._fold_latencies()
        self.total.add(self.histogram)
        self.total_sum_us += self.interval_sum_us
        now = time.perf_counter()
        cpu = time.process_time() - cpu_before
        wall = max(1e-9, now - began)
        return self._report(plan, started_at, cancelled, cpu / wall * 100)

    def _busy(self) -> bool:
        return any(c.busy for c in self.connections)

    def _server_waits_us(self) -> np.ndarray:
        """How long the server kept each slow answer waiting: its latency less the time the
        tester itself stood still meanwhile (the pauses are disjoint and in order)."""
        sent = np.frombuffer(self.slow_sent, dtype=np.float64)
        done = np.frombuffer(self.slow_done, dtype=np.float64)
        if not self.pauses:
            return (done - sent) * 1e6
        starts, ends = (np.array(side) for side in zip(*self.pauses))
        lengths = ends - starts
        before = np.concatenate(([0.0], np.cumsum(lengths)))

        def paused_by(t: np.ndarray) -> np.ndarray:
            """The tester's paused time from the beginning of the run until each `t`."""
            index = np.searchsorted(starts, t, side="right") - 1
            at = np.maximum(index, 0)
            return np.where(index >= 0, before[at] + np.clip(t - starts[at], 0, lengths[at]), 0.0)

        return (done - sent - (paused_by(done) - paused_by(sent))) * 1e6

    def _longest_pause_ms(self, end: float) -> float:
        overlaps = [min(to, end) - max(since, self.measure_from) for since, to in self.pauses
                    if to > self.measure_from and since < end]
        return max(overlaps, default=0.0) * 1000

    def _report(self, plan: LoadPlan, started_at: str, cancelled: bool,
                cpu_percent: float) -> LoadReport:
        end = min(self.stop_at, time.perf_counter())
        measured = max(1e-9, end - self.measure_from)
        latency = Latency.of(self.total, self.total_sum_us)
        corrected = None
        delayed = 0
        threshold_ms = math.nan
        if self.closed_loop and latency.count:
            correction = corrected_latencies(self.total, self.total_sum_us,
                                             self._server_waits_us().tolist())
            delayed = correction.delayed_sends
            corrected = Latency.of(correction.histogram, correction.sum_us)
            threshold_ms = correction.threshold_us / 1000
        return LoadReport(
            plan=plan.describe(), mode=plan.mode, started_at=started_at, duration_s=measured,
            sent=self.sent, completed=self.completed, errors=self.errors,
            errors_by_kind=dict(sorted(self.errors_by_kind.items(), key=lambda kv: -kv[1])),
            error_samples=self.error_samples,
            throughput=self.completed_in_window / measured,
            offered_rate=plan.rate if plan.mode == "open" else None,
            latency=latency,
            latency_from="actual send time" if self.closed_loop else "intended send time",
            late_sends=self.late_sends, max_send_lag_ms=self.max_lag * 1000,
            delayed_sends=delayed, corrected=corrected,
            distribution=distribution(self.total), timeline=self.timeline,
            client_cpu_percent=cpu_percent, cancelled=cancelled, url=plan.url, model=plan.model,
            tester_pid=os.getpid(), tester_pause_ms=self._longest_pause_ms(end),
            stall_threshold_ms=threshold_ms)


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "connecting took longer than the timeout"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # Windows: the standard loop is slower but correct
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(plan: LoadPlan, progress: Progress | None = None) -> LoadReport:
    """Run `plan` in the tester's own process (tester.py) and report.

    Every 250 ms a Snapshot is handed out through `progress.partial`, from this thread, as the
    tester's process sends it. Cancelling `progress` ends the run within about 100 ms; the report
    then covers what was measured and says `cancelled`. Raises LoadTestError for a bad plan before
    any process starts.
    """
    plan.check()
    return tester.in_tester_process({"job": "run", "plan": tester.plan_to_wire(plan)},
                                    progress or quiet())


def run_in_this_process(plan: LoadPlan, progress: Progress | None = None, *,
                        publish: bool = True) -> LoadReport:
    """The engine itself: run `plan` on a private event loop in this thread and report.

    What the tester's process runs (see `run`). Snapshots are handed out through
    `progress.partial` from this thread (unless `publish` is False: the sweep's capacity probe is
    not shown). Cancelling `progress` ends the run within about 50 ms.
    """
    plan.check()
    progress = progress or quiet()
    loop = _new_loop()
    try:
        return loop.run_until_complete(
            _Run(plan, progress, progress.partial if publish else None).main())
    finally:
        loop.close()
