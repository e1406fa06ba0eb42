"""The Optimize page: convert to ONNX and optimize, each step with its parity report.

Steps run one after another off the GUI thread; each finished step adds a row at once. Files are
written to a work folder; Save copies the selected one where the user wants it (asking first when
it failed its parity check), and "Use in later stages" makes it the current model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.files import copy_file
from studio.core.model.artifact import ModelArtifact
from studio.core.optimize import convert as convert_module
from studio.core.optimize import optimize as optimize_module
from studio.core.optimize.optimize import (
    DEFAULT_TOLERANCES,
    DESCRIPTIONS,
    Optimization,
    may_help,
)
from studio.core.optimize.parity import ParityReport, Tolerance
from studio.core.optimize.report import conversion_lines, optimization_lines
from studio.core.serve.places import version_work_dir
from studio.core.units import human_size
from studio.ui.pages.page import NO_MODEL, Page
from studio.ui.widgets.page_parts import number_box, rows_table, with_browse_button
from studio.ui.workers import TaskHandle, TaskRunner

PASS_COLOR = QColor(214, 240, 221)
FAIL_COLOR = QColor(250, 218, 218)
SKIP_COLOR = QColor(236, 238, 241)
SHORT_NAMES = {
    Optimization.GRAPH: "Graph optimization",
    Optimization.INT8: "Dynamic int8 weights",
    Optimization.INT8_STATIC: "Static int8, calibrated",
    Optimization.FP16: "float16",
}
"""Checkbox labels that fit a 1024-pixel window; the full description is their tooltip."""
COLUMNS = ["Step", "Result", "Size", "vs source", "1 row (ms) before → after",
           "Batch (ms) before → after", "Max |diff|",
           "Labels kept", "File"]


@dataclass
class StepResult:
    """One finished step: the report, the artifact it made (None when not applicable), and the
    model it was made from."""

    step: str
    artifact: ModelArtifact | None
    report: Any
    source: ModelArtifact | None = None

    @property
    def parity(self) -> ParityReport | None:
        return self.report.parity

    @property
    def verdict(self) -> str:
        if self.artifact is None:
            return "not applicable"
        return "pass" if self.parity is not None and self.parity.passed else "FAIL"

    def lines(self) -> list[str]:
        if isinstance(self.report, convert_module.ConversionReport):
            return conversion_lines(self.report)
        return optimization_lines(self.report)


class OptimizePage(Page):
    artifact_chosen = Signal(object)
    """A ModelArtifact the user carries into the later stages."""
    step_finished = Signal(object)
    """A StepResult."""
    run_finished = Signal()
    saved = Signal(object)
    """The Path a model was saved to."""

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(runner, "Optimize", subtitle=NO_MODEL, parent=parent)
        self.results: list[StepResult] = []
        self.task: TaskHandle | None = None
        self._queue: list[str] = []
        self._onnx_source: ModelArtifact | None = None
        self._work_dir: Path | None = None
        self.confirm_box: QMessageBox | None = None
        self.choose_destination = self._destination_from_dialog

        layout = self.body
        layout.addLayout(self._build_options())
        layout.addLayout(self._build_run_row())
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self._build_table())
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.setPlaceholderText("Select a step to see its full report.")
        splitter.addWidget(self.details)
        splitter.setSizes([260, 200])
        layout.addWidget(splitter, 1)
        layout.addLayout(self._build_result_buttons())
        self.set_source(None)

    # --- construction --------------------------------------------------------------------------

    def _build_options(self) -> QHBoxLayout:
        self.convert_box = QGroupBox("Convert to ONNX")
        self.opset = QSpinBox()
        self.opset.setRange(9, 21)
        self.opset.setValue(convert_module.DEFAULT_OPSET)
        self.convert_note = QLabel()
        self.convert_note.setWordWrap(True)
        form = QFormLayout(self.convert_box)
        form.addRow("Target opset", self.opset)
        form.addRow(self.convert_note)

        optimizations = QGroupBox("Optimize the ONNX model")
        self.optimization_boxes: dict[Optimization, QCheckBox] = {}
        column = QVBoxLayout(optimizations)
        for optimization in Optimization:
            box = QCheckBox(SHORT_NAMES[optimization])
            tol = DEFAULT_TOLERANCES[optimization]
            box.setToolTip(f"{DESCRIPTIONS[optimization]}.\nDefault tolerance: atol {tol.atol:g}, "
                           f"rtol {tol.rtol:g}, labels kept ≥ {tol.min_label_agreement:.0%}")
            self.optimization_boxes[optimization] = box
            column.addWidget(box)

        parity = QGroupBox("Parity check")
        self.reference = QLineEdit()
        self.reference.setPlaceholderText("none: rows are sampled from the schema")
        self.atol = number_box(1e-8, 10.0, Tolerance().atol, decimals=8, step=1e-7)
        self.rtol = number_box(0.0, 10.0, Tolerance().rtol, decimals=6, step=1e-5)
        self.min_agreement = number_box(0.0, 1.0, Tolerance().min_label_agreement, decimals=4,
                                        step=1e-3)
        self.custom_tolerance = QCheckBox("Apply these tolerances to the optimizations too")
        self.custom_tolerance.setToolTip("Otherwise each optimization uses its own documented "
                                         "default (hover over it to see it).")
        form = QFormLayout(parity)
        form.addRow("Reference data", with_browse_button(self.reference))
        form.addRow("Absolute tolerance", self.atol)
        form.addRow("Relative tolerance", self.rtol)
        form.addRow("Labels kept at least", self.min_agreement)
        form.addRow(self.custom_tolerance)

        row = QHBoxLayout()
        row.addWidget(self.convert_box, 1)
        row.addWidget(optimizations, 1)
        row.addWidget(parity, 2)
        return row

    def _build_run_row(self) -> QHBoxLayout:
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress_label = QLabel()
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress, 1)
        row.addWidget(self.progress_label, 2)
        return row

    def _build_table(self) -> QTableWidget:
        self.table = rows_table(COLUMNS)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        return self.table

    def _build_result_buttons(self) -> QHBoxLayout:
        self.save_button = QPushButton("Save as…")
        self.save_button.clicked.connect(self.save_selected)
        self.use_button = QPushButton("Use in later stages")
        self.use_button.setToolTip("Make this model the current one (Serve, Probe, Load …)")
        self.use_button.clicked.connect(self.use_selected)
        row = QHBoxLayout()
        row.addStretch()
        row.addWidget(self.save_button)
        row.addWidget(self.use_button)
        return row

    # --- state ---------------------------------------------------------------------------------

    def set_source(self, artifact: ModelArtifact | None) -> None:
        """The model to start from: the current model of the studio."""
        new_model = artifact is not self.source
        super().set_source(artifact)
        busy = self.task is not None and not self.task.done
        if artifact is not None and new_model:
            # int8 is offered ticked only where it can change something (see may_help).
            self.optimization_boxes[Optimization.INT8].setChecked(
                may_help(artifact, Optimization.INT8))
        if artifact is None:
            self.subtitle.setText(NO_MODEL)
        else:
            is_onnx = artifact.schema.metadata.onnx is not None
            self.subtitle.setText(
                f"Source: {artifact.name} ({artifact.format}, {artifact.schema.task}, "
                f"{human_size(artifact.schema.metadata.file_size)})")
            self.convert_note.setText(
                "Already ONNX: no conversion needed." if is_onnx else
                "The model is converted with skl2onnx (onnxmltools for boosters) and checked "
                "against the original on the reference rows.")
            self.convert_box.setEnabled(not is_onnx)
        self.run_button.setEnabled(artifact is not None and not busy)
        self.cancel_button.setEnabled(busy)
        self._update_result_buttons()

    def _update_result_buttons(self) -> None:
        selected = self.selected_result()
        has_file = selected is not None and selected.artifact is not None
        self.save_button.setEnabled(has_file)
        self.use_button.setEnabled(has_file)

    def tolerance(self) -> Tolerance:
        return Tolerance(atol=self.atol.value(), rtol=self.rtol.value(),
                         min_label_agreement=self.min_agreement.value())

    def planned_steps(self) -> list[str]:
        steps = [] if self.source is None or self.source.schema.metadata.onnx else ["convert"]
        return steps + [o.value for o, box in self.optimization_boxes.items() if box.isChecked()]

    # --- running -------------------------------------------------------------------------------

    def run(self) -> None:
        if self.source is None:
            return
        self.error_banner.hide()
        self.results.clear()
        self.table.setRowCount(0)
        self.details.clear()
        self._queue = self.planned_steps()
        if not self._queue:
            self.error_banner.show_error(StudioError("Nothing to do: choose at least one "
                                                     "optimization.", None))
            return
        self._total = len(self._queue)
        self._onnx_source = self.source if self.source.schema.metadata.onnx else None
        self._work_dir = version_work_dir(self.source)  # where Serve finds the conversion
        self._next_step()

    def _next_step(self) -> None:
        if not self._queue:
            self._finish("Done")
            return
        step = self._queue.pop(0)
        reference = self.reference.text().strip() or None
        done = self._total - len(self._queue) - 1
        self.progress_label.setText(f"Step {done + 1} of {self._total}: {step}")
        callbacks = {"on_result": lambda r, s=step: self._step_done(s, r),
                     "on_error": self._failed,
                     "on_progress": lambda f, m, d=done: self._progress(d, f, m),
                     "on_cancel": lambda: self._finish("Cancelled")}
        if step == "convert":
            output = self._work_dir / f"{self.source.name}.onnx"
            self.task = self.runner.submit(
                convert_module.convert, self.source, output, opset=self.opset.value(),
                reference=reference, tolerance=self.tolerance(), name="Converting to ONNX",
                **callbacks)
        else:
            optimization = Optimization(step)
            tolerance = self.tolerance() if self.custom_tolerance.isChecked() else None
            output = self._work_dir / f"{self._onnx_source.name}.{optimization.value}.onnx"
            self.task = self.runner.submit(
                optimize_module.optimize, self._onnx_source, optimization, output,
                reference=reference, tolerance=tolerance, name=DESCRIPTIONS[optimization],
                **callbacks)
        self.set_source(self.source)

    def _progress(self, done_steps: int, fraction: float | None, message: str) -> None:
        within = 0.5 if fraction is None else fraction
        self.progress.setValue(int(100 * (done_steps + within) / max(self._total, 1)))
        self.progress_label.setText(message)

    def _step_done(self, step: str, outcome) -> None:
        source = self.source if step == "convert" else self._onnx_source
        result = StepResult(step=step, artifact=outcome.artifact, report=outcome.report,
                            source=source)
        if step == "convert":
            self._onnx_source = outcome.artifact
        self.results.append(result)
        self._add_row(result)
        self.step_finished.emit(result)
        self._next_step()

    def _failed(self, error: StudioError) -> None:
        self._queue.clear()
        self.error_banner.show_error(error)
        self._finish("Stopped by an error")

    def cancel(self) -> None:
        self._queue.clear()
        if self.task is not None:
            self.task.cancel()

    def _finish(self, message: str) -> None:
        self.progress_label.setText(message)
        if message == "Done":
            self.progress.setValue(100)
        self.task = None
        self.set_source(self.source)
        self._select_saveable()
        self.run_finished.emit()

    # --- results -------------------------------------------------------------------------------

    def _add_row(self, result: StepResult) -> None:
        report = result.report
        row = self.table.rowCount()
        self.table.insertRow(row)
        size = report.file_size if result.step == "convert" else report.size_after
        source_size = (self.source.schema.metadata.file_size if result.step == "convert"
                       else report.size_before)
        before, after = report.latency_before, report.latency_after
        parity = result.parity
        numbers = [o.max_abs_diff for o in parity.outputs if o.max_abs_diff is not None] if parity else []
        agreement = parity.label_agreement if parity else None
        cells = [
            "convert to ONNX" if result.step == "convert" else result.step,
            result.verdict,
            human_size(size) if size else "-",
            f"{size / source_size:.0%}" if size and source_size else "-",
            f"{before.single_row_ms:.4f} → {after.single_row_ms:.4f}" if before and after else "-",
            f"{before.batch_ms:.3f} → {after.batch_ms:.3f} ({after.batch_rows} rows)"
            if before and after else "-",
            f"{max(numbers):.2e}" if numbers else "-",
            f"{agreement:.2%}" if agreement is not None else "-",
            str(result.artifact.model_file) if result.artifact else report.note,
        ]
        color = {"pass": PASS_COLOR, "FAIL": FAIL_COLOR}.get(result.verdict, SKIP_COLOR)
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            item.setBackground(QBrush(color))
            self.table.setItem(row, column, item)
        self.table.selectRow(row)

    def _select_saveable(self) -> None:
        """After a run, the row Save and "Use in later stages" act on: the last model made that
        passed its parity check, else the last one made at all."""
        made = [i for i, r in enumerate(self.results) if r.artifact is not None]
        passed = [i for i in made if self.results[i].verdict == "pass"]
        if passed or made:
            self.table.selectRow((passed or made)[-1])

    def selected_result(self) -> StepResult | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.results[rows[0].row()] if rows else None

    def _selection_changed(self) -> None:
        selected = self.selected_result()
        self.details.setPlainText("\n".join(selected.lines()) if selected else "")
        self._update_result_buttons()

    def use_selected(self) -> None:
        selected = self.selected_result()
        if selected is not None and selected.artifact is not None:
            self.artifact_chosen.emit(selected.artifact)

    def save_selected(self) -> None:
        selected = self.selected_result()
        if selected is None or selected.artifact is None:
            return
        if selected.verdict != "pass":
            self.confirm_box = QMessageBox(
                QMessageBox.Icon.Warning, "Save a model that failed its parity check?",
                "This model does not answer like the original within the tolerances: "
                + selected.parity.summary() + "\n\nSave it anyway?",
                QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel, self)
            self.confirm_box.setDefaultButton(QMessageBox.StandardButton.Cancel)
            box = self.confirm_box
            box.buttonClicked.connect(
                lambda button: self._save_to_chosen(selected)
                if box.standardButton(button) == QMessageBox.StandardButton.Save else None)
            box.open()
            return
        self._save_to_chosen(selected)

    def _destination_from_dialog(self, suggested: Path) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the ONNX model", str(suggested),
                                              "ONNX models (*.onnx)")
        return Path(path) if path else None

    def _save_to_chosen(self, selected: StepResult) -> None:
        destination = self.choose_destination(Path.home() / selected.artifact.model_file.name)
        if destination is not None:
            self.save_result(selected, destination)

    def save_result(self, result: StepResult, destination: Path) -> None:
        """Copy the model off the GUI thread (ONNX files can be large)."""
        self.runner.submit(lambda progress: copy_file(result.artifact.model_file, destination),
                           name=f"Saving {destination.name}", on_result=self._saved,
                           on_error=self.error_banner.show_error)

    def _saved(self, destination: Path) -> None:
        self.progress_label.setText(f"Saved {destination} at {time.strftime('%H:%M:%S')}")
        self.saved.emit(destination)
