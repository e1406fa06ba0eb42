"""The Serve page: one Build & Run button from the current model to a ready server.

Everything slow (conversion, wheel download, docker build, waiting for readiness, following logs,
stopping) runs through the TaskRunner; log lines cross to the GUI thread through queued signals.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.artifacts import ModelArtifact
from studio.core.bundle import DEFAULT_BASE_IMAGE, ImageOptions, ServingOptions, served_name
from studio.core.deploy import DeployOptions, deploy
from studio.core.errors import StudioError
from studio.core.runtimes.base import Deployment, DeploymentState
from studio.core.runtimes.docker import EngineStatus
from studio.ui.widgets.error_banner import ErrorBanner
from studio.ui.workers import TaskHandle, TaskRunner

MAX_LOG_LINES = 20_000


class _Lines(QObject):
    """Carries log lines from worker threads to the GUI thread."""

    line = Signal(str)


def _log_view() -> QPlainTextEdit:
    view = QPlainTextEdit()
    view.setReadOnly(True)
    view.setMaximumBlockCount(MAX_LOG_LINES)
    view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    return view


class ServePage(QWidget):
    state_changed = Signal(str)
    """A DeploymentState value: building, starting, ready, failed, stopped."""
    deployment_ready = Signal(object)
    deployment_stopped = Signal()
    log_requested = Signal()

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.source: ModelArtifact | None = None
        self.deployment: Deployment | None = None
        self.task: TaskHandle | None = None
        self._follow: TaskHandle | None = None
        self.state = DeploymentState.STOPPED
        self.engine: EngineStatus | None = None

        self.build_lines = _Lines(self)
        self.server_lines = _Lines(self)
        title = QLabel("Serve")
        title.setObjectName("modelTitle")
        self.source_label = QLabel("Open a model on the Model page first.")
        self.source_label.setObjectName("modelSubtitle")
        self.error_banner = ErrorBanner()
        self.error_banner.show_log_requested.connect(self.log_requested)

        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.source_label)
        layout.addWidget(self.error_banner)
        layout.addWidget(self._build_form())
        layout.addLayout(self._build_status_row())
        self.logs = QTabWidget()
        self.build_log = _log_view()
        self.server_log = _log_view()
        self.logs.addTab(self.build_log, "Build log")
        self.logs.addTab(self.server_log, "Server log")
        layout.addWidget(self.logs, 1)
        self.build_lines.line.connect(self.build_log.appendPlainText)
        self.server_lines.line.connect(self.server_log.appendPlainText)
        self.set_source(None)
        self._explain_runtime()

    # --- construction --------------------------------------------------------------------------

    def _build_form(self) -> QGroupBox:
        box = QGroupBox("Runtime and image")
        self.runtime = QComboBox()
        self.runtime.addItem("Auto (Docker when an engine answers)", "auto")
        self.runtime.addItem("Docker", "docker")
        self.runtime.addItem("Local process", "process")
        self.runtime.currentIndexChanged.connect(lambda _: self._explain_runtime())
        self.runtime_reason = QLabel()
        self.runtime_reason.setWordWrap(True)
        self.tag = QLineEdit()
        self.tag.setPlaceholderText("slipway/NAME:1")
        self.base_image = QLineEdit(DEFAULT_BASE_IMAGE)
        self.port = QSpinBox()
        self.port.setRange(0, 65535)
        self.port.setSpecialValueText("a free port")
        self.cpus = QDoubleSpinBox()
        self.cpus.setRange(0, 64)
        self.cpus.setSingleStep(0.5)
        self.cpus.setSpecialValueText("no limit")
        self.memory = QLineEdit()
        self.memory.setPlaceholderText("no limit (e.g. 512m)")
        self.batching = QCheckBox("Micro-batch concurrent requests")
        self.batching.setChecked(True)
        self.reference = QLineEdit()
        self.reference.setPlaceholderText("optional: CSV, Parquet or .npy the model was trained on")
        self.reference.setToolTip("Drift on the Monitor page is measured against this data. "
                                  "Without it, the first live requests are the baseline.")
        browse = QPushButton("…")
        browse.setFixedWidth(32)
        browse.clicked.connect(self._choose_reference)
        reference_row = QHBoxLayout()
        reference_row.addWidget(self.reference, 1)
        reference_row.addWidget(browse)
        left = QFormLayout()
        left.addRow("Runtime", self.runtime)
        left.addRow("", self.runtime_reason)
        left.addRow("Image tag", self.tag)
        left.addRow("Base image", self.base_image)
        left.addRow("Reference data", reference_row)
        right = QFormLayout()
        right.addRow("Port on 127.0.0.1", self.port)
        right.addRow("CPUs", self.cpus)
        right.addRow("Memory", self.memory)
        right.addRow("", self.batching)
        row = QHBoxLayout(box)
        row.addLayout(left, 3)
        row.addLayout(right, 2)
        return box

    def _build_status_row(self) -> QHBoxLayout:
        self.run_button = QPushButton("Build && Run")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.build_and_run)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.status = QLabel("stopped")
        self.status.setObjectName("deploymentState")
        self.url_label = QLabel()
        self.url_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.url_label.setOpenExternalLinks(True)
        self.copy_url = QPushButton("Copy URL")
        self.copy_url.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self.deployment.url if self.deployment else ""))
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.stop_button)
        row.addSpacing(16)
        row.addWidget(self.status)
        row.addWidget(self.url_label, 1)
        row.addWidget(self.copy_url)
        return row

    # --- state ---------------------------------------------------------------------------------

    def set_source(self, artifact: ModelArtifact | None) -> None:
        self.source = artifact
        if artifact is None:
            self.source_label.setText("Open a model on the Model page first.")
        else:
            self.tag.setPlaceholderText(f"slipway/{served_name(artifact).lower()}:1")
            onnx = artifact.schema.metadata.onnx is not None
            self.source_label.setText(
                f"Model: {artifact.name} ({artifact.format})" + ("" if onnx else
                " — converted to ONNX and checked for parity before it is served"))
        self._refresh()

    def set_engine(self, status: EngineStatus) -> None:
        """The latest Docker engine check, to explain which runtime Build & Run will use."""
        self.engine = status
        self._explain_runtime()

    def _explain_runtime(self) -> None:
        preference = self.runtime.currentData()
        status = self.engine
        if preference == "process":
            text = "Runs the server as a local process: no engine needed."
        elif status is None:
            text = "Checking for a Docker engine…"
        elif preference == "docker":
            text = (f"Builds an image and runs a container: {status.reason}." if status.available
                    else f"No Docker engine: {status.reason}. Choose Auto or Local process.")
        elif status.available:
            text = f"Docker: {status.reason}, so the model runs in a container."
        else:
            text = f"Local process: {status.reason}, so the model runs as a local process."
        self.runtime_reason.setText(text)

    def _refresh(self) -> None:
        busy = self.state in (DeploymentState.BUILDING, DeploymentState.STARTING)
        running = self.deployment is not None and self.state == DeploymentState.READY
        self.run_button.setEnabled(self.source is not None and not busy and not running)
        self.stop_button.setEnabled(busy or running)
        self.copy_url.setEnabled(running)
        for widget in (self.runtime, self.tag, self.base_image, self.port, self.cpus, self.memory,
                       self.batching, self.reference):
            widget.setEnabled(not busy and not running)

    def _set_state(self, state: DeploymentState, detail: str = "") -> None:
        self.state = state
        self.status.setText(state.value + (f": {detail}" if detail else ""))
        self.status.setProperty("state", state.value)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self._refresh()
        self.state_changed.emit(state.value)

    def options(self) -> DeployOptions:
        return DeployOptions(
            runtime=self.runtime.currentData(),
            tag=self.tag.text().strip() or None,
            port=self.port.value() or None,
            cpus=self.cpus.value() or None,
            memory=self.memory.text().strip() or None,
            serving=ServingOptions(batching=self.batching.isChecked(),
                                   reference_data=Path(self.reference.text().strip())
                                   if self.reference.text().strip() else None),
            image=ImageOptions(base_image=self.base_image.text().strip() or DEFAULT_BASE_IMAGE),
        )

    def _choose_reference(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Reference data", "",
                                              "Datasets (*.csv *.parquet *.pq *.npy)")
        if path:
            self.reference.setText(path)

    # --- actions -------------------------------------------------------------------------------

    def build_and_run(self) -> None:
        if self.source is None:
            return
        self.error_banner.hide()
        self.build_log.clear()
        self.server_log.clear()
        self.url_label.clear()
        self.logs.setCurrentWidget(self.build_log)
        self._set_state(DeploymentState.BUILDING)
        self.task = self.runner.submit(
            deploy, self.source, self.options(), on_log=self.build_lines.line.emit,
            name=f"Serving {self.source.name}", on_result=self._ready, on_error=self._failed,
            on_progress=self._progress, on_cancel=lambda: self._set_state(DeploymentState.STOPPED))

    def _progress(self, _fraction: float | None, message: str) -> None:
        if message.startswith("Starting"):
            self._set_state(DeploymentState.STARTING, message)
        elif self.state == DeploymentState.BUILDING:
            self.status.setText(f"building: {message}")

    def _ready(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.task = None
        self._set_state(DeploymentState.READY, f"{deployment.runtime} runtime")
        self.url_label.setText(f'<a href="{deployment.url}/docs">{deployment.url}</a>'
                               f' &nbsp;(<a href="{deployment.url}/docs">API docs</a>)')
        self.logs.setCurrentWidget(self.server_log)
        self._follow = self.runner.submit(self._follow_logs, deployment,
                                          name="Following the server log")
        self.deployment_ready.emit(deployment)

    def _follow_logs(self, deployment: Deployment, progress) -> None:
        for line in deployment.follow_logs(progress):
            self.server_lines.line.emit(line)

    def _failed(self, error: StudioError) -> None:
        self.task = None
        self._set_state(DeploymentState.FAILED)
        self.error_banner.show_error(error)
        if error.detail:
            for line in error.detail.splitlines()[-40:]:
                self.build_lines.line.emit(line)

    def stop(self) -> None:
        if self.task is not None:  # still building or starting
            self.task.cancel()
            return
        deployment, self.deployment = self.deployment, None
        if self._follow is not None:
            self._follow.cancel()
        if deployment is None:
            return
        self.status.setText("stopping…")
        self.stop_button.setEnabled(False)
        self.runner.submit(lambda progress: deployment.stop(), name=f"Stopping {deployment.name}",
                           on_finish=self._stopped, on_error=self.error_banner.show_error)

    def _stopped(self) -> None:
        self.url_label.clear()
        self._set_state(DeploymentState.STOPPED)
        self.deployment_stopped.emit()

    def shutdown(self) -> None:
        """On closing the studio: stop what it started (children never outlive it)."""
        if self.task is not None:
            self.task.cancel()
        if self._follow is not None:
            self._follow.cancel()
        if self.deployment is not None:
            self.deployment.stop(timeout=5)
            self.deployment = None
