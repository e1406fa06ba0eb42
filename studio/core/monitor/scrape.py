"""The one way the studio reads a server's metrics: GET its Prometheus (or OpenMetrics) text and
parse it with prometheus_client into a Scrape; and which of the exported metrics the studio knows.

How prometheus_client's parser names samples, which every lookup here depends on: a counter's
family name loses its `_total` suffix but its samples always carry it (a counter exposed as
`foo 3` comes back as sample `foo_total`); a histogram yields `<name>_bucket` samples with an `le`
label (`"0.1"`, `"1.0"`, `"+Inf"`), `<name>_count` and `<name>_sum`; `<name>_created` timestamps
come back as families of their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import httpx
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from studio.core.errors import ExitStatus, StudioError, first_line
from studio.core.serve.client import auth_headers

LabelSet = tuple[tuple[str, str], ...]
"""A series' labels as sorted (name, value) pairs: hashable, and equal for equal label sets."""
SampleKey = tuple[str, LabelSet]
ACCEPT = "text/plain;version=0.0.4;q=1.0, application/openmetrics-text;q=0.5, */*;q=0.1"


class MetricsError(StudioError):
    """A metrics endpoint cannot be reached or does not answer with Prometheus text."""

    exit_status = ExitStatus.FAILED


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


def scrape(url: str, client: httpx.Client | None = None, timeout: float = 2.0,
           api_key: str | None = None) -> Scrape:
    """GET `url` and parse it. Raises MetricsError, never an httpx or parser exception.
    `api_key` is sent the way a Slipway server checks it (for a server that protects /metrics)."""
    http = client or httpx.Client(follow_redirects=True)
    started, wall = time.monotonic(), time.time()
    try:
        response = http.get(url, timeout=timeout,
                            headers={"Accept": ACCEPT, **auth_headers(api_key)})
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


# --- what a server exports -------------------------------------------------------------------------


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
    Known("slipway_connections_closed_total", "counter",
          "connections the server closed to protect itself, by reason"),
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
