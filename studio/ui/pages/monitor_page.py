"""The Monitor page: live server metrics and input drift, read from the model's /metrics endpoint.

Every 500 ms a worker scrapes the server (studio/core/monitor/monitor.py does the I/O, with the
API key a server may check) and computes what to draw (studio/core/monitor/view.py), both off the
GUI thread, which only redraws: request rate by status, latency quantiles from the server's
histograms, inference against total latency, batch size, in-flight, error rate, CPU and memory;
and a drift table, one row per feature, most drifted first, colored by threshold. Selecting a
feature shows its reference and live histograms and its PSI over time. A scrape that fails leaves
a gap in the charts and a status message, and the next one recovers.
"""

from __future__ import annotations

import math
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

from studio.core.monitor.drift import FeatureDrift, Thresholds
from studio.core.monitor.monitor import DEFAULT_BASELINE_ROWS, Monitor
from studio.core.monitor.reference import ReferenceProfile, read_profile
from studio.core.monitor.view import FeatureView, MonitorView, build_view
from studio.core.serve.runtimes.base import Deployment
from studio.core.units import figure
from studio.ui.pages.page import Page
from studio.ui.widgets.charts import BinsChart, SeriesChart
from studio.ui.widgets.page_parts import ServerFields
from studio.ui.workers import TaskRunner

REFRESH_MS = 500
WINDOWS = (("1 min", 60.0), ("5 min", 300.0), ("15 min", 900.0), ("All", None))
LEVEL_COLORS = {"alert": QColor(254, 202, 202), "warn": QColor(254, 240, 138),
                "ok": QColor(220, 252, 231)}
DRIFT_COLUMNS = ("Feature", "PSI", "JS", "KS", "χ² p", "Live n", "Level")


def _line(values: list[float | None]) -> list[float]:
    """Chart values with breaks: pyqtgraph draws NaN as a gap (connect='finite')."""
    return [math.nan if v is None else v for v in values]


class MonitorPage(Page):
    refreshed = Signal()
    """Emitted after each redraw (tests wait on it)."""
    alert_raised = Signal(str)
    """A feature crossed the alert threshold: its name."""

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(runner, "Monitor", parent=parent)
        self.monitor: Monitor | None = None
        self.deployment: Deployment | None = None
        self.fetching = False
        self.drift_rows: list[FeatureDrift] = []
        self.alerted: set[str] = set()
        self.reference_profile: ReferenceProfile | None = None

        self.alert_banner = QLabel()
        self.alert_banner.setObjectName("alertBanner")
        self.alert_banner.setStyleSheet("background:#fee2e2; color:#7f1d1d; padding:6px; "
                                        "border-radius:4px; font-weight:600")
        self.alert_banner.hide()

        self.server = ServerFields("; any Prometheus endpoint works")
        self.url = self.server.url
        self.window_choice = QComboBox()
        for label, seconds in WINDOWS:
            self.window_choice.addItem(label, seconds)
        self.window_choice.setCurrentIndex(1)
        self.watch_button = QPushButton("Watch")
        self.watch_button.setDefault(True)
        self.watch_button.clicked.connect(self.toggle)
        self.reference_button = QPushButton("Reference profile…")
        self.reference_button.clicked.connect(self.choose_reference)
        top = QHBoxLayout()
        top.addWidget(self.server, 4)
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
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # measuring cells is slow
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setDefaultSectionSize(64)
        self.drift_table.verticalHeader().hide()
        self.drift_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.drift_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.drift_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.drift_table.itemSelectionChanged.connect(self._draw_selected)
        self.selected_feature: str | None = None
        """The feature the user picked; until then the most drifted one is shown."""
        self.view: MonitorView | None = None
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
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(chart_grid)
        split.addWidget(drift)
        split.setSizes([340, 360])

        self.body.addWidget(self.alert_banner)
        self.body.addLayout(top)
        self.body.addWidget(self.status)
        self.body.addWidget(split, 1)

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

    def choose_reference(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Reference profile", "",
                                              "Reference profile (*.json)")
        if path:
            self.load_reference(path)

    def load_reference(self, path: str | Path) -> None:
        profile = self.checked(lambda: read_profile(path))
        if profile is None:
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
        url = self.checked(lambda: self.server.required_url("watch"))
        if url is None:
            return
        self.error_banner.hide()
        usage = None
        if self.deployment is not None and self.deployment.url.rstrip("/") == url.rstrip("/"):
            usage = self.deployment.usage
        if self.monitor is not None:
            self.monitor.close()
        self.monitor = Monitor(url, reference=self.reference_profile,
                               thresholds=self._thresholds(),
                               baseline_rows=self.baseline_rows.value(),
                               api_key=self.server.key(), usage_source=usage)
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
            self.monitor.close()
            self.status.setText(f"Stopped watching {self.monitor.url}.")

    def _thresholds(self) -> Thresholds:
        return Thresholds(self.warn.value(), max(self.alert.value(), self.warn.value()))

    def _thresholds_changed(self) -> None:
        if self.monitor is not None:
            self.monitor.thresholds = self._thresholds()  # used from the next refresh on

    # --- polling -------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self.fetching or self.monitor is None:
            return  # a slow server: never more than one scrape in flight
        self.fetching = True
        monitor, window, feature = self.monitor, self.window_s, self.selected_feature

        def scrape_and_compute(progress) -> MonitorView | None:
            # The scrape, the history and the arithmetic all stay on this worker: ticks are
            # serialized (one in flight), so the Monitor is never touched by two threads.
            poll = monitor.fetch()
            if monitor.closed:
                return None  # stopped while the scrape was on its way: it changes nothing
            monitor.apply(poll)
            return build_view(monitor, window, feature)

        self.runner.submit(scrape_and_compute, name="Scrape metrics",
                           on_result=lambda view: self._computed(monitor, view),
                           on_finish=self._fetch_done)

    def _fetch_done(self) -> None:
        self.fetching = False

    def _computed(self, monitor: Monitor, view: MonitorView | None) -> None:
        if view is None or monitor is not self.monitor or not self.watching:
            return  # from a monitor replaced, or stopped, since the scrape began
        self.redraw(view)

    # --- drawing -------------------------------------------------------------------------------

    @property
    def window_s(self) -> float | None:
        return self.window_choice.currentData()

    def redraw(self, view: MonitorView) -> None:
        """Draw a computed view: only widget updates happen here, on the GUI thread."""
        self.view = view
        for key, lines in view.charts.items():
            chart = self.charts[key]
            for name, (times, values) in lines.items():
                chart.set_series(name, times, _line(values))
        self._draw_drift(view)
        monitor, figures = self.monitor, view.figures
        if view.status:
            self.status.setText(f"No answer from {monitor.metrics_url}: {view.status} "
                                "(shown as a gap; retrying)")
        else:
            recognized = view.recognized
            self.status.setToolTip("Recognized metrics:\n" + "\n".join(
                f"{name}: {meaning}" for name, meaning in sorted(recognized.items())))
            self.status.setText(
                f"{figures['request_rate']:,.1f} req/s, p50 {figures['p50_ms']:.2f} ms, p99 "
                f"{figures['p99_ms']:.2f} ms, {figures['error_ratio']:.1%} errors, "
                f"{figures['inflight']:.0f} in flight · recognized {len(recognized)} metric "
                "families" + ("" if any(n.startswith("slipway_") for n in recognized)
                              else " (not a Slipway server: drift and model charts stay empty)"))
        self.refreshed.emit()

    def _draw_drift(self, view: MonitorView) -> None:
        if view.drift_error is not None:  # a profile on other bins: say so, keep the charts
            self.drift_rows = []
            self.drift_table.setRowCount(0)
            self.baseline_note.setText(view.drift_error.message)
            if self.error_banner.isHidden():
                self.error_banner.show_error(view.drift_error)
            return
        picture = view.drift
        self.drift_rows = picture.rows
        self.baseline_note.setText(picture.waiting or f"Compared with {picture.baseline} over "
                                   f"the {self.window_choice.currentText().lower()} window.")
        table = self.drift_table
        table.blockSignals(True)
        table.setUpdatesEnabled(False)  # one repaint for the whole table, not one per cell
        if table.rowCount() != len(picture.rows):
            table.setRowCount(len(picture.rows))
        shown = view.feature.name if view.feature is not None else None
        for row, drift in enumerate(picture.rows):
            cells = (drift.feature, figure(drift.psi), figure(drift.js), figure(drift.ks),
                     figure(drift.chi2_p), f"{drift.live_count:,.0f}", drift.level)
            brush = QBrush(LEVEL_COLORS.get(drift.level, QColor(255, 255, 255)))
            for column, text in enumerate(cells):
                item = table.item(row, column)
                if item is None:  # cells are made once and then updated in place
                    item = QTableWidgetItem()
                    if column:
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                              | Qt.AlignmentFlag.AlignVCenter)
                    table.setItem(row, column, item)
                item.setText(text)
                item.setBackground(brush)
            if drift.feature == shown:
                table.selectRow(row)
        table.setUpdatesEnabled(True)
        table.blockSignals(False)
        alerts = [d for d in picture.rows if d.level == "alert"]
        if alerts:
            names = ", ".join(f"{d.feature} (PSI {d.psi:.2f})" for d in alerts[:4])
            self.alert_banner.setText(
                f"Drift alert: {names} crossed PSI {self.monitor.thresholds.psi_alert:g}.")
            self.alert_banner.show()
            for drift in alerts:
                if drift.feature not in self.alerted:
                    self.alerted.add(drift.feature)
                    self.alert_raised.emit(drift.feature)
        else:
            self.alert_banner.hide()
        self._draw_feature(view.feature)

    def _draw_selected(self) -> None:
        """The user picked a feature: it is shown from the next refresh on (half a second)."""
        rows = self.drift_table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self.drift_rows):
            self.selected_feature = self.drift_rows[rows[0].row()].feature

    def _draw_feature(self, feature: FeatureView | None) -> None:
        self.drift_chart.clear_series()
        if feature is None:
            self.bins_chart.set_bins([], [], [])
            return
        self.drift_chart.set_series(feature.name, feature.psi_times, feature.psi)
        self.bins_chart.set_bins(feature.labels, feature.reference, feature.live)

