"""PromQL arithmetic on scrapes, so the numbers match what a user's own Prometheus would show.

Counter resets are handled as `rate`/`increase` handle them, and quantiles are computed as
`histogram_quantile(q, sum by (le) (increase(<name>_bucket[window])))`. Two deliberate
differences, both because the studio sees every scrape of a server it usually started itself:
rates are not extrapolated to the window's edges, and a series that first appears between two
scrapes counts its whole value as increase (it started at zero; PromQL would drop it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

from studio.core.monitor.scrape import LabelSet, Scrape

Bins = tuple[list[float], list[float]]
"""(edges, counts): `edges` are the upper bounds of every bin but the last, which is open-ended,
as in a reference profile; `counts` has one more entry than `edges`."""


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The q-quantile of cumulative buckets [(le, count), ...], as PromQL's histogram_quantile.

    Same special cases as Prometheus (promql/quantile.go, bucketQuantile): q < 0 -> -Inf,
    q > 1 -> +Inf, no +Inf bucket, fewer than two buckets or no observations -> NaN. Buckets are
    sorted by `le`, equal bounds merged, float noise and then any decrease between successive
    buckets flattened (a reset seen by only some buckets causes that). A rank in the +Inf bucket
    returns the second-highest bound; the lowest bucket is interpolated from 0 when its bound is
    positive, else its bound is returned.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if not buckets:
        return math.nan
    ordered = sorted((float(le), float(count)) for le, count in buckets)
    if ordered[-1][0] != math.inf:
        return math.nan
    bounds: list[float] = []
    counts: list[float] = []
    for le, count in ordered:  # coalesce equal bounds
        if bounds and bounds[-1] == le:
            counts[-1] += count
        else:
            bounds.append(le)
            counts.append(count)
    _correct_precision_errors(counts, 1e-12)
    for i in range(1, len(counts)):  # the monotonic envelope
        counts[i] = max(counts[i], counts[i - 1])
    if len(counts) < 2 or counts[-1] == 0:
        return math.nan
    rank = q * counts[-1]
    b = next((i for i, count in enumerate(counts[:-1]) if count >= rank), len(counts) - 1)
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    # Only q == 0 over an empty first bucket gets here with count 0; Go's 0/0 is NaN.
    return start + (end - start) * (rank / count) if count else math.nan


def _correct_precision_errors(counts: list[float], tolerance: float) -> None:
    """Prometheus' correctPrecisionErrors: a relative difference this small is float noise."""
    previous = counts[0]
    for i in range(1, len(counts)):
        delta = abs(counts[i] - previous)
        if delta == 0:
            continue
        if counts[i] and delta / counts[i] <= tolerance:
            counts[i] = previous
        else:
            previous = counts[i]


def _resolve(scrapes: Sequence[Scrape], name: str) -> str:
    """A counter asked for by its family name (`foo`) is found by its sample name (`foo_total`)."""
    if any(name in s.names for s in scrapes):
        return name
    return name + "_total" if any(name + "_total" in s.names for s in scrapes) else name


def increase(scrapes: Sequence[Scrape], name: str,
             labels: Mapping[str, Any] | None = None) -> dict[LabelSet, float]:
    """How much each matching counter series grew over the scrapes, per series.

    A decrease is a reset (the process restarted): the new value is the increase since then,
    exactly as PromQL's increase() treats it. Series seen only in the first scrape grew by 0.
    """
    name = _resolve(scrapes, name)
    totals = dict.fromkeys(scrapes[0].select(name, labels) if scrapes else (), 0.0)
    if len(scrapes) > 1 and _same_series(scrapes[0], scrapes[-1]):
        # Consecutive scrapes of one series: the running totals already sum every step.
        start, end = scrapes[0]._running[1], scrapes[-1]._running[1]
        for key in scrapes[-1].select(name, labels):
            totals[key] = end[(name, key)] - start.get((name, key), 0.0)
        return totals
    for before, after in pairwise(scrapes):
        previous = before.select(name, labels)
        for key, value in after.select(name, labels).items():
            last = previous.get(key)
            grown = value if last is None or value < last else value - last
            totals[key] = totals.get(key, 0.0) + grown
    return totals


def _same_series(first: Scrape, last: Scrape) -> bool:
    return (first._running is not None and last._running is not None
            and first._running[0] is last._running[0] and first.monotonic <= last.monotonic)


def rate(scrapes: Sequence[Scrape], name: str, labels: Mapping[str, Any] | None = None) -> float:
    """Per-second increase of the matching series, summed; NaN with fewer than two scrapes."""
    if len(scrapes) < 2 or scrapes[-1].monotonic <= scrapes[0].monotonic:
        return math.nan
    elapsed = scrapes[-1].monotonic - scrapes[0].monotonic
    return sum(increase(scrapes, name, labels).values()) / elapsed


def bucket_increase(scrapes: Sequence[Scrape], name: str,
                    labels: Mapping[str, Any] | None = None) -> list[tuple[float, float]]:
    """`sum by (le) (increase(<name>_bucket[...]))`: cumulative (le, count) pairs, sorted."""
    bucket_name = name if name.endswith("_bucket") else name + "_bucket"
    by_le: dict[float, float] = {}
    for key, grown in increase(scrapes, bucket_name, labels).items():
        le = dict(key).get("le")
        if le is not None:
            by_le[float(le)] = by_le.get(float(le), 0.0) + grown
    return sorted(by_le.items())


def quantile(q: float, scrapes: Sequence[Scrape], name: str,
             labels: Mapping[str, Any] | None = None) -> float:
    """The q-quantile of histogram `name` over the scrapes, summed across matching series."""
    return histogram_quantile(q, bucket_increase(scrapes, name, labels))


def histogram_mean(scrapes: Sequence[Scrape], name: str,
                   labels: Mapping[str, Any] | None = None) -> float:
    """`sum(increase(<name>_sum[...])) / sum(increase(<name>_count[...]))`: the mean observation
    of histogram `name` over the scrapes; NaN when nothing was observed."""
    count = sum(increase(scrapes, name + "_count", labels).values())
    total = sum(increase(scrapes, name + "_sum", labels).values())
    return total / count if count > 0 else math.nan


def per_bin(cumulative: Sequence[tuple[float, float]]) -> Bins:
    """Cumulative `le` buckets as (edges, per-bin counts), the reference profile's shape.

    The +Inf bucket becomes the open-ended last bin. Counts are made monotonic first (as
    histogram_quantile does), so a reset seen by only some buckets cannot give a negative bin.
    """
    edges = [le for le, _ in cumulative if le != math.inf]
    counts: list[float] = []
    running = 0.0
    for _, count in cumulative:
        counts.append(max(count - running, 0.0))
        running = max(running, count)
    return edges, counts
