"""The Monitor's baseline and the span of its figures, against real servers on 127.0.0.1: a live
baseline that cannot see drift present from the start until reference data is attached to the
running server's monitor, and figures (rates, quantiles, batch size, closed connections) that
cover one named span: the window, or everything since the server started."""

from __future__ import annotations

import json
import math
import time

import httpx
import pytest
from monitor_servers import (
    Background,
    rows_by_feature,
    running_demo,
    send,
    server_reference,
    wine_bodies,
)

from studio.core.loadtest.payloads import parse_drift
from studio.core.monitor.drift import PREDICTIONS_ROW
from studio.core.monitor.monitor import Monitor, data_note
from studio.core.monitor.view import build_view, drawable

# --- a live baseline, and reference data attached to a running server ---------------------------


def test_a_live_baseline_hides_drift_from_the_start_and_says_so_until_data_is_attached(wine_csv):
    """Shifted from the very first request: the baseline holds the shift too, so the live picture
    reads 'ok' and must say it cannot see such drift; the dataset attached to the running monitor,
    binned on the server's own bins, shows it."""
    with running_demo(None) as deployment:
        url = deployment.url
        shifted = wine_bodies(url, wine_csv, [parse_drift("alcohol=+2sd")])
        monitor = Monitor(url, baseline_rows=100)
        monitor.poll()
        waiting = monitor.drift(None)
        assert waiting.rows == [] and waiting.needs_data
        assert "cannot be seen" in waiting.caveat

        send(url, shifted, requests=len(shifted))  # the baseline: shifted already
        monitor.poll()
        send(url, shifted, requests=len(shifted))
        monitor.poll()
        live = monitor.drift(None)
        rows = rows_by_feature(live)
        assert live.baseline == "the first 100 live requests"
        assert rows["alcohol"].level == "ok" and rows["alcohol"].live_count == len(shifted)
        assert live.needs_data and "from the first request cannot be seen" in live.caveat
        summary = json.loads(json.dumps(monitor.summary(None), allow_nan=False))
        assert summary["baseline_caveat"] == live.caveat and summary["needs_reference_data"]

        profile = monitor.reference_from_data(wine_csv)
        assert profile.source == "dataset" and profile.rows == 178
        served = server_reference(url)["features"]
        assert set(profile.features) == set(served)
        for name, bins in profile.features.items():  # the server's bins, not the data's deciles
            assert bins.edges == pytest.approx(served[name]["edges"], rel=1e-6)
            assert sum(bins.counts) == 178
        monitor.use_reference(profile, data_note(wine_csv, profile))
        attached = monitor.drift(None)

    assert attached.baseline == "the reference data wine_reference.csv (178 rows)"
    assert attached.caveat is None and not attached.needs_data
    assert attached.rows[0].feature == "alcohol" and attached.rows[0].level == "alert"
    assert attached.rows[0].live_count == 2 * len(shifted)  # what was watched before counts too
    assert rows_by_feature(attached)[PREDICTIONS_ROW].level == "not in reference"


def test_reference_data_binned_on_the_servers_bins_gives_the_servers_own_counts(reference_server,
                                                                                 wine_csv):
    """The server bundled with the same rows counted them on the same bins: attaching them again
    reproduces its profile bin for bin (float32 values meet the edges as the server compares)."""
    monitor = Monitor(reference_server.url)
    monitor.poll()
    profile = monitor.reference_from_data(wine_csv)
    served = server_reference(reference_server.url)
    for name, bins in served["features"].items():
        assert profile.features[name].counts == bins["counts"], name


def test_reference_data_that_cannot_be_compared_is_a_clear_error(prometheus_app, reference_server,
                                                                tmp_path):
    from studio.core.model.datasets import DatasetError
    from studio.core.monitor.reference import ProfileError

    rows = tmp_path / "rows.csv"
    rows.write_text("alcohol,hue\n13.0,1.0\n")
    monitor = Monitor(prometheus_app.url)
    monitor.poll()
    with pytest.raises(ProfileError, match="does not describe its model") as not_slipway:
        monitor.reference_from_data(rows)
    assert not_slipway.value.hint

    monitor = Monitor(reference_server.url)
    monitor.poll()
    with pytest.raises(DatasetError, match="lacks 11 of the model's feature columns"):
        monitor.reference_from_data(rows)


# --- figures that say what they cover -----------------------------------------------------------


def test_since_start_figures_rates_quantiles_and_drift_cover_one_span(wine_csv):
    """A one-off look at a server that served before anyone watched: every figure, and the drift,
    over everything since it started, and the span named with its request count."""
    with running_demo(wine_csv) as deployment:
        url = deployment.url
        report = send(url, wine_bodies(url, wine_csv), requests=178)
        monitor = Monitor(url)
        monitor.poll()
        time.sleep(0.5)
        monitor.poll()
        summary = json.loads(json.dumps(monitor.summary(None, since_start=True), allow_nan=False))

    assert report.completed == 178
    assert summary["since_start"] is True and summary["window_s"] is None
    assert summary["span"] == "since the server started (178 requests)"
    figures = summary["figures"]
    assert figures["requests"] == 178
    assert figures["request_rate"] > 0 and figures["span_s"] > 0
    assert figures["request_rate"] == pytest.approx(178 / figures["span_s"])
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert figures["request_rate_now"] == 0  # nothing was served while watching
    assert all(row["live_count"] == 178 for row in summary["drift"])


def test_the_rate_now_is_the_latest_interval_and_the_window_names_its_span(reference_server,
                                                                           wine_csv):
    url = reference_server.url
    monitor = Monitor(url)
    monitor.poll()
    with Background(send, url, wine_bodies(url, wine_csv), seconds=1.5) as load:
        while load.running:
            time.sleep(0.3)
            monitor.poll()
    monitor.poll()  # traffic has stopped: the latest interval served nothing
    figures = monitor.figures(60.0)

    assert figures["request_rate_now"] == 0
    assert figures["request_rate"] > 0 and figures["requests"] == load.report.completed
    assert monitor.span(60.0).label.startswith("over ") and \
        monitor.span(60.0).label.endswith(" s since watching began")


def test_batch_size_is_the_mean_rows_per_batch(reference_server, wine_csv):
    """One row per request, one request at a time: every batch holds one row, and the figure and
    the chart say 1, not the 0.5 a quantile interpolated inside the bucket `le=1` gives."""
    url = reference_server.url
    monitor = Monitor(url)
    monitor.poll()
    bodies = wine_bodies(url, wine_csv)
    with httpx.Client() as client:
        for body in bodies[:20]:
            answer = client.post(f"{url}/predict", content=body,
                                 headers={"Content-Type": "application/json"})
            assert answer.status_code == 200
        monitor.poll()
        five = {"instances": [list(json.loads(body)["features"].values())
                              for body in bodies[:5]]}
        for _ in range(10):
            assert client.post(f"{url}/predict/batch", json=five).status_code == 200
        monitor.poll()

    chart = build_view(monitor, None, None).charts["batch"]
    assert chart["mean"][1] == [1.0, 5.0]
    assert monitor.figures(None)["batch_mean"] == pytest.approx((20 + 50) / 30)


def test_connections_the_server_closed_are_counted_by_reason(reference_server):
    url = reference_server.url
    monitor = Monitor(url)
    monitor.poll()
    for _ in range(2):
        answer = httpx.get(f"{url}/health", headers={"X-Padding": "a" * 70_000})
        assert answer.status_code == 431
    monitor.poll()

    assert monitor.connections_closed(None) == {"header_too_large": 2}
    assert monitor.figures(None)["connections_closed"] == 2
    assert monitor.summary(None)["connections_closed"] == {"header_too_large": 2}


def test_a_value_between_gaps_is_drawn_across_its_interval():
    """One interval of traffic between idle ones: a lone point would draw nothing."""
    xs, ys = drawable([-3.0, -2.0, -1.0, 0.0], [None, 5.0, math.nan, None])
    assert xs == [-3.0, -3.0, -2.0, -1.0, 0.0]
    assert math.isnan(ys[0]) and ys[1:3] == [5.0, 5.0] and all(map(math.isnan, ys[3:]))
    # values with neighbours are drawn as they are
    assert drawable([0.0, 1.0], [1.0, 2.0]) == ([0.0, 1.0], [1.0, 2.0])
