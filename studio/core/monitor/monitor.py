"""A watched server: its scrapes, the reference its inputs are compared with, and what the Monitor
page and `slipway monitor` show (rates, latency quantiles, resources, drift per feature).

The network and the arithmetic are kept apart so the GUI thread never waits on a socket:
`fetch()` does the I/O (a scrape, the engine's stats, the server's reference profile once) and may
run on a worker thread; `apply()` adds its result, and everything else computes from the history.

Where the reference comes from, in order: a profile the user gives; else the server's own
`GET /reference` when it was built from a dataset; else, when the server only has bins from the
schema (`"source": "schema"`), the first `baseline_rows` live requests become the baseline.
The figures and charts the Monitor page draws from a Monitor are computed in view.py.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import httpx

from studio.core.errors import StudioError
from studio.core.monitor.drift import FeatureDrift, Thresholds, check_bins, compare_profile
from studio.core.monitor.live_counts import LiveCounts, live_counts
from studio.core.monitor.promql import bucket_increase, histogram_quantile, increase, quantile, rate
from studio.core.monitor.reference import ReferenceProfile, baseline_from_counts
from studio.core.monitor.scrape import MetricsError, Scrape, recognize, scrape
from studio.core.monitor.series import MetricsSeries
from studio.core.serve.client import ModelClient
from studio.core.serve.runtimes.base import ResourceUsage
from studio.core.units import finite_json

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


@dataclass(frozen=True)
class Poll:
    """What one `fetch()` brought back: a scrape or the reason there is none."""

    monotonic: float
    scrape: Scrape | None
    error: str | None
    usage: ResourceUsage | None = None
    reference: ReferenceProfile | None = None
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
    reference: ReferenceProfile | None = None
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
            result, error = scrape(self.metrics_url, client, api_key=self.api_key), None
        except MetricsError as exc:
            result, error = None, str(exc)
        usage = self.usage_source() if self.usage_source is not None and result else None
        reference = note = None
        if not self._asked_reference and result is not None:
            reference, note = self._server_reference()
        return Poll(now, result, error, usage, reference, note)

    def _server_reference(self) -> tuple[ReferenceProfile | None, str]:
        """The profile the server was bundled with (GET /reference), or why there is none."""
        with ModelClient(self.url.removesuffix("/metrics"), api_key=self.api_key,
                         timeout=2.0) as client:
            try:
                answer = client.request("GET", "/reference")
            except StudioError:
                return None, "the server did not answer GET /reference"
        if answer.status in (401, 403):
            return None, "the server wants an API key for GET /reference"
        if answer.status != 200:
            return None, "the server has no reference profile"
        if not answer.is_json:
            return None, "the server's /reference is not JSON"
        try:
            return (ReferenceProfile.from_json_dict(answer.body, "the server's /reference"),
                    "the server's reference profile")
        except StudioError as exc:
            return None, exc.message

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
            if self.reference is not None and not self.reference.is_baseline:
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
        check_bins(self.reference, {name: edges for name, (edges, _) in counts.numeric.items()},
                   given=self.reference_note == GIVEN)
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
