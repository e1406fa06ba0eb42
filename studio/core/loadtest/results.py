"""What a load test measured: latency percentiles from HDR histograms, the 250 ms snapshots, the
final report, a sweep's steps and verdict, and the closed-loop correction for coordinated omission.

Latencies are recorded in microseconds with 2 significant digits. A closed loop hides stalls (a
waiting worker sends nothing), so its report also carries percentiles corrected for the sends a
steady client would have made meanwhile, computed as HdrHistogram's `record_corrected_value` does.

Everything here is plain data: the tester's process sends it to the studio as JSON
(`to_wire`, and `from_wire` on each class), which is why each class can be rebuilt from a dict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from studio.core.units import finite_json

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
HISTOGRAM_MAX_US = 600_000_000
"""Ten minutes; longer latencies are recorded as ten minutes (timeouts end requests long before)."""
HISTOGRAM_DIGITS = 2
"""1% resolution. Three digits would be 8x the buckets, and hdrh walks its buckets in Python for
every percentile: the snapshots would pause the sending for milliseconds."""
STALL_FACTOR = 10
"""Closed loop: an answer the server kept waiting over this many times the run's p99 stalled its
worker (see `corrected_latencies`)."""

ErrorKind = str
"""'HTTP 503', 'timeout', 'connection refused', 'connection failed', 'connection closed',
'bad HTTP response', 'not sent in time'."""


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

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Latency:
        return cls(**{name: math.nan if value is None else value for name, value in data.items()})


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

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Snapshot:
        return cls(**{**data, "interval": Latency.from_wire(data["interval"]),
                      "overall": Latency.from_wire(data["overall"])})


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
    """The tester's own CPU use, in percent of one core: its own process's, apart from the
    studio's."""
    cancelled: bool = False
    url: str = ""
    """The server's base URL."""
    model: str = ""
    """The served model's name, as the server gave it ('' when the bodies came from a file)."""
    tester_pid: int = 0
    """The process that sent the load (the tester's own, not the studio's)."""
    tester_pause_ms: float = 0.0
    """The longest the tester's own event loop stood still (the machine or the tester itself
    was busy): time a request waited on the tester, not on the server."""
    stall_threshold_ms: float = math.nan
    """Closed loop: a wait on the server longer than this was a stall (see
    `corrected_latencies`)."""

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

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> LoadReport:
        return cls(**{
            **data, "latency": Latency.from_wire(data["latency"]),
            "corrected": None if data["corrected"] is None else Latency.from_wire(
                data["corrected"]),
            "distribution": [tuple(point) for point in data["distribution"]],
            "timeline": [Snapshot.from_wire(s) for s in data["timeline"]]})


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

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> SweepStep:
        return cls(**{name: math.nan if value is None else value for name, value in data.items()})


@dataclass
class SweepReport:
    slo_p99_ms: float
    steps: list[SweepStep]
    knee_rate: float | None
    """The highest arrival rate that met the objective, None when even the first step failed."""
    capacity_estimate: float
    cancelled: bool = False
    plan: str = ""
    """The connections, route and bodies every step used."""
    url: str = ""
    model: str = ""
    started_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return finite_json(asdict(self))

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> SweepReport:
        return cls(**{**data, "steps": [SweepStep.from_wire(s) for s in data["steps"]]})


def to_wire(value: Latency | Snapshot | LoadReport | SweepStep | SweepReport) -> dict[str, Any]:
    """A result as a JSON-ready dict that `from_wire` rebuilds exactly (NaN stays NaN: the
    tester's process and the studio both read it with Python's json)."""
    return asdict(value)


WIRE_KINDS: dict[str, type] = {cls.__name__: cls for cls in (Snapshot, LoadReport, SweepStep,
                                                             SweepReport)}
"""What the tester's process sends, by class name."""


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HISTOGRAM_MAX_US, HISTOGRAM_DIGITS)


def record_values(histogram: HdrHistogram, values_us: np.ndarray) -> int:
    """Record many latencies (µs) with one call per distinct bucket, and return their sum: hdrh
    records in Python, and a call per value would cost the tester a sixth of its CPU."""
    if not len(values_us):
        return 0
    values = np.clip(np.asarray(values_us, dtype=np.int64), 1, HISTOGRAM_MAX_US)
    # Each value's bucket floor, as hdrh's get_lowest_equivalent_value computes it.
    magnitude = histogram.sub_bucket_half_count_magnitude
    units = np.left_shift(1, np.maximum(0, np.log2(values).astype(np.int64) - magnitude))
    buckets, counts = np.unique(values // units * units, return_counts=True)
    for value, count in zip(buckets.tolist(), counts.tolist()):
        histogram.record_value(value, count)
    return int(values.sum())


@dataclass
class Correction:
    """The closed loop's latencies corrected for coordinated omission."""

    histogram: HdrHistogram
    sum_us: float
    delayed_sends: int
    interval_us: float
    """The interval a steady worker keeps: the mean latency of the answers that did not stall."""
    threshold_us: float
    """An answer the server kept waiting longer than this stalled its worker."""
    stalls: list[float] = field(default_factory=list)
    """How long the server kept each stalled answer waiting, in microseconds."""


def stall_threshold_us(histogram: HdrHistogram) -> float:
    """STALL_FACTOR times the run's p99. Relative to the p99, not the median: on a shared machine
    a healthy server's answers spread over an order of magnitude (the scheduler alone gives a few
    milliseconds), and a stall is a wait far outside that spread. A closed loop's stalls hold one
    answer per worker each, so they stay above the p99 unless they are so frequent that the p99
    itself shows them."""
    return STALL_FACTOR * histogram.get_value_at_percentile(99.0)


def corrected_latencies(histogram: HdrHistogram, sum_us: float,
                        server_waits_us: Sequence[float]) -> Correction:
    """The closed-loop latencies plus the sends a steady client would have made while a worker
    waited on a stalled answer.

    `server_waits_us` are the waits of the answers that may have stalled (the slow ones), each
    less the time the tester itself stood still meanwhile: a pause of the tester's own (the
    machine descheduled it, its garbage collector ran) delays reading an answer, but a steady
    client elsewhere would not have waited for it. A wait over `stall_threshold_us` is a stall, and
    the sends a steady worker would have made meanwhile are added as HdrHistogram's
    `record_corrected_value` adds them: wait - interval, wait - 2 × interval, ... while above
    zero. The interval is the mean latency of the answers below the threshold, since a closed-loop
    worker sends again as soon as it is answered: its cadence, not the median, which leaves out
    the tail a worker also waits through.
    """
    corrected = new_histogram()
    corrected.add(histogram)
    total_us = sum_us
    threshold = stall_threshold_us(histogram)
    steady_count = steady_sum = 0
    for item in histogram.get_recorded_iterator():
        value, count = item.value_iterated_to, item.count_at_value_iterated_to
        if value <= threshold:
            steady_count += count
            steady_sum += value * count
    interval = max(1.0, steady_sum / steady_count) if steady_count else 1.0
    delayed = 0
    stalls = [wait for wait in server_waits_us if wait > threshold]
    for wait in stalls:
        synthetic = math.ceil(wait / interval) - 1
        total_us += record_values(corrected, wait - interval * np.arange(1, synthetic + 1))
        delayed += synthetic
    return Correction(corrected, total_us, delayed, interval, threshold, stalls)


def distribution(histogram: HdrHistogram) -> list[tuple[float, float]]:
    if not histogram.get_total_count():
        return []
    points = [(item.percentile_level_iterated_to, item.value_iterated_to / 1000)
              for item in histogram.get_percentile_iterator(5)]
    return [(round(p, 4), v) for p, v in points]

