"""A watched server: its scrapes, the reference its inputs are compared with, and what the Monitor
page and `slipway monitor` show (rates, latency quantiles, resources, drift per feature).

The network and the arithmetic are kept apart so the GUI thread never waits on a socket:
`fetch()` does the I/O (a scrape, the engine's stats, the server's reference profile once) and may
run on a worker thread; `apply()` adds its result, and everything else computes from the history.

Where the reference comes from, in order: a profile the user gives; else the server's own
`GET /reference` when it was built from a dataset; else, when the server only has bins from the
schema (`"source": "schema"`), the first `baseline_rows` live requests become the baseline. A live
baseline cannot show drift that was there from the first request (it is in the baseline too), so
the picture says so, and reference data can be attached to a running server's monitor
(`reference_from_data`, then `use_reference`): its rows binned on the server's own bins.

Every figure and the drift are computed over one `Span` of scrapes, which names itself ("over the
last 5 min", "since the server started (N requests)"), so a figure never shows without saying what
it covers. The figures and charts the Monitor page draws from a Monitor are computed in view.py.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from studio.core.errors import StudioError
from studio.core.model.datasets import read_table
from studio.core.model.schema import ModelSchema
from studio.core.monitor.drift import FeatureDrift, Thresholds, check_bins, compare_profile
from studio.core.monitor.live_counts import LiveCounts, live_counts
from studio.core.monitor.promql import (
    bucket_increase,
    histogram_mean,
    histogram_quantile,
    increase,
    quantile,
    rate,
)
from studio.core.monitor.reference import (
    SERVER_OTHER,
    ProfileError,
    ReferenceProfile,
    baseline_from_counts,
    profile_on_bins,
)
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
PROCESS_START = "process_start_time_seconds"
CONNECTIONS_CLOSED = "slipway_connections_closed_total"
"""Connections the server closed to protect itself, by `reason`: connection_limit,
header_too_large, header_timeout, silent. A sign of an attack or of misconfigured clients."""
PREDICTION_ROUTES = ("/predict", "/predict/batch", "/v2/models/{name}/infer")
"""Latency is that of predictions: health checks and the scrapes themselves would flatter it."""
DEFAULT_BASELINE_ROWS = 500
MIN_LIVE_ROWS = 50
"""Below this many live values a feature's PSI is mostly sampling noise: it is shown, but judged
'too few' instead of raising an alert on the first handful of requests."""
DRIFT_HISTORY = 3600
GIVEN = "the reference profile you gave"
LIVE_BASELINE_CAVEAT = (
    "Drift present from the first request cannot be seen: the baseline is live traffic, so it "
    "holds that drift too. Attach reference data (the rows the model was trained on) to see it.")
NO_BASELINE_ONCE = (
    "No drift: the server was bundled without reference data, and a one-off look has no live "
    "baseline to compare what it counted with. Attach reference data (the rows the model was "
    "trained on), or keep watching: the first {rows} requests from then on become a baseline.")


@dataclass(frozen=True)
class Poll:
    """What one `fetch()` brought back: a scrape or the reason there is none."""

    monotonic: float
    scrape: Scrape | None
    error: str | None
    usage: ResourceUsage | None = None
    reference: ReferenceProfile | None = None
    reference_note: str | None = None


@dataclass(frozen=True)
class Span:
    """The scrapes figures and drift are computed over, and what a person is told they cover."""

    scrapes: list[Scrape]
    """Since the server started: led by an empty scrape, so every count grows from zero."""
    seconds: float
    """How long they cover; NaN when that is not known (one scrape, no process start time)."""
    requests: float
    """Predictions answered over the span."""
    label: str
    """"over the last 5 min", "over 40 s since watching began", "since the server started
    (1,234 requests)"."""
    since_start: bool = False


def data_note(path: str | Path, profile: ReferenceProfile) -> str:
    """How reference data attached while watching is named where drift is shown."""
    return f"the reference data {Path(path).name} ({profile.rows:,} rows)"


def duration(seconds: float) -> str:
    """60 -> '60 s', 300 -> '5 min', 5400 -> '1.5 h': how long a span is, for a label."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 120 * 60:
        minutes = seconds / 60
        return f"{minutes:.0f} min" if minutes >= 10 or abs(minutes - round(minutes)) < 0.05 \
            else f"{minutes:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class DriftPicture:
    rows: list[FeatureDrift]
    baseline: str
    """Where the reference counts come from, in words the page shows."""
    waiting: str | None = None
    """Why there is no table yet (a baseline still filling, no feature counts at all)."""
    counts: LiveCounts | None = None
    """The live counts the rows were computed from (the feature histograms show the same)."""
    caveat: str | None = None
    """What the baseline cannot show (a live baseline: drift present from the start)."""
    needs_data: bool = False
    """Reference data would show more than this picture does (see `caveat` and `waiting`)."""


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
    _pending: tuple[ReferenceProfile, str] | None = None
    _pending_lock: threading.Lock = field(default_factory=threading.Lock)
    """use_reference is called from the GUI thread while a worker may be taking the last one."""

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

    def reference_from_data(self, path: str | Path,
                            client: httpx.Client | None = None) -> ReferenceProfile:
        """Reference data for the running server: the rows of a CSV, Parquet or .npy file, read
        with the server's own schema (GET /schema) and binned on the bins it counts on (the `le`
        bounds and categories of its /metrics), so they compare bin for bin with its live counts.
        Network and file I/O: safe on any thread, changes nothing here (`use_reference` does).
        Raises ProfileError, DatasetError or MetricsError."""
        path = Path(path)
        base = self.url.removesuffix("/metrics")
        cannot = f"'{path.name}' cannot be compared with what {base} counts"
        with ModelClient(base, api_key=self.api_key, timeout=5.0) as model:
            try:
                answer = model.request("GET", "/schema")
            except StudioError as exc:
                raise ProfileError(f"{cannot}: {exc.message}", exc.hint) from exc
        if answer.status != 200 or not answer.is_json:
            raise ProfileError(f"{cannot}: it does not describe its model (GET /schema answered "
                               f"{answer.status}).",
                               "Reference data is read against a Slipway server's schema; for "
                               "another server, give a reference profile (JSON) instead.")
        try:
            schema = ModelSchema.model_validate(answer.body)
        except ValidationError as exc:
            raise ProfileError(f"{cannot}: its /schema is not a Slipway model schema.",
                               "Give a reference profile (JSON) instead.", detail=str(exc)) from exc
        frame = read_table(path, schema.features)
        counts = live_counts([scrape(self.metrics_url, client or self._http, api_key=self.api_key)],
                             since_start=True)
        edges = {name: bins[0] for name, bins in counts.numeric.items() if name in frame}
        categories = {name: [c for c in found if c != SERVER_OTHER]
                      for name, found in counts.categorical.items() if name in frame}
        if not edges and not categories:
            raise ProfileError(f"{cannot}: the server counts no feature values, so there is "
                               "nothing to compare the rows with.",
                               "Serve the model again with a reference (its data or a profile): "
                               "a Slipway server counts its inputs only when it has one.")
        return profile_on_bins(frame, edges, categories,
                               {f.name: f.dtype for f in schema.features})

    def use_reference(self, profile: ReferenceProfile, note: str) -> None:
        """Compare with `profile` from now on (reference data attached while watching; `note` is
        how the picture names it). Taken over by the next `apply()` or `drift()`, on the thread
        that polls, so a picture being computed never sees the reference change under it."""
        with self._pending_lock:
            self._pending = (profile, note)

    def _take_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.reference, self.reference_note = pending
            self._asked_reference = True
            self._live_baseline = False
            self._baseline_end = None
            self.drift_history.clear()  # PSI against another baseline: another line

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
        self._take_pending()

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

    def span(self, window_s: float | None, since_start: bool = False) -> Span:
        """The scrapes of the window (None: all kept) or, with `since_start`, everything the
        server counted since it started, and what they cover in words."""
        scrapes = self.series.scrapes(None if since_start else window_s)
        routes = {"route": PREDICTION_ROUTES}
        if since_start:
            latest = scrapes[-1] if scrapes else None
            started = latest.value(PROCESS_START) if latest is not None else None
            seconds = latest.wall - started if latest is not None and started else math.nan
            scrapes = [Scrape(math.nan, math.nan, {}, {}), *scrapes]  # every count from zero
            requests = sum(increase(scrapes, REQUESTS, routes).values()) if latest else 0.0
            return Span(scrapes, seconds, requests,
                        f"since the server started ({requests:,.0f} requests)", True)
        requests = sum(increase(scrapes, REQUESTS, routes).values())
        if len(scrapes) < 2:
            return Span(scrapes, math.nan, requests, "since watching began")
        seconds = scrapes[-1].monotonic - scrapes[0].monotonic
        # Scrape timers drift: a window nearly filled is the window.
        if window_s is not None and seconds >= window_s * 0.95:
            return Span(scrapes, seconds, requests, f"over the last {duration(window_s)}")
        began = scrapes[0] is self.series.scrapes()[0]
        return Span(scrapes, seconds, requests, f"over {duration(seconds)} since watching began"
                    if began else f"over the last {duration(seconds)}")

    def figures(self, window_s: float | None, since_start: bool = False) -> dict[str, float]:
        """Headline numbers over one span (`span()`): request and error rates, latency
        quantiles, mean rows per batch, connections the server closed, resources; and two of
        now: the request rate over the latest interval between scrapes, and requests in flight."""
        span = self.span(window_s, since_start)
        scrapes, seconds = span.scrapes, span.seconds
        routes = {"route": PREDICTION_ROUTES}
        failed = sum(grown for key, grown in increase(scrapes, REQUESTS, routes).items()
                     if dict(key).get("status", "").startswith("5"))
        per_second = 1 / seconds if seconds > 0 else math.nan
        latency = bucket_increase(scrapes, REQUEST_DURATION, routes)  # once for every quantile
        latest = self.series.latest
        points = self.series.points
        now = [points[-2], points[-1]] if len(points) >= 2 else []
        figures = {
            "requests": span.requests,
            "span_s": seconds,
            "request_rate": span.requests * per_second,
            "request_rate_now": rate(now, REQUESTS, routes)
            if now and all(isinstance(p, Scrape) for p in now) else math.nan,
            "error_rate": failed * per_second,
            "error_ratio": failed / span.requests if span.requests else math.nan,
            "p50_ms": histogram_quantile(0.5, latency) * 1000,
            "p95_ms": histogram_quantile(0.95, latency) * 1000,
            "p99_ms": histogram_quantile(0.99, latency) * 1000,
            "inference_p50_ms": quantile(0.5, scrapes, INFERENCE_DURATION) * 1000,
            "batch_mean": histogram_mean(scrapes, BATCH_SIZE),
            "connections_closed": sum(_closed_by_reason(scrapes).values()),
            "inflight": (latest.value(INFLIGHT) if latest else None) or 0.0,
        }
        figures.update(self.resources(window_s, since_start))
        return figures

    def connections_closed(self, window_s: float | None,
                           since_start: bool = False) -> dict[str, float]:
        """Connections the server closed to protect itself over the span, by reason."""
        return _closed_by_reason(self.span(window_s, since_start).scrapes)

    def resources(self, window_s: float | None, since_start: bool = False) -> dict[str, float]:
        """CPU in cores and memory in bytes: the engine's stats when the runtime gives them,
        else the server's own process metrics. CPU is averaged over the span, memory is now."""
        if since_start:
            latest = self.series.latest
            started = latest.value(PROCESS_START) if latest is not None else None
            uptime = latest.wall - started if latest is not None and started else math.nan
            used = self.usage[-1][1].cpu_seconds if self.usage else (
                latest.value(PROCESS_CPU) if latest is not None else None)
            memory = self.usage[-1][1].memory_bytes if self.usage else (
                latest.value(PROCESS_MEMORY) if latest is not None else None)
            return {"cpu_cores": used / uptime if used is not None and uptime > 0 else math.nan,
                    "memory_bytes": memory if memory is not None else math.nan}
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
        (a one-off look at a server that has been running; a live baseline cannot be taken
        then, and the picture says what is missing)."""
        self._take_pending()
        scrapes = self.series.scrapes(window_s)
        caveat = None
        if self._live_baseline:
            caveat = LIVE_BASELINE_CAVEAT
            if since_start:
                return DriftPicture([], "", NO_BASELINE_ONCE.format(rows=self.baseline_rows),
                                    needs_data=True)
            if self.reference is None:
                span = self.series.first_rows(self.baseline_rows)
                if span is None:
                    counted = live_counts(self.series.scrapes(), since_start=True).rows
                    return DriftPicture([], "", f"Taking the first {self.baseline_rows} requests "
                                                f"as the baseline ({counted:.0f} so far): no "
                                                "dataset was attached when the model was bundled.",
                                        caveat=caveat, needs_data=True)
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
        return DriftPicture(rows, note, counts=counts, caveat=caveat,
                            needs_data=caveat is not None)

    def summary(self, window_s: float | None, since_start: bool = False) -> dict[str, Any]:
        """One JSON-ready snapshot over one span: figures, what was recognized, drift per feature,
        and in words what they cover (`span`) and what the baseline cannot show."""
        picture = self.drift(window_s, since_start)
        span = self.span(window_s, since_start)
        return finite_json({
            "url": self.url, "window_s": None if since_start else window_s,
            "since_start": since_start, "span": span.label, "status": self.status,
            "figures": self.figures(window_s, since_start), "recognized": self.recognized(),
            "connections_closed": self.connections_closed(window_s, since_start),
            "baseline": picture.baseline, "drift_note": picture.waiting,
            "baseline_caveat": picture.caveat, "needs_reference_data": picture.needs_data,
            "drift": [asdict(row) for row in picture.rows],
        })


def _closed_by_reason(scrapes: list[Scrape]) -> dict[str, float]:
    closed: dict[str, float] = {}
    for key, grown in increase(scrapes, CONNECTIONS_CLOSED).items():
        reason = dict(key).get("reason", "")
        closed[reason] = closed.get(reason, 0.0) + grown
    return closed
