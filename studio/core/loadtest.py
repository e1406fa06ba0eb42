"""Load tests against a served model: closed loop, open loop, and the rate sweep that finds the knee.

Two ways to load a server, and why both:

* **Closed loop** (`mode="closed"`): N workers, each sending its next request when the previous one
  answers, as wrk, ab and Locust users do. It finds the maximum throughput. It also hides stalls:
  while the server is stuck, the workers wait instead of sending, so the requests a real client
  population would have sent in that time are never measured ("coordinated omission"). The report
  does not pretend otherwise: it counts those `delayed_sends` and gives latency percentiles
  corrected for them, computed as HdrHistogram's `record_corrected_value` does, with the run's
  median latency as the interval a worker would have kept.
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
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httptools
import numpy as np
from hdrh.histogram import HdrHistogram

from studio.core.errors import StudioError
from studio.core.reports import finite_json
from studio.core.tasks import Progress, quiet

SNAPSHOT_EVERY_S = 0.25
HOUSEKEEPING_EVERY_S = 0.05
"""How often timeouts are enforced and cancellation is noticed."""
LATE_AFTER_S = 0.010
"""An open-loop send this long after its intended time is late. The tester's own scheduling jitter
is about a millisecond (event-loop timers tick in milliseconds); more means no connection was free or
the tester ran short of CPU."""
STUCK_CONNECT_S = 0.1
"""A connection still being made after this long is stuck: a local one takes microseconds."""
RECONNECT_AFTER_S = 0.05
"""A refused connection is retried after this pause, so a dead server is reported, not hammered."""
STALL_FACTOR = 10
"""Closed loop: an answer slower than this many medians stalled its worker (see `_corrected`)."""
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
HISTOGRAM_MAX_US = 600_000_000
"""Ten minutes; longer latencies are recorded as ten minutes (timeouts end requests long before)."""
HISTOGRAM_DIGITS = 2
"""1% resolution. Three digits would be 8x the buckets, and hdrh walks its buckets in Python for
every percentile: the snapshots would pause the sending for milliseconds."""
ERROR_SAMPLE_BYTES = 300

ErrorKind = str
"""'HTTP 503', 'timeout', 'connection refused', 'connection failed', 'connection closed',
'bad HTTP response', 'not sent in time'."""


class LoadTestError(StudioError):
    """A load test that cannot start: a bad plan or an unusable URL."""


@dataclass
class LoadPlan:
    url: str
    """The server's base URL, e.g. http://127.0.0.1:8000."""
    route: str = "/predict"
    payloads: list[bytes] = field(default_factory=list)
    """Request bodies, sent in turn. Empty means GET requests without a body."""
    payload_label: str = "the model's sample request"
    mode: Literal["closed", "open"] = "closed"
    connections: int = 16
    """Closed loop: the number of workers. Open loop: the connections requests are sent on."""
    rate: float | None = None
    """Open loop: requests per second."""
    arrival: Literal["constant", "poisson"] = "constant"
    duration_s: float | None = 10.0
    requests: int | None = None
    """Stop after this many measured requests instead of after `duration_s`."""
    warmup_s: float = 0.0
    """Load sent before measuring starts: connections open, caches and batchers settle."""
    timeout_s: float = 5.0
    headers: dict[str, str] = field(default_factory=dict)
    seed: int = 0

    def check(self) -> None:
        """Raise LoadTestError naming the first thing wrong with the plan."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LoadTestError(f"'{self.url}' is not an http:// or https:// URL.",
                                "Give the server's address, e.g. http://127.0.0.1:8000.")
        if not self.route.startswith("/"):
            raise LoadTestError(f"The route '{self.route}' must start with '/'.")
        if self.connections < 1:
            raise LoadTestError("A load test needs at least one connection.")
        if self.mode == "open":
            if self.rate is None or not self.rate > 0 or not math.isfinite(self.rate):
                raise LoadTestError("An open-loop test needs a positive arrival rate.",
                                    "Give requests per second, e.g. --rate 500.")
        elif self.mode != "closed":
            raise LoadTestError(f"'{self.mode}' is not a load mode: use closed or open.")
        if self.duration_s is None and self.requests is None:
            raise LoadTestError("Give a duration or a number of requests.")
        if self.duration_s is not None and not (math.isfinite(self.duration_s)
                                                and self.duration_s > 0):
            raise LoadTestError("The duration must be positive.")
        if self.requests is not None and self.requests < 1:
            raise LoadTestError("The number of requests must be at least 1.")
        if not (math.isfinite(self.warmup_s) and self.warmup_s >= 0):
            raise LoadTestError("The warm-up must be zero or more seconds.")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise LoadTestError("The timeout must be a positive number of seconds.")

    def describe(self) -> str:
        load = (f"{self.connections} connections, closed loop" if self.mode == "closed" else
                f"{self.rate:g} req/s {self.arrival} arrivals on {self.connections} connections")
        length = (f"{self.duration_s:g} s" if self.requests is None
                  else f"{self.requests} requests")
        return f"{load}, {length}, {self.route}, {self.payload_label}"


@dataclass
class Latency:
    """Latency percentiles in milliseconds (NaN when nothing was measured)."""

    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p95_ms: float = math.nan
    p99_ms: float = math.nan
    p999_ms: float = math.nan
    max_ms: float = math.nan
    mean_ms: float = math.nan
    count: int = 0

    @classmethod
    def of(cls, histogram: HdrHistogram, sum_us: float) -> Latency:
        """The percentiles of `histogram`; the mean comes from the exact sum of the recorded
        values (hdrh computes its mean by walking every bucket in Python: 50 ms a call)."""
        count = histogram.get_total_count()
        if not count:
            return cls()
        at = histogram.get_percentile_to_value_dict(list(PERCENTILES))
        return cls(*(at[p] / 1000 for p in PERCENTILES), histogram.get_max_value() / 1000,
                   sum_us / count / 1000, count)


@dataclass
class Snapshot:
    """What happened in one interval of the run, and in the run so far."""

    elapsed_s: float
    """Seconds since measuring started (negative during warm-up)."""
    throughput: float
    """Successful answers per second in this interval."""
    error_rate: float
    """Errors per second in this interval."""
    interval: Latency
    overall: Latency
    sent: int
    completed: int
    errors: int
    inflight: int
    late_sends: int
    errors_by_kind: dict[ErrorKind, int]

    @property
    def warming_up(self) -> bool:
        return self.elapsed_s < 0


@dataclass
class LoadReport:
    plan: str
    mode: str
    started_at: str
    duration_s: float
    sent: int
    completed: int
    """Answers with a 2xx status."""
    errors: int
    errors_by_kind: dict[ErrorKind, int]
    error_samples: dict[ErrorKind, str]
    throughput: float
    """Successful answers per second over the measured time."""
    offered_rate: float | None
    latency: Latency
    latency_from: str
    """'intended send time' (open loop) or 'actual send time' (closed loop)."""
    late_sends: int
    max_send_lag_ms: float
    delayed_sends: int
    """Closed loop: sends a steady client would have made while workers waited on slow answers."""
    corrected: Latency | None
    """Closed loop: percentiles corrected for the delayed sends."""
    distribution: list[tuple[float, float]]
    """(percentile, latency ms) pairs for a percentile plot."""
    timeline: list[Snapshot]
    client_cpu_percent: float
    """The tester's own CPU use, in percent of one core."""
    cancelled: bool = False

    @property
    def p50_ms(self) -> float:
        return self.latency.p50_ms

    @property
    def p99_ms(self) -> float:
        return self.latency.p99_ms

    @property
    def error_ratio(self) -> float:
        done = self.completed + self.errors
        return self.errors / done if done else 0.0

    def to_dict(self) -> dict[str, Any]:
        return finite_json(asdict(self))


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HISTOGRAM_MAX_US, HISTOGRAM_DIGITS)


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
        self.requests = _render_requests(plan, parts.netloc, parts.path.rstrip("/"))
        self.next_request = 0
        self.closed_loop = plan.mode == "closed"

        self.connections: list[_Connection] = []
        self.idle: deque[_Connection] = deque()
        self.pending: deque[float] = deque()  # open loop: intended times waiting for a connection
        self.connecting = 0
        self.dialing: dict[object, float] = {}
        """When each connection being made now began (not those pausing before a retry)."""
        self.connect_tasks: set[asyncio.Task] = set()
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
        self.start = self.measure_from = self.stop_at = 0.0

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
        if self.stopping:
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
                self.latencies.append(int((now - conn.intended) * 1e6))
                self.completed += 1
                self.interval_completed += 1
                if now <= self.stop_at:
                    self.completed_in_window += 1
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

    def _open_connection(self, delay: float = 0.0) -> None:
        self.connecting += 1
        task = asyncio.get_running_loop().create_task(self._connect(delay))
        self.connect_tasks.add(task)  # held, so the run can end them and none is collected early
        task.add_done_callback(self.connect_tasks.discard)

    async def _connect(self, delay: float) -> None:
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
        """Record the interval's latencies in its histogram, one call per distinct bucket: hdrh
        records in Python, and a call per answer would cost the tester a sixth of its CPU."""
        if not self.latencies:
            return
        values = np.clip(np.frombuffer(self.latencies, dtype=np.int64), 1, HISTOGRAM_MAX_US)
        self.latencies = array("q")
        self.interval_sum_us += int(values.sum())
        # Each value's bucket floor, as hdrh's get_lowest_equivalent_value computes it.
        magnitude = self.histogram.sub_bucket_half_count_magnitude
        units = np.left_shift(1, np.maximum(0, np.log2(values).astype(np.int64) - magnitude))
        buckets, counts = np.unique(values // units * units, return_counts=True)
        for value, count in zip(buckets.tolist(), counts.tolist()):
            self.histogram.record_value(value, count)

    def _snapshot(self, now: float, interval_s: float) -> Snapshot:
        self._fold_latencies()
        interval = Latency.of(self.histogram, self.interval_sum_us)
        self.total.add(self.histogram)
        self.total_sum_us += self.interval_sum_us
        self.histogram.reset()
        self.interval_sum_us = 0
        snapshot = Snapshot(
            elapsed_s=now - self.measure_from,
            throughput=self.interval_completed / interval_s if interval_s > 0 else 0.0,
            error_rate=self.interval_errors / interval_s if interval_s > 0 else 0.0,
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

    async def main(self) -> LoadReport:
        plan = self.plan
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        cpu_before = time.process_time()
        self.start = time.perf_counter()
        self.measure_from = self.start + plan.warmup_s
        self.stop_at = (self.measure_from + plan.duration_s if plan.duration_s is not None
                        else math.inf)
        for _ in range(plan.connections):
            self._open_connection()
        scheduler = None if self.closed_loop else asyncio.create_task(self._schedule())

        last_snapshot = self.start
        cancelled = False
        while True:
            await asyncio.sleep(HOUSEKEEPING_EVERY_S)
            now = time.perf_counter()
            self._enforce_timeouts(now)
            if self.progress.cancelled:
                cancelled = True
                self.stop_at = min(self.stop_at, now)
                break
            if now - last_snapshot >= SNAPSHOT_EVERY_S and not (
                    0 <= now - self.measure_from < SNAPSHOT_EVERY_S / 2):
                # (the first measured interval waits until it is long enough to mean something)
                self._snapshot(now, now - max(last_snapshot, min(now, self.measure_from)))
                last_snapshot = now
            if now >= self.stop_at:
                break
            if self.budget is not None and self.budget <= 0 and not self._busy() \
                    and not self.pending:
                self.stop_at = self.last_done  # the measured time ends with the last answer
                break

        if now - last_snapshot > HOUSEKEEPING_EVERY_S / 2:  # the last part-interval of the run
            self._snapshot(now, now - max(last_snapshot, min(now, self.measure_from)))
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
        for task in list(self.connect_tasks):  # reconnects still waiting out their pause
            task.cancel()
        await asyncio.gather(*self.connect_tasks, return_exceptions=True)
        self._fold_latencies()
        self.total.add(self.histogram)
        self.total_sum_us += self.interval_sum_us
        now = time.perf_counter()
        cpu = time.process_time() - cpu_before
        wall = max(1e-9, now - self.start)
        return self._report(plan, started_at, cancelled, cpu / wall * 100)

    def _busy(self) -> bool:
        return any(c.busy for c in self.connections)

    def _report(self, plan: LoadPlan, started_at: str, cancelled: bool,
                cpu_percent: float) -> LoadReport:
        measured = max(1e-9, min(self.stop_at, time.perf_counter()) - self.measure_from)
        latency = Latency.of(self.total, self.total_sum_us)
        corrected = None
        delayed = 0
        if self.closed_loop and latency.count:
            corrected_histogram, corrected_sum_us = _corrected(self.total, latency.p50_ms)
            delayed = corrected_histogram.get_total_count() - latency.count
            corrected = Latency.of(corrected_histogram, corrected_sum_us)
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
            distribution=_distribution(self.total), timeline=self.timeline,
            client_cpu_percent=cpu_percent, cancelled=cancelled)


def _corrected(histogram: HdrHistogram, interval_ms: float) -> tuple[HdrHistogram, float]:
    """The closed-loop latencies plus the sends a steady client would have made while its worker
    waited on a stalled answer, and their sum.

    An answer is a stall when it took over STALL_FACTOR times the median: only for those are the
    missing sends added, as HdrHistogram's `record_corrected_value` adds them (value, value -
    interval, ... down to the interval). Correcting every answer above the median would invent
    delays in a healthy run, where half the answers are above it by definition.
    """
    corrected = new_histogram()
    interval_us = max(1, int(interval_ms * 1000))
    total_us = 0.0
    for item in histogram.get_recorded_iterator():
        value, count = item.value_iterated_to, item.count_at_value_iterated_to
        if value <= STALL_FACTOR * interval_us:
            corrected.record_value(value, count)
            total_us += value * count
            continue
        corrected.record_corrected_value(value, interval_us, count)
        synthetic = (value - 1) // interval_us
        total_us += count * ((synthetic + 1) * value - interval_us * synthetic * (synthetic + 1) / 2)
    return corrected, total_us


def _distribution(histogram: HdrHistogram) -> list[tuple[float, float]]:
    if not histogram.get_total_count():
        return []
    points = [(item.percentile_level_iterated_to, item.value_iterated_to / 1000)
              for item in histogram.get_percentile_iterator(5)]
    return [(round(p, 4), v) for p, v in points]


def _render_requests(plan: LoadPlan, netloc: str, prefix: str) -> list[bytes]:
    """Every request as the bytes sent; `prefix` is the URL's own path (a server mounted under
    /models/iris is loaded at /models/iris/predict)."""
    target = prefix + plan.route
    headers = "".join(f"{name}: {value}\r\n" for name, value in plan.headers.items())
    if not plan.payloads:
        return [f"GET {target} HTTP/1.1\r\nHost: {netloc}\r\n{headers}\r\n".encode()]
    head = f"POST {target} HTTP/1.1\r\nHost: {netloc}\r\nContent-Type: application/json\r\n"
    return [f"{head}{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body
            for body in plan.payloads]


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


def run(plan: LoadPlan, progress: Progress | None = None,
        on_snapshot: Callable[[Snapshot], None] | None = None) -> LoadReport:
    """Run `plan` on a private event loop in this thread and report.

    `on_snapshot` is called from this thread every 250 ms. Cancelling `progress` ends the run within
    about 50 ms; the report then covers what was measured and says `cancelled`.
    """
    plan.check()
    loop = _new_loop()
    try:
        return loop.run_until_complete(_Run(plan, progress or quiet(), on_snapshot).main())
    finally:
        loop.close()


# --- the sweep -------------------------------------------------------------------------------------

@dataclass
class SweepStep:
    rate: float
    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int
    late_sends: int
    met: bool
    reason: str
    """Why the step failed the objective ('' when it met it)."""


@dataclass
class SweepReport:
    slo_p99_ms: float
    steps: list[SweepStep]
    knee_rate: float | None
    """The highest arrival rate that met the objective, None when even the first step failed."""
    capacity_estimate: float
    cancelled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return finite_json(asdict(self))


def judge(report: LoadReport, rate: float, slo_p99_ms: float) -> tuple[bool, str]:
    if report.errors:
        return False, f"{report.errors} errors"
    if not report.completed:
        return False, "no answers"
    if not report.p99_ms <= slo_p99_ms:
        return False, f"p99 {report.p99_ms:.1f} ms > {slo_p99_ms:g} ms"
    if report.throughput < 0.9 * rate:
        return False, f"served {report.throughput:.0f} of {rate:.0f} req/s"
    return True, ""


def sweep(plan: LoadPlan, slo_p99_ms: float, start_rate: float | None = None,
          growth: float = 1.5, step_s: float = 3.0, refine: int = 2, max_steps: int = 16,
          progress: Progress | None = None,
          on_step: Callable[[SweepStep], None] | None = None,
          on_snapshot: Callable[[Snapshot], None] | None = None) -> SweepReport:
    """Step an open-loop arrival rate up until p99 breaks `slo_p99_ms` or errors appear, then
    bisect between the last rate that met the objective and the first that did not.

    Without `start_rate`, a 1.5 s closed-loop burst estimates the capacity and the sweep starts at
    a quarter of it.
    """
    progress = progress or quiet()
    if not slo_p99_ms > 0:
        raise LoadTestError("The latency objective must be positive, e.g. --slo-p99 50ms.")
    probe = replace(plan, mode="closed", duration_s=1.5, requests=None, warmup_s=0.25)
    capacity = run(probe, progress).throughput if start_rate is None else start_rate * 4
    rate = start_rate or max(1.0, capacity / 4)
    steps: list[SweepStep] = []
    good: float | None = None
    bad: float | None = None

    def step(at: float) -> bool:
        step_plan = replace(plan, mode="open", rate=at, duration_s=step_s, requests=None,
                            warmup_s=min(0.5, step_s / 4))
        report = run(step_plan, progress, on_snapshot)
        met, reason = judge(report, at, slo_p99_ms)
        steps.append(SweepStep(at, report.throughput, report.p50_ms, report.p99_ms,
                               report.errors, report.late_sends, met, reason))
        if on_step is not None:
            on_step(steps[-1])
        return met

    while len(steps) < max_steps and not progress.cancelled:
        if step(rate):
            good = rate
            rate *= growth
        else:
            bad = rate
            break
    for _ in range(refine):
        if good is None or bad is None or progress.cancelled:
            break
        middle = (good + bad) / 2
        if step(middle):
            good = middle
        else:
            bad = middle
    return SweepReport(slo_p99_ms, sorted(steps, key=lambda s: s.rate), good, capacity,
                       progress.cancelled)
