"""The Batch page: the current model's predictions for every row of a CSV or Parquet file.

Pick the data and where the predictions go (the output's extension picks CSV or Parquet), what a
row that does not fit the model does (set aside in a rejects file, or stop the run), and run: the
file streams through core/batch in chunks off the GUI thread, with a progress bar, rows per
second, the rows rejected so far with their lines and reasons, and a preview of the first
predictions. Cancel stops between two chunks and leaves no output behind.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.batch.options import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    BatchError,
    BatchOptions,
)
from studio.core.batch.reading import Reject
from studio.core.batch.run import BatchProgress, BatchSummary, Preview, run_batch
from studio.core.errors import StudioError
from studio.core.model.artifact import ModelArtifact
from studio.core.units import printable
from studio.ui.pages.page import NO_MODEL, Page
from studio.ui.workers import TaskHandle, TaskRunner

DATA_FILTER = "Tables (*.csv *.parquet *.pq);;All files (*)"
OUTPUT_FILTER = "CSV (*.csv);;Parquet (*.parquet)"
REJECTS_SHOWN = 1000
"""Rejected rows listed on the page; every one of them is in the rejects file."""
IDLE = "Choose a data file and run; progress and rejected rows show here as the file streams."


def predictions_path(data: Path) -> Path:
    """Where a data file's predictions go unless told: beside it, in the same format."""
    suffix = data.suffix if data.suffix.lower() in (".csv", ".parquet", ".pq") else ".csv"
    return data.with_name(f"{data.stem}.predictions{suffix}")


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.verticalHeader().setVisible(False)
    return table


def _left(widget: QWidget) -> QHBoxLayout:
    """`widget` at its own width, not stretched across the form."""
    row = QHBoxLayout()
    row.addWidget(widget)
    row.addStretch(1)
    return row


def _line(text: str) -> QLabel:
    """A one-line label that never widens the page (a long path is cut, its tooltip whole): a
    wrapping label would make the window's scroll area ask for the page's full height."""
    label = QLabel(text)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _titled(title: str, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    label = QLabel(title)
    label.setObjectName("sectionTitle")
    layout.addWidget(label)
    layout.addWidget(widget, 1)
    return box


class BatchPage(Page):
    finished = Signal(object)
    """The BatchSummary of a run that completed."""

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(runner, "Batch predictions",
                         "Every row of a CSV or Parquet file through the model, streamed in "
                         "chunks: the input's columns and the predictions, in CSV or Parquet.",
                         parent=parent)
        self.task: TaskHandle | None = None
        self.summary: BatchSummary | None = None
        self._streaming = False

        self.model_label = QLabel(NO_MODEL)
        self.data = QLineEdit()
        self.data.setPlaceholderText("a .csv or .parquet file with a column per feature")
        self.data.textEdited.connect(self._data_typed)
        self.output = QLineEdit()
        self.output.setPlaceholderText("<data>.predictions.csv, or .parquet")
        self._output_typed = False
        self.output.textEdited.connect(lambda _: setattr(self, "_output_typed", True))
        self.on_bad_rows = QComboBox()
        self.on_bad_rows.addItem("Skip them, into a rejects file beside the output", "skip")
        self.on_bad_rows.addItem("Stop at the first one, write nothing", "fail")
        self.chunk_size = QSpinBox()
        self.chunk_size.setRange(1, MAX_CHUNK_SIZE)
        self.chunk_size.setValue(DEFAULT_CHUNK_SIZE)
        self.chunk_size.setGroupSeparatorShown(True)
        self.chunk_size.setSuffix(" rows")
        self.chunk_size.setMinimumWidth(160)
        self.chunk_size.setToolTip("Rows read and predicted at a time: memory follows it, not "
                                   "the file's size.")

        form = QFormLayout()
        form.addRow("Model", self.model_label)
        form.addRow("Data", self._with_button(self.data, "Choose the data file", self.choose_data))
        form.addRow("Predictions", self._with_button(self.output, "Choose where predictions go",
                                                     self.choose_output))
        form.addRow("Rows that do not fit", _left(self.on_bad_rows))
        form.addRow("Chunk size", _left(self.chunk_size))

        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.progress, 1)

        self.status = _line(IDLE)
        self.written = _line("")

        self.preview = _table([])
        self.rejects = _table(["line", "reason"])
        self.rejects.horizontalHeader().setSectionResizeMode(
            1, QHeaderView.ResizeMode.Stretch)
        results = QSplitter(Qt.Orientation.Vertical)
        results.addWidget(_titled("First predictions", self.preview))
        results.addWidget(_titled("Rows that did not fit", self.rejects))
        results.setSizes([300, 200])

        self.body.addLayout(form)
        self.body.addLayout(run_row)
        self.body.addWidget(self.status)
        self.body.addWidget(self.written)
        self.body.addWidget(results, 1)
        self.set_source(None)

    def _with_button(self, field: QLineEdit, tip: str, choose) -> QHBoxLayout:
        button = QPushButton("…")
        button.setFixedWidth(32)
        button.setToolTip(tip)
        button.clicked.connect(choose)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(field, 1)
        row.addWidget(button)
        return row

    # --- choosing ------------------------------------------------------------------------------

    def set_source(self, artifact: ModelArtifact | None) -> None:
        super().set_source(artifact)
        if artifact is None:
            self.model_label.setText(NO_MODEL)
        else:
            schema = artifact.schema
            self.model_label.setText(printable(
                f"{schema.name}: {schema.task}, {len(schema.features)} features "
                f"({artifact.model_file.name})"))
        self._update_buttons()

    def set_data(self, path: str | Path) -> None:
        self.data.setText(str(path))
        self._data_typed(str(path))

    def _data_typed(self, text: str) -> None:
        """The output follows the data until someone types or picks one of their own."""
        if text.strip() and not self._output_typed:
            self.output.setText(str(predictions_path(Path(text.strip()).expanduser())))

    def choose_data(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Data to predict", self.data.text(),
                                              DATA_FILTER)
        if path:
            self.set_data(path)

    def choose_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Where the predictions go",
                                              self.output.text(), OUTPUT_FILTER)
        if path:
            self.output.setText(path)
            self._output_typed = True

    # --- running -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.task is not None

    def _update_buttons(self) -> None:
        self.run_button.setEnabled(self.source is not None and not self.running)
        self.cancel_button.setEnabled(self.running)

    def _request(self) -> tuple[ModelArtifact, Path, Path, BatchOptions]:
        if self.source is None:
            raise BatchError("There is no model to predict with.", NO_MODEL)
        data, output = self.data.text().strip(), self.output.text().strip()
        if not data:
            raise BatchError("There is no data file to predict.",
                             "Choose a CSV or Parquet file with a column per feature.")
        if not output:
            raise BatchError("There is nowhere to write the predictions.",
                             "Choose an output file ending in .csv or .parquet.")
        options = BatchOptions(chunk_size=self.chunk_size.value(),
                               on_bad_rows=self.on_bad_rows.currentData())
        return self.source, Path(data).expanduser(), Path(output).expanduser(), options

    def start(self) -> None:
        if self.running:
            return
        self.error_banner.hide()
        request = self.checked(self._request)
        if request is None:
            return
        model, data, output, options = request
        self.summary = None
        self._streaming = False
        self.preview.setRowCount(0)
        self.preview.setColumnCount(0)
        self.rejects.setRowCount(0)
        self.rejects.setHorizontalHeaderLabels(["line" if data.suffix == ".csv" else "row",
                                                "reason"])
        self.progress.setRange(0, 0)  # busy until the first chunk says how far along it is
        self.status.setText(f"Starting: {data.name} → {output.name}")
        self.written.clear()
        task = self.runner.submit(run_batch, model, data, output, options, name="Batch predictions",
                                  on_partial=self._on_partial, on_progress=self._on_progress,
                                  on_result=self._done, on_error=self._failed,
                                  on_cancel=self._cancelled, on_finish=lambda: self._ended(task))
        self.task = task
        self._update_buttons()

    def cancel(self) -> None:
        if self.task is not None:
            self.status.setText("Cancelling…")
            self.task.cancel()

    def _on_progress(self, fraction: float | None, message: str) -> None:
        """Until rows stream, the steps before them (a conversion to ONNX, opening the data)."""
        if not self._streaming:
            self.status.setText(printable(message))

    def _on_partial(self, part: BatchProgress | str) -> None:
        if not isinstance(part, BatchProgress):  # the conversion to ONNX, before any row
            self._on_progress(None, str(part))
            return
        self._streaming = True
        if part.fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(round(part.fraction * 1000))
        done = "" if part.fraction is None else f" ({part.fraction:.0%})"
        self.status.setText(
            f"{part.rows_read:,} rows read{done} · {part.rows_per_second:,.0f} rows/s · "
            f"{part.rows_predicted:,} predicted · {part.rows_rejected:,} did not fit")
        self._add_rejects(part.new_rejects)
        if part.preview is not None:
            self._show_preview(part.preview)

    def _add_rejects(self, rejects: tuple[Reject, ...]) -> None:
        room = REJECTS_SHOWN - self.rejects.rowCount()
        for reject in rejects[:max(0, room)]:
            row = self.rejects.rowCount()
            self.rejects.insertRow(row)
            position = QTableWidgetItem(f"{reject.position:,}")
            position.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.rejects.setItem(row, 0, position)
            self.rejects.setItem(row, 1, QTableWidgetItem(printable(reject.reason)))

    def _show_preview(self, preview: Preview) -> None:
        """The model's columns first, in bold: they are what the run adds to the data."""
        width = len(preview.columns)
        order = list(range(width - preview.predicted_columns, width)) + \
            list(range(width - preview.predicted_columns))
        self.preview.setColumnCount(width)
        self.preview.setHorizontalHeaderLabels([printable(preview.columns[j]) for j in order])
        bold = self.preview.font()
        bold.setBold(True)
        self.preview.setRowCount(len(preview.rows))
        for i, row in enumerate(preview.rows):
            for shown, j in enumerate(order):
                item = QTableWidgetItem(printable(row[j]))
                if shown < preview.predicted_columns:
                    item.setFont(bold)
                self.preview.setItem(i, shown, item)
        self.preview.resizeColumnsToContents()

    def _done(self, summary: BatchSummary) -> None:
        self.summary = summary
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000)
        rejected = (f"{summary.rows_rejected:,} did not fit" if summary.rows_rejected
                    else "every row fitted the model")
        self.status.setText(
            f"Done: {summary.rows_predicted:,} of {summary.rows_read:,} rows predicted in "
            f"{summary.seconds:,.1f} s ({summary.rows_per_second:,.0f} rows/s); {rejected}.")
        written = f"Predictions: {summary.output}"
        if summary.rows_rejected:
            written += f"   Rows that did not fit: {summary.rejects_file}"
        self.written.setText(written)
        self.written.setToolTip(written)
        if summary.rows_rejected > self.rejects.rowCount():
            self.rejects.setToolTip(f"The first {self.rejects.rowCount():,}; all of them are in "
                                    f"{summary.rejects_file}")
        self._ended(self.task)
        self.finished.emit(summary)

    def _failed(self, error: StudioError) -> None:
        self._reset_progress()
        self.status.setText("The run stopped; nothing was written under the output's name.")
        self.error_banner.show_error(error)

    def _cancelled(self) -> None:
        self._reset_progress()
        output = self.output.text().strip()
        self.status.setText(f"Cancelled; nothing was written to {Path(output).name}."
                            if output else "Cancelled.")

    def _reset_progress(self) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)

    def _ended(self, task: TaskHandle | None) -> None:
        if task is not self.task:
            return  # a run that already wrapped up
        self.task = None
        self._update_buttons()
