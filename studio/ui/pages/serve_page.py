"""The Serve page: one Build & Run button from the current model to a ready server.

Everything slow (conversion, wheel download, docker build, waiting for readiness, following logs,
stopping) runs through the TaskRunner. Log lines are partial results: deploy hands out the build
log through its progress, and a task following the server hands out each line of its log; both
reach the log views on the GUI thread through the runner's `on_partial`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTabWidget,
    QWidget,
)

from studio.core.errors import StudioError, TrustRequired
from studio.core.model.artifact import ModelArtifact
from studio.core.model.artifact import load as load_model
from studio.core.monitor.reference_choice import (
    NO_DATA_CAVEAT,
    remember_reference,
    remembered_reference,
)
from studio.core.serve.bundle import DEFAULT_BASE_IMAGE, ImageOptions, ServingOptions, served_name
from studio.core.serve.deploy import DeployOptions, deploy
from studio.core.serve.runtimes.base import Deployment, DeploymentState
from studio.core.serve.runtimes.docker import EngineStatus
from studio.core.tasks import Progress
from studio.ui.pages.page import NO_MODEL, Page
from studio.ui.settings import StudioSettings
from studio.ui.widgets.page_parts import count_box, number_box, with_browse_button
from studio.ui.widgets.trust_dialog import TrustDialog
from studio.ui.workers import TaskHandle, TaskRunner

MAX_LOG_LINES = 20_000
TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
"""ANSI escape sequences: colours, bold, cursor moves."""


def follow_logs(deployment: Deployment, progress: Progress) -> None:
    """Hand out each line of the server's log as it comes, until it stops or is cancelled."""
    for line in deployment.follow_logs(progress):
        progress.partial(line)


class LogLines(QPlainTextEdit):
    """A build or server log, line by line. Terminal colour codes (ONNX Runtime colours its
    warnings) are dropped: a text view would show them as stray characters."""

    def __init__(self) -> None:
        super().__init__()
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LOG_LINES)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))

    def append_line(self, line: str) -> None:
        self.appendPlainText(TERMINAL_CODES.sub("", line))


class ServePage(Page):
    state_changed = Signal(str)
    """A DeploymentState value: building, starting, ready, failed, stopped."""
    deployment_ready = Signal(object)
    deployment_stopped = Signal()
    model_loaded = Signal(object)
    """A ModelArtifact this page loaded to serve it (a file dropped on it): the studio's current
    model from then on."""

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(runner, "Serve", subtitle=NO_MODEL, parent=parent)
        self.deployment: Deployment | None = None
        self.task: TaskHandle | None = None
        self._follow: TaskHandle | None = None
        self.state = DeploymentState.STOPPED
        self.engine: EngineStatus | None = None
        self.trust_dialog: TrustDialog | None = None

        layout = self.body
        layout.addWidget(self._build_form())
        layout.addLayout(self._build_status_row())
        self.logs = QTabWidget()
        self.build_log = LogLines()
        self.server_log = LogLines()
        self.logs.addTab(self.build_log, "Build log")
        self.logs.addTab(self.server_log, "Server log")
        layout.addWidget(self.logs, 1)
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
        self._default_base_image = DEFAULT_BASE_IMAGE
        self.model_version = "1"
        """The registry's version number of the model shown, once it is recorded: the server's
        metrics carry it, so two versions' figures never mix."""
        self.wheelhouse_cache: Path | None = None
        self.port = count_box(0, 65535)
        self.port.setSpecialValueText("its last one, or a free one")
        self.port.setToolTip("Empty: the port this model was served on last time when it is "
                             "free, so its URL stays the same; else any free port.")
        self.cpus = number_box(0, 64, step=0.5)
        self.cpus.setSpecialValueText("no limit")
        self.memory = QLineEdit()
        self.memory.setPlaceholderText("no limit (e.g. 512m)")
        self.batching = QCheckBox("Micro-batch concurrent requests")
        self.batching.setChecked(True)
        self.api_key_env = QLineEdit()
        self.api_key_env.setPlaceholderText("none: open to this machine")
        self.api_key_env.setToolTip(
            "The name of an environment variable of the studio that holds the key, e.g. "
            "SLIPWAY_KEY. The server then answers only requests that carry it; the key reaches "
            "the container or process when it starts, never the image.")
        self.protect_metrics = QCheckBox("Require the key for /metrics too")
        self.protect_metrics.setToolTip("Off: Prometheus scrapes /metrics without a key (it shows "
                                        "feature histograms, label counts and the model's hash).")
        self.api_key_env.textChanged.connect(lambda _: self._refresh())
        self.reference = QLineEdit()
        self.reference.setPlaceholderText("optional: CSV, Parquet or .npy the model was trained on")
        self.reference.setToolTip("Drift on the Monitor page is measured against this data. "
                                  "Without it, the first live requests are the baseline. "
                                  "Remembered for this model.")
        self.reference_caveat = QLabel(NO_DATA_CAVEAT + " Give the rows the model was trained "
                                       "on; the choice is remembered for this model.")
        self.reference_caveat.setObjectName("referenceCaveat")
        self.reference_caveat.setWordWrap(True)
        self.reference_caveat.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.reference.textChanged.connect(
            lambda text: self.reference_caveat.setHidden(bool(text.strip())))
        left = QFormLayout()
        left.addRow("Runtime", self.runtime)
        left.addRow("", self.runtime_reason)
        left.addRow("Image tag", self.tag)
        left.addRow("Base image", self.base_image)
        left.addRow("Reference data", with_browse_button(self.reference))
        left.addRow("", self.reference_caveat)
        right = QFormLayout()
        right.addRow("Port on 127.0.0.1", self.port)
        right.addRow("CPUs", self.cpus)
        right.addRow("Memory", self.memory)
        right.addRow("", self.batching)
        right.addRow("API key variable", self.api_key_env)
        right.addRow("", self.protect_metrics)
        row = QHBoxLayout(box)
        row.addLayout(left, 3)
        row.addLayout(right, 2)
        # What only a container has: hidden while the model would run as a local process.
        self._docker_rows = [(left, self.tag), (left, self.base_image), (right, self.cpus),
                             (right, self.memory)]
        return box

    def _build_status_row(self) -> QHBoxLayout:
        self.run_button = QPushButton("Build && Run")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.build_and_run)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.status = QLabel("stopped")
        self.status.setObjectName("deploymentState")
        # A build step's line can be hundreds of characters: it must not widen the window.
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
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
        previous = self.source
        super().set_source(artifact)
        if artifact is not previous:
            self.model_version = "1"  # until the registry says which version it is
        self._show_remembered_reference(previous, artifact)
        if artifact is None:
            self.subtitle.setText(NO_MODEL)
        else:
            self.tag.setPlaceholderText(f"slipway/{served_name(artifact).lower()}:1")
            onnx = artifact.schema.metadata.onnx is not None
            self.subtitle.setText(
                f"Model: {artifact.name} ({artifact.format})" + ("" if onnx else
                " — converted to ONNX and checked for parity before it is served"))
        self._refresh()

    def _show_remembered_reference(self, previous: ModelArtifact | None,
                                   artifact: ModelArtifact | None) -> None:
        """The reference data chosen for this model when it was last served; with no choice
        kept, the field stays as it is for a model of the same features (the optimized copy of
        the one before), and is emptied for another model."""
        remembered = remembered_reference(artifact.path) if artifact is not None else None
        if remembered is not None and not remembered.missing:
            self.reference.setText(str(remembered.data or ""))
        elif artifact is None or previous is None or \
                [f.name for f in previous.schema.features] != \
                [f.name for f in artifact.schema.features]:
            self.reference.clear()

    def apply_settings(self, settings: StudioSettings) -> None:
        """The default runtime and base image (a base image typed here stays), and where the
        image's wheels are cached."""
        self.runtime.setCurrentIndex(max(0, self.runtime.findData(settings.default_runtime)))
        if self.base_image.text().strip() in ("", self._default_base_image):
            self.base_image.setText(settings.base_image)
        self._default_base_image = settings.base_image
        self.wheelhouse_cache = Path(settings.wheelhouse_dir) if settings.wheelhouse_dir else None

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
        in_container = preference == "docker" or (
            preference == "auto" and (status is None or status.available))
        for form, widget in self._docker_rows:
            form.setRowVisible(widget, in_container)

    def _refresh(self) -> None:
        busy = self.state in (DeploymentState.BUILDING, DeploymentState.STARTING)
        running = self.deployment is not None and self.state == DeploymentState.READY
        self.run_button.setEnabled(self.source is not None and not busy and not running)
        self.stop_button.setEnabled(busy or running)
        self.copy_url.setEnabled(running)
        for widget in (self.runtime, self.tag, self.base_image, self.port, self.cpus, self.memory,
                       self.batching, self.reference, self.api_key_env):
            widget.setEnabled(not busy and not running)
        self.protect_metrics.setEnabled(not busy and not running
                                        and bool(self.api_key_env.text().strip()))

    def _set_state(self, state: DeploymentState, detail: str = "") -> None:
        self.state = state
        self.status.setText(state.value + (f": {detail}" if detail else ""))
        self.status.setProperty("state", state.value)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self._refresh()
        self.state_changed.emit(state.value)

    def served_key(self) -> str | None:
        """The key the running server checks (from the variable named in the form), so the pages
        that talk to it can send it; None when it checks none."""
        variable = self.api_key_env.text().strip()
        return os.environ.get(variable) or None if variable and self.deployment else None

    def options(self) -> DeployOptions:
        return DeployOptions(
            runtime=self.runtime.currentData(),
            tag=self.tag.text().strip() or None,
            port=self.port.value() or None,
            cpus=self.cpus.value() or None,
            memory=self.memory.text().strip() or None,
            serving=ServingOptions(version=self.model_version,
                                   batching=self.batching.isChecked(),
                                   reference_data=Path(self.reference.text().strip())
                                   if self.reference.text().strip() else None,
                                   api_key_env=self.api_key_env.text().strip() or None,
                                   protect_metrics=self.protect_metrics.isChecked()
                                   and bool(self.api_key_env.text().strip())),
            image=ImageOptions(base_image=self.base_image.text().strip() or self._default_base_image,
                               wheelhouse_cache=self.wheelhouse_cache),
        )

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
        options = self.options()
        chosen = (self.source.path, options.serving.reference_data)
        self.task = self.runner.submit(
            deploy, self.source, options, name=f"Serving {self.source.name}",
            on_partial=self.build_log.append_line,
            on_result=lambda deployment: self._ready(deployment, chosen),
            on_error=self._failed, on_progress=self._progress,
            on_cancel=lambda: self._set_state(DeploymentState.STOPPED))

    def serve_path(self, path: str | Path, trust: bool = False) -> None:
        """Drop to serve: load the file (asking first when loading it runs code), then Build & Run
        it with the options on the page; the same progress, errors and Stop as step by step."""
        path = Path(path)
        if self.state in (DeploymentState.BUILDING, DeploymentState.STARTING) or \
                self.deployment is not None:
            self.error_banner.show_error(StudioError(
                f"'{path.name}' was not served: a model is already running or starting here.",
                "Stop it first, then drop the file again."))
            return
        self.error_banner.hide()
        self.build_log.clear()
        self.server_log.clear()
        self.logs.setCurrentWidget(self.build_log)
        self._set_state(DeploymentState.BUILDING, f"loading {path.name}")
        self.task = self.runner.submit(
            load_model, path, trust=trust, name=f"Loading {path.name} to serve it",
            on_result=self._loaded_to_serve, on_error=lambda error: self._load_failed(path, error),
            on_progress=self._progress, on_cancel=lambda: self._set_state(DeploymentState.STOPPED))

    def _loaded_to_serve(self, artifact: ModelArtifact) -> None:
        self.task = None
        self.set_source(artifact)
        self.model_loaded.emit(artifact)
        self.build_and_run()

    def _load_failed(self, path: Path, error: StudioError) -> None:
        if not isinstance(error, TrustRequired):
            self._failed(error)
            return
        self.task = None
        self._set_state(DeploymentState.STOPPED, f"waiting: may {path.name} run its code?")
        self.trust_dialog = TrustDialog(error, self)
        self.trust_dialog.accepted.connect(lambda: self.serve_path(path, trust=True))
        self.trust_dialog.rejected.connect(lambda: self._failed(StudioError(
            f"'{path.name}' was not served: it runs code when loaded and was not trusted.",
            "Drop it again and choose Trust and load if you know where it came from.")))
        self.trust_dialog.open()

    def _progress(self, _fraction: float | None, message: str) -> None:
        if message.startswith("Starting"):
            self._set_state(DeploymentState.STARTING, message)
        elif self.state == DeploymentState.BUILDING:
            self.status.setText(f"building: {message}")
            self.status.setToolTip(message)

    def _ready(self, deployment: Deployment, chosen: tuple[Path, Path | None]) -> None:
        """`chosen`: the model served and its reference data (None: without), remembered so the
        next serve of the model brings the same."""
        self.deployment = deployment
        self.task = None
        try:
            remember_reference(*chosen)
        except StudioError as error:  # served all the same: only the next serve asks again
            self.error_banner.show_error(error)
        self._set_state(DeploymentState.READY, f"{deployment.runtime} runtime")
        self.url_label.setText(f'<a href="{deployment.url}/docs">{deployment.url}</a>'
                               f' &nbsp;(<a href="{deployment.url}/docs">API docs</a>)')
        self.logs.setCurrentWidget(self.server_log)
        self._follow = self.runner.submit(follow_logs, deployment, name="Following the server log",
                                          on_partial=self.server_log.append_line)
        self.deployment_ready.emit(deployment)

    def _failed(self, error: StudioError) -> None:
        self.task = None
        self._set_state(DeploymentState.FAILED)
        self.error_banner.show_error(error)
        if error.detail:
            for line in error.detail.splitlines()[-40:]:
                self.build_log.append_line(line)

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
