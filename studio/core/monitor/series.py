"""The bounded history of scrapes a Monitor keeps, and the per-interval lines its charts draw."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from studio.core.monitor.live_counts import LiveCounts, live_counts
from studio.core.monitor.promql import (
    bucket_increase,
    histogram_mean,
    histogram_quantile,
    increase,
    quantile,
    rate,
)
from studio.core.monitor.scrape import Gap, MetricsError, SampleKey, Scrape, scrape

DEFAULT_CAPACITY = 3600
"""Scrapes kept by a MetricsSeries: one hour at one scrape per second."""
MEMO_LIMIT = 50_000
"""Per-interval results kept before the memo starts afresh (a few hours of charts)."""
STEP_JITTER = 0.05
"""A chart step is taken once scrapes are this fraction short of it: scrape timers drift a bit."""


@dataclass(frozen=True)
class ChartSeries:
    """Lines for a chart, one value per interval between scrapes.

    None marks a gap (the server did not answer); NaN marks an interval with nothing to compute
    (a quantile with no requests). Both are drawn as a break.
    """

    times: list[float]
    """time.monotonic() at the end of each interval."""
    lines: dict[str, list[float | None]]


class MetricsSeries:
    """A bounded history of scrapes and failed scrapes, oldest first, and what is computed on it.

    Windows end at the newest entry; a failed scrape inside a window is skipped by totals (counter
    deltas span it) and drawn as a break by charts. Not locked: add to it from one thread (the GUI
    thread adds what a worker's `scrape` returned), or a reader may see the deque change under it.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.points: deque[Scrape | Gap] = deque(maxlen=capacity)
        self.status: str | None = None
        """Why the last scrape failed; None once scrapes succeed again."""
        self._per_interval: dict[tuple, Any] = {}
        """What was computed for an interval between two scrapes: it never changes, and a chart
        asks again for every interval of its window at each redraw."""

    def _interval_value(self, what: tuple, start: Scrape, end: Scrape, compute) -> Any:
        key = (what, start.monotonic, end.monotonic)
        value = self._per_interval.get(key)
        if value is None:
            if len(self._per_interval) > MEMO_LIMIT:
                self._per_interval.clear()
            value = self._per_interval[key] = compute()
        return value

    def add(self, scrape: Scrape) -> None:
        """Append a scrape, with each sample's running total corrected for resets as increase()
        corrects them: a window's increase is then its last total less its first, however many
        scrapes it spans (charts and drift ask for hours of history twice a second)."""
        previous = self.latest
        before = previous._running[1] if previous is not None and previous._running else {}
        last = previous.samples if previous is not None else {}
        running: dict[SampleKey, float] = {}
        for key, value in scrape.samples.items():
            was = last.get(key)
            if was is None:  # new series: its whole value is growth, as increase() counts it
                running[key] = before.get(key, 0.0) + value
            else:
                running[key] = before[key] + (value if value < was else value - was)
        object.__setattr__(scrape, "_running", (self, running))
        self.points.append(scrape)
        self.status = None

    def add_gap(self, monotonic: float, message: str, wall: float | None = None) -> None:
        self.points.append(Gap(monotonic, time.time() if wall is None else wall, message))
        self.status = message

    def record(self, url: str, client: httpx.Client | None = None,
               timeout: float = 2.0) -> Scrape | None:
        """Scrape `url` into the series; a failure becomes a gap and the status, not an error."""
        try:
            result = scrape(url, client, timeout)
        except MetricsError as exc:
            self.add_gap(time.monotonic(), str(exc))
            return None
        self.add(result)
        return result

    @property
    def latest(self) -> Scrape | None:
        return next((p for p in reversed(self.points) if isinstance(p, Scrape)), None)

    def window(self, seconds: float | None = None) -> list[Scrape | Gap]:
        """Entries of the last `seconds` (all with None)."""
        if seconds is None or not self.points:
            return list(self.points)
        start = self.points[-1].monotonic - seconds
        return [p for p in self.points if p.monotonic >= start]

    def scrapes(self, seconds: float | None = None) -> list[Scrape]:
        return [p for p in self.window(seconds) if isinstance(p, Scrape)]

    def rate(self, name: str, labels: Mapping[str, Any] | None = None,
             window_seconds: float | None = 60.0) -> float:
        return rate(self.scrapes(window_seconds), name, labels)

    def quantile(self, q: float, name: str, labels: Mapping[str, Any] | None = None,
                 window_seconds: float | None = 60.0) -> float:
        return quantile(q, self.scrapes(window_seconds), name, labels)

    def live_counts(self, window_seconds: float | None = None,
                    since_start: bool = False) -> LiveCounts:
        return live_counts(self.scrapes(window_seconds), since_start)

    def first_rows(self, rows: float) -> list[Scrape] | None:
        """The scrapes from the first up to the one by which the server had counted `rows` rows
        of features (since it started): the span a baseline from live traffic is taken over.
        None while fewer rows have been counted."""
        scrapes = self.scrapes()
        if not scrapes or live_counts(scrapes[-1:], since_start=True).rows < rows:
            return None  # not there yet: asked at every refresh, so answered from one scrape
        for i, entry in enumerate(scrapes):
            if live_counts([entry], since_start=True).rows >= rows:
                return scrapes[: i + 1]
        return None

    def rate_series(self, name: str, by: str | None = None,
                    labels: Mapping[str, Any] | None = None, step: float | None = None,
                    window_seconds: float | None = None) -> ChartSeries:
        """Per-interval rate of counter `name`, one line per value of label `by` (one line named
        `name` without it), e.g. requests per second by `status`."""
        intervals = _intervals(self.window(window_seconds), step)
        rates: list[dict[str, float] | None] = []
        for _, start, end in intervals:
            if start is None or end is None:
                rates.append(None)
                continue
            rates.append(self._interval_value(
                ("rate", name, by, _labels_key(labels)), start, end,
                lambda start=start, end=end: _grouped_rate([start, end], name, by, labels)))
        groups = sorted({g for r in rates if r for g in r}) if by else [name]
        return ChartSeries([t for t, _, _ in intervals],
                           {g: [None if r is None else r.get(g, 0.0) for r in rates]
                            for g in groups})

    def quantile_series(self, name: str, quantiles: Sequence[float] = (0.5, 0.95, 0.99),
                        labels: Mapping[str, Any] | None = None, step: float | None = None,
                        window_seconds: float | None = None) -> ChartSeries:
        """Per-interval quantiles of histogram `name`, lines named p50, p95, p99..."""
        intervals = _intervals(self.window(window_seconds), step)
        lines: dict[str, list[float | None]] = {f"p{q * 100:g}": [] for q in quantiles}
        for _, start, end in intervals:
            values = None if start is None or end is None else self._interval_value(
                ("quantiles", name, tuple(quantiles), _labels_key(labels)), start, end,
                lambda start=start, end=end: [
                    histogram_quantile(q, buckets) for buckets in
                    [bucket_increase([start, end], name, labels)] for q in quantiles])
            for i, line in enumerate(lines.values()):
                line.append(None if values is None else values[i])
        return ChartSeries([t for t, _, _ in intervals], lines)

    def mean_series(self, name: str, labels: Mapping[str, Any] | None = None,
                    step: float | None = None,
                    window_seconds: float | None = None) -> ChartSeries:
        """Per-interval mean of histogram `name` (the growth of its `_sum` over that of its
        `_count`), one line named "mean"; NaN for an interval that observed nothing. For a
        histogram of whole counts (rows per batch) this is exact, where a quantile interpolated
        inside a bucket is not (a p50 of 0.5 rows when every batch had one)."""
        intervals = _intervals(self.window(window_seconds), step)
        means: list[float | None] = []
        for _, start, end in intervals:
            means.append(None if start is None or end is None else self._interval_value(
                ("mean", name, _labels_key(labels)), start, end,
                lambda start=start, end=end: histogram_mean([start, end], name, labels)))
        return ChartSeries([t for t, _, _ in intervals], {"mean": means})


def _grouped_rate(pair: list[Scrape], name: str, by: str | None,
                  labels: Mapping[str, Any] | None) -> dict[str, float]:
    grouped: dict[str, float] = {}
    elapsed = pair[1].monotonic - pair[0].monotonic
    for key, grown in increase(pair, name, labels).items():
        group = dict(key).get(by, "") if by else name
        grouped[group] = grouped.get(group, 0.0) + grown / elapsed
    return grouped


def _labels_key(labels: Mapping[str, Any] | None) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list | tuple | set | frozenset) else v)
                        for k, v in (labels or {}).items()))


def _intervals(points: Sequence[Scrape | Gap],
               step: float | None) -> list[tuple[float, Scrape | None, Scrape | None]]:
    """(end time, start, end) of each chart interval: consecutive scrapes, or with `step` the
    next scrape at least `step` seconds on. A gap is an interval of its own with no scrapes, and
    the line restarts at the first scrape after it."""
    intervals: list[tuple[float, Scrape | None, Scrape | None]] = []
    start: Scrape | None = None
    for point in points:
        if isinstance(point, Gap):
            intervals.append((point.monotonic, None, None))
            start = None
        elif start is None:
            start = point
        elif step is None or point.monotonic - start.monotonic >= step * (1 - STEP_JITTER):
            intervals.append((point.monotonic, start, point))
            start = point
    return intervals

