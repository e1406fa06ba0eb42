"""A watched server: its scrapes, the reference its inputs are compared with, and what the Monitor
page and `slipway monitor` show (rates, latency quantiles, resources, drift per feature).

The network and the arithmetic are kept apart so the GUI thread never waits on a socket:
`fetch()` does the I/O (a scrape, the engine's stats, the server's reference profile once) and may
run on a worker thread; `apply()` adds its result, and everything else computes from the history.

Where the reference comes from, in order: a profile the user gives; else the server's own
`GET /reference` when it was built from a dataset; else, when the server only has bins from the
schema (`"source": "schema"`), the first `baseline_rows` live requests become the baseline.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from studio.core.drift import (
    PREDICTIONS_ROW,
    DriftError,
    FeatureDrift,
    Thresholds,
    baseline_from_counts,
    compare_profile,
)
from studio.core.metrics import (
    ChartSeries,
    LiveCounts,
    MetricsError,
    MetricsSeries,
    Scrape,
    bucket_increase,
    histogram_quantile,
    increase,
    live_counts,
    quantile,
    rate,
    recognize,
    scrape,
)
from studio.core.reports import finite_json
from studio.core.runtimes.base import ResourceUsage

REQUESTS = "slipway_requests_total"
REQUEST_DURATION = "slipway_request_duration_seconds"
INFERENCE_DURATION = "slipway_inference_duration_seconds"
BATCH_SIZE = "slipway_batch_size"
INFLIGHT = "slipway_inflight_requests"
PROCESS_CPU = "process_cpu_seconds_total"
PROCESS_MEMORY = "process_resident_memory_bytes"
PREDICTION_ROUTES = ("/predict", "/predict/batch", "/v2/models/{name}/infer")
"""Latency is that of predictions: health checks and the scrapes themselves would flatter it."""
DEFAULT_BASELINE_ROWS = 500
MIN_LIVE_ROWS = 50
"""Below this many live values a feature's PSI is mostly sampling noise: it is shown, but judged
'too few' instead of raising an alert on the first handful of requests."""
DRIFT_HISTORY = 3600
GIVEN = "the reference profile you gave"


def read_profile(path: str | Path) -> dict[str, Any]:
    """A reference profile from a JSON file (what a served model answers at GET /reference)."""
    path = Path(path)
    try:
        profile = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DriftError(f"'{path.name}' cannot be read as a reference profile: {exc}",
                         "Use the JSON a served model answers at GET /reference.") from exc
    if not isinstance(profile, dict) or not isinstance(profile.get("features"), dict):
        raise DriftError(f"'{path.name}' is not a reference profile: it has no 'features' object.",
                         "Use the JSON a served model answers at GET /reference.")
    return profile


def _check_bins(reference: Mapping[str, Any], numeric: Mapping[str, Any], given: bool) -> None:
    """Live counts are compared bin for bin: the server's bins must be the reference's."""
    for name, (edges, _) in numeric.items():
        profile = (reference.get("features") or {}).get(name)
        if not isinstance(profile, Mapping) or profile.get("kind") != "numeric":
            continue
        expected = [float(e) for e in profile.get("edges") or []]
        if len(expected) != len(edges) or not np.allclose(expected, edges, rtol=1e-6, atol=0):
            raise DriftError(
                f"The server counts '{name}' on other bins than the reference gives.",
                "This profile is not the one the server was bundled with: use the server's own "
                "(leave the profile out, or save GET /reference)." if given else
                "The server was deployed with another reference profile; redeploy it.")


@dataclass(frozen=True)
class Poll:
    """What one `fetch()` brought back: a scrape or the reason there is none."""

    monotonic: float
    scrape: Scrape | None
    error: str | None
    usage: ResourceUsage | None = None
    reference: dict[str, Any] | None = None
    reference_note: str | None = None


@dataclass
class DriftPicture:
    rows: list[FeatureDrift]
    baseline: str
    """Where the reference counts come from, in words the page shows."""
    waiting: str | None = None
    """Why there is no table yet (a baseline still filling, no feature counts at all)."""
    counts: LiveCounts | None = None
    """The live counts the rows were computed from (the feature histograms show the same)."""


@dataclass
class Monitor:
    url: str
    """The server's base URL; metrics are read from `<url>/metrics`."""
    reference: dict[str, Any] | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    baseline_rows: int = DEFAULT_BASELINE_ROWS
    api_key: str | None = None
    usage_source: Callable[[], ResourceUsage | None] | None = None
    """The runtime's own CPU and memory sample (Docker stats), when it has one."""
    series: MetricsSeries = field(default_factory=MetricsSeries)
    usage: deque[tuple[float, ResourceUsage]] = field(
        default_factory=lambda: deque(maxlen=DRIFT_HISTORY))
    reference_note: str = ""
    drift_history: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    _http: httpx.Client | None = None
    """Kept between scrapes: a new client a second costs a TLS context each time."""
    _closed: bool = False
    _asked_reference: bool = False
    _live_baseline: bool = False
    _baseline_end: float | None = None

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if self.reference is not None:
            self.reference_note = GIVEN
            self._asked_reference = True

    @property
    def metrics_url(self) -> str:
        return self.url if self.url.endswith("/metrics") else f"{self.url}/metrics"

    # --- I/O -----------------------------------------------------------------------------------

    def fetch(self, client: httpx.Client | None = None) -> Poll:
        """Scrape once, sample the runtime's resources, and the first time ask the server for its
        reference profile. Safe on any thread; changes nothing here."""
        now = time.monotonic()
        if client is None:
            if self._http is None:
                self._http = httpx.Client(follow_redirects=True)
            client = self._http
        try:
            result, error = scrape(self.metrics_url, client), None
        except MetricsError as exc:
            result, error = None, str(exc)
        usage = self.usage_source() if self.usage_source is not None and result else None
        reference = note = None
        if not self._asked_reference and result is not None:
            reference, note = self._server_reference(client)
        return Poll(now, result, error, usage, reference, note)

    def _server_reference(self, client: httpx.Client) -> tuple[dict | None, str]:
        base = self.url.removesuffix("/metrics")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            answer = client.get(f"{base}/reference", headers=headers, timeout=2.0)
        except httpx.HTTPError:
            return None, "the server did not answer GET /reference"
        if answer.status_code in (401, 403):
            return None, "the server wants an API key for GET /reference"
        if answer.status_code != 200:
            return None, "the server has no reference profile"
        try:
            return answer.json(), "the server's reference profile"
        except ValueError:
            return None, "the server's /reference is not JSON"

    def apply(self, poll: Poll) -> None:
        if poll.scrape is None:
            self.series.add_gap(poll.monotonic, poll.error or "no answer")
            return
        self.series.add(poll.scrape)
        if poll.usage is not None:
            self.usage.append((poll.monotonic, poll.usage))
        if not self._asked_reference:
            self._asked_reference = True
            self.reference = poll.reference
            self.reference_note = poll.reference_note or ""
            if self.reference is not None and self.reference.get("source") == "schema":
                # Bins from the schema only: the counts are no baseline, live traffic is.
                self._live_baseline = True
                self.reference = None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop watching: a scrape still on its way is dropped, not added. (The HTTP client is
        left to the garbage collector: a worker may still be using it.)"""
        self._closed = True

    def poll(self, client: httpx.Client | None = None) -> Poll:
        result = self.fetch(client)
        self.apply(result)
        return result

    # --- what is shown -----------------------------------------------------------------------------

    @property
    def status(self) -> str | None:
        """Why the last scrape failed, None while scrapes succeed."""
        return self.series.status

    def recognized(self) -> dict[str, str]:
        latest = self.series.latest
        return recognize(latest) if latest is not None else {}

    def figures(self, window_s: float | None) -> dict[str, float]:
        """Headline numbers over the window: rates, latency quantiles, in flight, resources."""
        scrapes = self.series.scrapes(window_s)
        routes = {"route": PREDICTION_ROUTES}
        total = rate(scrapes, REQUESTS, routes)
        errors = sum(grown for key, grown in increase(scrapes, REQUESTS, routes).items()
                     if dict(key).get("status", "").startswith("5"))
        elapsed = scrapes[-1].monotonic - scrapes[0].monotonic if len(scrapes) > 1 else 0.0
        errors = errors / elapsed if elapsed > 0 else 0.0
        latency = bucket_increase(scrapes, REQUEST_DURATION, routes)  # once for every quantile
        latest = self.series.latest
        figures = {
            "request_rate": total,
            "error_rate": errors,
            "error_ratio": errors / total if total else 0.0,
            "p50_ms": histogram_quantile(0.5, latency) * 1000,
            "p95_ms": histogram_quantile(0.95, latency) * 1000,
            "p99_ms": histogram_quantile(0.99, latency) * 1000,
            "inference_p50_ms": quantile(0.5, scrapes, INFERENCE_DURATION) * 1000,
            "batch_p50": quantile(0.5, scrapes, BATCH_SIZE),
            "inflight": (latest.value(INFLIGHT) if latest else None) or 0.0,
        }
        figures.update(self.resources(window_s))
        return figures

    def resources(self, window_s: float | None) -> dict[str, float]:
        """CPU in cores and memory in bytes: the engine's stats when the runtime gives them,
        else the server's own process metrics."""
        if len(self.usage) >= 2:
            start = self.usage[0] if window_s is None else next(
                (u for u in self.usage if u[0] >= self.usage[-1][0] - window_s), self.usage[0])
            end = self.usage[-1]
            elapsed = end[0] - start[0]
            cpu = (end[1].cpu_seconds - start[1].cpu_seconds) / elapsed if elapsed > 0 else math.nan
            return {"cpu_cores": cpu, "memory_bytes": end[1].memory_bytes}
        latest = self.series.latest
        memory = latest.value(PROCESS_MEMORY) if latest else None
        return {"cpu_cores": self.series.rate(PROCESS_CPU, None, window_s),
                "memory_bytes": memory if memory is not None else math.nan}

    def drift(self, window_s: float | None, since_start: bool = False) -> DriftPicture:
        """Drift of every feature and of the predictions over the window, most drifted first.
        With `since_start`, everything the server counted since it started is the live side
        (a one-off look at a server that has been running; not with a live baseline)."""
        scrapes = self.series.scrapes(window_s)
        if self._live_baseline:
            if self.reference is None:
                span = self.series.first_rows(self.baseline_rows)
                if span is None:
                    counted = live_counts(self.series.scrapes(), since_start=True).rows
                    return DriftPicture([], "", f"Taking the first {self.baseline_rows} requests "
                                                f"as the baseline ({counted:.0f} so far): no "
                                                "dataset was attached when the model was bundled.")
                counts = live_counts(span, since_start=True)
                self.reference = baseline_from_counts(counts.numeric, counts.categorical,
                                                      counts.predictions)
                self._baseline_end = span[-1].monotonic
            scrapes = [s for s in scrapes if s.monotonic >= (self._baseline_end or 0)]
            note = f"the first {self.baseline_rows} live requests"
        else:
            note = self.reference_note
        if self.reference is None:
            return DriftPicture([], "", "No drift: the server has no reference profile to compare "
                                        "with, and counts no feature values. Bundle the model "
                                        "with a reference dataset, or give a profile.")
        counts = live_counts(scrapes, since_start=since_start and not self._live_baseline)
        _check_bins(self.reference, counts.numeric, given=self.reference_note == GIVEN)
        predictions = counts.predictions
        if predictions is not None and not isinstance(predictions, Mapping):
            predictions = predictions[1]  # a regressor's (edges, counts): the counts
        rows = [replace(row, level="too few") if 0 < row.live_count < MIN_LIVE_ROWS else row
                for row in compare_profile(self.reference, counts.counts(), self.thresholds,
                                           predictions)]
        now = scrapes[-1].monotonic if scrapes else time.monotonic()
        for row in rows:
            if row.live_count < MIN_LIVE_ROWS:
                continue
            history = self.drift_history.setdefault(row.feature, deque(maxlen=DRIFT_HISTORY))
            if not history or history[-1][0] < now:
                history.append((now, row.psi))
        return DriftPicture(rows, note, counts=counts)

    def summary(self, window_s: float | None, since_start: bool = False) -> dict[str, Any]:
        """One JSON-ready snapshot: figures, what was recognized, and drift per feature."""
        picture = self.drift(window_s, since_start)
        return finite_json({
            "url": self.url, "window_s": window_s, "status": self.status,
            "figures": self.figures(window_s), "recognized": self.recognized(),
            "baseline": picture.baseline, "drift_note": picture.waiting,
            "drift": [asdict(row) for row in picture.rows],
        })



@dataclass
class FeatureView:
    """One feature's reference and live histograms over the window, and its PSI over time."""

    name: str
    labels: list[str]
    reference: list[float]
    live: list[float]
    psi_times: list[float]
    psi: list[float]


@dataclass
class MonitorView:
    """Everything the Monitor page draws, computed off the GUI thread. Chart times are seconds
    relative to `now` (negative: in the past); None in a line is a gap."""

    now: float
    charts: dict[str, dict[str, tuple[list[float], list[float | None]]]]
    """chart key -> line name -> (times, values)."""
    figures: dict[str, float]
    status: str | None
    recognized: dict[str, str]
    drift: DriftPicture | None
    drift_error: DriftError | None
    feature: FeatureView | None


def _lines(data: ChartSeries, now: float, scale: float = 1.0,
           rename: Mapping[str, str] | None = None) -> dict[str, tuple[list[float], list]]:
    times = [t - now for t in data.times]
    return {(rename or {}).get(name, name): (times, [None if v is None else v * scale
                                                     for v in values])
            for name, values in data.lines.items()}


def build_view(monitor: Monitor, window_s: float | None, feature: str | None) -> MonitorView:
    """The picture of `monitor` over the window; `feature` is the one whose histograms to show
    (None: the most drifted)."""
    now = time.monotonic()
    series = monitor.series
    routes = {"route": PREDICTION_ROUTES}
    charts = {
        "requests": _lines(series.rate_series(REQUESTS, by="status", labels=routes,
                                              window_seconds=window_s), now),
        "latency": _lines(series.quantile_series(REQUEST_DURATION, labels=routes,
                                                 window_seconds=window_s), now, 1000),
        "inference": {
            **_lines(series.quantile_series(REQUEST_DURATION, (0.5,), labels=routes,
                                            window_seconds=window_s), now, 1000, {"p50": "total"}),
            **_lines(series.quantile_series(INFERENCE_DURATION, (0.5,), window_seconds=window_s),
                     now, 1000, {"p50": "inference"})},
        "batch": _lines(series.quantile_series(BATCH_SIZE, (0.5,), window_seconds=window_s), now),
        **_gauges(monitor, window_s, now),
    }
    drift, error = None, None
    try:
        drift = monitor.drift(window_s)
    except DriftError as exc:  # a profile on other bins: said, and the charts go on
        error = exc
    if drift is not None and drift.rows and feature not in {r.feature for r in drift.rows}:
        feature = drift.rows[0].feature
    return MonitorView(now, charts, monitor.figures(window_s), monitor.status,
                       monitor.recognized(), drift, error,
                       _feature_view(monitor, drift.counts, feature, now) if drift else None)


def _gauges(monitor: Monitor, window_s: float | None,
            now: float) -> dict[str, dict[str, tuple[list[float], list]]]:
    """In flight, 5xx share, CPU and memory: per scrape, from gauges and counter deltas; CPU and
    memory from the runtime's own stats (Docker) when it gives them."""
    times: list[float] = []
    inflight: list[float | None] = []
    errors: list[float | None] = []
    cpu: list[float | None] = []
    memory: list[float | None] = []
    previous: Scrape | None = None
    for point in monitor.series.window(window_s):
        times.append(point.monotonic - now)
        if not isinstance(point, Scrape):  # a failed scrape: a gap in every line
            for line in (inflight, errors, cpu, memory):
                line.append(None)
            previous = None
            continue
        inflight.append(point.value(INFLIGHT) or 0.0)
        resident = point.value(PROCESS_MEMORY)
        memory.append(resident / 1e6 if resident is not None else None)
        if previous is None:
            errors.append(None)
            cpu.append(None)
        else:
            grown = increase([previous, point], REQUESTS, {"route": PREDICTION_ROUTES})
            total = sum(grown.values())
            failed = sum(v for key, v in grown.items()
                         if dict(key).get("status", "").startswith("5"))
            errors.append(failed / total if total else 0.0)
            elapsed = point.monotonic - previous.monotonic
            used = (point.value(PROCESS_CPU) or 0.0) - (previous.value(PROCESS_CPU) or 0.0)
            cpu.append(used / elapsed if elapsed > 0 and used >= 0 else None)
        previous = point
    charts = {"inflight": {"in flight": (times, inflight)},
              "errors": {"5xx share": (times, errors)}}
    usage = [(t, u) for t, u in monitor.usage if window_s is None or t >= now - window_s]
    if len(usage) >= 2:  # the engine's view of the container
        container_times = [t - now for t, _ in usage[1:]]
        cores = [(b.cpu_seconds - a.cpu_seconds) / (tb - ta) if tb > ta else None
                 for (ta, a), (tb, b) in pairwise(usage)]
        charts["cpu"] = {"container": (container_times, cores)}
        charts["memory"] = {"container": (container_times,
                                          [u.memory_bytes / 1e6 for _, u in usage[1:]])}
    else:
        charts["cpu"] = {"process": (times, cpu)}
        charts["memory"] = {"process": (times, memory)}
    return charts


def _feature_view(monitor: Monitor, counts: LiveCounts | None, name: str | None,
                  now: float) -> FeatureView | None:
    reference = monitor.reference or {}
    if name is None:
        return None
    history = monitor.drift_history.get(name, ())
    psi_times, psi = [t - now for t, _ in history], [v for _, v in history]
    profile = (reference.get("predictions") if name == PREDICTIONS_ROW
               else (reference.get("features") or {}).get(name))
    if not profile or counts is None:
        return FeatureView(name, [], [], [], psi_times, psi)
    if profile.get("kind") == "categorical":
        live = (counts.predictions if name == PREDICTIONS_ROW
                else counts.categorical.get(name)) or {}
        labels = [str(c) for c in profile.get("categories") or []]
        return FeatureView(name, labels, [float(c) for c in profile.get("counts") or []],
                           [float(live.get(c, 0.0)) for c in labels], psi_times, psi)
    edges = [float(e) for e in profile.get("edges") or []]
    bins = counts.predictions if name == PREDICTIONS_ROW else counts.numeric.get(name)
    live = list(bins[1]) if isinstance(bins, tuple) else [0.0] * (len(edges) + 1)
    labels = [f"≤{e:.3g}" for e in edges] + ([f">{edges[-1]:.3g}"] if edges else ["all"])
    return FeatureView(name, labels, [float(c) for c in profile.get("counts") or []], live,
                       psi_times, psi)
