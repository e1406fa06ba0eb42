"""Reading a server's metrics: PromQL arithmetic worked by hand, scrapes of real HTTP servers (a
plain prometheus_client app, a page that is not metrics, nothing listening), and Slipway's own
exposition turned back into per-bin feature counts."""

from __future__ import annotations

import math
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, ProcessCollector
from prometheus_client import start_http_server as start_prometheus_server

from studio.core.monitor.live_counts import live_counts
from studio.core.monitor.promql import histogram_quantile, increase, per_bin, quantile, rate
from studio.core.monitor.scrape import Gap, MetricsError, parse, recognize, scrape
from studio.core.monitor.series import MetricsSeries
from studio.core.serve.runtimes.base import free_port

SERVER_DIR = Path(__file__).resolve().parents[3] / "serving_templates" / "server"
if str(SERVER_DIR) not in sys.path:
    sys.path.insert(0, str(SERVER_DIR))

from slipway_server.metrics import FeatureProfile, Metrics

INF = math.inf


# --- histogram_quantile, worked by hand -----------------------------------------------------------

BUCKETS = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (INF, 40.0)]


def test_quantile_interpolates_inside_the_bucket_holding_the_rank():
    # rank = 0.5 * 40 = 20, first bucket with count >= 20 is le=0.5 (30):
    # 0.1 + (0.5 - 0.1) * (20 - 10) / (30 - 10) = 0.3
    assert histogram_quantile(0.5, BUCKETS) == pytest.approx(0.3)
    # rank = 0.9 * 40 = 36 lands in le=1 (40): 0.5 + (1 - 0.5) * (36 - 30) / (40 - 30) = 0.8
    assert histogram_quantile(0.9, BUCKETS) == pytest.approx(0.8)
    # q = 1: rank 40 is first reached by le=1: 0.5 + 0.5 * (40 - 30) / (40 - 30) = 1.0
    assert histogram_quantile(1.0, BUCKETS) == pytest.approx(1.0)


def test_quantile_in_the_first_bucket_interpolates_from_zero():
    # rank = 0.1 * 40 = 4 lands in le=0.1 (10): 0 + (0.1 - 0) * 4 / 10 = 0.04
    assert histogram_quantile(0.1, BUCKETS) == pytest.approx(0.04)
    # A first bound <= 0 has no natural lower bound: the bound itself is returned.
    # rank = 0.25 * 20 = 5 lands in le=-1 (10) -> -1
    assert histogram_quantile(0.25, [(-1.0, 10.0), (0.0, 20.0), (INF, 20.0)]) == -1.0


def test_quantile_in_the_inf_bucket_returns_the_second_highest_bound():
    # 10 of 50 observations are above 1: rank = 0.9 * 50 = 45 > 40 (le=1) -> the +Inf bucket,
    # whose width is unknown, so the answer is le=1, the second-highest bound.
    buckets = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (INF, 50.0)]
    assert histogram_quantile(0.9, buckets) == 1.0
    assert histogram_quantile(0.99, buckets) == 1.0


def test_quantile_of_an_empty_window_or_too_few_buckets_is_nan():
    assert math.isnan(histogram_quantile(0.5, [(0.1, 0.0), (1.0, 0.0), (INF, 0.0)]))
    assert math.isnan(histogram_quantile(0.5, [(INF, 5.0)]))  # fewer than two buckets
    assert math.isnan(histogram_quantile(0.5, []))
    # Without a +Inf bucket the total is unknown.
    assert math.isnan(histogram_quantile(0.5, [(0.1, 10.0), (1.0, 40.0)]))
    assert math.isnan(histogram_quantile(math.nan, BUCKETS))


def test_quantile_out_of_range_is_minus_or_plus_infinity():
    assert histogram_quantile(-0.1, BUCKETS) == -INF
    assert histogram_quantile(1.01, BUCKETS) == INF
    assert histogram_quantile(-1, []) == -INF  # checked before anything else, as PromQL does


def test_quantile_fixes_non_monotonic_buckets_and_sorts_and_merges_them():
    # le=0.5 (8) is below le=0.1 (10): the envelope raises it to 10, giving 10, 10, 40, 40.
    # rank = 20 lands in le=1: 0.5 + (1 - 0.5) * (20 - 10) / (40 - 10) = 0.6667
    # (without the fix-up it would be 0.5 + 0.5 * (20 - 8) / (40 - 8) = 0.6875)
    broken = [(0.1, 10.0), (0.5, 8.0), (1.0, 40.0), (INF, 40.0)]
    assert histogram_quantile(0.5, broken) == pytest.approx(0.5 + 0.5 * 10 / 30)
    # Order does not matter, and two series with the same bound add up (le=0.1: 4 + 6 = 10).
    shuffled = [(INF, 40.0), (0.5, 30.0), (0.1, 4.0), (1.0, 40.0), (0.1, 6.0)]
    assert histogram_quantile(0.5, shuffled) == pytest.approx(0.3)


# --- rates and windowed quantiles over scrapes ----------------------------------------------------


def _text(counter: dict[str, float], buckets: dict[str, list[float]]) -> str:
    """Exposition text of a counter by status and a latency histogram by route."""
    lines = ["# TYPE app_requests_total counter"]
    lines += [f'app_requests_total{{status="{s}"}} {v}' for s, v in counter.items()]
    lines.append("# TYPE app_latency_seconds histogram")
    for route, counts in buckets.items():
        for le, count in zip(("0.1", "0.5", "1.0", "+Inf"), counts, strict=True):
            lines.append(f'app_latency_seconds_bucket{{route="{route}",le="{le}"}} {count}')
        lines.append(f'app_latency_seconds_count{{route="{route}"}} {counts[-1]}')
    return "\n".join(lines) + "\n"


def test_rate_counts_a_reset_as_the_new_value():
    values = [10, 15, 3, 8]  # the server restarted between t=1 and t=2
    scrapes = [parse(_text({"200": v, "500": 1}, {}), monotonic=t) for t, v in enumerate(values)]
    # increase = (15 - 10) + 3 (since the reset) + (8 - 3) = 13, over 3 s.
    # Without reset handling it would be 8 - 10 = -2.
    assert increase(scrapes, "app_requests_total", {"status": "200"}) == {
        (("status", "200"),): 13.0}
    assert rate(scrapes, "app_requests_total", {"status": "200"}) == pytest.approx(13 / 3)
    # The counter's family name finds its `_total` samples; without a filter, series add up
    # (status 500 stayed at 1, so it adds nothing).
    assert rate(scrapes, "app_requests", {}) == pytest.approx(13 / 3)
    assert math.isnan(rate(scrapes[:1], "app_requests_total"))


def test_a_series_that_appears_between_scrapes_counts_from_zero():
    before = parse(_text({"200": 5}, {}), monotonic=0)
    after = parse(_text({"200": 7, "500": 2}, {}), monotonic=2)
    assert rate([before, after], "app_requests_total", {"status": "500"}) == pytest.approx(1.0)


def test_window_quantile_uses_bucket_deltas_summed_across_series():
    # Before: route a has 5, 10, 12, 12 cumulative; after: 15, 40, 52, 52. Deltas 10, 30, 40, 40
    # are BUCKETS, so the median is 0.3 as worked out above. Route b has no new requests.
    first = parse(_text({}, {"a": [5, 10, 12, 12], "b": [0, 0, 7, 7]}), monotonic=0)
    second = parse(_text({}, {"a": [15, 40, 52, 52], "b": [0, 0, 7, 7]}), monotonic=10)
    assert quantile(0.5, [first, second], "app_latency_seconds") == pytest.approx(0.3)
    assert quantile(0.5, [first, second], "app_latency_seconds", {"route": "a"}) == \
        pytest.approx(0.3)
    assert math.isnan(quantile(0.5, [first, second], "app_latency_seconds", {"route": "b"}))
    # The whole history of b (all in le=1) is seen only with a scrape from before it existed.
    empty = parse(_text({}, {}), monotonic=-1)
    assert quantile(0.5, [empty, first], "app_latency_seconds", {"route": "b"}) == \
        pytest.approx(0.5 + 0.5 * 3.5 / 7)


def test_window_quantile_survives_a_reset():
    # After a restart every bucket is below its old value: the new values are the increase,
    # 10, 30, 40, 40 again, not negative deltas.
    before = parse(_text({}, {"a": [100, 200, 210, 210]}), monotonic=0)
    after = parse(_text({}, {"a": [10, 30, 40, 40]}), monotonic=5)
    assert quantile(0.5, [before, after], "app_latency_seconds") == pytest.approx(0.3)


def test_series_window_rate_and_quantile_and_charts_break_at_a_gap():
    series = MetricsSeries(capacity=100)
    totals = {0: 0, 1: 10, 2: 30}
    for t, total in totals.items():
        series.add(parse(_text({"200": total, "500": t}, {"a": [t, 2 * t, 2 * t, 2 * t]}),
                         monotonic=float(t)))
    series.add_gap(3.0, "cannot reach the server")
    assert series.status == "cannot reach the server"
    series.add(parse(_text({"200": 31, "500": 3}, {"a": [3, 6, 6, 6]}), monotonic=4.0))
    series.add(parse(_text({"200": 35, "500": 3}, {"a": [3, 6, 8, 8]}), monotonic=5.0))
    assert series.status is None

    # Windows end at the newest scrape (t=5): the last 1 s holds t=4 and t=5.
    assert series.rate("app_requests_total", {"status": "200"}, window_seconds=1) == 4.0
    # Over everything, the counter deltas span the gap: (35 - 0) / 5 s.
    assert series.rate("app_requests_total", {"status": "200"}, window_seconds=None) == 7.0
    # t=4 -> t=5: the two new observations are both in le=1: median 0.5 + 0.5 * 1 / 2 = 0.75
    assert series.quantile(0.5, "app_latency_seconds", window_seconds=1) == pytest.approx(0.75)

    chart = series.rate_series("app_requests_total", by="status")
    assert chart.times == [1.0, 2.0, 3.0, 5.0]
    assert chart.lines == {"200": [10.0, 20.0, None, 4.0], "500": [1.0, 1.0, None, 0.0]}
    latency = series.quantile_series("app_latency_seconds", quantiles=(0.5, 0.99))
    assert list(latency.lines) == ["p50", "p99"]
    # t=0 -> t=1: one observation in le=0.1 and one in le=0.5, rank 1 -> 0.1 (le=0.1 holds 1).
    assert latency.lines["p50"][0] == pytest.approx(0.1)
    assert latency.lines["p50"][2] is None
    assert latency.lines["p99"][3] == pytest.approx(0.5 + 0.5 * 1.98 / 2)

    # A 2 s step takes every other scrape (t=0 -> t=2), then restarts after the gap.
    stepped = series.rate_series("app_requests_total", by="status", step=2.0)
    assert stepped.times == [2.0, 3.0]
    assert stepped.lines["200"] == [15.0, None]


def test_series_is_bounded():
    series = MetricsSeries(capacity=3)
    for t in range(5):
        series.add(parse(_text({"200": t}, {}), monotonic=float(t)))
    assert [s.monotonic for s in series.scrapes()] == [2.0, 3.0, 4.0]


# --- scraping real servers --------------------------------------------------------------------


class _Page(BaseHTTPRequestHandler):
    answer: Callable[[], tuple[int, str, bytes]]

    def do_GET(self) -> None:  # the name is http.server's API
        status, content_type, body = self.server.answer()  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def page() -> Iterator[tuple[str, dict]]:
    """A tiny HTTP server answering whatever `state["answer"]` returns: (status, type, body)."""
    state: dict = {"answer": lambda: (200, "text/html", b"<html><body>Hello</body></html>")}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    server.answer = lambda: state["answer"]()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/metrics", state
    server.shutdown()
    server.server_close()


@pytest.fixture
def prometheus_app() -> Iterator[tuple[str, Counter, Histogram]]:
    """A plain prometheus_client app, the kind a user points the studio at."""
    registry = CollectorRegistry()
    jobs = Counter("jobs", "Jobs done.", ["kind"], registry=registry)
    latency = Histogram("handler_latency_seconds", "Handler latency.", registry=registry,
                        buckets=(0.01, 0.1, 1.0))
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    server, thread = start_prometheus_server(0, addr="127.0.0.1", registry=registry)
    yield f"http://127.0.0.1:{server.server_port}/metrics", jobs, latency
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_scrape_a_plain_prometheus_client_app(prometheus_app):
    url, jobs, latency = prometheus_app
    jobs.labels("resize").inc(3)
    for seconds in (0.005, 0.05, 0.05, 0.5):
        latency.observe(seconds)
    first = scrape(url)
    assert first.value("jobs_total", kind="resize") == 3.0
    assert first.types["jobs"] == "counter"  # the family is named without `_total`
    assert first.types["handler_latency_seconds"] == "histogram"
    assert first.value("handler_latency_seconds_bucket", le="0.1") == 3.0
    assert first.value("handler_latency_seconds_bucket", le="+Inf") == 4.0

    recognized = recognize(first)
    assert recognized["handler_latency_seconds"] == "latency histogram"
    assert recognized["process_cpu_seconds_total"] == "CPU time"
    assert "process_resident_memory_bytes" in recognized
    assert "python_gc_objects_collected_total" in recognized
    assert "jobs_total" not in recognized  # an app's own counter means nothing to the studio

    jobs.labels("resize").inc(2)
    latency.observe(0.5)
    second = scrape(url)
    assert second.monotonic > first.monotonic and second.wall >= first.wall
    assert sum(increase([first, second], "jobs_total").values()) == 2.0
    # The one new observation is in (0.1, 1]: its median is the middle of that bucket.
    assert quantile(0.5, [first, second], "handler_latency_seconds") == pytest.approx(0.55)


@pytest.mark.parametrize(("status", "content_type", "body", "expected"), [
    (200, "text/html; charset=utf-8", b"<html><body>Hi</body></html>", "(got text/html, 200)"),
    (200, "application/json", b'{"status": "ok"}', "(got application/json, 200)"),
    (404, "text/plain", b"Not Found", "(got text/plain, 404)"),
    (200, "text/plain", b"this is not metrics at all\n", "(got text/plain, 200)"),
])
def test_a_page_that_is_not_prometheus_text_is_a_clear_error(page, status, content_type, body,
                                                              expected):
    url, state = page
    state["answer"] = lambda: (status, content_type, body)
    with pytest.raises(MetricsError) as caught:
        scrape(url)
    assert caught.value.message.startswith(f"{url} did not answer with Prometheus text {expected}")
    assert caught.value.hint


def test_nothing_listening_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/metrics"
    with pytest.raises(MetricsError, match=rf"^cannot reach {url}") as caught:
        scrape(url)
    assert caught.value.hint


def test_a_server_that_never_answers_times_out_as_a_clear_error():
    with socket.socket() as silent:  # accepts connections (kernel backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/metrics"
        with pytest.raises(MetricsError, match=r"no answer within 0\.2 s"):
            scrape(url, timeout=0.2)


def test_a_failed_scrape_is_a_gap_and_the_series_recovers(page):
    url, state = page
    text = _text({"200": 1}, {}).encode()
    state["answer"] = lambda: (200, "text/plain; version=0.0.4", text)
    series = MetricsSeries()
    assert series.record(url) is not None
    state["answer"] = lambda: (503, "text/html", b"<h1>Service Unavailable</h1>")
    assert series.record(url) is None
    assert isinstance(series.points[-1], Gap)
    assert "(got text/html, 503)" in series.status
    state["answer"] = lambda: (200, "text/plain; version=0.0.4", text)
    assert series.record(url) is not None
    assert series.status is None
    assert [type(p).__name__ for p in series.points] == ["Scrape", "Gap", "Scrape"]
    assert series.rate_series("app_requests_total").lines["app_requests_total"][0] is None


# --- Slipway's own exposition -----------------------------------------------------------------

REFERENCE = {
    "rows": 100,
    "features": {
        "x": {"kind": "numeric", "edges": [1.0, 2.5, 4.0], "counts": [25, 25, 25, 25]},
        "color": {"kind": "categorical", "categories": ["red", "blue"], "counts": [60, 40]},
    },
}


def _slipway_metrics(classification: bool = True, reference: dict | None = REFERENCE) -> Metrics:
    features = [SimpleNamespace(name="x", numeric=True),
                SimpleNamespace(name="color", numeric=False)]
    profile = FeatureProfile(reference, features, classification=classification)
    return Metrics(name="demo", version="1", sha256="0" * 64, profile=profile,
                   process_metrics=False)


def test_slipway_feature_bins_come_back_per_bin(page):
    metrics = _slipway_metrics()
    url, state = page
    state["answer"] = lambda: (200, "text/plain; version=1.0.0; charset=utf-8",
                               metrics.exposition())
    metrics.observe_numeric("x", np.array([0.5, 3.0]))
    before = scrape(url)
    # Bins are (-inf, 1], (1, 2.5], (2.5, 4], (4, inf); a value on an edge belongs to the bin
    # the edge closes, as in the reference profile.
    metrics.observe_numeric("x", np.array([0.5, 1.0, 1.5, 2.5, 3.0, 10.0, 11.0]))
    metrics.observe_categories("color", ["red", "red", "green"])
    metrics.observe_labels(["yes", "no", "yes"])
    after = scrape(url)

    counted = live_counts([before, after])
    assert counted.numeric["x"] == ([1.0, 2.5, 4.0], [2.0, 2.0, 1.0, 2.0])
    # Values the reference never saw are counted by the server as `__other__`.
    assert counted.categorical["color"] == {"red": 2.0, "blue": 0.0, "__other__": 1.0}
    assert counted.predictions == {"yes": 2.0, "no": 1.0}
    assert counted.rows == 7.0
    assert counted.counts() == {"x": [2.0, 2.0, 1.0, 2.0],
                                "color": {"red": 2.0, "blue": 0.0, "__other__": 1.0}}
    # From the server's start, the two values observed before the first scrape count too.
    assert live_counts([before, after], since_start=True).numeric["x"][1] == [3, 2, 2, 2]

    recognized = recognize(after)
    assert recognized["slipway_requests_total"] == "requests by route and status"
    assert recognized["slipway_request_duration_seconds"] == "request latency by route"
    assert recognized["slipway_feature_value"].endswith("(drift)")
    assert "slipway_feature_category_total" in recognized
    assert "slipway_predictions_total" in recognized


def test_slipway_regression_predictions_and_a_server_without_reference():
    regression = _slipway_metrics(classification=False, reference={
        **REFERENCE, "predictions": {"kind": "numeric", "edges": [0.0, 10.0], "counts": [1, 1, 1]}})
    before = parse(regression.exposition().decode(), monotonic=0)
    regression.observe_prediction_values(np.array([-1.0, 5.0, 5.0, 20.0]))
    after = parse(regression.exposition().decode(), monotonic=1)
    assert live_counts([before, after]).predictions == ([0.0, 10.0], [1.0, 2.0, 1.0])

    bare = parse(_slipway_metrics(reference=None).exposition().decode(), monotonic=0)
    counted = live_counts([bare, bare])
    assert (counted.numeric, counted.categorical, counted.predictions) == ({}, {}, None)
    assert counted.rows == 0


def test_first_rows_finds_the_span_of_the_first_n_rows():
    metrics = _slipway_metrics()
    series = MetricsSeries()
    for t, rows in enumerate([0, 3, 4, 5]):
        metrics.observe_numeric("x", np.full(rows, 2.0))
        series.add(parse(metrics.exposition().decode(), monotonic=float(t)))
    # Totals counted are 0, 3, 7, 12: 5 rows are reached by the third scrape.
    span = series.first_rows(5)
    assert span is not None and [s.monotonic for s in span] == [0.0, 1.0, 2.0]
    assert live_counts(span, since_start=True).numeric["x"][1] == [0, 7, 0, 0]
    assert series.first_rows(13) is None


def test_per_bin_never_goes_negative():
    # le=0.5 below le=0.1 (a reset seen by one bucket only): the envelope keeps bins >= 0.
    assert per_bin([(0.1, 10.0), (0.5, 8.0), (1.0, 12.0), (INF, 12.0)]) == (
        [0.1, 0.5, 1.0], [10.0, 0.0, 2.0, 0.0])


def test_a_series_window_increase_equals_the_step_by_step_sum_across_resets_and_new_series():
    """MetricsSeries keeps reset-corrected running totals so a window's increase costs two
    lookups; it must agree with summing every step, resets and late-appearing series included."""
    rng = np.random.default_rng(7)
    series = MetricsSeries()
    loose = []  # the same scrapes, not taken by a series: increase() sums them step by step
    value = {"200": 0.0, "500": 0.0}
    for step in range(60):
        for status in value:
            value[status] += float(rng.integers(0, 20))
        if step == 25:
            value["200"] = 3.0  # the server restarted
        text = "".join(f'slipway_requests_total{{route="/predict",status="{s}"}} {v}\n'
                       for s, v in value.items() if s == "200" or step >= 10)
        text = "# TYPE slipway_requests_total counter\n" + text
        series.add(parse(text, monotonic=float(step)))
        loose.append(parse(text, monotonic=float(step)))
    for start, end in [(0, 59), (5, 30), (24, 27), (9, 11), (40, 41)]:
        fast = increase(series.scrapes()[start:end + 1], "slipway_requests_total")
        slow = increase(loose[start:end + 1], "slipway_requests_total")
        assert fast == pytest.approx(slow), (start, end)
