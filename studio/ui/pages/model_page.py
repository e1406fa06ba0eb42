"""The Model page: load a model (off the GUI thread) and show its schema, metadata and samples."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError, TrustRequired
from studio.core.model import artifact as artifacts
from studio.core.model.artifact import ModelArtifact
from studio.core.model.schema import ModelSchema, PipelineStep
from studio.core.units import human_size, printable
from studio.ui.pages.page import Page
from studio.ui.widgets.drop_zone import DropZone
from studio.ui.widgets.json_view import JsonView
from studio.ui.widgets.schema_table import FeatureTable, OutputTable, TensorTable
from studio.ui.widgets.trust_dialog import TrustDialog
from studio.ui.workers import TaskHandle, TaskRunner

if TYPE_CHECKING:
    from studio.ui.widgets.charts import OperatorChart


class ModelPage(Page):
    """Its title and subtitle are the loaded model's name and file; hidden until one is loaded."""

    artifact_loaded = Signal(object)
    """A ModelArtifact, once loaded and inspected."""
    load_failed = Signal(object)
    """The StudioError shown in the page."""
    open_requested = Signal()
    demo_requested = Signal()
    next_step_requested = Signal(str)
    """The title of the page the user goes on to with this model: "Optimize" or "Serve"."""

    EMPTY, LOADING, LOADED = range(3)

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None,
                 load_timeout: float = 120.0):
        super().__init__(runner, "", subtitle="", parent=parent)
        self.load_timeout = load_timeout
        self.artifact: ModelArtifact | None = None
        self.task: TaskHandle | None = None
        self.trust_dialog: TrustDialog | None = None
        self._pending_path: Path | None = None

        self.open_button = QPushButton("Open another…")
        self.open_button.clicked.connect(self.open_requested)
        self.add_header_button(self.open_button)
        # The next step, offered where the user reads the model: most go on to Serve.
        self.optimize_button = QPushButton("Optimize →")
        self.optimize_button.setToolTip("Convert to ONNX and make it smaller or faster, each step "
                                        "checked against the original")
        self.optimize_button.clicked.connect(lambda: self.next_step_requested.emit("Optimize"))
        self.serve_button = QPushButton("Serve →")
        self.serve_button.setToolTip("Run it as a local HTTP service (converted to ONNX first "
                                     "when needed)")
        self.serve_button.setDefault(True)
        self.serve_button.clicked.connect(lambda: self.next_step_requested.emit("Serve"))
        self.add_header_button(self.optimize_button)
        self.add_header_button(self.serve_button)

        self.states = QStackedWidget()
        self.drop_zone = DropZone()
        self.drop_zone.open_requested.connect(self.open_requested)
        self.drop_zone.demo_requested.connect(self.demo_requested)
        self.states.addWidget(self.drop_zone)
        self.states.addWidget(self._build_loading())
        self.states.addWidget(self._build_details())
        self.body.addWidget(self.states, 1)
        self._show_state(self.EMPTY)

    # --- construction --------------------------------------------------------------------------

    def _build_loading(self) -> QWidget:
        panel = QWidget()
        self.progress_label = QLabel("Loading…")
        self.progress_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 0)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        row = QHBoxLayout()
        row.addStretch()
        row.addWidget(self.cancel_button)
        row.addStretch()
        layout = QVBoxLayout(panel)
        layout.addStretch()
        layout.addWidget(self.progress_label)
        layout.addWidget(self.progress_bar)
        layout.addLayout(row)
        layout.addStretch()
        return panel

    @property
    def operator_chart(self) -> OperatorChart:
        """Made when first shown: the chart library costs start-up time the Inputs tab does not
        need."""
        if self._operator_chart is None:
            from studio.ui.widgets.charts import OperatorChart

            self._operator_chart = OperatorChart()
            self._operators_layout.takeAt(1)  # the stretch that held the note at the top
            self._operators_layout.addWidget(self._operator_chart, 1)
            self._set_operator_counts(self._operator_counts)
        return self._operator_chart

    def _set_operator_counts(self, counts: dict[str, int]) -> None:
        self._operator_counts = dict(counts)
        if self._operator_chart is not None:
            self._operator_chart.set_counts(self._operator_counts)
            self._operator_chart.setVisible(bool(self._operator_counts))

    def _build_details(self) -> QTabWidget:
        self.tabs = QTabWidget()
        self.tensor_table = TensorTable()
        self.feature_table = FeatureTable()
        self.features_label = QLabel()
        inputs = QWidget()
        inputs_layout = QVBoxLayout(inputs)
        inputs_layout.addWidget(self.tensor_table, 1)
        inputs_layout.addWidget(self.features_label)
        inputs_layout.addWidget(self.feature_table, 4)
        self.tabs.addTab(inputs, "Inputs")

        self.output_table = OutputTable()
        self.classes_label = QLabel()
        self.classes_label.setWordWrap(True)
        outputs = QWidget()
        outputs_layout = QVBoxLayout(outputs)
        outputs_layout.addWidget(self.output_table, 1)
        outputs_layout.addWidget(self.classes_label)
        self.tabs.addTab(outputs, "Outputs")

        self.metadata_tree = QTreeWidget()
        self.metadata_tree.setHeaderLabels(["Property", "Value"])
        self.metadata_tree.setColumnWidth(0, 220)
        self.tabs.addTab(self.metadata_tree, "Metadata")

        self.operators_note = QLabel()
        self.operators_note.setWordWrap(True)
        operators = QWidget()
        self._operators_layout = QVBoxLayout(operators)
        self._operators_layout.addWidget(self.operators_note)
        self._operators_layout.addStretch(1)
        self._operator_chart: OperatorChart | None = None
        self._operator_counts: dict[str, int] = {}
        self.operators_tab = self.tabs.addTab(operators, "Operators")
        self.tabs.currentChanged.connect(
            lambda index: index == self.operators_tab and self.operator_chart)

        self.rest_view = JsonView("POST /predict")
        self.batch_view = JsonView("POST /predict/batch")
        self.v2_view = JsonView("POST /v2/models/{name}/infer  (Open Inference Protocol)")
        samples = QSplitter(Qt.Orientation.Vertical)
        simple = QSplitter(Qt.Orientation.Horizontal)
        simple.addWidget(self.rest_view)
        simple.addWidget(self.batch_view)
        samples.addWidget(simple)
        samples.addWidget(self.v2_view)
        self.tabs.addTab(samples, "Sample requests")
        return self.tabs

    # --- loading -------------------------------------------------------------------------------

    def open_path(self, path: str | Path, trust: bool = False) -> None:
        """Load a model off the GUI thread; the current model stays until the new one is ready."""
        if self.task is not None and not self.task.done:
            self.task.cancel()
        path = Path(path)
        self._pending_path = path
        self.error_banner.hide()
        self.progress_label.setText(f"Loading {path.name}…")
        self.progress_bar.setRange(0, 0)
        self._show_state(self.LOADING)
        self.task = self.runner.submit(
            artifacts.load, path, trust=trust, timeout=self.load_timeout,
            name=f"Loading {path.name}",
            on_result=self._loaded, on_error=self._failed, on_progress=self._progress,
            on_cancel=self._cancelled,
        )

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _progress(self, fraction: float | None, message: str) -> None:
        self.progress_label.setText(message)
        if fraction is None:
            self.progress_bar.setRange(0, 0)
        else:
            self.progress_bar.setRange(0, 100)
            self.progress_bar.setValue(int(fraction * 100))

    def _show_state(self, state: int) -> None:
        self.states.setCurrentIndex(state)
        self.header.setVisible(state == self.LOADED)

    def _back_to_previous(self) -> None:
        self._show_state(self.LOADED if self.artifact else self.EMPTY)

    def _cancelled(self) -> None:
        self._back_to_previous()

    def _failed(self, error: StudioError) -> None:
        self._back_to_previous()
        if isinstance(error, TrustRequired) and self._pending_path is not None:
            self._ask_trust(self._pending_path, error)
            return
        self.error_banner.show_error(error)
        self.load_failed.emit(error)

    def _ask_trust(self, path: Path, request: TrustRequired) -> None:
        self.trust_dialog = TrustDialog(request, self)
        self.trust_dialog.accepted.connect(lambda: self.open_path(path, trust=True))
        self.trust_dialog.rejected.connect(
            lambda: self.error_banner.show_error(StudioError(
                f"'{path.name}' was not loaded: it runs code when loaded and was not trusted.",
                "Open it again and choose Trust and load if you know where it came from.",
            )))
        self.trust_dialog.open()

    def _loaded(self, artifact: ModelArtifact) -> None:
        self.show_artifact(artifact)
        self.artifact_loaded.emit(artifact)

    def show_artifact(self, artifact: ModelArtifact) -> None:
        self.artifact = artifact
        self.error_banner.hide()
        self.show_schema(artifact.schema)
        self._show_state(self.LOADED)

    # --- showing -------------------------------------------------------------------------------

    def show_schema(self, schema: ModelSchema) -> None:
        meta = schema.metadata
        self.title.setText(printable(schema.name))
        self.subtitle.setText(
            f"{meta.format} · {schema.task} · {human_size(meta.file_size)} · sha256 {meta.sha256[:12]}"
        )
        self.tensor_table.set_tensors(schema.inputs)
        self.feature_table.set_features(schema.features)
        self.feature_table.setVisible(bool(schema.features))
        self.features_label.setText(
            f"{len(schema.features)} features" if schema.features
            else "No tabular features: this model takes tensors (served through the v2 protocol)."
        )
        self.output_table.set_outputs(schema.outputs)
        self.classes_label.setText(
            "Classes: " + printable(", ".join(map(str, schema.class_names)))
            if schema.class_names else "")
        self._show_metadata(schema)
        if meta.onnx:
            self.operators_note.setText(
                f"{meta.onnx.node_count} nodes of {len(meta.onnx.operators)} operator types, "
                f"{meta.onnx.parameter_count:,} stored parameters.")
            self._set_operator_counts(meta.onnx.operators)
        else:
            self.operators_note.setText(
                "Operators are shown for ONNX models. Convert this model to ONNX on the Optimize "
                "page to see its graph.")
            self._set_operator_counts({})
        samples = schema.samples
        no_rest = "This model takes tensors only: use the v2 form below."
        self.rest_view.set_value(samples.rest if samples else None, no_rest)
        self.batch_view.set_value(samples.rest_batch if samples else None, no_rest)
        self.v2_view.set_value(samples.v2 if samples else None)
        self.v2_view.title.setText(f"POST /v2/models/{schema.name}/infer  (Open Inference Protocol)")

    def _show_metadata(self, schema: ModelSchema) -> None:
        meta = schema.metadata
        tree = self.metadata_tree
        tree.clear()

        def section(title: str, rows: list[tuple[str, object]]) -> QTreeWidgetItem:
            item = QTreeWidgetItem(tree, [title])
            for key, value in rows:  # what a model file says, made safe to show
                child = QTreeWidgetItem(item, [printable(key), printable(value)])
                child.setToolTip(1, printable(value))
            item.setExpanded(True)
            return item

        section("File", [("Format", meta.format), ("Path", meta.path),
                         ("Size", f"{human_size(meta.file_size)} ({meta.file_size:,} bytes)"),
                         ("SHA-256", meta.sha256), ("Task", schema.task)])
        if meta.onnx:
            info = meta.onnx
            section("ONNX", [
                ("IR version", info.ir_version),
                ("Opsets", ", ".join(f"{d} {v}" for d, v in info.opsets.items())),
                ("Producer", f"{info.producer} {info.producer_version}".strip() or "unknown"),
                ("Nodes", info.node_count), ("Parameters", f"{info.parameter_count:,}"),
                *((k, v) for k, v in info.properties.items()),
                *([("Doc string", info.doc_string)] if info.doc_string else []),
            ])
        if meta.estimator:
            section("Estimator", [("Class", meta.estimator),
                                  *((f"{lib} version", v) for lib, v in meta.library_versions.items())])
        if meta.steps:
            steps = QTreeWidgetItem(tree, ["Pipeline steps"])
            self._add_steps(steps, meta.steps)
            steps.setExpanded(True)
            tree.expandItem(steps)
        if meta.properties:
            section("Properties", list(meta.properties.items()))
        if meta.warnings:
            section("Warnings", [(str(i + 1), w) for i, w in enumerate(meta.warnings)])

    def _add_steps(self, parent: QTreeWidgetItem, steps: list[PipelineStep]) -> None:
        for step in steps:
            columns = f"  on {', '.join(step.columns)}" if step.columns else ""
            item = QTreeWidgetItem(parent, [printable(step.name), printable(step.type + columns)])
            item.setToolTip(1, printable(step.type + columns))
            self._add_steps(item, step.steps)
            item.setExpanded(True)
