"""The Monitor page watching a real server process of the demo wine model (bundled with the wine
dataset as its reference): charts fill while load runs, drifted alcohol raises the alert, a server
that goes away is a gap and a message, Stop stops, and the window never stalls."""

from __future__ import annotations

import json
import math
import time
from itertools import pairwise
from typing import Self

import httpx
import pytest
from monitor_servers import (
    WINE_FEATURES,
    WINE_ROWS,
    Background,
    TextServer,
    running_demo,
    send,
    serve_demo,
    wine_bodies,
)
from PySide6.QtCore import Qt, QTimer
from shiboken6 import isValid

from studio.core.loadtest.payloads import parse_drift
from studio.core.monitor.drift import PREDICTIONS_ROW

REFRESH_TIMEOUT_MS = 5_000
ALERT_TIMEOUT_MS = 15_000
METRICS_TEXT = b"# TYPE jobs_total counter\njobs_total 1\n"


@pytest.fixture
def page(qtbot, window):
    titles = [window.nav.item(row).text() for row in range(window.nav.count())]
    window.nav.setCurrentRow(titles.index("Monitor"))
    monitor_page = window.monitor_page
    assert window.pages.currentWidget() is monitor_page
    yield monitor_page
    # pytest-qt closes the window it was given, which ends the page's work, before fixtures are
    # torn down: a scrape in flight then reports to no one, and there is nothing to wait for.
    if isValid(window) and window.isVisible():
        monitor_page.stop()
        qtbot.waitUntil(lambda: not monitor_page.fetching, timeout=REFRESH_TIMEOUT_MS)


class Ticks:
    """A 50 ms QTimer on the GUI thread: the gaps between its ticks are how long the GUI thread
    was busy."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(50)
        self.timer.timeout.connect(lambda: self.times.append(time.monotonic()))

    def __enter__(self) -> Self:
        self.started = time.monotonic()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.stop()
        self.ended = time.monotonic()

    @property
    def longest_gap(self) -> float:
        stamps = [self.started, *self.times, self.ended]
        return max(b - a for a, b in pairwise(stamps))


def watch(qtbot, page, url: str) -> None:
    page.url.setText(url)
    with qtbot.waitSignal(page.refreshed, timeout=REFRESH_TIMEOUT_MS):
        qtbot.mouseClick(page.watch_button, Qt.MouseButton.LeftButton)
    assert page.watching and page.watch_button.text() == "Stop"


def values(chart, name: str) -> list[float]:
    line = chart.lines.get(name)
    return [] if line is None or line.yData is None else [float(v) for v in line.yData]


def finite(chart, name: str) -> list[float]:
    return [v for v in values(chart, name) if math.isfinite(v)]


def test_watching_fills_the_charts_and_the_window_stays_responsive(qtbot, page,
                                                                    reference_server, wine_csv):
    url = reference_server.url
    bodies = wine_bodies(url, wine_csv)
    with Ticks() as ticks:
        watch(qtbot, page, url)
        assert page.status.text().startswith("Watching") or "req/s" in page.status.text()
        load = Background(send, url, bodies, seconds=3.0).start()
        qtbot.waitUntil(lambda: len(finite(page.charts["requests"], "200")) >= 3
                        and len(finite(page.charts["latency"], "p99")) >= 3, timeout=10_000)
        qtbot.waitUntil(lambda: not load.running, timeout=10_000)  # the event loop turns meanwhile
        load.join()
    # the GUI thread kept turning: each redraw with the page on screen rebuilds the drift table
    # and repaints ten pyqtgraph charts, so the timer skips ticks around it, but no scrape or
    # load ever holds the event loop for long
    elapsed = ticks.ended - ticks.started
    assert len(ticks.times) >= elapsed / 0.05 * 0.2, (len(ticks.times), elapsed)
    assert ticks.longest_gap < 1.0, ticks.longest_gap

    requests = finite(page.charts["requests"], "200")
    assert max(requests) > 50  # the load ran at 178 req/s
    p50, p99 = finite(page.charts["latency"], "p50"), finite(page.charts["latency"], "p99")
    assert p99 and all(0 < v < 1000 for v in p99)
    assert max(p50) <= max(p99)
    assert finite(page.charts["memory"], "process")
    assert finite(page.charts["cpu"], "process")
    assert finite(page.charts["inference"], "inference")

    status = page.status.text()
    assert "req/s" in status and "p99" in status and "recognized" in status
    assert "not a Slipway server" not in status
    # drift: one row per feature and the predictions, nothing alarming in the dataset's own rows
    assert page.drift_table.rowCount() == WINE_FEATURES + 1
    names = {page.drift_table.item(row, 0).text() for row in range(page.drift_table.rowCount())}
    assert "alcohol" in names and PREDICTIONS_ROW in names
    assert all(row.level in ("ok", "no data") for row in page.drift_rows)
    assert not page.alert_banner.isVisible()
    assert "the server's reference profile" in page.baseline_note.text()


def test_drifted_alcohol_raises_the_alert(qtbot, page, reference_server, wine_csv):
    url = reference_server.url
    drifted = wine_bodies(url, wine_csv, [parse_drift("alcohol=+2sd")])
    alerts: list[str] = []
    page.alert_raised.connect(alerts.append)
    watch(qtbot, page, url)

    load = Background(send, url, drifted, seconds=2.0)
    with qtbot.waitSignal(page.alert_raised, timeout=ALERT_TIMEOUT_MS) as raised:
        load.start()
    assert raised.args == ["alcohol"]
    assert alerts[0] == "alcohol"

    assert page.alert_banner.isVisible()
    assert "alcohol" in page.alert_banner.text() and "Drift alert" in page.alert_banner.text()
    assert page.drift_table.item(0, 0).text() == "alcohol"
    level_column = page.drift_table.columnCount() - 1
    assert page.drift_table.item(0, level_column).text() == "alert"
    assert page.drift_rows[0].feature == "alcohol" and page.drift_rows[0].level == "alert"
    alerted = sum(row.level == "alert" for row in page.drift_rows)  # seen from the Traffic tab
    assert page.views.tabText(1) == f"Drift · {alerted} alert{'s' if alerted > 1 else ''}"
    # the most drifted feature is the one shown, with its PSI over time
    assert page.view.feature.name == "alcohol"
    assert finite(page.drift_chart, "alcohol")
    # the signal is raised once per feature, not on every redraw
    with qtbot.waitSignals([page.refreshed, page.refreshed], timeout=REFRESH_TIMEOUT_MS):
        pass
    assert alerts.count("alcohol") == 1
    qtbot.waitUntil(lambda: not load.running, timeout=10_000)
    load.join()


def test_a_server_that_goes_away_is_a_gap_and_a_message(qtbot, page, wine_csv):
    deployment = serve_demo(wine_csv)
    try:
        url = deployment.url
        watch(qtbot, page, url)
        send(url, wine_bodies(url, wine_csv), seconds=1.0)
        qtbot.waitUntil(lambda: len(finite(page.charts["requests"], "200")) >= 1,
                        timeout=REFRESH_TIMEOUT_MS)
    finally:
        deployment.stop()
    qtbot.waitUntil(lambda: "No answer" in page.status.text(), timeout=REFRESH_TIMEOUT_MS)
    with qtbot.waitSignal(page.refreshed, timeout=REFRESH_TIMEOUT_MS):
        pass

    status = page.status.text()
    assert url in status and "cannot reach" in status and "gap" in status
    assert page.watching  # it keeps trying
    for chart, line in (("requests", "200"), ("latency", "p99"), ("memory", "process"),
                        ("inflight", "in flight")):
        drawn = values(page.charts[chart], line)
        assert drawn and math.isnan(drawn[-1]), (chart, drawn[-3:])
        assert any(math.isfinite(v) for v in drawn), chart  # the line before the gap is kept

    # Stop stops the timer: no more scrapes or redraws
    qtbot.mouseClick(page.watch_button, Qt.MouseButton.LeftButton)
    assert not page.watching and not page.timer.isActive()
    assert page.watch_button.text() == "Watch"
    qtbot.waitUntil(lambda: not page.fetching, timeout=REFRESH_TIMEOUT_MS)
    points = len(page.monitor.series.points)
    with qtbot.assertNotEmitted(page.refreshed, wait=1_200):
        pass
    assert len(page.monitor.series.points) == points


def test_a_scrape_in_flight_when_stop_is_pressed_changes_nothing(qtbot, page):
    with TextServer(METRICS_TEXT, "text/plain; version=0.0.4", delay_s=0.8) as slow:
        page.url.setText(slow.url)
        qtbot.mouseClick(page.watch_button, Qt.MouseButton.LeftButton)
        assert page.fetching  # the first scrape is on its way
        qtbot.mouseClick(page.watch_button, Qt.MouseButton.LeftButton)
        assert not page.watching
        stopped = page.status.text()
        assert stopped.startswith("Stopped watching")
        qtbot.waitUntil(lambda: not page.fetching, timeout=REFRESH_TIMEOUT_MS)
        qtbot.wait(100)
    assert page.status.text() == stopped
    assert len(page.monitor.series.points) == 0


def test_a_slow_server_does_not_hold_up_the_window(qtbot, page):
    """Scrapes run on a worker: a server that takes a second to answer costs the GUI thread
    nothing, and there is never more than one scrape in flight."""
    with TextServer(METRICS_TEXT, "text/plain; version=0.0.4", delay_s=1.0) as slow:
        page.url.setText(slow.url)
        with Ticks() as ticks:
            qtbot.mouseClick(page.watch_button, Qt.MouseButton.LeftButton)
            with qtbot.waitSignal(page.refreshed, timeout=REFRESH_TIMEOUT_MS):
                pass  # the first scrape, then GET /reference: about two seconds
            qtbot.wait(600)
        page.stop()
        qtbot.waitUntil(lambda: not page.fetching, timeout=REFRESH_TIMEOUT_MS)
    # A scrape on the GUI thread would stop it for the server's whole second; a busy shared
    # machine alone stalls it for a few tenths.
    assert ticks.longest_gap < 0.8, ticks.longest_gap
    assert slow.paths[:2] == ["/metrics", "/reference"]
    assert len(slow.paths) <= 4, slow.paths  # 500 ms ticks, but one request at a time
    assert page.monitor.recognized() == {}  # jobs_total: a counter with no known meaning
    assert "not a Slipway server" in page.status.text() or \
        page.status.text().startswith("Stopped watching")


def test_a_bad_reference_file_shows_the_error_banner(qtbot, page, tmp_path):
    not_json = tmp_path / "profile.json"
    not_json.write_text("{ this is not json")
    page.load_reference(not_json)
    assert page.error_banner.isVisible()
    assert "'profile.json' cannot be read as a reference profile" in \
        page.error_banner.message.text()
    assert page.reference_profile is None

    no_features = tmp_path / "rows.json"
    no_features.write_text(json.dumps({"rows": 3}))
    page.load_reference(no_features)
    assert page.error_banner.isVisible() and "features" in page.error_banner.message.text()

    page.load_reference(tmp_path / "missing.json")
    assert page.error_banner.isVisible() and "missing.json" in page.error_banner.message.text()
    assert page.reference_profile is None


def test_a_good_reference_file_is_used_while_watching(qtbot, page, reference_server, tmp_path):
    url = reference_server.url
    profile = httpx.get(f"{url}/reference").json()
    del profile["features"]["proline"]
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    watch(qtbot, page, url)
    first = page.monitor

    page.load_reference(path)
    assert not page.error_banner.isVisible()
    assert page.watching and page.monitor is not first  # watching again, with the profile
    assert page.monitor.reference_note == "the reference profile you gave"
    send(url, wine_bodies(url, None), requests=20)
    qtbot.waitUntil(lambda: any(r.feature == "proline" and r.level == "not in reference"
                                for r in page.drift_rows), timeout=REFRESH_TIMEOUT_MS)
    assert "the reference profile you gave" in page.baseline_note.text()


def test_a_reference_on_other_bins_is_shown_as_an_error_not_raised(qtbot, page,
                                                                   reference_server, tmp_path):
    url = reference_server.url
    profile = httpx.get(f"{url}/reference").json()
    profile["features"]["alcohol"] = {"kind": "numeric", "edges": [12.0, 13.0, 14.0],
                                      "counts": [40, 60, 50, 28]}
    path = tmp_path / "other-bins.json"
    path.write_text(json.dumps(profile))
    page.load_reference(path)
    with qtbot.captureExceptions() as exceptions:
        page.url.setText(url)
        qtbot.mouseClick(page.watch_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(page.monitor.series.points) >= 2, timeout=REFRESH_TIMEOUT_MS)
        qtbot.wait(100)
    assert not exceptions, [str(e[1]) for e in exceptions]
    assert page.error_banner.isVisible() and "alcohol" in page.error_banner.message.text()


# --- figures that say what they cover ------------------------------------------------------------


def test_the_headline_says_now_and_what_the_window_covers_and_never_nan(qtbot, page,
                                                                        reference_server,
                                                                        wine_csv):
    url = reference_server.url
    watch(qtbot, page, url)
    with qtbot.waitSignals([page.refreshed, page.refreshed], timeout=REFRESH_TIMEOUT_MS):
        pass
    idle = page.status.text()
    assert idle.startswith("Now 0.0 req/s, 0 in flight · ")
    assert "since watching began: no requests" in idle and "nan" not in idle.lower()

    load = Background(send, url, wine_bodies(url, wine_csv), requests=2 * WINE_ROWS).start()
    qtbot.waitUntil(lambda: not load.running, timeout=15_000)
    load.join()
    # traffic has stopped: "now" says so, while the window still holds what was served
    qtbot.waitUntil(lambda: page.status.text().startswith("Now 0.0 req/s")
                    and "no requests" not in page.status.text(), timeout=REFRESH_TIMEOUT_MS)
    after = page.status.text()
    window = after.split(" · ")[1]
    assert window.startswith("over ") and "since watching began: " in window
    served = float(window.split(": ")[1].split(" req/s")[0].replace(",", ""))
    assert served > 0 and "p50 " in window and " ms" in window
    assert "nan" not in after.lower()
    batch = finite(page.charts["batch"], "mean")
    assert batch and all(v >= 1 for v in batch)  # rows per batch: never below one row


def test_connections_the_server_closed_show_beside_the_errors(qtbot, page, reference_server):
    url = reference_server.url
    watch(qtbot, page, url)
    assert "0 connections closed by the server" in page.status.text()
    answer = httpx.get(f"{url}/health", headers={"X-Padding": "a" * 70_000})
    assert answer.status_code == 431
    qtbot.waitUntil(lambda: "1 connection closed by the server (header too large 1)"
                    in page.status.text(), timeout=REFRESH_TIMEOUT_MS)
    # with the window's figures: here no request, only the connection refused
    assert "since watching began: no requests, 1 connection closed" in page.status.text()


def test_reference_data_is_read_against_the_watched_server(qtbot, page, reference_server,
                                                           wine_csv, tmp_path):
    url = reference_server.url
    watch(qtbot, page, url)
    assert page.baseline_caveat.isHidden()  # the server's own dataset: nothing hidden from it

    partial = tmp_path / "two-columns.csv"
    partial.write_text("alcohol,hue\n13.0,1.0\n")
    page.load_reference_data(partial)
    qtbot.waitUntil(lambda: page.error_banner.isVisible(), timeout=REFRESH_TIMEOUT_MS)
    assert "lacks 11 of the model's feature columns" in page.error_banner.message.text()
    assert page.reference_data is None

    page.load_reference_data(wine_csv)
    assert not page.error_banner.isVisible()
    qtbot.waitUntil(lambda: "the reference data wine_reference.csv (178 rows)"
                    in page.baseline_note.text(), timeout=REFRESH_TIMEOUT_MS)
    assert page.data_button.isEnabled() and page.watching


def test_a_live_baseline_says_what_it_cannot_see_until_reference_data_is_attached(
        qtbot, page, wine_csv):
    with running_demo(None) as deployment:  # bundled without reference data
        url = deployment.url
        watch(qtbot, page, url)
        # above the charts as well as the drift table: whichever tab is open
        assert page.views.currentIndex() == 0 and page.baseline_caveat.isVisible()
        assert "drift present from the first request cannot be seen" in \
            page.baseline_caveat.text().lower()

        page.load_reference_data(wine_csv)
        qtbot.waitUntil(lambda: page.baseline_caveat.isHidden(), timeout=REFRESH_TIMEOUT_MS)
        assert page.baseline_note.text().startswith(
            "Compared with the reference data wine_reference.csv (178 rows) ")
        page.stop()
        qtbot.waitUntil(lambda: not page.fetching, timeout=REFRESH_TIMEOUT_MS)
