"""What the Monitor page draws, computed from a Monitor off the GUI thread: the chart lines, the
headline figures with what they cover, the drift table and the selected feature's histograms;
and the two pieces of wording and drawing the page applies to them (`headline`, `drawable`)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from studio.core.monitor.drift import PREDICTIONS_ROW, DriftError
from studio.core.monitor.live_counts import LiveCounts
from studio.core.monitor.monitor import (
    BATCH_SIZE,
    CONNECTIONS_CLOSED,
    INFERENCE_DURATION,
    INFLIGHT,
    PREDICTION_ROUTES,
    PROCESS_CPU,
    PROCESS_MEMORY,
    REQUEST_DURATION,
    REQUESTS,
    DriftPicture,
    Monitor,
)
from studio.core.monitor.promql import increase
from studio.core.monitor.reference import CategoryCounts
from studio.core.monitor.scrape import Scrape
from studio.core.monitor.series import ChartSeries
from studio.core.units import figure


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
    span: str
    """What the figures and the drift cover, in words ("over the last 5 min")."""
    connections_closed: dict[str, float]
    """Connections the server closed to protect itself over the span, by reason."""
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
        # The mean, not a quantile: interpolated inside the bucket `le=1`, a p50 reads 0.5 rows
        # when every batch held one.
        "batch": _lines(series.mean_series(BATCH_SIZE, window_seconds=window_s), now),
        **_gauges(monitor, window_s, now),
    }
    drift, error = None, None
    try:
        drift = monitor.drift(window_s)
    except DriftError as exc:  # a profile on other bins: said, and the charts go on
        error = exc
    if drift is not None and drift.rows and feature not in {r.feature for r in drift.rows}:
        feature = drift.rows[0].feature
    return MonitorView(now, charts, monitor.figures(window_s), monitor.span(window_s).label,
                       monitor.connections_closed(window_s), monitor.status,
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
    if name is None:
        return None
    history = monitor.drift_history.get(name, ())
    psi_times, psi = [t - now for t, _ in history], [v for _, v in history]
    reference = monitor.reference
    profile = None if reference is None else (
        reference.predictions if name == PREDICTIONS_ROW else reference.features.get(name))
    if profile is None or counts is None:
        return FeatureView(name, [], [], [], psi_times, psi)
    if isinstance(profile, CategoryCounts):
        live = (counts.predictions if name == PREDICTIONS_ROW
                else counts.categorical.get(name)) or {}
        return FeatureView(name, list(profile.categories), [float(c) for c in profile.counts],
                           [float(live.get(c, 0.0)) for c in profile.categories], psi_times, psi)
    edges = profile.edges
    bins = counts.predictions if name == PREDICTIONS_ROW else counts.numeric.get(name)
    live = list(bins[1]) if isinstance(bins, tuple) else [0.0] * (len(edges) + 1)
    labels = [f"≤{short(e)}" for e in edges] + ([f">{short(edges[-1])}"] if edges else ["all"])
    return FeatureView(name, labels, [float(c) for c in profile.counts], live, psi_times, psi)


def short(value: float) -> str:
    """A bin edge short enough for an axis under a dozen bins: 3 significant digits, thousands
    and millions as k and M (1015 -> '1.01k', not '1.01e+03')."""
    text = f"{value:.3g}"
    if "e+" in text:
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale * 0.9995:
                return f"{value / scale:.3g}{suffix}"
    return text


def drawable(times: list[float], values: list[float | None]) -> tuple[list[float], list[float]]:
    """Chart points with breaks: pyqtgraph draws NaN as a gap (connect='finite'). A value between
    two gaps (traffic in one interval only) is drawn across its interval, from the time before:
    a lone point has no line to show it, and a short burst would leave the chart empty."""
    def missing(i: int) -> bool:
        return not 0 <= i < len(values) or values[i] is None or math.isnan(values[i])

    xs: list[float] = []
    ys: list[float] = []
    for i, at in enumerate(times):
        if i > 0 and not missing(i) and missing(i - 1) and missing(i + 1):
            xs.append(times[i - 1])
            ys.append(values[i])
        xs.append(at)
        ys.append(math.nan if missing(i) else values[i])
    return xs, ys


def headline(view: MonitorView) -> str:
    """The figures above the charts, each saying what it covers: the request rate now (the latest
    interval) and in flight, then the window's figures named by their span. No request in the
    window reads as such, not as a latency of "–" or "nan"."""
    figures = view.figures
    now = f"Now {figure(figures['request_rate_now'], ',.1f')} req/s, " \
          f"{figures['inflight']:.0f} in flight"
    if figures["requests"] > 0:
        window = (f"{figure(figures['request_rate'], ',.1f', ' req/s')}, "
                  f"p50 {figure(figures['p50_ms'], '.2f', ' ms')}, "
                  f"p99 {figure(figures['p99_ms'], '.2f', ' ms')}, "
                  f"{figure(figures['error_ratio'], '.1%')} errors")
    else:
        window = "no requests"
    if CONNECTIONS_CLOSED in view.recognized:
        closed = view.connections_closed
        total = sum(closed.values())
        window += f", {total:,.0f} connection{'' if total == 1 else 's'} closed by the server"
        if total:
            window += " (" + ", ".join(f"{reason.replace('_', ' ')} {count:,.0f}"
                                       for reason, count in sorted(closed.items()) if count) + ")"
    return f"{now} · {view.span}: {window}"
