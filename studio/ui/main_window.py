"""The main window: builds the pages, menus, log dock and status bar, and wires them together."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDropEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QWidget,
)

from studio.core.model.artifact import ModelArtifact
from studio.ui import help
from studio.ui.menus import build_menus, menu_actions
from studio.ui.pages.model_page import ModelPage
from studio.ui.pages.page import Page
from studio.ui.settings import StudioSettings
from studio.ui.settings import load as load_settings
from studio.ui.settings import save as save_settings
from studio.ui.settings_dialog import SettingsDialog
from studio.ui.theme import apply_theme
from studio.ui.widgets.engine_label import EngineLabel
from studio.ui.widgets.log_view import LogView
from studio.ui.widgets.page_stack import PageStack
from studio.ui.window_state import last_page, remember_layout, restore_geometry, restore_splitters
from studio.ui.workers import TaskRunner

if TYPE_CHECKING:
    from studio.core.serve.runtimes.base import Deployment
    from studio.core.serve.runtimes.docker import EngineStatus
    from studio.core.versions.references import ResolvedModel
    from studio.ui.pages.optimize_page import StepResult

MAX_RECENT = 10
ENGINE_RECHECK_MS = 30_000
MODEL_FILTER = ("Models (*.onnx *.joblib *.pkl *.pickle *.skops *.json *.ubj *.txt MLmodel);;"
                "All files (*)")

TITLES = ("Model", "Optimize", "Serve", "Probe", "Load", "Monitor", "Versions", "Compare", "Batch",
          "Export")
"""The pages in the order of the journey, as the navigation lists them."""
STAGE_PAGES = ("optimize_page", "serve_page", "probe_page", "load_page", "monitor_page",
               "versions_page", "compare_page", "batch_page", "export_page")
"""The pages after the Model page, built together on first need (see _build_stages)."""
BUILD_DELAY_MS = 50
"""After the Model page has painted its model: then the other pages are built."""


class MainWindow(QMainWindow):
    engine_checked = Signal(object)
    """The latest EngineStatus, after each check of the Docker engine."""
    current_changed = Signal(object)
    """The ModelArtifact every stage now works with."""

    def __init__(self, settings: QSettings, demo_model: Path | None = None,
                 demo_reference: Path | None = None):
        super().__init__()
        self.settings = settings
        self.prefs: StudioSettings = load_settings(settings)
        self.demo_model = demo_model
        self.demo_reference = demo_reference
        self.engine: EngineStatus | None = None
        self.current: ModelArtifact | None = None
        self.setWindowTitle("Slipway Studio")
        self.setAcceptDrops(True)
        self.runner = TaskRunner(self)

        self.model_page = ModelPage(self.runner)
        self.model_page.drop_zone.set_demo_available(bool(demo_model and demo_model.exists()))
        self.model_page.drop_zone.serve_requested.connect(self.choose_file_to_serve)
        self.model_page.drop_zone.serve_demo_requested.connect(self.serve_demo)
        self.model_page.next_step_requested.connect(self.go_to_page)
        self.model_page.open_requested.connect(self.choose_file)
        self.model_page.demo_requested.connect(self.open_demo)
        self.model_page.artifact_loaded.connect(self._model_loaded)

        self.model_page.load_failed.connect(lambda _error: self.build_stages_soon())
        self._stages_built = False
        self._pending_records: list[tuple] = []
        self._serve_when_loaded: Path | None = None
        self._restore_page = False
        self._closed = False
        self.confirm_quit = self._ask_before_quitting
        """Asked, with what is still running, whether to stop it and quit: True to quit."""

        self.nav = QListWidget()
        self.nav.setObjectName("nav")
        self.nav.setFixedWidth(150)
        self.nav.addItems(TITLES)
        self.pages = PageStack()
        self._add_page(self.model_page)
        self.nav.currentRowChanged.connect(self._show_page)
        self.nav.setCurrentRow(0)

        # A page that needs more room than the window has scrolls: the window never grows past
        # the screen (a 1024x700 one) because a page, or the Log below it, asks for more.
        page_area = QScrollArea()
        page_area.setWidget(self.pages)
        page_area.setWidgetResizable(True)
        page_area.setFrameShape(QFrame.Shape.NoFrame)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(page_area, 1)
        self.setCentralWidget(central)

        self.log_view = LogView()
        self.log_view.attach()
        self.log_dock = QDockWidget("Log", self)
        self.log_dock.setObjectName("logDock")
        self.log_dock.setWidget(self.log_view)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_dock)
        self.log_dock.hide()

        self.model_status = QLabel("No model loaded")
        self.engine_label = EngineLabel()
        self.statusBar().addWidget(self.model_status, 1)
        self.statusBar().addPermanentWidget(self.engine_label)

        build_menus(self)
        self.engine_timer = QTimer(self)
        self.engine_timer.timeout.connect(self.check_engine)
        self.resize(1180, 760)
        restore_geometry(self, self.settings)
        self.model_page.apply_settings(self.prefs)
        QApplication.instance().styleHints().colorSchemeChanged.connect(self._desktop_look_changed)

    def _add_page(self, page: Page) -> None:
        self.pages.addWidget(page)
        page.log_requested.connect(self.show_log)
        page.set_source(self.current)
        page.apply_settings(self.prefs)

    # --- the stage pages, built after the first paint ------------------------------------------

    def __getattr__(self, name: str):
        # Only for attributes not set yet: a stage page asked for before it was built builds them.
        if name in STAGE_PAGES:
            self._build_stages()
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def build_stages_soon(self, restore_page: bool = False) -> None:
        """Build the other pages once the window has painted (the model, if one is opening):
        a window that shows its model at once matters more than pages not looked at yet."""
        self._restore_page = self._restore_page or restore_page
        QTimer.singleShot(BUILD_DELAY_MS, self, self._build_stages)  # not once the window is gone

    def _show_page(self, row: int) -> None:
        if row > 0:
            self._build_stages()
        self.pages.setCurrentIndex(row)

    def _build_stages(self) -> None:
        if self._stages_built or self._closed:
            return
        self._stages_built = True
        # Imported here: each page pulls in its stage (charts, statistics, the Docker SDK...).
        from studio.ui.pages.batch_page import BatchPage
        from studio.ui.pages.compare_page import ComparePage
        from studio.ui.pages.export_page import ExportPage
        from studio.ui.pages.load_page import LoadPage
        from studio.ui.pages.monitor_page import MonitorPage
        from studio.ui.pages.optimize_page import OptimizePage
        from studio.ui.pages.probe_page import ProbePage
        from studio.ui.pages.serve_page import ServePage
        from studio.ui.pages.versions_page import VersionsPage

        self.optimize_page = OptimizePage(self.runner)
        self.optimize_page.artifact_chosen.connect(self.use_artifact)
        self.optimize_page.step_finished.connect(self._record_step)
        self.serve_page = ServePage(self.runner)
        self.engine_checked.connect(self.serve_page.set_engine)
        self.serve_page.model_loaded.connect(self._served_model_loaded)
        self.probe_page = ProbePage(self.runner)
        self.load_page = LoadPage(self.runner)
        self.monitor_page = MonitorPage(self.runner)
        self.serve_page.deployment_ready.connect(self._follow_deployment)
        self.versions_page = VersionsPage(self.runner)
        self.versions_page.serve_requested.connect(self._serve_version)
        self.versions_page.compare_requested.connect(self._compare_versions)
        self.versions_page.version_recorded.connect(self._version_known)
        self.compare_page = ComparePage(self.runner)
        self.compare_page.send_to_pages.connect(self._follow_proxy)
        self.batch_page = BatchPage(self.runner)
        self.export_page = ExportPage(self.runner)
        self.serve_page.deployment_ready.connect(self.export_page.follow_deployment)
        for name in STAGE_PAGES:
            self._add_page(getattr(self, name))
        if self.current is not None:
            self._fill_demo_reference(self.current)

        restore_splitters(self, self.settings)
        if self._restore_page and self.current is None:
            self.nav.setCurrentRow(last_page(self.settings, len(TITLES)))
        for record in self._pending_records:
            self.versions_page.record(*record)
        self._pending_records.clear()
        self.check_engine()
        self.engine_timer.start(ENGINE_RECHECK_MS)

    # --- recent files ----------------------------------------------------------------------

    def recent_files(self) -> list[str]:
        return list(self.prefs.recent_files)

    def _remember(self, path: Path) -> None:
        entry = str(path.resolve())
        self.prefs.recent_files = ([entry] + [p for p in self.recent_files() if p != entry]
                                   )[:MAX_RECENT]
        save_settings(self.prefs, self.settings)
        self.recent_menu.rebuild()

    # --- settings ------------------------------------------------------------------------------

    def edit_settings(self) -> None:
        presets = [self.load_page.preset.itemText(i) for i in range(self.load_page.preset.count())]
        dialog = SettingsDialog(self.prefs, presets, self)
        if dialog.exec():
            theme_before, self.prefs = self.prefs.theme, dialog.chosen()
            save_settings(self.prefs, self.settings)
            if self.prefs.theme != theme_before:  # the app started in its look (studio/ui/app.py)
                apply_theme(QApplication.instance(), self.prefs.theme)
            self._apply_prefs()
            self.statusBar().showMessage("Settings saved", 4000)

    def _desktop_look_changed(self) -> None:
        if self.prefs.theme == "system":
            apply_theme(QApplication.instance(), "system")

    def _apply_prefs(self) -> None:
        for index in range(self.pages.count()):
            self.pages.widget(index).apply_settings(self.prefs)

    # --- opening models ------------------------------------------------------------------------

    def open_model(self, path: str | Path) -> None:
        path = Path(path)
        self._serve_when_loaded = None
        self.nav.setCurrentRow(0)
        self.model_page.open_path(path)

    def open_demo(self) -> None:
        if self.demo_model is not None:
            self.open_model(self.demo_model)

    def open_from_another_launch(self, path: str | None) -> None:
        """A later `slipway [MODEL]` (a file manager's "Open with", a file dropped on the
        launcher) handed its launch to this window (studio/ui/single_instance.py): come to the
        front, and open its model if it named one."""
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.show()
        self.raise_()
        self.activateWindow()
        if path:
            self.open_model(path)

    def _ask_for_model(self, title: str) -> Path | None:
        """A model file chosen in a file dialog (an MLflow folder by its MLmodel file)."""
        start = self.settings.value("lastDirectory", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, title, str(start), MODEL_FILTER)
        if not path:
            return None
        self.settings.setValue("lastDirectory", str(Path(path).parent))
        return Path(path).parent if Path(path).name == "MLmodel" else Path(path)

    def choose_file(self) -> None:
        path = self._ask_for_model("Open a model")
        if path is not None:
            self.open_model(path)

    def choose_folder(self) -> None:
        start = self.settings.value("lastDirectory", str(Path.home()))
        path = QFileDialog.getExistingDirectory(self, "Open an MLflow model folder", str(start))
        if path:
            self.open_model(path)

    def go_to_page(self, title: str) -> None:
        titles = [self.nav.item(row).text() for row in range(self.nav.count())]
        self.nav.setCurrentRow(titles.index(title))

    def serve_file(self, path: str | Path) -> None:
        """Drop to serve: the Serve page loads, asks for trust where needed, converts, runs."""
        self.nav.setCurrentRow(self.pages.indexOf(self.serve_page))
        self.serve_page.serve_path(Path(path))

    def serve_demo(self) -> None:
        if self.demo_model is not None:
            self.serve_file(self.demo_model)

    def choose_file_to_serve(self) -> None:
        path = self._ask_for_model("Serve a model")
        if path is not None:
            self.serve_file(path)

    def _served_model_loaded(self, artifact: ModelArtifact) -> None:
        """A model the Serve page loaded to serve becomes the current one, as if opened."""
        self.model_page.show_artifact(artifact)
        self._model_loaded(artifact)

    # --- help ----------------------------------------------------------------------------------

    def show_user_guide(self) -> None:
        self._help_dialog = help.user_guide_dialog(self)
        self._help_dialog.show()

    def show_shortcuts(self) -> None:
        self._help_dialog = help.shortcuts_dialog(menu_actions(self), self)
        self._help_dialog.show()

    def copy_diagnostics(self) -> None:
        QApplication.clipboard().setText(help.diagnostics(self.engine))
        self.statusBar().showMessage("Diagnostics copied: paste them into a bug report", 6000)

    def show_about(self) -> None:
        self._help_dialog = help.about_dialog(self.engine, self)
        self._help_dialog.show()

    def _model_loaded(self, artifact: ModelArtifact) -> None:
        from studio.core.versions.registry import record_loaded

        self._remember(artifact.path)
        self.set_current(artifact)
        self._record(record_loaded, artifact)
        self.build_stages_soon()
        if self._serve_when_loaded == artifact.path:
            self._serve_when_loaded = None
            self.nav.setCurrentRow(self.pages.indexOf(self.serve_page))
            if self.serve_page.run_button.isEnabled():  # not while another model is served
                self.serve_page.build_and_run()

    # --- the registry --------------------------------------------------------------------------

    def _record(self, record, *args) -> None:
        """Every model loaded or made becomes a version (see VersionsPage.record); one loaded
        before the Versions page is built is recorded when it is."""
        if self._stages_built:
            self.versions_page.record(record, *args)
        else:
            self._pending_records.append((record, *args))

    def _record_step(self, result: StepResult) -> None:
        from studio.core.versions.registry import record_made

        if result.artifact is not None and result.source is not None:
            self._record(record_made, result.source, result.artifact, result.report)

    def _serve_version(self, resolved: ResolvedModel) -> None:
        """Serving a version (the one an alias names) is one action: it is opened as any model
        is (a pickle still asks for trust), then served with the Serve page's settings."""
        self.open_model(resolved.path)
        self._serve_when_loaded = resolved.path

    def _version_known(self, version) -> None:
        if self.current is not None and self.current.schema.metadata.sha256 == version.sha256:
            self.serve_page.model_version = str(version.version)

    def _compare_versions(self, a: str, b: str) -> None:
        self.nav.setCurrentRow(self.pages.indexOf(self.compare_page))
        self.compare_page.compare_versions(a, b)

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
        if self._stages_built:
            self._fill_demo_reference(artifact)
        self.current_changed.emit(artifact)

    def _fill_demo_reference(self, artifact: ModelArtifact) -> None:
        if self.demo_reference is not None and artifact.path == self.demo_model \
                and not self.serve_page.reference.text():
            self.serve_page.reference.setText(str(self.demo_reference))  # drift works out of the box

    def _follow_deployment(self, deployment: Deployment) -> None:
        """The pages that talk to a served model talk to the one the Serve page just started,
        with the key it checks (if any)."""
        key = self.serve_page.served_key()
        for page in (self.probe_page, self.load_page, self.monitor_page):
            page.server.api_key.setText(key or "")
        self.probe_page.set_url(deployment.url)
        self.load_page.set_url(deployment.url)
        self.monitor_page.attach(deployment)

    def _follow_proxy(self, url: str) -> None:
        """The Probe and Load pages send to the Compare page's shadow proxy (A answers them)."""
        self.probe_page.set_url(url)
        self.load_page.set_url(url)
        self.statusBar().showMessage(f"Probe and Load now send to the shadow proxy at {url}", 8000)

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
            if self.nav.currentItem().text() == "Serve":
                self.serve_file(path)  # dropped on the Serve page: served, not only opened
            else:
                self.open_model(path)

    # --- Docker engine status ----------------------------------------------------------------

    def check_engine(self) -> None:
        from studio.core.serve.runtimes.docker import engine_status

        self.runner.submit(lambda progress: engine_status(), name="Checking the Docker engine",
                           on_result=self._show_engine, logged=False)

    def _show_engine(self, status: EngineStatus) -> None:
        self.engine = status
        self.engine_label.show_status(status)
        self.engine_checked.emit(status)

    def running_models(self) -> list[str]:
        """What quitting would stop: models served from the studio."""
        running: list[str] = []
        if not self._stages_built:
            return running
        if self.serve_page.deployment is not None:
            running.append(f"{self.serve_page.deployment.name} at {self.serve_page.deployment.url}")
        if self.compare_page.shadow_task is not None and not self.compare_page.shadow_task.done:
            running.append("the Compare page's shadow deployment")
        return running

    def _ask_before_quitting(self, running: list[str]) -> bool:
        answer = QMessageBox.question(
            self, "Stop the running models and quit?",
            "Quitting stops what the studio serves:\n  " + "\n  ".join(running),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QCloseEvent) -> None:
        running = self.running_models()
        if running and not self.confirm_quit(running):
            event.ignore()
            return
        self._closed = True
        remember_layout(self, self.nav, self.settings)
        self.engine_timer.stop()
        if self._stages_built:
            self.serve_page.shutdown()
            self.export_page.shutdown()
            self.compare_page.shutdown()
        self.runner.shutdown()
        self.log_view.detach()
        super().closeEvent(event)
