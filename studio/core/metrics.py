"""The one way the studio reads a server's metrics: scrape Prometheus text, keep a bounded history,
and answer what the Monitor page asks of it (rates, latency quantiles, live feature counts).

The arithmetic follows PromQL so the numbers match what a user's own Prometheus would show:
counter resets are handled as `rate`/`increase` handle them, and quantiles are computed as
`histogram_quantile(q, sum by (le) (increase(<name>_bucket[window])))`. Two deliberate
differences, both because the studio sees every scrape of a server it usually started itself:
rates are not extrapolated to the window's edges, and a series that first appears between two
scrapes counts its whole value as increase (it started at zero; PromQL would drop it).

How prometheus_client's parser names samples, which every lookup here depends on: a counter's
family name loses its `_total` suffix but its samples always carry it (a counter exposed as
`foo 3` comes back as sample `foo_total`); a histogram yields `<name>_bucket` samples with an `le`
label (`"0.1"`, `"1.0"`, `"+Inf"`), `<name>_count` and `<name>_sum`; `<name>_created` timestamps
come back as families of their own.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from itertools import pairwise
from typing import Any

import httpx
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from studio.core.errors import StudioError, first_line

LabelSet = tuple[tuple[str, str], ...]
"""A series' labels as sorted (name, value) pairs: hashable, and equal for equal label sets."""
SampleKey = tuple[str, LabelSet]
Bins = tuple[list[float], list[float]]
"""(edges, counts): `edges` are the upper bounds of every bin but the last, which is open-ended,
as in a reference profile; `counts` has one more entry than `edges`."""

DEFAULT_CAPACITY = 3600
"""Scrapes kept by a MetricsSeries: one hour at one scrape per second."""
MEMO_LIMIT = 50_000
"""Per-interval results kept before the memo starts afresh (a few hours of charts)."""
STEP_JITTER = 0.05
"""A chart step is taken once scrapes are this fraction short of it: scrape timers drift a bit."""
ACCEPT = "text/plain;version=0.0.4;q=1.0, application/openmetrics-text;q=0.5, */*;q=0.1"

FEATURE_VALUE = "slipway_feature_value"
FEATURE_CATEGORY = "slipway_feature_category_total"
PREDICTIONS = "slipway_predictions_total"
PREDICTION_VALUE = "slipway_prediction_value"


class MetricsError(StudioError):
    """A metrics endpoint cannot be reached or does not answer with Prometheus text."""


@dataclass(frozen=True)
class Scrape:
    """One reading of a metrics endpoint."""

    monotonic: float
    """time.monotonic() when the scrape started: what rates are computed on."""
    wall: float
    """time.time() at the same moment: what a chart's axis shows."""
    samples: dict[SampleKey, float]
    types: dict[str, str]
    """Family name (as the parser names it, counters without `_total`) -> Prometheus type."""
    _by_name: dict[str, dict[LabelSet, float]] = field(init=False, repr=False, compare=False)
    _selected: dict[tuple, dict[LabelSet, float]] = field(init=False, repr=False, compare=False)
    _running: tuple[object, dict[SampleKey, float]] | None = field(
        init=False, repr=False, compare=False)
    """Set when a MetricsSeries takes the scrape: (the series, each sample's reset-corrected
    running total). See MetricsSeries.add."""

    def __post_init__(self) -> None:
        # Every query looks samples up by name; indexing once keeps an hour of history cheap.
        by_name: dict[str, dict[LabelSet, float]] = {}
        for (name, labels), value in self.samples.items():
            by_name.setdefault(name, {})[labels] = value
        object.__setattr__(self, "_by_name", by_name)
        # A chart asks every scrape of its window the same questions at each redraw.
        object.__setattr__(self, "_selected", {})
        object.__setattr__(self, "_running", None)

    @property
    def names(self) -> set[str]:
        return set(self._by_name)

    def select(self, name: str, labels: Mapping[str, Any] | None = None) -> dict[LabelSet, float]:
        """(Read-only) the series of sample `name` whose labels include every pair in `labels`; a value that
        is a tuple, list or set matches any of its members (`{"route": ("/predict", "/infer")}`)."""
        series = self._by_name.get(name, {})
        if not labels:
            return series
        wanted = tuple(sorted((k, frozenset(str(x) for x in v)
                               if isinstance(v, tuple | list | set | frozenset)
                               else frozenset((str(v),))) for k, v in labels.items()))
        found = self._selected.get((name, wanted))
        if found is None:
            found = self._selected[(name, wanted)] = {
                key: value for key, value in series.items()
                if all(dict(key).get(k) in allowed for k, allowed in wanted)}
        return found

    def value(self, name: str, **labels: Any) -> float | None:
        """The one sample with exactly these labels, or None."""
        key = tuple(sorted((k, str(v)) for k, v in labels.items()))
        return self._by_name.get(name, {}).get(key)


@dataclass(frozen=True)
class Gap:
    """A scrape that failed: charts break here and the page shows `message`."""

    monotonic: float
    wall: float
    message: str


@dataclass(frozen=True)
class ChartSeries:
    """Lines for a chart, one value per interval between scrapes.

    None marks a gap (the server did not answer); NaN marks an interval with nothing to compute
    (a quantile with no requests). Both are drawn as a break.
    """

    times: list[float]
    """time.monotonic() at the end of each interval."""
    lines: dict[str, list[float | None]]


def parse(text: str, *, openmetrics: bool = False, monotonic: float | None = None,
          wall: float | None = None) -> Scrape:
    """Prometheus (or OpenMetrics) exposition text as a Scrape; ValueError if it is not."""
    families = openmetrics_families(text) if openmetrics else text_string_to_metric_families(text)
    samples: dict[SampleKey, float] = {}
    types: dict[str, str] = {}
    for family in families:  # the parser is lazy: errors surface while iterating
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return Scrape(time.monotonic() if monotonic is None else monotonic,
                  time.time() if wall is None else wall, samples, types)


def scrape(url: str, client: httpx.Client | None = None, timeout: float = 2.0) -> Scrape:
    """GET `url` and parse it. Raises MetricsError, never an httpx or parser exception."""
    http = client or httpx.Client(follow_redirects=True)
    started, wall = time.monotonic(), time.time()
    try:
        response = http.get(url, timeout=timeout, headers={"Accept": ACCEPT})
    except httpx.TimeoutException as exc:
        raise MetricsError(f"cannot reach {url}: no answer within {timeout:g} s.",
                           "The server may be overloaded or stopped; see its log.",
                           detail=repr(exc)) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise MetricsError(f"cannot reach {url}: {first_line(exc)}.",
                           "Check the URL and that the server is running.",
                           detail=repr(exc)) from exc
    finally:
        if client is None:
            http.close()
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    got = f"got {media_type or 'no content type'}, {response.status_code}"
    not_prometheus = f"{url} did not answer with Prometheus text ({got})"
    if response.status_code in (401, 403):
        raise MetricsError(f"{not_prometheus}.", "The server wants an API key for /metrics.")
    if response.status_code != 200 or media_type not in (
            "", "text/plain", "application/openmetrics-text"):
        raise MetricsError(f"{not_prometheus}.", "Is this the metrics URL (usually /metrics)?",
                           detail=response.text[:500])
    try:
        return parse(response.text, openmetrics=media_type == "application/openmetrics-text",
                     monotonic=started, wall=wall)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise MetricsError(f"{not_prometheus}: {first_line(exc)}.",
                           "Is this the metrics URL (usually /metrics)?",
                           detail=response.text[:500]) from exc


# --- PromQL arithmetic --------------------------------------------------------------------------


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


# --- what a server exports ----------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """A metric the studio knows how to show: its exposed name (a glob), type and meaning."""

    pattern: str
    type: str | None
    meaning: str


KNOWN: tuple[Known, ...] = (
    Known("slipway_requests_total", "counter", "requests by route and status"),
    Known("slipway_request_duration_seconds", "histogram", "request latency by route"),
    Known("slipway_inference_duration_seconds", "histogram", "inference time per batch"),
    Known("slipway_batch_size", "histogram", "rows per inference batch"),
    Known("slipway_inflight_requests", "gauge", "requests in flight"),
    Known("slipway_model_info", "gauge", "served model"),
    Known("slipway_feature_value", "histogram", "live numeric feature values (drift)"),
    Known("slipway_feature_category_total", "counter", "live categorical feature values (drift)"),
    Known("slipway_predictions_total", "counter", "predicted labels (drift)"),
    Known("slipway_prediction_value", "histogram", "predicted values (drift)"),
    Known("process_cpu_seconds_total", "counter", "CPU time"),
    Known("process_resident_memory_bytes", "gauge", "memory (resident)"),
    Known("python_gc_*", None, "Python garbage collector"),
    Known("*_seconds", "histogram", "latency histogram"),
)
"""First match wins, so Slipway's own histograms are named before the generic `*_seconds`."""


def recognize(scrape: Scrape, known: Iterable[Known] = KNOWN) -> dict[str, str]:
    """Exposed metric name -> meaning, for the families of `scrape` the studio knows how to show:
    Slipway's own, and what any prometheus_client app exports."""
    known = tuple(known)
    found: dict[str, str] = {}
    for family, kind in scrape.types.items():
        exposed = family + "_total" if kind == "counter" else family
        for entry in known:
            if fnmatchcase(exposed, entry.pattern) and entry.type in (None, kind):
                found[exposed] = entry.meaning
                break
    return found


@dataclass(frozen=True)
class LiveCounts:
    """What the server counted of its inputs and outputs over some scrapes, on its own bins."""

    numeric: dict[str, Bins]
    categorical: dict[str, dict[str, float]]
    predictions: Bins | dict[str, float] | None
    """Label counts for a classifier, value bins for a regressor, None when not exported."""

    @property
    def rows(self) -> float:
        """Rows counted: every row gives each feature one value, so the largest feature total."""
        totals = [sum(counts) for _, counts in self.numeric.values()]
        totals += [sum(counts.values()) for counts in self.categorical.values()]
        return max(totals, default=0.0)

    def counts(self) -> dict[str, list[float] | dict[str, float]]:
        """Feature -> counts, the shape drift.compare_profile takes."""
        found: dict[str, list[float] | dict[str, float]] = {
            name: counts for name, (_, counts) in self.numeric.items()}
        found.update(self.categorical)
        return found


def live_counts(scrapes: Sequence[Scrape], since_start: bool = False) -> LiveCounts:
    """Per-bin counts of every feature and of the predictions over the scrapes.

    Numeric features come from `slipway_feature_value_bucket{feature}` (its `le` bounds are the
    reference profile's edges), categorical ones from `slipway_feature_category_total
    {feature,category}` (values outside the reference are counted as `__other__`), predictions
    from `slipway_predictions_total{label}` or `slipway_prediction_value_bucket`. The server
    exports these only when it was given a reference profile; otherwise all are empty.
    With `since_start`, counting starts from zero before the first scrape (the series covers the
    server's whole life), so requests served before the first scrape count too.
    """
    scrapes = [Scrape(math.nan, math.nan, {}, {}), *scrapes] if since_start else list(scrapes)
    numeric: dict[str, dict[float, float]] = {}  # feature -> cumulative count by `le`
    for key, grown in increase(scrapes, FEATURE_VALUE + "_bucket").items():
        labels = dict(key)
        numeric.setdefault(labels.get("feature", ""), {})[float(labels["le"])] = grown
    categorical: dict[str, dict[str, float]] = {}
    for key, grown in increase(scrapes, FEATURE_CATEGORY).items():
        labels = dict(key)
        categorical.setdefault(labels.get("feature", ""), {})[labels.get("category", "")] = grown
    predictions: Bins | dict[str, float] | None = None
    if any(PREDICTIONS.removesuffix("_total") in s.types for s in scrapes):
        predictions = {dict(key).get("label", ""): grown
                       for key, grown in increase(scrapes, PREDICTIONS).items()}
    elif any(PREDICTION_VALUE in s.types for s in scrapes):
        predictions = per_bin(bucket_increase(scrapes, PREDICTION_VALUE))
    return LiveCounts({feature: per_bin(sorted(les.items())) for feature, les in numeric.items()},
                      categorical, predictions)


# --- the history the Monitor page draws ---------------------------------------------------------


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
