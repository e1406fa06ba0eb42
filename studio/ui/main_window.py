"""The main window: builds the pages, menus, log dock and status bar, and wires them together."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from studio import __version__
from studio.core.model.artifact import ModelArtifact
from studio.core.serve.runtimes.base import Deployment
from studio.core.serve.runtimes.docker import EngineStatus, engine_status
from studio.ui.pages.coming_soon_page import ComingSoonPage
from studio.ui.pages.export_page import ExportPage
from studio.ui.pages.load_page import LoadPage
from studio.ui.pages.model_page import ModelPage
from studio.ui.pages.monitor_page import MonitorPage
from studio.ui.pages.optimize_page import OptimizePage
from studio.ui.pages.page import Page
from studio.ui.pages.probe_page import ProbePage
from studio.ui.pages.serve_page import ServePage
from studio.ui.widgets.log_view import LogView
from studio.ui.workers import TaskRunner

MAX_RECENT = 10
ENGINE_RECHECK_MS = 30_000
MODEL_FILTER = ("Models (*.onnx *.joblib *.pkl *.pickle *.skops *.json *.ubj *.txt MLmodel);;"
                "All files (*)")

STAGES = [
    ("Compare", "Two model versions side by side, offline and live."),
]


class MainWindow(QMainWindow):
    engine_checked = Signal(object)
    """The latest EngineStatus, after each check of the Docker engine."""
    current_changed = Signal(object)
    """The ModelArtifact every stage now works with."""

    def __init__(self, settings: QSettings, demo_model: Path | None = None,
                 demo_reference: Path | None = None):
        super().__init__()
        self.settings = settings
        self.demo_model = demo_model
        self.demo_reference = demo_reference
        self.engine: EngineStatus | None = None
        self.current: ModelArtifact | None = None
        self.setWindowTitle("Slipway Studio")
        self.setAcceptDrops(True)
        self.runner = TaskRunner(self)

        self.model_page = ModelPage(self.runner)
        self.model_page.drop_zone.demo_button.setVisible(bool(demo_model and demo_model.exists()))
        self.model_page.open_requested.connect(self.choose_file)
        self.model_page.demo_requested.connect(self.open_demo)
        self.model_page.artifact_loaded.connect(self._model_loaded)

        self.optimize_page = OptimizePage(self.runner)
        self.optimize_page.artifact_chosen.connect(self.use_artifact)

        self.serve_page = ServePage(self.runner)
        self.engine_checked.connect(self.serve_page.set_engine)

        self.probe_page = ProbePage(self.runner)
        self.load_page = LoadPage(self.runner)
        self.monitor_page = MonitorPage(self.runner)
        self.serve_page.deployment_ready.connect(self._follow_deployment)

        self.export_page = ExportPage(self.runner)
        self.serve_page.deployment_ready.connect(self.export_page.follow_deployment)

        self.nav = QListWidget()
        self.nav.setObjectName("nav")
        self.nav.setFixedWidth(150)
        self.pages = QStackedWidget()
        self._add_page("Model", self.model_page)
        self._add_page("Optimize", self.optimize_page)
        self._add_page("Serve", self.serve_page)
        self._add_page("Probe", self.probe_page)
        self._add_page("Load", self.load_page)
        self._add_page("Monitor", self.monitor_page)
        for title, description in STAGES:
            self._add_page(title, ComingSoonPage(self.runner, title, description))
        self._add_page("Export", self.export_page)
        self.nav.currentRowChanged.connect(self.pages.setCurrentIndex)
        self.nav.setCurrentRow(0)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        self.log_view = LogView()
        self.log_view.attach()
        self.log_dock = QDockWidget("Log", self)
        self.log_dock.setObjectName("logDock")
        self.log_dock.setWidget(self.log_view)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_dock)
        self.log_dock.hide()

        self.model_status = QLabel("No model loaded")
        self.engine_label = QLabel("Checking for a Docker engine…")
        self.engine_label.setObjectName("engineStatus")
        self.statusBar().addWidget(self.model_status, 1)
        self.statusBar().addPermanentWidget(self.engine_label)

        self._build_menus()
        self.check_engine()
        self.engine_timer = QTimer(self)
        self.engine_timer.timeout.connect(self.check_engine)
        self.engine_timer.start(ENGINE_RECHECK_MS)
        self.resize(1180, 760)

    def _add_page(self, title: str, page: Page) -> None:
        self.nav.addItem(title)
        self.pages.addWidget(page)
        page.log_requested.connect(self.show_log)

    # --- menus and recent files ----------------------------------------------------------------

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open…", self, shortcut=QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self.choose_file)
        file_menu.addAction(open_action)
        open_folder = QAction("Open MLflow &folder…", self)
        open_folder.triggered.connect(self.choose_folder)
        file_menu.addAction(open_folder)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._rebuild_recent_menu()
        if self.demo_model is not None:
            demo = QAction("Open the &demo model", self)
            demo.triggered.connect(self.open_demo)
            file_menu.addAction(demo)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.log_dock.toggleViewAction())

        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About Slipway Studio", self)
        about.triggered.connect(lambda: QMessageBox.about(
            self, "Slipway Studio",
            f"Slipway Studio {__version__}\nFrom a model file to a measured, monitored service."))
        help_menu.addAction(about)

    def recent_files(self) -> list[str]:
        value = self.settings.value("recentFiles", [])
        if isinstance(value, str):  # QSettings returns a bare string for a one-item list
            value = [value]
        return [str(v) for v in value or []]

    def _remember(self, path: Path) -> None:
        entry = str(path.resolve())
        recent = [entry] + [p for p in self.recent_files() if p != entry]
        self.settings.setValue("recentFiles", recent[:MAX_RECENT])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for entry in recent:
            action = self.recent_menu.addAction(entry)
            action.triggered.connect(lambda _=False, p=entry: self.open_model(p))
        if recent:
            self.recent_menu.addSeparator()
            clear = self.recent_menu.addAction("Clear list")
            clear.triggered.connect(self._clear_recent)
        self.recent_menu.setEnabled(bool(recent))

    def _clear_recent(self) -> None:
        self.settings.setValue("recentFiles", [])
        self._rebuild_recent_menu()

    # --- opening models ------------------------------------------------------------------------

    def open_model(self, path: str | Path) -> None:
        path = Path(path)
        self.nav.setCurrentRow(0)
        self.model_page.open_path(path)

    def open_demo(self) -> None:
        if self.demo_model is not None:
            self.open_model(self.demo_model)

    def choose_file(self) -> None:
        start = self.settings.value("lastDirectory", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", str(start), MODEL_FILTER)
        if path:
            self.settings.setValue("lastDirectory", str(Path(path).parent))
            self.open_model(Path(path).parent if Path(path).name == "MLmodel" else path)

    def choose_folder(self) -> None:
        start = self.settings.value("lastDirectory", str(Path.home()))
        path = QFileDialog.getExistingDirectory(self, "Open an MLflow model folder", str(start))
        if path:
            self.open_model(path)

    def _model_loaded(self, artifact: ModelArtifact) -> None:
        self._remember(artifact.path)
        self.set_current(artifact)

    def use_artifact(self, artifact: ModelArtifact) -> None:
        """Carry a model made by a later stage (an optimized ONNX file) into every stage."""
        self.model_page.show_artifact(artifact)
        self.set_current(artifact)
        self.statusBar().showMessage(f"Now working with {artifact.model_file}", 8000)

    def set_current(self, artifact: ModelArtifact) -> None:
        self.current = artifact
        schema = artifact.schema
        self.model_status.setText(
            f"{schema.name}: {schema.task}, {len(schema.features) or len(schema.inputs)} "
            f"{'features' if schema.features else 'input tensors'}")
        self.setWindowTitle(f"{schema.name} — Slipway Studio")
        for index in range(self.pages.count()):
            self.pages.widget(index).set_source(artifact)
        if self.demo_reference is not None and artifact.path == self.demo_model \
                and not self.serve_page.reference.text():
            self.serve_page.reference.setText(str(self.demo_reference))  # drift works out of the box
        self.current_changed.emit(artifact)

    def _follow_deployment(self, deployment: Deployment) -> None:
        """The pages that talk to a served model talk to the one the Serve page just started,
        with the key it checks (if any)."""
        key = self.serve_page.served_key()
        for page in (self.probe_page, self.load_page, self.monitor_page):
            page.server.api_key.setText(key or "")
        self.probe_page.set_url(deployment.url)
        self.load_page.set_url(deployment.url)
        self.monitor_page.attach(deployment)

    def show_log(self) -> None:
        self.log_dock.show()
        self.log_dock.raise_()

    # --- drag and drop anywhere on the window -----------------------------------------------------

    @staticmethod
    def _dropped_path(event: QDragEnterEvent | QDropEvent) -> Path | None:
        for url in event.mimeData().urls():
            if url.isLocalFile():
                return Path(url.toLocalFile())
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_path(event) is not None:
            event.acceptProposedAction()
            self.model_page.drop_zone.set_highlighted(True)

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self.model_page.drop_zone.set_highlighted(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self.model_page.drop_zone.set_highlighted(False)
        path = self._dropped_path(event)
        if path is not None:
            event.acceptProposedAction()
            self.open_model(path)

    # --- Docker engine status ----------------------------------------------------------------

    def check_engine(self) -> None:
        self.runner.submit(lambda progress: engine_status(), name="Checking the Docker engine",
                           on_result=self._show_engine)

    def _show_engine(self, status: EngineStatus) -> None:
        self.engine = status
        if status.available:
            self.engine_label.setText(f"● Docker {status.version}: models run in containers")
        else:
            self.engine_label.setText("○ No Docker engine: models run as local processes")
        self.engine_label.setToolTip(status.reason)
        self.engine_label.setProperty("available", status.available)
        self.engine_label.style().unpolish(self.engine_label)
        self.engine_label.style().polish(self.engine_label)
        self.engine_checked.emit(status)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.engine_timer.stop()
        self.serve_page.shutdown()
        self.export_page.shutdown()
        self.runner.shutdown()
        self.log_view.detach()
        super().closeEvent(event)
