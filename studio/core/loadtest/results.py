"""What a load test measured: latency percentiles from HDR histograms, the 250 ms snapshots, the
final report, and the closed-loop correction for coordinated omission.

Latencies are recorded in microseconds with 2 significant digits. A closed loop hides stalls (a
waiting worker sends nothing), so its report also carries percentiles corrected for the sends a
steady client would have made meanwhile, computed as HdrHistogram's `record_corrected_value` does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from studio.core.units import finite_json

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
HISTOGRAM_MAX_US = 600_000_000
"""Ten minutes; longer latencies are recorded as ten minutes (timeouts end requests long before)."""
HISTOGRAM_DIGITS = 2
"""1% resolution. Three digits would be 8x the buckets, and hdrh walks its buckets in Python for
every percentile: the snapshots would pause the sending for milliseconds."""
STALL_FACTOR = 10
"""Closed loop: an answer slower than this many medians stalled its worker (see
`corrected_latencies`)."""

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



def corrected_latencies(histogram: HdrHistogram, interval_ms: float) -> tuple[HdrHistogram, float]:
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


def distribution(histogram: HdrHistogram) -> list[tuple[float, float]]:
    if not histogram.get_total_count():
        return []
    points = [(item.percentile_level_iterated_to, item.value_iterated_to / 1000)
              for item in histogram.get_percentile_iterator(5)]
    return [(round(p, 4), v) for p, v in points]

