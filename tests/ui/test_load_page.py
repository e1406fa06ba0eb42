"""The Load page against a real server process: one click runs a test, the charts fill as it goes,
the report appears and exports, Cancel stops it promptly, and the window never stalls."""

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer

from studio.core.loadtest.report import TIMELINE_COLUMNS
from studio.core.loadtest.results import LoadReport
from studio.core.loadtest.sweep import SweepReport
from studio.core.serve.runtimes.base import free_port
from studio.ui.widgets.charts import PALETTE, PREVIOUS

RUN_TIMEOUT_MS = 20_000
CANCEL_WITHIN_S = 2.0


@pytest.fixture
def page(qtbot, window, demo_model, demo_server):
    """The Load page with the demo model loaded (its schema is the payload source) and the demo
    server's URL filled in, as the Serve page leaves it."""
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    titles = [window.nav.item(row).text() for row in range(window.nav.count())]
    window.nav.setCurrentRow(titles.index("Load"))
    load_page = window.load_page
    assert window.pages.currentWidget() is load_page
    load_page.set_url(demo_server.url)
    yield load_page
    if load_page.running:  # a failed test must not leave a test running into the next one
        with qtbot.waitSignal(load_page.finished, timeout=5_000, raising=False):
            load_page.cancel()


def choose_preset(page, name):
    page.preset.setCurrentIndex(page.preset.findText(name))


def short_run(page, seconds=1.0, connections=2):
    choose_preset(page, "Smoke")
    page.duration.setValue(seconds)
    page.connections.setValue(connections)


def click_run(qtbot, page, timeout=RUN_TIMEOUT_MS):
    """Click Run and wait for the report; then for the page to be idle again."""
    with qtbot.waitSignal(page.finished, timeout=timeout) as finished:
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.running and page.run_button.isEnabled(), timeout=5_000)
    return finished.args[0]


def test_one_click_runs_a_short_test_and_the_report_appears(qtbot, page, tmp_path):
    choose_preset(page, "Smoke")
    assert page.mode.currentData() == "closed" and page.connections.value() == 2
    page.duration.setValue(2.0)
    assert page.preset.currentText() == "Custom"
    assert not page.export_button.isEnabled()

    report = click_run(qtbot, page)

    assert isinstance(report, LoadReport) and not report.cancelled
    assert report.completed > 0 and report.errors == 0
    assert page.report is report
    # the 250 ms snapshots reached the charts while the test ran
    assert page.throughput_chart.points("ok") >= 4
    assert page.latency_chart.points("p99") >= 4
    assert page.latency_chart.points("p50") == page.throughput_chart.points("ok")
    summary = page.summary.text()
    assert "Throughput" in summary and "req/s" in summary
    assert page.status.text().startswith("Done: 2 connections, closed loop, 2 s, /predict")
    assert page.export_button.isEnabled()
    assert not page.cancel_button.isEnabled()
    assert not page.error_banner.isVisible()

    html_file = page.export(tmp_path / "load.html")
    assert html_file == tmp_path / "load.html"
    assert page.status.text() == f"Report written to {html_file}."
    html = html_file.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "<svg" in html and "<script" not in html

    exported = json.loads(page.export(tmp_path / "load.json").read_text(encoding="utf-8"))
    assert exported["throughput"] == pytest.approx(report.throughput)
    assert exported["completed"] == report.completed and exported["cancelled"] is False

    with open(page.export(tmp_path / "load.csv"), newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == TIMELINE_COLUMNS
    assert len(rows) - 1 == len(report.timeline) >= 4


def test_an_export_to_an_unknown_format_is_shown_in_the_page(qtbot, page, tmp_path):
    short_run(page)
    click_run(qtbot, page)
    assert page.export(tmp_path / "load.txt") is None
    assert page.error_banner.isVisible()
    assert "Cannot write the report" in page.error_banner.message.text()
    assert not (tmp_path / "load.txt").exists()


def test_cancel_stops_a_long_run_promptly(qtbot, page):
    choose_preset(page, "Smoke")
    page.duration.setValue(30.0)
    qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    assert page.running and not page.run_button.isEnabled() and page.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: page.throughput_chart.points("ok") >= 1, timeout=10_000)

    with qtbot.waitSignal(page.finished, timeout=int(CANCEL_WITHIN_S * 1000)) as finished:
        clicked = time.perf_counter()
        qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    assert time.perf_counter() - clicked < CANCEL_WITHIN_S

    report = finished.args[0]
    assert isinstance(report, LoadReport)
    assert report.cancelled
    assert 0 < report.duration_s < 10
    assert report.completed > 0
    assert page.status.text().startswith("Cancelled: ")
    qtbot.waitUntil(lambda: page.run_button.isEnabled(), timeout=1_000)
    assert not page.cancel_button.isEnabled() and not page.running
    assert page.export_button.isEnabled()


def test_the_page_is_idle_when_it_says_a_run_finished(qtbot, page):
    short_run(page)
    seen = []
    page.finished.connect(lambda report: seen.append((page.running, page.run_button.isEnabled())))
    click_run(qtbot, page)
    assert seen == [(False, True)]


def test_a_run_started_when_the_last_one_finished_is_tracked(qtbot, page):
    """A slot on `finished` may start the next run at once; the end of the previous task must
    not then mark the new run as over."""
    short_run(page, seconds=0.5)
    reports = []
    started = []

    def again(report):
        reports.append(report)
        if len(reports) == 1:
            page.duration.setValue(30.0)
            page.start()
            started.append(page.task)

    page.finished.connect(again)
    qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(reports) == 1, timeout=RUN_TIMEOUT_MS)
    second = started[0]
    assert second is not None
    try:
        # the second run is under way and the first task has ended
        qtbot.waitUntil(lambda: page.throughput_chart.points("ok") >= 1, timeout=10_000)
        qtbot.waitUntil(lambda: page.runner.pool.activeThreadCount() == 1, timeout=5_000)
        assert page.task is second and page.running
        assert not page.run_button.isEnabled() and page.cancel_button.isEnabled()
        with qtbot.waitSignal(page.finished, timeout=int(CANCEL_WITHIN_S * 1000)):
            qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
        assert len(reports) == 2 and reports[-1].cancelled
    finally:
        if not second.done:
            with qtbot.waitSignal(page.finished, timeout=5_000, raising=False):
                second.cancel()


def test_the_window_stays_responsive_while_a_test_runs(qtbot, page):
    choose_preset(page, "Steady")
    page.warmup.setValue(0.0)
    page.duration.setValue(3.0)  # the first point may come a second in on a busy machine
    ticks = []
    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

    with qtbot.waitSignal(page.finished, timeout=RUN_TIMEOUT_MS) as finished:
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: page.throughput_chart.points("ok") >= 1, timeout=10_000)
        started = time.perf_counter()
        timer.start()
    timer.stop()
    ended = time.perf_counter()

    report = finished.args[0]
    assert report.completed > 0 and not report.cancelled
    assert ended - started >= 1.0, "the run ended too soon to measure the GUI thread"
    # a timer every 50 ms on the GUI thread kept firing while 16 connections loaded the server
    assert len(ticks) >= 10
    gaps = [b - a for a, b in zip([started, *ticks], [*ticks, ended])]
    assert max(gaps) < 0.5, f"the GUI thread stalled for {max(gaps):.2f} s"


def test_without_a_url_the_banner_says_so_and_nothing_runs(qtbot, page):
    short_run(page)
    page.set_url("")
    qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    assert page.error_banner.isVisible()
    assert page.error_banner.message.text() == "There is no URL to load."
    assert "Serve page" in page.error_banner.hint.text()
    assert not page.running and page.run_button.isEnabled()
    assert page.report is None and not page.export_button.isEnabled()
    assert page.throughput_chart.points("ok") == 0


def test_a_url_that_is_not_http_is_refused_before_running(qtbot, page):
    page.set_url("ftp://127.0.0.1:21")
    qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    assert page.error_banner.isVisible()
    assert "is not an http:// or https:// URL" in page.error_banner.message.text()
    assert not page.running


def test_a_url_where_nothing_listens_reports_refused_connections(qtbot, page):
    short_run(page, seconds=1.0)
    page.set_url(f"http://127.0.0.1:{free_port()}")
    # the demo model is the source: its schema is local, so the run goes ahead and fails per request
    report = click_run(qtbot, page)
    assert isinstance(report, LoadReport) and not report.cancelled
    assert report.completed == 0 and report.errors > 0
    # most are refused; a worker still dialling when the run ends counts as not sent in time
    assert next(iter(report.errors_by_kind)) == "connection refused"
    assert set(report.errors_by_kind) <= {"connection refused", "not sent in time"}
    summary = page.summary.text()
    assert "connection refused" in summary
    assert "p50 / p90 / p99" in summary  # said as unmeasured, never as "nan ms"
    assert not re.search(r"\bnan\b", summary + page.status.text(), re.IGNORECASE)
    assert "Traceback" not in summary and "Traceback" not in page.status.text()
    assert not page.error_banner.isVisible()
    assert page.status.text().startswith("Done: ")


def test_a_bad_drift_is_shown_in_the_banner(qtbot, page):
    short_run(page)
    page.drift.setText("nosuch=+2sd")
    qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.error_banner.isVisible(), timeout=10_000)
    assert "no feature 'nosuch'" in page.error_banner.message.text()
    assert page.status.text() == "The load test could not run."
    qtbot.waitUntil(lambda: page.run_button.isEnabled(), timeout=5_000)
    assert page.report is None


def test_the_previous_run_is_overlaid_when_asked(qtbot, page):
    short_run(page)
    assert page.overlay.isChecked()
    click_run(qtbot, page)
    # one run: nothing to overlay yet
    assert page.throughput_chart.points("previous ok") == 0
    first = page.report

    click_run(qtbot, page)
    assert page.previous is first
    assert page.throughput_chart.points("previous ok") == len(first.timeline) >= 2
    assert page.latency_chart.points("previous p99") == len(first.timeline)
    assert page.throughput_chart.points("ok") >= 2

    page.overlay.setChecked(False)
    assert page.throughput_chart.points("previous ok") == 0
    assert page.latency_chart.points("previous p99") == 0
    assert not [name for name in page.throughput_chart.lines if name.startswith("previous")]
    assert page.throughput_chart.points("ok") >= 2  # the current run stays

    page.overlay.setChecked(True)
    assert page.throughput_chart.points("previous ok") == len(first.timeline)


def test_every_series_has_its_own_colour_and_the_legends_stay_off_the_data(qtbot, page):
    page.window().resize(1024, 700)
    short_run(page)
    click_run(qtbot, page)
    click_run(qtbot, page)  # and the first run laid over the second
    qtbot.wait(50)  # the legends take their place once laid out
    for chart in (page.throughput_chart, page.latency_chart):
        colours = list(chart.colors.values())
        assert len(chart.lines) >= 3
        assert len(colours) == len(set(colours)) == len(chart.lines)
        assert set(colours) <= {*PALETTE, PREVIOUS}
        plot = chart.getPlotItem()
        data = plot.getViewBox().sceneBoundingRect()
        legend = chart.legend.sceneBoundingRect()
        assert legend.height() > 0 and not legend.intersects(data)
        assert chart.sceneRect().contains(legend)  # and inside the chart, not cut off


def test_presets_fill_the_form_and_an_edit_makes_it_custom(page):
    assert [page.preset.itemText(i) for i in range(page.preset.count())] == [
        "Steady", "Smoke", "Sweep", "Spike", "Mine", "Custom"]
    choose_preset(page, "Sweep")
    assert page.mode.currentData() == "sweep"
    assert page.slo.isEnabled() and not page.rate.isEnabled() and not page.warmup.isEnabled()
    assert page.connections.value() == 64 and page.duration.value() == 3.0
    assert page.preset.currentText() == "Sweep"
    assert page.preset_note.text().startswith("Sweep: ")

    choose_preset(page, "Spike")
    assert page.mode.currentData() == "closed" and page.connections.value() == 128
    assert not page.slo.isEnabled() and page.preset.currentText() == "Spike"

    page.connections.setValue(100)
    assert page.preset.currentText() == "Custom"
    assert page.preset_note.text() == "Custom: the form below is the plan."
    assert page.connections.value() == 100  # the edit is kept, not overwritten by a preset

    choose_preset(page, "Steady")
    page.mode.setCurrentIndex(page.mode.findData("open"))
    assert page.preset.currentText() == "Custom"
    assert page.rate.isEnabled() and page.poisson.isEnabled() and not page.slo.isEnabled()


def test_a_sweep_whose_first_step_misses_names_no_knee(qtbot, page):
    choose_preset(page, "Sweep")
    page.connections.setValue(4)
    page.duration.setValue(1.0)
    page.slo.setValue(0.1)  # no answer over HTTP comes back within 0.1 ms: the first step misses

    report = click_run(qtbot, page)

    assert isinstance(report, SweepReport) and not report.cancelled
    assert report.slo_p99_ms == pytest.approx(0.1)
    assert report.knee_rate is None
    assert len(report.steps) == 1 and not report.steps[0].met
    assert report.capacity_estimate > 0
    assert page.status.text().startswith("Sweep done: highest rate meeting p99 ≤ 0.1 ms is none")
    assert page.latency_chart.points("p99") == 1  # one point per step, against offered load
    assert "req/s" in page.summary.text()
    assert page.export_button.isEnabled()


# --- the measurement does not depend on the window ------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SAME_WITHIN = 0.25
"""The Load page's p50 and p99 agree with the command line's within this share."""
ATTEMPTS = 5
"""The two runs see the same machine, yet a moment's stall on a shared one can still fall into one
run's top percent and not the other's: the first attempt in which they agree counts. A tester in
the studio's process never agrees (the window's 200 ms blocks are timed as the server's)."""
PLAN = {"rate": 200, "connections": 16, "duration_s": 4.0, "warmup_s": 1.0}
"""An open loop well below the server's capacity: its latencies are the server's, not a queue's."""


def start_cli(url: str, log: Path) -> subprocess.Popen:
    """`slipway load` in a process of its own, as a terminal runs it, with the plan of PLAN; what
    it says on stderr goes to `log`."""
    with log.open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "studio.cli", "load", url, "--rate", str(PLAN["rate"]),
             "--connections", str(PLAN["connections"]), "--duration", f"{PLAN['duration_s']:g}s",
             "--warmup", f"{PLAN['warmup_s']:g}s", "--json"],
            stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)


class BusyWindow:
    """The window at its busiest while a test runs: the GUI thread computes for 200 ms every
    second, the pages switch every 300 ms, and the Monitor watches the server, its charts live."""

    def __init__(self, window, url: str) -> None:
        self.window = window
        self.blocks = self.switches = self.refreshes = 0
        self.block_timer = QTimer()
        self.block_timer.setInterval(1000)
        self.block_timer.timeout.connect(self.block)
        self.switch_timer = QTimer()
        self.switch_timer.setInterval(300)
        self.switch_timer.timeout.connect(self.switch)
        window.monitor_page.url.setText(url)
        window.monitor_page.refreshed.connect(self.refreshed)

    def block(self) -> None:
        until = time.perf_counter() + 0.2
        while time.perf_counter() < until:  # pure Python: it holds the interpreter
            pass
        self.blocks += 1

    def switch(self) -> None:
        nav = self.window.nav
        nav.setCurrentRow((nav.currentRow() + 1) % nav.count())
        self.switches += 1

    def refreshed(self) -> None:
        self.refreshes += 1

    def __enter__(self):
        self.window.monitor_page.start()
        self.block_timer.start()
        self.switch_timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.block_timer.stop()
        self.switch_timer.stop()
        self.window.monitor_page.stop()


def fill_plan(page) -> None:
    page.preset.setCurrentIndex(page.preset.findText("Custom"))
    page.mode.setCurrentIndex(page.mode.findData("open"))
    page.rate.setValue(PLAN["rate"])
    page.poisson.setChecked(False)
    page.connections.setValue(PLAN["connections"])
    page.duration.setValue(PLAN["duration_s"])
    page.warmup.setValue(PLAN["warmup_s"])


def side_by_side(qtbot, window, page, url: str, log: Path) -> tuple[LoadReport, dict, BusyWindow]:
    """The plan from the busy Load page and from `slipway load`, at the same time against the same
    server, so that whatever else the machine does falls on both runs alike."""
    cli = start_cli(url, log)
    try:
        # Both begin once the command line has prepared its requests.
        qtbot.waitUntil(lambda: "Loading" in log.read_text(), timeout=30_000)
        with BusyWindow(window, url) as busy, qtbot.waitSignal(
                page.finished, timeout=RUN_TIMEOUT_MS) as finished:
            page.start()
        out, _ = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    qtbot.waitUntil(lambda: not window.monitor_page.fetching, timeout=5_000)
    assert cli.returncode in (0, 1), log.read_text()  # 1: some requests failed
    return finished.args[0], json.loads(out), busy


def test_a_busy_window_does_not_change_what_the_load_test_measures(qtbot, window, page,
                                                                    demo_server, tmp_path):
    """The same open-loop plan against the same fast server from the Load page, while the window
    is as busy as it gets, and from the command line: p50 and p99 agree within 25%."""
    fill_plan(page)
    tries = []
    for attempt in range(ATTEMPTS):
        report, alone, busy = side_by_side(qtbot, window, page, demo_server.url,
                                           tmp_path / f"cli-{attempt}.log")
        assert report.plan == alone["plan"] and report.tester_pid != alone["tester_pid"]
        assert busy.blocks >= 3 and busy.switches >= 10 and busy.refreshes >= 4
        if alone["errors"]:  # the machine overloaded the server: nothing to compare with
            tries.append(f"the command line's run had errors: {alone['errors_by_kind']}")
            continue
        ratios = (report.p50_ms / alone["latency"]["p50_ms"],
                  report.p99_ms / alone["latency"]["p99_ms"])
        tries.append((*(round(ratio, 2) for ratio in ratios), report.errors_by_kind))
        if not report.errors and all(abs(ratio - 1) <= SAME_WITHIN for ratio in ratios):
            break
    else:
        pytest.fail(f"the Load page's p50 and p99 over the command line's: {tries}")
