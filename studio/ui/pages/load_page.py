"""The Load page: one click runs a load test against the current deployment, with live charts.

Presets fill the plan form (smoke, steady, sweep, spike); everything else is the form. The test
is prepared as the command line prepares it (studio/core/loadtest/prepare.py: bodies for the
model's schema, by default rows like the server's reference data, drift, the API key's header) and
runs in the load tester's own process (loadtest/engine.py, or loadtest/sweep.py for a sweep,
started off the GUI thread), so nothing the window does is timed as the server's. Its partial
results, a Snapshot every 250 ms and each judged SweepStep, reach the GUI thread through the
runner and extend the throughput and latency charts.
Cancel ends the run within a fraction of a second and still shows what was measured. A finished
run can be laid over the next one.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.loadtest import report as loadreport
from studio.core.loadtest.engine import run
from studio.core.loadtest.payloads import parse_drift
from studio.core.loadtest.plan import LoadPlan
from studio.core.loadtest.prepare import PayloadChoice, prepare
from studio.core.loadtest.results import LoadReport, Snapshot
from studio.core.loadtest.sweep import SweepReport, SweepStep, sweep
from studio.core.model.artifact import ModelArtifact
from studio.core.serve.bundle import served_name
from studio.core.units import figure
from studio.ui.pages.page import Page
from studio.ui.settings import StudioSettings
from studio.ui.widgets.charts import SeriesChart
from studio.ui.widgets.page_parts import (
    ServerFields,
    count_box,
    number_box,
    with_browse_button,
)
from studio.ui.workers import TaskHandle, TaskRunner

ROUTES = ("/predict", "/predict/batch", "/v2/models/{name}/infer")
PAYLOAD_SOURCES = (("Like the server's reference data", "default"),
                   ("Random valid rows from the schema", "random"),
                   ("The model's sample request", "sample"),
                   ("Rows of a reference dataset", "reference"))
"""The default's full story is its tooltip, and the plan's label says which rows were sent."""
DEFAULT_PAYLOAD_TIP = ("Rows drawn from the bins of the server's reference data when it was "
                       "bundled with a dataset, so that a load test does not look like drift on "
                       "the Monitor; random valid rows from the schema when it has none.")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    mode: str  # closed, open or sweep
    connections: int
    duration_s: float
    warmup_s: float = 0.0
    rate: float = 200.0


MY_PRESET = "Mine"
PRESETS = (
    Preset("Steady", "16 connections for 15 s after a 1 s warm-up: typical throughput and latency",
           "closed", 16, 15.0, 1.0),
    Preset("Smoke", "2 connections for 5 s: does it answer under light load", "closed", 2, 5.0),
    Preset("Sweep", "step the arrival rate up until p99 breaks the objective: find the knee",
           "sweep", 64, 3.0),
    Preset("Spike", "128 connections at once for 10 s, no warm-up: a sudden crowd",
           "closed", 128, 10.0),
)


class LoadPage(Page):
    finished = Signal(object)
    """The LoadReport or SweepReport of a run that ended (also when cancelled)."""

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(runner, "Load test", parent=parent)
        self.task: TaskHandle | None = None
        self.report: LoadReport | SweepReport | None = None
        self.previous: LoadReport | None = None
        self.snapshots: list[Snapshot] = []
        self.steps: list[SweepStep] = []

        self.server = ServerFields()
        self.url = self.server.url
        self.route = QComboBox()
        self.route.setEditable(True)
        self.presets = list(PRESETS)
        self._start_preset: tuple | None = None
        """The built-in presets, then the user's own from Settings."""
        self.preset = QComboBox()
        for preset in self.presets:
            self.preset.addItem(preset.name)
        self.preset.addItem("Custom")
        self.preset.currentIndexChanged.connect(self._preset_chosen)
        self.run_button = QPushButton("Run load test")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = QPushButton("Export report…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.choose_export)
        self.overlay = QCheckBox("Overlay previous run")
        self.overlay.setChecked(True)
        self.overlay.toggled.connect(self._draw_previous)
        top = QHBoxLayout()
        top.addWidget(self.server, 3)
        top.addWidget(self.route, 1)
        top.addWidget(self.preset)
        top.addWidget(self.run_button)
        top.addWidget(self.cancel_button)
        self.preset_note = QLabel()
        self.preset_note.setObjectName("hint")

        self.form = self._build_form()
        self.status = QLabel("Choose a preset and run; the charts fill as the test goes.")
        self.status.setObjectName("sectionTitle")
        self.throughput_chart = SeriesChart("Throughput per 250 ms window", "req/s")
        self.latency_chart = SeriesChart("Latency per 250 ms window", "ms")
        charts = QSplitter(Qt.Orientation.Vertical)
        charts.addWidget(self.throughput_chart)
        charts.addWidget(self.latency_chart)

        self.summary = QLabel()
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setWordWrap(True)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.form)
        # The report's rows scroll under the form: at 1024x700 they are taller than the room left.
        summary_scroll = QScrollArea()
        summary_scroll.setWidgetResizable(True)
        summary_scroll.setFrameShape(QFrame.Shape.NoFrame)
        summary_scroll.setWidget(self.summary)
        side_layout.addWidget(summary_scroll, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.overlay)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        side_layout.addLayout(buttons)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(side)
        split.addWidget(charts)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([400, 600])

        self.body.addLayout(top)
        self.body.addWidget(self.preset_note)
        self.body.addWidget(self.status)
        self.body.addWidget(split, 1)
        self._preset_chosen(0)
        self.set_source(None)

    # --- the form ------------------------------------------------------------------------------

    def _build_form(self) -> QWidget:
        form = QWidget()
        grid = QFormLayout(form)
        grid.setContentsMargins(0, 0, 0, 0)
        self.mode = QComboBox()
        self.mode.addItem("Closed loop (N workers)", "closed")
        self.mode.addItem("Open loop (arrival rate)", "open")
        self.mode.addItem("Rate sweep (find the knee)", "sweep")
        self.connections = count_box(1, 1024)
        self.rate = number_box(1, 1_000_000, decimals=0, suffix=" req/s")
        self.poisson = QCheckBox("Poisson arrivals")
        self.duration = number_box(0.5, 3600, suffix=" s")
        self.warmup = number_box(0, 600, suffix=" s")
        self.timeout = number_box(0.1, 120, 5.0, suffix=" s")
        self.slo = number_box(0.1, 60_000, 50.0, suffix=" ms")
        self.payload = QComboBox()
        for label, key in PAYLOAD_SOURCES:
            self.payload.addItem(label, key)
        self.payload.setItemData(0, DEFAULT_PAYLOAD_TIP, Qt.ItemDataRole.ToolTipRole)
        for combo in (self.mode, self.payload):
            # The form gives the charts room: a long choice is elided, not a wider form.
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(16)
        self.reference = QLineEdit()
        self.reference.setPlaceholderText("CSV, Parquet or .npy file")
        reference_row = with_browse_button(self.reference, on_chosen=lambda _: (
            self.payload.setCurrentIndex(self.payload.findData("reference"))))
        self.drift = QLineEdit()
        self.drift.setPlaceholderText("e.g. alcohol=+2sd; ash=*1.5")
        grid.addRow("Mode", self.mode)
        grid.addRow("Connections", self.connections)
        rate_row = QHBoxLayout()
        rate_row.addWidget(self.rate, 1)
        rate_row.addWidget(self.poisson)
        grid.addRow("Rate", rate_row)
        grid.addRow("Duration (sweep: per step)", self.duration)
        grid.addRow("Warm-up", self.warmup)
        grid.addRow("Timeout", self.timeout)
        grid.addRow("Sweep objective p99", self.slo)
        grid.addRow("Payload", self.payload)
        grid.addRow("Reference data", reference_row)
        grid.addRow("Drift", self.drift)
        for widget in (self.mode, self.payload):
            widget.currentIndexChanged.connect(self._form_edited)
        for spin in (self.connections, self.rate, self.duration, self.warmup):
            spin.valueChanged.connect(self._form_edited)
        self.mode.currentIndexChanged.connect(self._enable_fields)
        self.payload.currentIndexChanged.connect(self._enable_fields)
        return form

    def apply_settings(self, settings: StudioSettings) -> None:
        """Your own preset (Settings > Load tests) joins the built-in ones, and the page starts
        on the preset chosen there."""
        mine = settings.my_preset
        preset = Preset(MY_PRESET, f"{mine.connections} connections for {mine.duration_s:g} s after "
                        f"a {mine.warmup_s:g} s warm-up: your own, from Settings", "closed",
                        mine.connections, mine.duration_s, mine.warmup_s)
        self.preset.blockSignals(True)
        if self.presets[-1].name == MY_PRESET:
            self.presets[-1] = preset
        else:
            self.presets.append(preset)
            self.preset.insertItem(len(self.presets) - 1, MY_PRESET)
        self.preset.blockSignals(False)
        chosen = (settings.load_preset, replace(settings.my_preset))
        if chosen == self._start_preset:
            return  # another setting changed: the plan in the form stays
        self._start_preset = chosen
        start = self.preset.findText(settings.load_preset)
        if not self.running and start >= 0:
            self.preset.setCurrentIndex(start)
            self._preset_chosen(start)

    def _preset_chosen(self, index: int) -> None:
        if index >= len(self.presets):
            self.preset_note.setText("Custom: the form below is the plan.")
            return
        preset = self.presets[index]
        self._filling = True
        self.mode.setCurrentIndex(self.mode.findData(preset.mode))
        self.connections.setValue(preset.connections)
        self.duration.setValue(preset.duration_s)
        self.warmup.setValue(preset.warmup_s)
        self.rate.setValue(preset.rate)
        self._filling = False
        self.preset_note.setText(f"{preset.name}: {preset.description}.")
        self._enable_fields()

    def _form_edited(self) -> None:
        if not getattr(self, "_filling", False) and self.preset.currentIndex() < len(self.presets):
            self.preset.blockSignals(True)
            self.preset.setCurrentIndex(len(self.presets))
            self.preset.blockSignals(False)
            self.preset_note.setText("Custom: the form below is the plan.")

    def _enable_fields(self) -> None:
        mode = self.mode.currentData()
        self.rate.setEnabled(mode == "open")
        self.poisson.setEnabled(mode == "open")
        self.slo.setEnabled(mode == "sweep")
        self.warmup.setEnabled(mode != "sweep")
        self.reference.setEnabled(self.payload.currentData() == "reference")

    # --- state ---------------------------------------------------------------------------------

    def set_source(self, artifact: ModelArtifact | None) -> None:
        super().set_source(artifact)
        name = served_name(artifact) if artifact else "{name}"
        current = self.route.currentText()
        self.route.clear()
        for route in ROUTES:
            self.route.addItem(route.replace("{name}", name))
        if current and not current.endswith("/infer"):
            self.route.setCurrentText(current)

    def set_url(self, url: str) -> None:
        self.url.setText(url)

    @property
    def running(self) -> bool:
        return self.task is not None

    def plan(self) -> tuple[LoadPlan, str, float]:
        """The plan from the form, with its mode and the sweep objective; checked, so a bad plan
        is refused before anything runs. Its bodies are made when it is prepared."""
        url = self.server.required_url("load")
        mode = self.mode.currentData()
        plan = LoadPlan(url=url, route=self.route.currentText().strip() or "/predict",
                        mode="closed" if mode == "sweep" else mode,
                        connections=self.connections.value(),
                        rate=self.rate.value() if mode == "open" else None,
                        arrival="poisson" if self.poisson.isChecked() else "constant",
                        duration_s=self.duration.value(),
                        warmup_s=self.warmup.value() if mode != "sweep" else 0.0,
                        timeout_s=self.timeout.value())
        plan.check()
        return plan, mode, self.slo.value()

    def payload_choice(self) -> PayloadChoice:
        """Where the bodies come from, as the form says; StudioError for a drift it cannot read."""
        drifts = tuple(parse_drift(text) for text in self.drift.text().replace(",", ";").split(";")
                       if text.strip())
        return PayloadChoice(source=self.payload.currentData(),
                             path=self.reference.text().strip() or None, drifts=drifts)

    # --- running -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        asked = self.checked(lambda: (self.plan(), self.payload_choice()))
        if asked is None:
            return
        (plan, mode, slo), payload = asked
        self.error_banner.hide()
        api_key = self.server.key()
        schema = self.source.schema if self.source is not None else None
        if self.report is not None and isinstance(self.report, LoadReport):
            self.previous = self.report
        self.report = None
        self.snapshots, self.steps = [], []
        self.throughput_chart.clear_series()
        self.latency_chart.clear_series()
        sweeping = mode == "sweep"
        for chart, title in ((self.throughput_chart, "Served per step" if sweeping
                              else "Throughput per 250 ms window"),
                             (self.latency_chart, "Latency per step" if sweeping
                              else "Latency per 250 ms window")):
            chart.getPlotItem().setLabel("bottom", "offered req/s" if sweeping else "seconds")
            chart.getPlotItem().setTitle(title)
        self._draw_previous()
        self.summary.clear()
        self.export_button.setEnabled(False)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Preparing requests for {plan.url}{plan.route}…")

        def work(progress) -> LoadReport | SweepReport:
            prepared = prepare(plan, payload, api_key=api_key, schema=schema)
            if sweeping:
                return sweep(prepared, slo, step_s=prepared.duration_s or 3.0, progress=progress)
            return run(prepared, progress)

        task = self.runner.submit(work, name="Load test", on_partial=self._on_partial,
                                  on_result=self._done, on_error=self._failed,
                                  on_finish=lambda: self._finished(task))
        self.task = task

    def cancel(self) -> None:
        if self.task is not None:
            self.status.setText("Cancelling…")
            self.task.cancel()

    def _on_partial(self, part: Snapshot | SweepStep) -> None:
        if isinstance(part, SweepStep):
            self._on_step(part)
        elif isinstance(part, Snapshot):
            self._on_snapshot(part)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        if self.mode.currentData() == "sweep":
            self.status.setText(f"Sweep step: {snapshot.throughput:,.0f} req/s in the last "
                                f"250 ms, p99 {figure(snapshot.overall.p99_ms, '.1f', ' ms')} "
                                "over the step so far")
            return
        if snapshot.warming_up:
            self.status.setText(f"Warming up… {-snapshot.elapsed_s:.1f} s left")
            return
        self.snapshots.append(snapshot)
        times = [s.elapsed_s for s in self.snapshots]
        self.throughput_chart.set_series("ok", times, [s.throughput for s in self.snapshots])
        self.throughput_chart.set_series("errors", times, [s.error_rate for s in self.snapshots])
        for name in ("p50", "p95", "p99"):
            self.latency_chart.set_series(name, times, [getattr(s.interval, f"{name}_ms")
                                                        for s in self.snapshots])
        overall = snapshot.overall
        self.status.setText(
            f"{snapshot.elapsed_s:.1f} s: {snapshot.throughput:,.0f} req/s in the last 250 ms; "
            f"over the run so far p50 {figure(overall.p50_ms, '.2f', ' ms')}, p99 "
            f"{figure(overall.p99_ms, '.2f', ' ms')}, {snapshot.errors:,} errors; "
            f"{snapshot.inflight} in flight")

    def _on_step(self, step: SweepStep) -> None:
        self.steps.append(step)
        self.steps.sort(key=lambda s: s.rate)
        rates = [s.rate for s in self.steps]
        self.throughput_chart.set_series("ok", rates, [s.throughput for s in self.steps],
                                         markers=True)
        self.latency_chart.set_series("p50", rates, [s.p50_ms for s in self.steps], markers=True)
        self.latency_chart.set_series("p99", rates, [s.p99_ms for s in self.steps], markers=True)
        verdict = "met" if step.met else f"missed ({step.reason})"
        self.status.setText(f"{step.rate:,.0f} req/s offered: {verdict}; p99 "
                            f"{figure(step.p99_ms, '.1f', ' ms')} over the step")

    def _draw_previous(self) -> None:
        for chart in (self.throughput_chart, self.latency_chart):
            for name in [n for n in chart.lines if n.startswith("previous")]:
                chart.remove_series(name)
        previous = self.previous
        if previous is None or not self.overlay.isChecked() or self.mode.currentData() == "sweep":
            return
        times = [s.elapsed_s for s in previous.timeline]
        self.throughput_chart.set_series("previous ok", times,
                                         [s.throughput for s in previous.timeline])
        self.latency_chart.set_series("previous p99", times,
                                      [s.interval.p99_ms for s in previous.timeline])

    def _done(self, report: LoadReport | SweepReport) -> None:
        self.report = report
        self.export_button.setEnabled(True)
        if isinstance(report, SweepReport):
            knee = (f"{report.knee_rate:,.0f} req/s" if report.knee_rate is not None
                    else "none (the first step already missed)")
            self.status.setText(f"Sweep {'cancelled' if report.cancelled else 'done'}: highest "
                                f"rate meeting p99 ≤ {report.slo_p99_ms:g} ms is {knee}.")
            rows = loadreport.about_rows(report) + [
                (f"{s.rate:,.0f} req/s", f"served {s.throughput:,.0f} req/s, p99 "
                 f"{figure(s.p99_ms, '.1f', ' ms')}: " + ("met" if s.met else "missed")
                 + ("" if s.met or s.reason.startswith("p99") else f" ({s.reason})"))
                for s in report.steps]
        else:
            self.status.setText(("Cancelled: " if report.cancelled else "Done: ") + report.plan)
            rows = loadreport.about_rows(report) + loadreport.summary_rows(report)
            rows += [(f"{count:,} × {kind}", report.error_samples.get(kind, "")[:160])
                     for kind, count in report.errors_by_kind.items()]
        # Escaped: an error sample is whatever the server answered.
        self.summary.setText("<table>" + "".join(
            f"<tr><td><b>{html.escape(label)}</b>&nbsp;&nbsp;</td><td>{html.escape(text)}</td>"
            "</tr>" for label, text in rows) + "</table>")
        self._finished(self.task)  # ready for the next run before anyone hears of this one
        self.finished.emit(report)

    def _failed(self, error: StudioError) -> None:
        self.status.setText("The load test could not run.")
        self.error_banner.show_error(error)

    def _finished(self, task: TaskHandle | None) -> None:
        if task is not self.task:
            return  # a run that already wrapped up; a newer one may be going
        self.task = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    # --- export --------------------------------------------------------------------------------

    def choose_export(self) -> None:
        if self.report is None:
            return
        kinds = "HTML report (*.html);;JSON (*.json)"
        if isinstance(self.report, LoadReport):
            kinds += ";;CSV timeline (*.csv)"
        path, _ = QFileDialog.getSaveFileName(self, "Export the report", "load-report.html", kinds)
        if path:
            self.export(path)

    def export(self, path: str | Path) -> Path | None:
        if self.report is None:
            return None
        try:
            written = loadreport.save(self.report, path)
        except StudioError as error:  # the disk, said as the disk
            self.error_banner.show_error(error)
            return None
        except ValueError as exc:
            self.error_banner.show_error(StudioError(f"Cannot write the report: {exc}",
                                                     "Choose a .html, .json or .csv file."))
            return None
        self.status.setText(f"Report written to {written}.")
        return written

