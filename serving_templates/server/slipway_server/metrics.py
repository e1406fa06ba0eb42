"""Prometheus metrics from the app's own CollectorRegistry, cheap on the hot path.

The request path only bumps plain Python counters (the event loop is one thread, so no lock is
needed there); the inference thread updates its own under one lock. A custom collector turns them
into metric families when /metrics is scraped. This also lets every feature histogram carry its
own buckets (the reference profile's bin edges), which prometheus_client's Histogram cannot do
for one family with a `feature` label.

Bucket semantics are Prometheus': a value v is counted in every bucket whose bound `le` >= v, the
same as the studio's reference profile (numpy.searchsorted(edges, v, side="left")).
"""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.utils import floatToGoString

DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
OTHER_CATEGORY = "__other__"
"""Where values outside the reference categories are counted (keeps label cardinality bounded)."""

__all__ = ["CONTENT_TYPE_LATEST", "OTHER_CATEGORY", "Histogram", "Metrics"]


class Histogram:
    """One histogram series: per-bucket counts (the last is +Inf) and the sum of observations."""

    __slots__ = ("_typed_bounds", "bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self._typed_bounds: dict[Any, np.ndarray] = {}

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def observe_array(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        # Compare in the values' own precision: float32(v) <= float32(edge) whenever v <= edge,
        # so a float32 feature lands in the bin its JSON value belongs to.
        bounds = self._typed_bounds.get(values.dtype)
        if bounds is None:
            bounds = self._typed_bounds[values.dtype] = np.asarray(self.bounds,
                                                                   dtype=values.dtype)
        index = np.searchsorted(bounds, values, side="left")
        counts = np.bincount(index, minlength=len(self.counts))
        for i, n in enumerate(counts.tolist()):
            if n:
                self.counts[i] += n
        self.total += float(values.sum(dtype=np.float64))

    def snapshot(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative buckets as prometheus_client wants them, and the sum."""
        buckets = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            running += count
            buckets.append((floatToGoString(bound), running))
        return buckets, self.total


class FeatureProfile:
    """How live values of the reference features are counted."""

    def __init__(self, reference: dict[str, Any] | None, features: Sequence[Any],
                 classification: bool) -> None:
        self.numeric: dict[str, Histogram] = {}
        self.categories: dict[str, dict[str, int]] = {}
        self.predictions: dict[str, int] | None = None
        self.prediction_values: Histogram | None = None
        if reference is None:
            return
        by_name = {f.name: f for f in features}
        profiles = reference.get("features") or {}
        if not isinstance(profiles, dict):
            raise ValueError(  # noqa: TRY004 - reported as a config error
                "'reference.features' must be an object of feature name to profile")
        for name, profile in profiles.items():
            if name not in by_name:
                continue  # a reference column the model does not take: nothing to count
            if not isinstance(profile, dict):
                raise ValueError(  # noqa: TRY004 - reported as a config error
                    f"reference of feature '{name}' must be an object")
            kind = profile.get("kind")
            if kind == "numeric":
                if not by_name[name].numeric:
                    raise ValueError(f"reference gives numeric bins for feature '{name}', "
                                     "which takes strings")
                self.numeric[name] = Histogram(_edges(profile.get("edges"), f"feature '{name}'"))
            elif kind == "categorical":
                categories = profile.get("categories") or []
                if not isinstance(categories, list):
                    raise ValueError(f"reference categories of feature '{name}' must be a list")
                self.categories[name] = {str(c): 0 for c in categories}
            else:
                raise ValueError(f"reference of feature '{name}' has kind {kind!r}; "
                                 "expected 'numeric' or 'categorical'")
        predictions = reference.get("predictions")
        if classification:
            self.predictions = {}
        elif isinstance(predictions, dict) and predictions.get("kind") == "numeric":
            self.prediction_values = Histogram(_edges(predictions.get("edges"), "predictions"))

    @property
    def active(self) -> bool:
        return bool(self.numeric or self.categories or self.predictions is not None
                    or self.prediction_values is not None)


def _edges(edges: Any, what: str) -> list[float]:
    if not isinstance(edges, list) or not all(
            isinstance(e, int | float) and not isinstance(e, bool) for e in edges):
        raise ValueError(f"reference edges of {what} must be a list of numbers")
    if any(b <= a for a, b in pairwise(edges)):
        raise ValueError(f"reference edges of {what} must be strictly increasing")
    return [float(e) for e in edges]


class Metrics:
    """Every metric the server exports, and the registry they are exported from."""

    def __init__(self, *, name: str, version: str, sha256: str,
                 profile: FeatureProfile | None = None, process_metrics: bool = True) -> None:
        self.info = {"name": name, "version": version, "sha256": sha256}
        # Event-loop side: no lock needed.
        self.requests: dict[tuple[str, int], int] = {}
        self.durations: dict[str, Histogram] = {}
        self.inflight = 0
        self.closed_connections: dict[str, int] = {}
        # Inference-thread side: guarded by `lock`.
        self.lock = threading.Lock()
        self.inference = Histogram(DURATION_BUCKETS)
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.profile = profile or FeatureProfile(None, [], False)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        if process_metrics:
            with contextlib.suppress(OSError):  # platforms without /proc
                ProcessCollector(registry=self.registry)

    # --- request side (event loop) ---

    def request_done(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        histogram = self.durations.get(route)
        if histogram is None:
            histogram = self.durations[route] = Histogram(DURATION_BUCKETS)
        histogram.observe(seconds)

    def connection_closed(self, reason: str) -> None:
        """The connection guards closed a connection (connections.GuardedHttpToolsProtocol)."""
        self.closed_connections[reason] = self.closed_connections.get(reason, 0) + 1

    # --- inference side (any thread) ---

    def batch_done(self, rows: int, seconds: float) -> None:
        with self.lock:
            self.inference.observe(seconds)
            self.batch_size.observe(rows)

    def observe_numeric(self, feature: str, values: np.ndarray) -> None:
        histogram = self.profile.numeric[feature]
        with self.lock:
            histogram.observe_array(values)

    def observe_categories(self, feature: str, values: Iterable[Any]) -> None:
        counts = self.profile.categories[feature]
        with self.lock:
            for value in values:
                key = value if type(value) is str else str(value)
                if key in counts:
                    counts[key] += 1
                else:
                    counts[OTHER_CATEGORY] = counts.get(OTHER_CATEGORY, 0) + 1

    def observe_labels(self, labels: Iterable[Any]) -> None:
        counts = self.profile.predictions
        if counts is None:
            return
        with self.lock:
            for label in labels:
                key = label if type(label) is str else str(label)
                counts[key] = counts.get(key, 0) + 1

    def observe_prediction_values(self, values: np.ndarray) -> None:
        histogram = self.profile.prediction_values
        if histogram is not None:
            with self.lock:
                histogram.observe_array(values)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Collector:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        # The request metrics carry the model's version, so that two versions scraped into one
        # Prometheus (a canary beside the current one, a rolling update) never add up together.
        version = m.info["version"]
        requests = CounterMetricFamily("slipway_requests",
                                       "HTTP requests by route and status, per model version.",
                                       labels=["route", "status", "version"])
        for (route, status), count in sorted(m.requests.items()):
            requests.add_metric([route, str(status), version], count)
        yield requests

        durations = HistogramMetricFamily("slipway_request_duration_seconds",
                                          "Time from request to response, by route, per model "
                                          "version.", labels=["route", "version"])
        for route, histogram in sorted(m.durations.items()):
            buckets, total = histogram.snapshot()
            durations.add_metric([route, version], buckets, total)
        yield durations

        inflight = GaugeMetricFamily("slipway_inflight_requests",
                                     "Requests being served right now.")
        inflight.add_metric([], m.inflight)
        yield inflight

        closed = CounterMetricFamily(
            "slipway_connections_closed",
            "Connections closed to protect the server: connection_limit, header_too_large, "
            "header_timeout (a head too slow), silent (no request).", labels=["reason"])
        for reason, count in sorted(m.closed_connections.items()):
            closed.add_metric([reason], count)
        yield closed

        info = GaugeMetricFamily("slipway_model_info", "The model this server serves.",
                                 labels=["name", "version", "sha256"])
        info.add_metric([m.info["name"], m.info["version"], m.info["sha256"]], 1)
        yield info

        with m.lock:
            inference = m.inference.snapshot()
            batch = m.batch_size.snapshot()
            profile = m.profile
            numeric = {name: h.snapshot() for name, h in profile.numeric.items()}
            categories = {name: dict(c) for name, c in profile.categories.items()}
            predictions = dict(profile.predictions) if profile.predictions is not None else None
            values = profile.prediction_values.snapshot() if profile.prediction_values else None

        family = HistogramMetricFamily("slipway_inference_duration_seconds",
                                       "Time of one onnxruntime call (one batch).")
        family.add_metric([], *inference)
        yield family
        family = HistogramMetricFamily("slipway_batch_size", "Rows per onnxruntime call.")
        family.add_metric([], *batch)
        yield family

        if numeric:
            family = HistogramMetricFamily(
                "slipway_feature_value",
                "Served values of each numeric feature, on the reference profile's bin edges.",
                labels=["feature"])
            for name, (buckets, total) in numeric.items():
                family.add_metric([name], buckets, total)
            yield family
        if categories:
            family = CounterMetricFamily("slipway_feature_category",
                                         "Served values of each categorical feature.",
                                         labels=["feature", "category"])
            for name, counts in categories.items():
                for category, count in counts.items():
                    family.add_metric([name, category], count)
            yield family
        if predictions is not None:
            family = CounterMetricFamily("slipway_predictions", "Predicted labels.",
                                         labels=["label"])
            for label, count in sorted(predictions.items()):
                family.add_metric([label], count)
            yield family
        if values is not None:
            family = HistogramMetricFamily(
                "slipway_prediction_value",
                "Predicted values, on the reference profile's bin edges.")
            family.add_metric([], *values)
            yield family
