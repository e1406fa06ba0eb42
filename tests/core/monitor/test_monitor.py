"""The Monitor against real servers on 127.0.0.1: the demo wine model served as a process (bundled
with the wine dataset as its reference, or with no dataset at all), a plain prometheus_client app
that goes down and comes back, and pages that are not metrics."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator

import pytest
from monitor_servers import (
    WINE_FEATURES,
    Background,
    TextServer,
    rows_by_feature,
    running_demo,
    send,
    serve_demo,
    server_reference,
    wine_bodies,
)

from studio.core.loadtest.payloads import parse_drift
from studio.core.monitor.drift import PREDICTIONS_ROW, DriftError
from studio.core.monitor.monitor import Monitor
from studio.core.monitor.reference import ReferenceProfile
from studio.core.monitor.scrape import Gap, Scrape
from studio.core.monitor.view import build_view
from studio.core.serve.runtimes.base import Deployment, ResourceUsage, free_port

SERVERS_REFERENCE = "the server's reference profile"
GIVEN_REFERENCE = "the reference profile you gave"


@pytest.fixture(scope="module")
def provisional_server() -> Iterator[Deployment]:
    """The demo model served with no dataset: its profile's bins come from the schema."""
    with running_demo(None) as deployment:
        yield deployment


# --- a server bundled with a reference dataset ------------------------------------------------


def test_the_servers_reference_is_used_and_its_own_rows_do_not_drift(reference_server, wine_csv):
    url = reference_server.url
    monitor = Monitor(url)
    first = monitor.poll()
    assert first.error is None and first.scrape is not None
    assert monitor.reference_note == SERVERS_REFERENCE
    assert monitor.reference is not None and monitor.reference.source == "dataset"
    assert monitor.reference.rows == 178

    report = send(url, wine_bodies(url, wine_csv), seconds=2.0)
    monitor.poll()
    picture = monitor.drift(None)

    assert picture.waiting is None
    assert picture.baseline == SERVERS_REFERENCE
    rows = rows_by_feature(picture)
    features = [f for f in monitor.reference.features]
    assert len(features) == WINE_FEATURES
    assert set(rows) == {*features, PREDICTIONS_ROW}
    for row in picture.rows:
        assert row.level == "ok", row
        assert row.psi < monitor.thresholds.psi_warn
        assert row.reference_count == 178
        # every answered request was counted once per feature, and once as a prediction
        assert row.live_count == report.completed, row
    assert rows["alcohol"].kind == "numeric" and rows[PREDICTIONS_ROW].kind == "categorical"


def test_alcohol_shifted_two_deviations_is_the_first_alert(reference_server, wine_csv):
    url = reference_server.url
    monitor = Monitor(url)
    monitor.poll()
    send(url, wine_bodies(url, wine_csv, [parse_drift("alcohol=+2sd")]), seconds=2.0)
    monitor.poll()
    picture = monitor.drift(None)

    assert picture.rows[0].feature == "alcohol"
    assert picture.rows[0].level == "alert"
    assert picture.rows[0].psi >= monitor.thresholds.psi_alert
    assert picture.rows[0].ks > 0.3  # most of the mass moved up the ordered bins
    for row in picture.rows[1:]:
        if row.feature != PREDICTIONS_ROW:  # the predictions may follow alcohol; inputs may not
            assert row.level == "ok", row
    # the PSI of each row is remembered for the page's chart
    assert monitor.drift_history["alcohol"][-1][1] == pytest.approx(picture.rows[0].psi)


def test_a_metrics_url_is_accepted_as_well_as_the_base_url(reference_server):
    monitor = Monitor(f"{reference_server.url}/metrics/")
    assert monitor.metrics_url == f"{reference_server.url}/metrics"
    monitor.poll()
    assert monitor.status is None
    assert monitor.reference_note == SERVERS_REFERENCE


def test_figures_while_load_runs(reference_server, wine_csv):
    url = reference_server.url
    bodies = wine_bodies(url, wine_csv)
    monitor = Monitor(url)
    monitor.poll()
    narrow = []  # the last second's rate, while the load runs
    with Background(send, url, bodies, seconds=2.0) as load:
        polls = 0
        while load.running:
            time.sleep(0.4)
            monitor.poll()
            polls += 1
            narrow.append(monitor.figures(1.0)["request_rate"])
    assert polls >= 3
    assert monitor.status is None
    figures = monitor.figures(None)

    assert 0 < figures["request_rate"] < 400
    assert figures["error_rate"] == 0 and figures["error_ratio"] == 0
    for name in ("p50_ms", "p95_ms", "p99_ms", "inference_p50_ms"):
        assert math.isfinite(figures[name]) and figures[name] > 0, name
    assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] < 1000
    assert figures["inflight"] >= 0
    # a narrower window still has at least two scrapes (the load's process may take a while to
    # end after its last request: the rate is read while it runs)
    assert max(narrow) > 0

    resources = monitor.resources(None)
    assert math.isfinite(resources["cpu_cores"]) and resources["cpu_cores"] >= 0
    assert math.isfinite(resources["memory_bytes"]) and resources["memory_bytes"] > 10e6
    assert figures["memory_bytes"] == resources["memory_bytes"]


def test_summary_is_strict_json(reference_server, wine_csv):
    url = reference_server.url
    monitor = Monitor(url)
    monitor.poll()
    # one scrape: rates and quantiles cannot be computed yet (NaN), and must become null
    early = json.loads(json.dumps(monitor.summary(60.0), allow_nan=False))
    assert early["figures"]["p50_ms"] is None and early["figures"]["request_rate"] is None

    send(url, wine_bodies(url, wine_csv), seconds=1.0)
    monitor.poll()
    summary = monitor.summary(60.0)
    text = json.dumps(summary, allow_nan=False)
    back = json.loads(text)
    assert back["url"] == url and back["window_s"] == 60.0 and back["status"] is None
    assert back["baseline"] == SERVERS_REFERENCE and back["drift_note"] is None
    assert back["figures"]["request_rate"] > 0
    assert "slipway_requests_total" in back["recognized"]
    assert {row["feature"] for row in back["drift"]} >= {"alcohol", "proline", PREDICTIONS_ROW}
    # categorical rows have no KS: null, not NaN
    predictions = next(r for r in back["drift"] if r["feature"] == PREDICTIONS_ROW)
    assert predictions["ks"] is None

    since_start = monitor.summary(None, since_start=True)
    json.dumps(since_start, allow_nan=False)


# --- a reference profile given explicitly ---------------------------------------------------------


def test_a_given_profile_is_used_and_a_feature_it_lacks_is_not_in_reference(reference_server,
                                                                           wine_csv):
    url = reference_server.url
    profile = server_reference(url)
    del profile["features"]["proline"]
    # hue: the given profile puts every row in the first bin; the server's own says deciles
    hue = profile["features"]["hue"]
    hue["counts"] = [sum(hue["counts"])] + [0] * (len(hue["counts"]) - 1)

    monitor = Monitor(url, reference=ReferenceProfile.model_validate(profile))
    assert monitor.reference_note == GIVEN_REFERENCE
    first = monitor.poll()
    assert first.reference is None  # the server is not asked for its own
    send(url, wine_bodies(url, wine_csv), seconds=1.0)
    monitor.poll()
    picture = monitor.drift(None)

    assert picture.baseline == GIVEN_REFERENCE
    rows = rows_by_feature(picture)
    assert rows["proline"].level == "not in reference"
    assert math.isnan(rows["proline"].psi) and rows["proline"].live_count > 0
    assert picture.rows[-1].feature == "proline"  # rows without a PSI come last
    assert rows["hue"].level == "alert"  # against the given profile, not the server's
    assert picture.rows[0].feature == "hue"
    assert rows["alcohol"].level == "ok"


def test_a_given_profile_on_other_bins_is_not_compared_bin_by_bin(reference_server, wine_csv):
    url = reference_server.url
    profile = server_reference(url)
    alcohol = profile["features"]["alcohol"]
    alcohol["edges"] = [edge + 100 for edge in alcohol["edges"]]
    alcohol["counts"] = [sum(alcohol["counts"])] + [0] * (len(alcohol["counts"]) - 1)

    monitor = Monitor(url, reference=ReferenceProfile.model_validate(profile))
    monitor.poll()
    send(url, wine_bodies(url, wine_csv), seconds=1.0)
    monitor.poll()
    try:
        rows = rows_by_feature(monitor.drift(None))
    except DriftError as exc:
        assert "alcohol" in str(exc)
        return
    assert rows["alcohol"].level != "alert", rows["alcohol"]


def test_a_given_profile_with_fewer_bins_is_a_drift_error(reference_server, wine_csv):
    url = reference_server.url
    profile = server_reference(url)
    profile["features"]["alcohol"] = {"kind": "numeric", "edges": [12.0, 13.0, 14.0],
                                      "counts": [40, 60, 50, 28]}
    monitor = Monitor(url, reference=ReferenceProfile.model_validate(profile))
    monitor.poll()
    monitor.poll()
    with pytest.raises(DriftError, match="alcohol"):
        monitor.drift(None)


# --- a server bundled without a dataset: the first requests are the baseline ------------------


def test_without_a_dataset_the_first_requests_become_the_baseline(provisional_server):
    url = provisional_server.url
    assert server_reference(url)["source"] == "schema"
    bodies = wine_bodies(url, None)
    monitor = Monitor(url, baseline_rows=100)
    monitor.poll()
    assert monitor.reference is None  # the schema's bins are no baseline

    waiting = monitor.drift(None)
    assert waiting.rows == []
    assert "first 100 requests" in waiting.waiting and "baseline" in waiting.waiting
    assert "(0 so far)" in waiting.waiting

    send(url, bodies, requests=60)
    monitor.poll()
    still = monitor.drift(None)
    assert still.rows == [] and "(60 so far)" in still.waiting

    send(url, bodies[60:], requests=60)
    monitor.poll()
    picture = monitor.drift(None)
    assert picture.waiting is None
    assert picture.baseline == "the first 100 live requests"
    rows = rows_by_feature(picture)
    assert len(rows) == WINE_FEATURES + 1 and PREDICTIONS_ROW in rows
    for row in picture.rows:
        assert row.reference_count == 120  # every request up to the scrape that reached 100
        assert row.level == "no data"  # nothing served since the baseline ended

    send(url, bodies[120:], requests=80)
    monitor.poll()
    after = monitor.drift(None)
    assert after.baseline == "the first 100 live requests"
    for row in after.rows:
        assert row.live_count == 80 and row.level in ("ok", "warn", "alert"), row
        assert math.isfinite(row.psi)


# --- endpoints that fail ------------------------------------------------------------------------


def test_an_endpoint_that_goes_down_is_a_gap_and_a_status_then_recovers(prometheus_app):
    app = prometheus_app
    monitor = Monitor(app.url)
    monitor.poll()
    app.work(20)
    monitor.poll()
    assert monitor.status is None

    app.stop()
    failed = monitor.poll()
    assert failed.scrape is None and "cannot reach" in failed.error
    assert monitor.status == failed.error and str(app.port) in monitor.status
    assert isinstance(monitor.series.points[-1], Gap)
    chart = monitor.series.rate_series("jobs")
    assert chart.lines["jobs"][-1] is None  # a break in the line
    figures = monitor.figures(None)  # still computed from the scrapes either side
    assert math.isfinite(figures["cpu_cores"])

    app.start()  # the same port, the same counters
    monitor.poll()
    assert monitor.status is None
    app.work(30)
    monitor.poll()
    points = monitor.series.points
    assert [type(p) for p in points] == [Scrape, Scrape, Gap, Scrape, Scrape]
    chart = monitor.series.rate_series("jobs")
    assert chart.lines["jobs"][1] is None and chart.lines["jobs"][-1] > 0
    # totals span the gap: every job done after the first scrape is counted once
    scrapes = monitor.series.scrapes()
    elapsed = scrapes[-1].monotonic - scrapes[0].monotonic
    assert monitor.series.rate("jobs", None, None) * elapsed == pytest.approx(50)


def test_a_monitor_started_before_its_server_waits_then_finds_the_reference(wine_csv):
    port = free_port()
    monitor = Monitor(f"http://127.0.0.1:{port}")
    failed = monitor.poll()
    assert failed.scrape is None and "cannot reach" in monitor.status
    assert failed.reference is None and monitor.reference is None
    assert monitor.recognized() == {}
    json.dumps(monitor.summary(60.0), allow_nan=False)

    deployment = serve_demo(wine_csv, port=port)
    try:
        monitor.poll()
        assert monitor.status is None
        assert monitor.reference_note == SERVERS_REFERENCE  # asked once the server answered
        assert isinstance(monitor.series.points[0], Gap)
    finally:
        deployment.stop()


@pytest.mark.parametrize(("body", "content_type", "shown"), [
    (b"<html><body>Welcome</body></html>", "text/html; charset=utf-8", "text/html"),
    (b'{"status": "ok"}', "application/json", "application/json"),
    (b"<html><body>not metrics</body></html>", "text/plain", "text/plain"),
])
def test_a_page_that_is_not_prometheus_text_is_a_clear_error(body, content_type, shown):
    with TextServer(body, content_type) as server:
        monitor = Monitor(server.url)
        failed = monitor.poll()
    assert failed.scrape is None
    assert "did not answer with Prometheus text" in failed.error
    assert shown in failed.error and f"{server.url}/metrics" in failed.error
    assert monitor.status == failed.error
    assert isinstance(monitor.series.points[-1], Gap)
    assert "Traceback" not in failed.error


# --- any prometheus_client app ------------------------------------------------------------------


def test_a_plain_prometheus_app_is_recognized_and_has_no_drift(prometheus_app):
    monitor = Monitor(prometheus_app.url)
    monitor.poll()
    prometheus_app.work(40)
    monitor.poll()

    recognized = monitor.recognized()
    assert recognized["process_cpu_seconds_total"] == "CPU time"
    assert recognized["process_resident_memory_bytes"] == "memory (resident)"
    assert recognized["job_duration_seconds"] == "latency histogram"
    assert any(name.startswith("python_gc_") for name in recognized)
    assert not any(name.startswith("slipway_") for name in recognized)
    assert "jobs_total" not in recognized  # a counter the studio has no meaning for

    picture = monitor.drift(None)
    assert picture.rows == []
    assert "no reference profile" in picture.waiting
    assert monitor.reference is None

    figures = monitor.figures(None)
    assert figures["request_rate"] == 0 and math.isnan(figures["p50_ms"])
    assert math.isfinite(figures["cpu_cores"]) and figures["memory_bytes"] > 0
    summary = json.loads(json.dumps(monitor.summary(None), allow_nan=False))
    assert summary["drift"] == [] and "no reference profile" in summary["drift_note"]


def test_the_runtimes_own_usage_is_preferred_to_process_metrics(prometheus_app):
    """A runtime with its own measurements (Docker stats) is what resources() reports."""
    samples = iter([ResourceUsage(10.0, 200e6, 1e9), ResourceUsage(10.5, 210e6, 1e9),
                    ResourceUsage(11.5, 220e6, 1e9)])
    monitor = Monitor(prometheus_app.url, usage_source=lambda: next(samples))
    for _ in range(3):
        monitor.poll()
        time.sleep(0.1)
    elapsed = monitor.usage[-1][0] - monitor.usage[0][0]
    resources = monitor.resources(None)
    assert resources["memory_bytes"] == 220e6
    assert resources["cpu_cores"] == pytest.approx(1.5 / elapsed)
    # no sample is taken when the scrape fails
    prometheus_app.stop()
    failed = monitor.poll()
    assert failed.usage is None and len(monitor.usage) == 3


def test_a_reference_that_is_not_json_is_said_so(prometheus_app):
    # prometheus_client answers every path with its metrics, /reference included
    monitor = Monitor(prometheus_app.url)
    monitor.poll()
    assert monitor.reference is None
    assert "not JSON" in monitor.reference_note



def test_the_view_shows_the_chosen_feature_or_the_most_drifted(reference_server, wine_csv):
    url = reference_server.url
    monitor = Monitor(url)
    monitor.poll()
    send(url, wine_bodies(url, wine_csv, [parse_drift("alcohol=+2sd")]), seconds=2.0)
    monitor.poll()

    shown = build_view(monitor, None, None)
    assert shown.feature.name == "alcohol"  # nobody chose: the most drifted
    assert len(shown.feature.labels) == len(shown.feature.reference) == len(shown.feature.live)
    assert sum(shown.feature.reference) == 178 and sum(shown.feature.live) > 0

    chosen = build_view(monitor, None, "hue")
    assert chosen.feature.name == "hue"
    assert len(chosen.feature.live) == len(monitor.reference.features["hue"].counts)
    predictions = build_view(monitor, None, PREDICTIONS_ROW).feature
    assert set(predictions.labels) == {"class_0", "class_1", "class_2"}

    assert set(shown.charts) == {"requests", "latency", "inference", "batch", "inflight",
                                 "errors", "cpu", "memory"}
    times, values = shown.charts["requests"]["200"]
    assert times[-1] <= 0 and any(v for v in values if v)
