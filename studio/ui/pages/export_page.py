"""The Export page: options on the left, the manifests as they will be written on the right.

Every change of an option rebuilds the documents at once (they are plain data, built in
microseconds) and shows them, a tab per file; the checks (kubernetes-validate, the rules,
kustomize, Compose and Checkov, which takes seconds) then run through the TaskRunner, a moment
after the last change, and each tab gets its verdict. Save to folder writes only what passed.
The image follows the Serve page's Docker deployment; the model is the current artifact, and the
image's own labels and serving.json are read (off the GUI thread) when an engine has it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.export.documents import Export, build_export
from studio.core.export.facts import ServedModel, from_artifact, from_image
from studio.core.export.findings import Report
from studio.core.export.options import (
    ExportOptions,
    ExportOptionsError,
    export_options,
    kubernetes_versions,
)
from studio.core.export.write import check_export, write_export
from studio.core.model.artifact import ModelArtifact
from studio.ui.pages.page import NO_MODEL, Page
from studio.ui.widgets.page_parts import count_box
from studio.ui.workers import TaskHandle, TaskRunner

CHECK_DELAY_MS = 800
"""Quiet time after the last change before the checks run again."""
PASSED, FAILED, UNCHECKED = "✓", "✗", "…"


class ExportPage(Page):
    checked_report = Signal(object)
    """The Report of the latest check of the documents shown."""
    saved = Signal(list)
    """The files Save to folder wrote."""

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(runner, "Export", subtitle=NO_MODEL, parent=parent)
        self.model: ServedModel | None = None
        self.export: Export | None = None
        self.report: Report | None = None
        self._check: TaskHandle | None = None
        self._facts: TaskHandle | None = None
        self._closed = False
        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(CHECK_DELAY_MS)
        self._check_timer.timeout.connect(self.run_checks)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._build_form())
        splitter.addWidget(self._build_preview())
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([430, 750])
        self.body.addWidget(splitter, 1)
        self.set_source(None)

    # --- construction --------------------------------------------------------------------------

    def _line(self, placeholder: str = "", text: str = "") -> QLineEdit:
        field = QLineEdit(text)
        field.setPlaceholderText(placeholder)
        field.textChanged.connect(self.refresh)
        return field

    def _spin(self, low: int, high: int, value: int) -> QSpinBox:
        spin = count_box(low, high, value)
        spin.valueChanged.connect(self.refresh)
        return spin

    def _check_box(self, text: str) -> QCheckBox:
        box = QCheckBox(text)
        box.toggled.connect(self.refresh)
        return box

    def _build_form(self) -> QScrollArea:
        defaults = ExportOptions.model_fields
        self.image = self._line("registry.example.com/team/model:1 (filled by the Serve page)")
        self.name = self._line("from the model")
        self.namespace = self._line("the name")
        self.replicas = self._spin(0, 1000, defaults["replicas"].default)
        self.cpu = self._line(text=defaults["cpu"].default)
        self.cpu_limit = self._line(text=defaults["cpu_limit"].default)
        self.memory = self._line(text=defaults["memory"].default)
        self.memory_limit = self._line(text=defaults["memory_limit"].default)
        self.ephemeral = self._line(text=defaults["ephemeral_storage"].default)
        self.ephemeral_limit = self._line(text=defaults["ephemeral_storage_limit"].default)
        self.port = self._spin(1, 65535, defaults["port"].default)
        self.environment = self._line("NAME=value, NAME=value")
        self.api_key_env = self._line("what the image reads")
        self.autoscale = self._check_box("Autoscale on CPU")
        self.min_replicas = self._spin(2, 1000, 2)
        self.max_replicas = self._spin(2, 1000, 5)
        self.target_cpu = self._spin(1, 100, 70)
        self.canary = self._line("optional: a second version's image")
        self.canary_percent = self._spin(1, 50, defaults["canary_percent"].default)
        self.version = QComboBox()
        self.version.addItems(list(kubernetes_versions()))
        self.version.setCurrentText(defaults["kubernetes_version"].default_factory())
        self.version.currentTextChanged.connect(self.refresh)
        self.kserve = self._check_box("KServe InferenceService")
        self.servicemonitor = self._check_box("Prometheus ServiceMonitor")
        self.ingress_host = self._line("optional: model.example.com")
        self.fields = {"image": self.image, "name": self.name, "namespace": self.namespace,
                       "replicas": self.replicas, "cpu": self.cpu, "cpu_limit": self.cpu_limit,
                       "memory": self.memory, "memory_limit": self.memory_limit,
                       "ephemeral_storage": self.ephemeral,
                       "ephemeral_storage_limit": self.ephemeral_limit, "port": self.port,
                       "environment": self.environment, "api_key_env": self.api_key_env,
                       "min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                       "target_cpu": self.target_cpu, "canary_image": self.canary,
                       "canary_percent": self.canary_percent,
                       "kubernetes_version": self.version, "ingress_host": self.ingress_host}

        form = QFormLayout()
        form.addRow("Image", self.image)
        form.addRow("Name", self.name)
        form.addRow("Namespace", self.namespace)
        form.addRow("Replicas", self.replicas)
        form.addRow("CPU request / limit", _pair(self.cpu, self.cpu_limit))
        form.addRow("Memory request / limit", _pair(self.memory, self.memory_limit))
        form.addRow("Ephemeral storage", _pair(self.ephemeral, self.ephemeral_limit))
        form.addRow("Port", self.port)
        form.addRow("Environment", self.environment)
        form.addRow("API key variable", self.api_key_env)
        form.addRow("", self.autoscale)
        form.addRow("Min / max / CPU %", _pair(self.min_replicas, self.max_replicas,
                                               self.target_cpu))
        form.addRow("Canary image", self.canary)
        form.addRow("Canary traffic %", self.canary_percent)
        form.addRow("Kubernetes", self.version)
        form.addRow("", self.kserve)
        form.addRow("", self.servicemonitor)
        form.addRow("Ingress host", self.ingress_host)
        box = QGroupBox("Options")
        box.setLayout(form)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(box)
        return scroll

    def _build_preview(self) -> QWidget:
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.status = QLabel()
        self.status.setObjectName("exportStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.findings = QListWidget()
        self.findings.setMaximumHeight(170)
        self.findings.setWordWrap(True)
        self.save_button = QPushButton("Save to folder…")
        self.save_button.clicked.connect(self.choose_folder)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the file shown to the clipboard")
        self.copy_button.clicked.connect(self.copy_current)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.save_button)
        column = QVBoxLayout()
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.tabs, 1)
        column.addLayout(buttons)
        column.addWidget(self.findings)
        preview = QWidget()
        preview.setLayout(column)
        return preview

    # --- inputs --------------------------------------------------------------------------------

    def set_source(self, artifact: ModelArtifact | None) -> None:
        super().set_source(artifact)
        self.model = from_artifact(artifact) if artifact is not None else None
        self.subtitle.setText(NO_MODEL if artifact is None else
                              f"Model: {artifact.name}. Manifests for the image that serves it.")
        self._read_image_facts()
        self.refresh()

    def set_image(self, reference: str) -> None:
        """The image to export, as the Serve page built it."""
        self.image.setText(reference)
        self._read_image_facts()

    def follow_deployment(self, deployment) -> None:
        """A ready deployment from the Serve page: a container's image is the one to export."""
        container = getattr(deployment, "container", None)
        if deployment.runtime == "docker" and container is not None:
            self.set_image(container.attrs["Config"]["Image"])

    def _read_image_facts(self) -> None:
        reference = self.image.text().strip()
        if self.source is None or not reference:
            return
        if self._facts is not None:
            self._facts.cancel()
        source = self.source
        self._facts = self.runner.submit(lambda progress: from_image(reference, source),
                                         name=f"Reading {reference}",
                                         on_result=self._facts_read)

    def _facts_read(self, model: ServedModel) -> None:
        if self._closed:
            return
        self._facts = None
        self.model = model
        self.refresh()

    def options(self) -> ExportOptions:
        environment = {}
        for pair in filter(None, (p.strip() for p in self.environment.text().split(","))):
            key, equals, value = pair.partition("=")
            if not equals:
                raise ExportOptionsError(f"environment: {pair!r} is not NAME=value.",
                                         "Write each as NAME=value, separated by commas.",
                                         field="environment")
            environment[key.strip()] = value.strip()
        name = self.name.text().strip() or (self.model.default_name if self.model else "model")
        autoscale = self.autoscale.isChecked()
        return export_options(
            image=self.image.text().strip(), name=name,
            namespace=self.namespace.text().strip() or name, replicas=self.replicas.value(),
            cpu=self.cpu.text(), cpu_limit=self.cpu_limit.text(), memory=self.memory.text(),
            memory_limit=self.memory_limit.text(), ephemeral_storage=self.ephemeral.text(),
            ephemeral_storage_limit=self.ephemeral_limit.text(), port=self.port.value(),
            environment=environment, api_key_env=self.api_key_env.text().strip() or None,
            min_replicas=self.min_replicas.value() if autoscale else None,
            max_replicas=self.max_replicas.value() if autoscale else None,
            target_cpu=self.target_cpu.value() if autoscale else None,
            canary_image=self.canary.text().strip() or None,
            canary_percent=self.canary_percent.value(),
            kubernetes_version=self.version.currentText(), kserve=self.kserve.isChecked(),
            servicemonitor=self.servicemonitor.isChecked(),
            ingress_host=self.ingress_host.text().strip() or None)

    # --- preview and checks --------------------------------------------------------------------

    def refresh(self) -> None:
        """Rebuild the documents from the options and show them; the checks follow shortly."""
        for widget in (self.min_replicas, self.max_replicas, self.target_cpu):
            widget.setEnabled(self.autoscale.isChecked())
        self.replicas.setEnabled(not self.autoscale.isChecked())
        for widget in self.fields.values():
            _mark(widget, False)
        self._cancel_check()
        self.export, self.report = None, None
        self.error_banner.hide()
        if self.model is None:
            self._show_status("Open a model on the Model page first.")
            return self._update_buttons()
        if not self.image.text().strip():
            self._show_status("Give the image `slipway build` made, or run the model in Docker "
                              "on the Serve page.")
            return self._update_buttons()
        try:
            options = self.options()
        except ExportOptionsError as error:
            if error.field in self.fields:
                _mark(self.fields[error.field], True, error.message)
            self.error_banner.show_error(error)
            self._show_status(f"{FAILED} {error.message}")
            return self._update_buttons()
        self.export = build_export(options, self.model)
        self._show_documents()
        self._show_status(f"{UNCHECKED} Checking…")
        self._update_buttons()
        self._check_timer.start()

    def _show_documents(self) -> None:
        current = self.tabs.tabToolTip(self.tabs.currentIndex()) if self.tabs.count() else ""
        self.tabs.clear()
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        for document in self.export.documents:
            view = QPlainTextEdit(document.text())
            view.setReadOnly(True)
            view.setFont(font)
            view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
            index = self.tabs.addTab(view, f"{UNCHECKED} {_short(document.path)}")
            self.tabs.setTabToolTip(index, document.path)
            if document.path == current:
                self.tabs.setCurrentIndex(index)

    def run_checks(self) -> None:
        if self.export is None:
            return
        self._cancel_check()
        export = self.export
        self._check = self.runner.submit(
            check_export, export, name="Checking the manifests",
            on_result=lambda report: self._checked(export, report),
            on_error=self._check_failed,
            on_progress=lambda _f, message: self._show_status(f"{UNCHECKED} {message}…"))

    def _cancel_check(self) -> None:
        self._check_timer.stop()
        if self._check is not None:
            self._check.cancel()
            self._check = None

    def _checked(self, export: Export, report: Report) -> None:
        if self._closed or export is not self.export:  # closed, or the options changed meanwhile
            return
        self._check = None
        self.report = report
        for index in range(self.tabs.count()):
            failed = report.for_document(self.tabs.tabToolTip(index))
            self.tabs.setTabText(index, f"{FAILED if failed else PASSED} "
                                        f"{_short(self.tabs.tabToolTip(index))}")
        self.findings.clear()
        for finding in report.findings:
            self.findings.addItem(f"{FAILED} {finding.line()}")
        for run in report.missing_tools:
            self.findings.addItem(f"not run: {run.detail}")
        for note in report.notes + report.skip_summary():
            self.findings.addItem(f"note: {note}")
        ran = ", ".join(run.tool for run in report.tools if run.ran)
        if report.passed:
            self._show_status(f"{PASSED} Every check passed ({ran})."
                              + (" Some checks could not run: see below."
                                 if report.missing_tools else ""))
        else:
            self._show_status(f"{FAILED} {len(report.findings)} failed checks: see below. "
                              "Nothing can be saved until they pass.")
        self._update_buttons()
        self.checked_report.emit(report)

    def _check_failed(self, error: StudioError) -> None:
        if self._closed:
            return
        self._check = None
        self.error_banner.show_error(error)
        self._show_status(f"{FAILED} The checks could not run.")

    def _show_status(self, text: str) -> None:
        if not self._closed:
            self.status.setText(text)

    def _update_buttons(self) -> None:
        self.copy_button.setEnabled(self.export is not None)
        self.save_button.setEnabled(self.report is not None and self.report.passed)

    def shutdown(self) -> None:
        """On closing the studio: stop the checks; what they answer later is not shown."""
        self._closed = True
        self._cancel_check()
        if self._facts is not None:
            self._facts.cancel()

    # --- actions -------------------------------------------------------------------------------

    def copy_current(self) -> None:
        view = self.tabs.currentWidget()
        if isinstance(view, QPlainTextEdit):
            QGuiApplication.clipboard().setText(view.toPlainText())

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save the manifests to")
        if folder:
            self.save_to(folder)

    def save_to(self, folder: str) -> None:
        if self.export is None or self.report is None:
            return
        written = self.checked(lambda: write_export(self.export, folder, self.report))
        if written is not None:
            self._show_status(f"{PASSED} Saved {len(written)} files to {folder}. Next: kubectl "
                              f"apply -k {folder}/kubernetes/overlays/production")
            self.saved.emit(written)


def _pair(*widgets: QWidget) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return row


def _mark(widget: QWidget, invalid: bool, why: str = "") -> None:
    """A field the last error named: outlined, its reason in the tooltip."""
    widget.setProperty("invalid", invalid)
    widget.setStyleSheet("border: 1px solid #d9534f;" if invalid else "")
    widget.setToolTip(why)


def _short(path: str) -> str:
    """A tab's title: the file, with its folder when the name alone is ambiguous."""
    parts = path.split("/")
    if parts[-1] == "kustomization.yaml" and len(parts) >= 2:
        return f"{parts[-2]}/kustomization"
    if parts[0] == "kserve":
        return f"kserve/{parts[-1].removesuffix('.yaml')}"
    return parts[-1].removesuffix(".yaml")
