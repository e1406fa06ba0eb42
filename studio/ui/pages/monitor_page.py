"""The Monitor page: live server metrics and input drift, read from the model's /metrics endpoint.

Every 500 ms a worker scrapes the server (studio/core/monitor.py does the I/O off the GUI thread);
the GUI thread adds the scrape to the history and redraws: request rate by status, latency
quantiles from the server's histograms, inference against total latency, batch size, in-flight,
error rate, CPU and memory; and a drift table, one row per feature, most drifted first, colored by
threshold. Selecting a feature shows its reference and live histograms and its PSI over time. A
scrape that fails leaves a gap in the charts and a status message, and the next one recovers.
"""

from __future__ import annotations

import json
import math
import time
from itertools import pairwise
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.drift import FeatureDrift, Thresholds
from studio.core.errors import StudioError
from studio.core.metrics import ChartSeries, Scrape, increase, live_counts
from studio.core.monitor import (
    BATCH_SIZE,
    DEFAULT_BASELINE_ROWS,
    INFERENCE_DURATION,
    PREDICTION_ROUTES,
    REQUEST_DURATION,
    REQUESTS,
    Monitor,
    Poll,
)
from studio.core.runtimes.base import Deployment
from studio.ui.widgets.charts import BinsChart, SeriesChart
from studio.ui.widgets.page_parts import error_banner, page_title, server_url_field
from studio.ui.workers import TaskRunner

REFRESH_MS = 500
WINDOWS = (("1 min", 60.0), ("5 min", 300.0), ("15 min", 900.0), ("All", None))
LEVEL_COLORS = {"alert": QColor(254, 202, 202), "warn": QColor(254, 240, 138),
                "ok": QColor(220, 252, 231)}
DRIFT_COLUMNS = ("Feature", "PSI", "JS", "KS", "χ² p", "Live n", "Level")


def _line(values: list[float | None]) -> list[float]:
    """Chart values with breaks: pyqtgraph draws NaN as a gap (connect='finite')."""
    return [math.nan if v is None else v for v in values]


class MonitorPage(QWidget):
    refreshed = Signal()
    """Emitted after each redraw (tests wait on it)."""
    alert_raised = Signal(str)
    """A feature crossed the alert threshold: its name."""
    log_requested = Signal()

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.monitor: Monitor | None = None
        self.deployment: Deployment | None = None
        self.fetching = False
        self.drift_rows: list[FeatureDrift] = []
        self.alerted: set[str] = set()

        title = page_title("Monitor")
        self.error_banner = error_banner(self.log_requested)
        self.alert_banner = QLabel()
        self.alert_banner.setObjectName("alertBanner")
        self.alert_banner.setStyleSheet("background:#fee2e2; color:#7f1d1d; padding:6px; "
                                        "border-radius:4px; font-weight:600")
        self.alert_banner.hide()

        self.url = server_url_field("; any Prometheus endpoint works")
        self.window_choice = QComboBox()
        for label, seconds in WINDOWS:
            self.window_choice.addItem(label, seconds)
        self.window_choice.setCurrentIndex(1)
        self.window_choice.currentIndexChanged.connect(self.redraw)
        self.watch_button = QPushButton("Watch")
        self.watch_button.setDefault(True)
        self.watch_button.clicked.connect(self.toggle)
        self.reference_button = QPushButton("Reference profile…")
        self.reference_button.clicked.connect(self.choose_reference)
        top = QHBoxLayout()
        top.addWidget(QLabel("URL"))
        top.addWidget(self.url, 3)
        top.addWidget(QLabel("Window"))
        top.addWidget(self.window_choice)
        top.addWidget(self.reference_button)
        top.addWidget(self.watch_button)

        self.status = QLabel("Not watching. Watch reads the server's /metrics twice a second.")
        self.status.setObjectName("sectionTitle")
        self.status.setWordWrap(True)

        self.charts = {
            "requests": SeriesChart("Requests by status", "req/s"),
            "latency": SeriesChart("Latency", "ms"),
            "inference": SeriesChart("Inference vs total (p50)", "ms"),
            "batch": SeriesChart("Batch size (p50)", "rows"),
            "inflight": SeriesChart("In flight", "requests"),
            "errors": SeriesChart("Error rate (5xx)", "share"),
            "cpu": SeriesChart("CPU", "cores"),
            "memory": SeriesChart("Memory", "MB"),
        }
        chart_grid = QWidget()
        grid = QGridLayout(chart_grid)
        grid.setContentsMargins(0, 0, 0, 0)
        for index, chart in enumerate(self.charts.values()):
            chart.setMinimumHeight(150)
            chart.getPlotItem().setLabel("bottom", "seconds ago")
            grid.addWidget(chart, index // 4, index % 4)

        self.warn = QDoubleSpinBox()
        self.alert = QDoubleSpinBox()
        for spin, value in ((self.warn, 0.1), (self.alert, 0.25)):
            spin.setRange(0.01, 10)
            spin.setSingleStep(0.05)
            spin.setValue(value)
            spin.valueChanged.connect(self._thresholds_changed)
        self.baseline_rows = QSpinBox()
        self.baseline_rows.setRange(10, 1_000_000)
        self.baseline_rows.setValue(DEFAULT_BASELINE_ROWS)
        self.baseline_rows.setToolTip("Without a reference dataset, the first N requests are the "
                                      "baseline")
        thresholds = QHBoxLayout()
        thresholds.addWidget(QLabel("PSI warn"))
        thresholds.addWidget(self.warn)
        thresholds.addWidget(QLabel("alert"))
        thresholds.addWidget(self.alert)
        thresholds.addWidget(QLabel("Live baseline rows"))
        thresholds.addWidget(self.baseline_rows)
        thresholds.addStretch(1)
        self.baseline_note = QLabel()
        self.baseline_note.setWordWrap(True)
        self.drift_table = QTableWidget(0, len(DRIFT_COLUMNS))
        self.drift_table.setHorizontalHeaderLabels(DRIFT_COLUMNS)
        header = self.drift_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.drift_table.verticalHeader().hide()
        self.drift_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.drift_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.drift_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.drift_table.itemSelectionChanged.connect(self._draw_selected)
        self.selected_feature: str | None = None
        self.feature_chosen = False
        """Whether the user picked the feature to show; until then it follows the top row."""
        self.bins_chart = BinsChart()
        self.drift_chart = SeriesChart("PSI over time", "PSI")
        self.drift_chart.getPlotItem().setLabel("bottom", "seconds ago")

        drift_left = QWidget()
        left = QVBoxLayout(drift_left)
        left.setContentsMargins(0, 0, 0, 0)
        left.addLayout(thresholds)
        left.addWidget(self.baseline_note)
        left.addWidget(self.drift_table, 1)
        drift_right = QSplitter(Qt.Orientation.Vertical)
        drift_right.addWidget(self.bins_chart)
        drift_right.addWidget(self.drift_chart)
        drift = QSplitter(Qt.Orientation.Horizontal)
        drift.addWidget(drift_left)
        drift.addWidget(drift_right)
        drift.setSizes([520, 560])
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(chart_grid)
        body.addWidget(drift)
        body.setSizes([340, 360])

        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.error_banner)
        layout.addWidget(self.alert_banner)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(body, 1)

        self.reference_profile: dict | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self._tick)

    # --- what is watched -----------------------------------------------------------------------

    def attach(self, deployment: Deployment) -> None:
        """Follow a deployment the Serve page started: its URL, and its runtime's resources."""
        self.deployment = deployment
        self.url.setText(deployment.url)
        if self.watching:
            self.stop()
            self.start()

    def detach(self) -> None:
        self.deployment = None

    def choose_reference(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Reference profile", "",
                                              "Reference profile (*.json)")
        if path:
            self.load_reference(path)

    def load_reference(self, path: str | Path) -> None:
        try:
            profile = json.loads(Path(path).read_text())
            if not isinstance(profile, dict) or not isinstance(profile.get("features"), dict):
                raise ValueError("it has no 'features' object")  # noqa: TRY004 - shown as text
        except (OSError, ValueError) as exc:
            self.error_banner.show_error(StudioError(
                f"'{Path(path).name}' is not a reference profile: {exc}",
                "Use the profile Slipway writes (GET /reference of a served model)."))
            return
        self.reference_profile = profile
        self.error_banner.hide()
        if self.watching:
            self.stop()
            self.start()

    @property
    def watching(self) -> bool:
        return self.timer.isActive()

    def toggle(self) -> None:
        if self.watching:
            self.stop()
        else:
            self.start()

    def start(self) -> None:
        url = self.url.text().strip()
        if not url:
            self.error_banner.show_error(StudioError(
                "There is no URL to watch.",
                "Run the model on the Serve page, or type a server's URL."))
            return
        self.error_banner.hide()
        usage = None
        if self.deployment is not None and self.deployment.url.rstrip("/") == url.rstrip("/"):
            usage = self.deployment.usage
        self.monitor = Monitor(url, reference=self.reference_profile,
                               thresholds=self._thresholds(),
                               baseline_rows=self.baseline_rows.value(), usage_source=usage)
        self.alerted.clear()
        self.alert_banner.hide()
        for chart in (*self.charts.values(), self.drift_chart):
            chart.clear_series()
        self.watch_button.setText("Stop")
        self.status.setText(f"Watching {self.monitor.metrics_url}…")
        self.timer.start()
        self._tick()

    def stop(self) -> None:
        self.timer.stop()
        self.watch_button.setText("Watch")
        if self.monitor is not None:
            self.status.setText(f"Stopped watching {self.monitor.url}.")

    def _thresholds(self) -> Thresholds:
        return Thresholds(self.warn.value(), max(self.alert.value(), self.warn.value()))

    def _thresholds_changed(self) -> None:
        if self.monitor is not None:
            self.monitor.thresholds = self._thresholds()
            self.redraw()

    # --- polling -------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self.fetching or self.monitor is None:
            return  # a slow server: never more than one scrape in flight
        self.fetching = True
        monitor = self.monitor
        self.runner.submit(lambda progress: monitor.fetch(), name="Scrape metrics",
                           on_result=lambda poll: self._fetched(monitor, poll),
                           on_finish=self._fetch_done)

    def _fetch_done(self) -> None:
        self.fetching = False

    def _fetched(self, monitor: Monitor, poll: Poll) -> None:
        if monitor is not self.monitor:
            return  # from a monitor replaced since the scrape began
        monitor.apply(poll)
        self.redraw()

    # --- drawing -------------------------------------------------------------------------------

    @property
    def window_s(self) -> float | None:
        return self.window_choice.currentData()

    def redraw(self) -> None:
        monitor = self.monitor
        if monitor is None:
            return
        window = self.window_s
        now = time.monotonic()

        def draw(chart: SeriesChart, data: ChartSeries, scale: float = 1.0,
                 rename: dict[str, str] | None = None) -> None:
            xs = [t - now for t in data.times]
            for name, values in data.lines.items():
                chart.set_series((rename or {}).get(name, name), xs,
                                 [v * scale if v is not None else math.nan for v in values])

        series = monitor.series
        routes = {"route": PREDICTION_ROUTES}
        draw(self.charts["requests"], series.rate_series(REQUESTS, by="status", labels=routes,
                                                         window_seconds=window))
        draw(self.charts["latency"], series.quantile_series(REQUEST_DURATION, labels=routes,
                                                            window_seconds=window), 1000)
        draw(self.charts["inference"], series.quantile_series(
            REQUEST_DURATION, (0.5,), labels=routes, window_seconds=window), 1000,
            {"p50": "total"})
        draw(self.charts["inference"], series.quantile_series(
            INFERENCE_DURATION, (0.5,), window_seconds=window), 1000, {"p50": "inference"})
        draw(self.charts["batch"], series.quantile_series(BATCH_SIZE, (0.5,),
                                                          window_seconds=window))
        self._draw_gauges(now, window)
        self._draw_drift(now, window)
        figures = monitor.figures(window)
        if monitor.status:
            self.status.setText(f"No answer from {monitor.metrics_url}: {monitor.status} "
                                "(shown as a gap; retrying)")
        else:
            recognized = monitor.recognized()
            self.status.setText(
                f"{figures['request_rate']:,.1f} req/s, p50 {figures['p50_ms']:.2f} ms, p99 "
                f"{figures['p99_ms']:.2f} ms, {figures['error_ratio']:.1%} errors, "
                f"{figures['inflight']:.0f} in flight · recognized {len(recognized)} metric "
                "families" + ("" if any(n.startswith("slipway_") for n in recognized)
                              else " (not a Slipway server: drift and model charts stay empty)"))
        self.refreshed.emit()

    def _draw_gauges(self, now: float, window: float | None) -> None:
        """In flight, error share, CPU and memory: per scrape, from gauges and counter deltas."""
        monitor = self.monitor
        points = monitor.series.window(window)
        times, inflight, errors, cpu, memory = [], [], [], [], []
        previous = None
        for point in points:
            times.append(point.monotonic - now)
            if not isinstance(point, Scrape):  # a failed scrape: a gap in every line
                for line in (inflight, errors, cpu, memory):
                    line.append(math.nan)
                previous = None
                continue
            inflight.append(point.value("slipway_inflight_requests") or 0.0)
            memory_bytes = point.value("process_resident_memory_bytes")
            memory.append(memory_bytes / 1e6 if memory_bytes is not None else math.nan)
            if previous is None:
                errors.append(math.nan)
                cpu.append(math.nan)
            else:
                pair = [previous, point]
                total = sum(_increase(pair, REQUESTS, PREDICTION_ROUTES))
                failed = sum(_increase(pair, REQUESTS, PREDICTION_ROUTES, server_errors=True))
                errors.append(failed / total if total else 0.0)
                elapsed = point.monotonic - previous.monotonic
                used = (point.value("process_cpu_seconds_total") or 0.0) - \
                    (previous.value("process_cpu_seconds_total") or 0.0)
                cpu.append(used / elapsed if elapsed > 0 and used >= 0 else math.nan)
            previous = point
        for name, chart, values in (("in flight", "inflight", inflight),
                                    ("5xx share", "errors", errors)):
            self.charts[chart].set_series(name, times, values)
        usage = [(t, u) for t, u in monitor.usage if window is None or t >= now - window]
        if len(usage) >= 2:  # the engine's view of the container, where there is one
            ts = [t - now for t, _ in usage[1:]]
            cores = [(b.cpu_seconds - a.cpu_seconds) / (tb - ta) if tb > ta else math.nan
                     for (ta, a), (tb, b) in pairwise(usage)]
            self.charts["cpu"].set_series("container", ts, cores)
            self.charts["memory"].set_series("container", ts, [u.memory_bytes / 1e6
                                                                for _, u in usage[1:]])
        else:
            self.charts["cpu"].set_series("process", times, cpu)
            self.charts["memory"].set_series("process", times, memory)

    def _draw_drift(self, now: float, window: float | None) -> None:
        monitor = self.monitor
        picture = monitor.drift(window)
        self.drift_rows = picture.rows
        self.baseline_note.setText(picture.waiting or f"Compared with {picture.baseline} over "
                                   f"the {self.window_choice.currentText().lower()} window.")
        table = self.drift_table
        table.blockSignals(True)
        table.setRowCount(len(picture.rows))
        for row, drift in enumerate(picture.rows):
            cells = (drift.feature, _number(drift.psi), _number(drift.js), _number(drift.ks),
                     _number(drift.chi2_p), f"{drift.live_count:,.0f}", drift.level)
            color = LEVEL_COLORS.get(drift.level)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if color is not None:
                    item.setBackground(QBrush(color))
                table.setItem(row, column, item)
            if drift.feature == self.selected_feature:
                table.selectRow(row)
        table.blockSignals(False)
        alerts = [d for d in picture.rows if d.level == "alert"]
        if alerts:
            names = ", ".join(f"{d.feature} (PSI {d.psi:.2f})" for d in alerts[:4])
            self.alert_banner.setText(f"Drift alert: {names} crossed PSI {monitor.thresholds.psi_alert:g}.")
            self.alert_banner.show()
            for drift in alerts:
                if drift.feature not in self.alerted:
                    self.alerted.add(drift.feature)
                    self.alert_raised.emit(drift.feature)
        else:
            self.alert_banner.hide()
        if not self.feature_chosen and picture.rows:
            self.selected_feature = picture.rows[0].feature
        self._draw_feature(now, window)

    def _draw_selected(self) -> None:
        rows = self.drift_table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self.drift_rows):
            self.selected_feature = self.drift_rows[rows[0].row()].feature
            self.feature_chosen = True
            self._draw_feature(time.monotonic(), self.window_s)

    def _draw_feature(self, now: float, window: float | None) -> None:
        monitor = self.monitor
        name = self.selected_feature
        if monitor is None or name is None:
            return
        history = monitor.drift_history.get(name, [])
        self.drift_chart.clear_series()
        self.drift_chart.set_series(name, [t - now for t, _ in history],
                                    [v for _, v in history])
        reference = monitor.reference or {}
        profile = (reference.get("predictions") if name == "(predictions)"
                   else (reference.get("features") or {}).get(name))
        if not profile:
            self.bins_chart.set_bins([], [], [])
            return
        counts = live_counts(monitor.series.scrapes(window))
        if profile.get("kind") == "categorical":
            live = (counts.predictions if name == "(predictions)" else
                    counts.categorical.get(name)) or {}
            labels = [str(c) for c in profile.get("categories") or []]
            self.bins_chart.set_bins(labels, list(profile.get("counts") or []),
                                     [float(live.get(c, 0.0)) for c in labels])
            return
        edges = list(profile.get("edges") or [])
        bins = (counts.predictions if name == "(predictions)" else counts.numeric.get(name))
        live = list(bins[1]) if isinstance(bins, tuple) else [0.0] * (len(edges) + 1)
        labels = [f"≤{e:.3g}" for e in edges] + [f">{edges[-1]:.3g}" if edges else "all"]
        self.bins_chart.set_bins(labels, list(profile.get("counts") or []), live)


def _number(value: float) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _increase(pair: list[Scrape], name: str, routes: tuple[str, ...],
              server_errors: bool = False) -> list[float]:
    labels = {"route": routes}
    return [grown for key, grown in increase(pair, name, labels).items()
            if not server_errors or dict(key).get("status", "").startswith("5")]

