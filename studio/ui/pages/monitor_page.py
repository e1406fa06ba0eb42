"""The Monitor page: live server metrics and input drift, read from the model's /metrics endpoint.

Every 500 ms a worker scrapes the server (studio/core/monitor/monitor.py does the I/O, with the
API key a server may check) and computes what to draw (studio/core/monitor/view.py), both off the
GUI thread, which only redraws: request rate by status, latency quantiles from the server's
histograms, inference against total latency, mean rows per batch, in-flight, error rate, CPU and
memory; and a drift table, one row per feature, most drifted first, colored by threshold. Selecting
a feature shows its reference and live histograms and its PSI over time. A scrape that fails leaves
a gap in the charts and a status message, and the next one recovers.

The headline says what each figure covers: the request rate "now" (the latest interval) beside the
window's figures, named by their span ("over the last 5 min"), so a burst that ended is not read
as current traffic. While the baseline is live traffic the page says, beside the drift table, that
drift present from the start cannot be seen; "Reference data…" attaches a dataset to the running
monitor, binned on the server's own bins.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.model.datasets import DATASET_SUFFIXES
from studio.core.monitor.drift import FeatureDrift, Thresholds
from studio.core.monitor.monitor import (
    DEFAULT_BASELINE_ROWS,
    Monitor,
    data_note,
)
from studio.core.monitor.reference import ReferenceProfile, read_profile
from studio.core.monitor.view import (
    FeatureView,
    MonitorView,
    build_view,
    drawable,
    headline,
)
from studio.core.serve.runtimes.base import Deployment
from studio.core.units import figure
from studio.ui.pages.page import Page
from studio.ui.settings import StudioSettings
from studio.ui.widgets.charts import BinsChart, SeriesChart
from studio.ui.widgets.page_parts import ServerFields, count_box, number_box
from studio.ui.workers import TaskRunner

REFRESH_MS = 500
WINDOWS = (("1 min", 60.0), ("5 min", 300.0), ("15 min", 900.0), ("All", None))
LEVEL_COLORS = {"alert": QColor(254, 202, 202), "warn": QColor(254, 240, 138),
                "ok": QColor(220, 252, 231)}
DRIFT_COLUMNS = ("Feature", "PSI", "JS", "KS", "χ² p", "Live n", "Level")
DRIFT_TAB = "Drift"


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
        self.reference_data: Path | None = None
        """A dataset to compare with, read against the watched server's bins once it answers."""

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
        self.reference_button.setToolTip("A reference profile (JSON), as a served model answers "
                                         "at GET /reference")
        self.reference_button.clicked.connect(self.choose_reference)
        self.data_button = QPushButton("Attach reference data…")
        self.data_button.setToolTip("The rows the model was trained on (CSV, Parquet, .npy), "
                                    "binned on the served model's own bins")
        self.data_button.clicked.connect(self.choose_reference_data)
        top = QHBoxLayout()
        top.addWidget(self.server, 4)
        top.addWidget(QLabel("Window"))
        top.addWidget(self.window_choice)
        top.addWidget(self.reference_button)
        top.addWidget(self.data_button)
        top.addWidget(self.watch_button)

        self.status = QLabel("Not watching. Watch reads the server's /metrics twice a second.")
        self.status.setObjectName("sectionTitle")
        self.status.setWordWrap(True)

        self.charts = {
            "requests": SeriesChart("Requests by status", "req/s"),
            "latency": SeriesChart("Latency", "ms"),
            "inference": SeriesChart("Inference vs total (p50)", "ms"),
            "batch": SeriesChart("Batch size (mean)", "rows per batch"),
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

        self.warn = number_box(0.01, 10, 0.1, step=0.05)
        self.alert = number_box(0.01, 10, 0.25, step=0.05)
        for spin in (self.warn, self.alert):
            spin.valueChanged.connect(self._thresholds_changed)
        self.baseline_rows = count_box(10, 1_000_000, DEFAULT_BASELINE_ROWS)
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
        self.baseline_caveat = QLabel()
        """What the baseline cannot show: drift present from the start, with a live baseline."""
        self.baseline_caveat.setObjectName("baselineCaveat")
        self.baseline_caveat.setWordWrap(True)
        self.baseline_caveat.setStyleSheet("background:#fef3c7; color:#78350f; padding:4px; "
                                           "border-radius:4px")
        self.baseline_caveat.hide()
        self.drift_table = QTableWidget(0, len(DRIFT_COLUMNS))
        self.drift_table.setHorizontalHeaderLabels(DRIFT_COLUMNS)
        header = self.drift_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # measuring cells is slow
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setDefaultSectionSize(56)
        # The level column holds the longest words ("not in reference"): sized to them once.
        header.resizeSection(len(DRIFT_COLUMNS) - 1, self.fontMetrics().horizontalAdvance(
            "not in reference") + 16)
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
        drift.setSizes([700, 380])  # the table's names and figures before the histograms
        # Traffic and drift each get the whole height in a tab of their own: sharing a 700-pixel
        # screen, eight charts and the drift table each had too little to be read. The alert
        # banner and the baseline caveat stay above both.
        self.views = QTabWidget()
        self.views.addTab(chart_grid, "Traffic")
        self.views.addTab(drift, DRIFT_TAB)
        # Their preferred size (ten plots at pyqtgraph's default) must not make the page taller
        # than the window and set it scrolling; their minimum stays what it was.
        self.views.setMinimumHeight(self.views.minimumSizeHint().height())
        self.views.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)

        self.body.addWidget(self.alert_banner)
        self.body.addLayout(top)
        self.body.addWidget(self.status)
        self.body.addWidget(self.baseline_caveat)
        self.body.addWidget(self.views, 1)

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
        self.reference_data = None  # the latest choice is the reference
        self.error_banner.hide()
        if self.watching:
            self.stop()
            self.start()

    def choose_reference_data(self) -> None:
        patterns = " ".join(f"*{suffix}" for suffix in DATASET_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Reference data", "",
                                              f"Datasets ({patterns})")
        if path:
            self.load_reference_data(path)

    def load_reference_data(self, path: str | Path) -> None:
        """Compare with the rows of a dataset from now on, keeping what was watched so far; read
        (off the GUI thread) against the watched server's schema and bins."""
        self.reference_data = Path(path)
        self.reference_profile = None  # the latest choice is the reference
        self.error_banner.hide()
        if self.watching:
            self._read_reference_data(self.monitor)
        else:
            self.baseline_note.setText(f"{self.reference_data.name} becomes the reference when "
                                       "watching starts.")

    def _read_reference_data(self, monitor: Monitor) -> None:
        path = self.reference_data
        self.data_button.setEnabled(False)
        self.baseline_note.setText(f"Reading {path.name} onto the server's bins…")

        def read(progress) -> ReferenceProfile:
            return monitor.reference_from_data(path)

        def done(profile: ReferenceProfile) -> None:
            if monitor is self.monitor and path == self.reference_data:
                monitor.use_reference(profile, data_note(path, profile))

        def failed(error: StudioError) -> None:
            if monitor is self.monitor and path == self.reference_data:
                self.reference_data = None
                self.error_banner.show_error(error)

        self.runner.submit(read, name="Read reference data", on_result=done, on_error=failed,
                           on_finish=lambda: self.data_button.setEnabled(True))

    def apply_settings(self, settings: StudioSettings) -> None:
        """The drift thresholds (the fields stay editable for this page) and how often to scrape."""
        self.warn.setValue(settings.psi_warn)
        self.alert.setValue(settings.psi_alert)
        self.timer.setInterval(round(settings.scrape_interval_s * 1000))

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
        if self.reference_data is not None:
            self._read_reference_data(self.monitor)

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

        self.runner.submit(scrape_and_compute, name="Scrape metrics", logged=False,  # twice a second
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
                chart.set_series(name, *drawable(times, values))
        self._draw_drift(view)
        if view.status:
            self.status.setText(f"No answer from {self.monitor.metrics_url}: {view.status} "
                                "(shown as a gap; retrying)")
        else:
            recognized = view.recognized
            self.status.setToolTip("Recognized metrics:\n" + "\n".join(
                f"{name}: {meaning}" for name, meaning in sorted(recognized.items())))
            slipway = any(name.startswith("slipway_") for name in recognized)
            self.status.setText(headline(view) + f" · recognized {len(recognized)} metric "
                                "families" + ("" if slipway else " (not a Slipway server: drift "
                                                                 "and model charts stay empty)"))
        self.refreshed.emit()

    def _draw_drift(self, view: MonitorView) -> None:
        if view.drift_error is not None:  # a profile on other bins: say so, keep the charts
            self.drift_rows = []
            self.drift_table.setRowCount(0)
            self.baseline_note.setText(view.drift_error.message)
            self.baseline_caveat.hide()
            self.views.setTabText(1, DRIFT_TAB)
            if self.error_banner.isHidden():
                self.error_banner.show_error(view.drift_error)
            return
        picture = view.drift
        self.drift_rows = picture.rows
        if picture.waiting:
            note = picture.waiting
        elif picture.caveat is not None:  # a live baseline: the live side is what followed it
            none_yet = not any(row.live_count for row in picture.rows)
            note = (f"Compared with {picture.baseline}: the requests after them {view.span}"
                    + (" (none yet)." if none_yet else "."))
        else:
            note = f"Compared with {picture.baseline} {view.span}."
        self.baseline_note.setText(note)
        self.baseline_caveat.setText(picture.caveat or "")
        self.baseline_caveat.setVisible(picture.caveat is not None)
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
                if not column:  # a long name is cut to the column: the whole of it on hover
                    item.setToolTip(text)
                item.setBackground(brush)
            if drift.feature == shown:
                table.selectRow(row)
        table.setUpdatesEnabled(True)
        table.blockSignals(False)
        alerts = [d for d in picture.rows if d.level == "alert"]
        plural = "s" if len(alerts) > 1 else ""
        self.views.setTabText(1, f"{DRIFT_TAB} · {len(alerts)} alert{plural}" if alerts
                              else DRIFT_TAB)
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
