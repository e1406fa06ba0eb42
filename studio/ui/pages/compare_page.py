"""The Compare page: two versions of a model side by side, offline, live and in shadow.

A and B are model files or registered versions (`name:3`, `name@champion`); A follows the current
model until the person types another. Each comparison is a core function run off the GUI thread
(studio/core/versions/compare_offline.py, compare_live.py, shadow.py); compare_views.py draws what
they return:

- Offline: each version's file in its column with how B differs, the schema differences, how often
  their labels agree (a confusion matrix of A's labels down, B's across), how far their numbers
  move, the rows that disagree most, and, given a target column, each one's quality with B − A and
  its bootstrap interval, and McNemar's test.
- Live: both served, the same requests at the same load in interleaved rounds; every round's
  latency distribution overlaid (A blue, B orange) as the rounds come in, then the medians over
  rounds with their range and the per-round ratio, the servers' own figures, and the verdict.
- Shadow: a proxy answering from A and mirroring to B; its counters and both sides' latency each
  second. "Send Probe and Load here" points those pages at the proxy, so their traffic is shadowed.

A model that would run its code when loaded (a pickle) brings up the trust dialog, and the
comparison runs again with trust once the person agrees.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QWidget,
)

from studio.core.errors import StudioError, TrustRequired
from studio.core.model.artifact import ModelArtifact
from studio.core.versions.compare_live import LiveComparison, LiveRound, compare_live
from studio.core.versions.compare_offline import OfflineComparison, compare_offline
from studio.core.versions.shadow import ShadowCounters, ShadowStarted, shadow
from studio.ui.pages.compare_views import LiveView, OfflineView, ShadowView
from studio.ui.pages.page import Page
from studio.ui.settings import StudioSettings
from studio.ui.widgets.page_parts import with_browse_button
from studio.ui.widgets.trust_dialog import TrustDialog
from studio.ui.workers import TaskHandle, TaskRunner

MODEL_FILTER = "Models (*.onnx *.joblib *.pkl *.pickle *.skops *.json *.ubj *.txt);;All files (*)"
OFFLINE, LIVE, SHADOW = range(3)
RUNTIMES = ("auto", "process", "docker")


class ComparePage(Page):
    offline_done = Signal(object)
    """The OfflineComparison shown."""
    live_done = Signal(object)
    """The LiveComparison shown."""
    shadow_changed = Signal(object)
    """ShadowStarted once the proxy answers, then ShadowCounters each second."""
    send_to_pages = Signal(str)
    """The shadow proxy's URL, for the Probe and Load pages."""

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(runner, "Compare", subtitle="Two versions side by side: the same inputs "
                         "to both, and how their answers differ, with the uncertainty.",
                         parent=parent)
        self.task: TaskHandle | None = None
        self.shadow_task: TaskHandle | None = None
        self.offline: OfflineComparison | None = None
        self.live: LiveComparison | None = None
        self.shadow_url: str | None = None
        self.trust_dialog: TrustDialog | None = None
        self.choose_model = self._model_from_dialog
        self._a_follows_current = True

        self.a, self.b = QLineEdit(), QLineEdit()
        self.a.setPlaceholderText("the version in use: a model file, name:3 or name@champion")
        self.b.setPlaceholderText("the version to compare with it")
        self.a.textEdited.connect(self._a_typed)
        self.reference, self.target = QLineEdit(), QLineEdit()
        self.reference.setPlaceholderText("none: rows sampled from the schema")
        self.target.setPlaceholderText("none: no quality figures")
        self.target.setToolTip("The column of the reference data that holds the true answers")
        form = QGridLayout()
        for column, (label, field) in enumerate((("A", self._model_row(self.a)),
                                                 ("B", self._model_row(self.b)))):
            form.addWidget(QLabel(label), 0, 2 * column)
            form.addLayout(field, 0, 2 * column + 1)
        form.addWidget(QLabel("Reference data"), 1, 0)
        form.addLayout(with_browse_button(self.reference), 1, 1)
        form.addWidget(QLabel("Target column"), 1, 2)
        form.addWidget(self.target, 1, 3)
        form.setColumnStretch(1, 1)
        form.setColumnStretch(3, 1)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setDefault(True)
        self.compare_button.clicked.connect(lambda: self.compare())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel("Choose A and B, then Compare.")
        self.status.setObjectName("sectionTitle")
        self.status.setWordWrap(True)
        self.runtime = QComboBox()
        self.runtime.addItems(list(RUNTIMES))
        self.runtime.setToolTip("How both versions are served, live and in shadow")
        run_row = QHBoxLayout()
        run_row.addWidget(self.compare_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.status, 1)
        run_row.addWidget(QLabel("Serve with"))
        run_row.addWidget(self.runtime)

        self.offline_view, self.live_view, self.shadow_view = OfflineView(), LiveView(), ShadowView()
        self.live_view.run_button.clicked.connect(lambda: self.compare_live())
        self.shadow_view.run_button.clicked.connect(lambda: self.toggle_shadow())
        self.shadow_view.send_button.clicked.connect(
            lambda: self.send_to_pages.emit(self.shadow_url or ""))
        self.tabs = QTabWidget()
        self.tabs.addTab(self.offline_view, "Offline")
        self.tabs.addTab(self.live_view, "Live")
        self.tabs.addTab(self.shadow_view, "Shadow")
        self.body.addLayout(form)
        self.body.addLayout(run_row)
        self.body.addWidget(self.tabs, 1)

    def _model_row(self, field: QLineEdit) -> QHBoxLayout:
        button = QPushButton("…")
        button.setFixedWidth(32)
        button.setToolTip("Choose a model file")

        def choose() -> None:
            path = self.choose_model()
            if path:
                field.setText(path)
                if field is self.a:
                    self._a_typed(path)

        button.clicked.connect(choose)
        row = QHBoxLayout()
        row.addWidget(field, 1)
        row.addWidget(button)
        return row

    def _model_from_dialog(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model", "", MODEL_FILTER)
        return path or None

    # --- which versions ------------------------------------------------------------------------

    def _a_typed(self, _text: str) -> None:
        self._a_follows_current = False

    def set_source(self, artifact: ModelArtifact | None) -> None:
        """A follows the current model until the person types another."""
        super().set_source(artifact)
        if artifact is not None and self._a_follows_current:
            self.a.setText(str(artifact.path))

    def compare_versions(self, a: str, b: str) -> None:
        """Fill A and B (the Versions page's "compare with") and compare them offline."""
        self.a.setText(a)
        self.b.setText(b)
        self._a_follows_current = False
        self.compare()

    def _versions(self) -> tuple[str, str] | None:
        a, b = self.a.text().strip(), self.b.text().strip()
        if not a or not b:
            self.error_banner.show_error(StudioError(
                "Choose both versions to compare.",
                "A is the version in use, B the one to compare with it: a model file, name:3 or "
                "name@champion."))
            return None
        return a, b

    def _reference(self) -> str | None:
        return self.reference.text().strip() or None

    def _runtime(self) -> str:
        return self.runtime.currentText()

    def apply_settings(self, settings: StudioSettings) -> None:
        self.runtime.setCurrentText(settings.default_runtime)

    # --- offline and live ----------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.task is not None

    def compare(self, trust: bool = False) -> None:
        versions = self._versions()
        if versions is None or self.busy:
            return
        self._start("Comparing offline…")
        self.task = self.runner.submit(
            compare_offline, *versions, reference=self._reference(),
            target=self.target.text().strip() or None, trust=trust, name="Comparing versions",
            on_result=self.show_offline, on_error=lambda e: self._failed(e, self.compare),
            on_progress=self._progress, on_cancel=lambda: self._idle("Cancelled."))

    def compare_live(self, trust: bool = False) -> None:
        versions = self._versions()
        if versions is None or self.busy:
            return
        self._start("Serving both versions…")
        self.live_view.clear()
        self.tabs.setCurrentIndex(LIVE)
        self.task = self.runner.submit(
            compare_live, *versions, self.live_view.options(self._reference(), self._runtime()),
            trust=trust,
            name="Comparing versions live", on_result=self.show_live,
            on_error=lambda e: self._failed(e, self.compare_live), on_progress=self._progress,
            on_partial=self._live_partial, on_cancel=lambda: self._idle("Cancelled."))

    def _start(self, message: str) -> None:
        self.error_banner.hide()
        self.status.setText(message)
        self.compare_button.setEnabled(False)
        self.live_view.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def _idle(self, message: str) -> None:
        self.task = None
        self.status.setText(message)
        self.compare_button.setEnabled(True)
        self.live_view.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _progress(self, _fraction: float | None, message: str) -> None:
        self.status.setText(message)

    def _failed(self, error: StudioError, retry: Callable[..., None]) -> None:
        self._idle("Stopped by an error.")
        self._explain(error, retry)

    def _explain(self, error: StudioError, retry: Callable[..., None]) -> None:
        """The error in the banner; or, for a model that would run its code, the trust dialog,
        which runs `retry(trust=True)` once the person agrees."""
        if isinstance(error, TrustRequired):
            self.trust_dialog = TrustDialog(error, self)
            self.trust_dialog.accepted.connect(lambda: retry(trust=True))
            self.trust_dialog.open()
            return
        self.error_banner.show_error(error)

    def show_offline(self, comparison: OfflineComparison) -> None:
        self.offline = comparison
        self._idle(f"Compared {comparison.a.title} and {comparison.b.title}"
                   + (f" on {comparison.rows_from}." if comparison.rows else "."))
        self.offline_view.show_comparison(comparison)
        self.tabs.setCurrentIndex(OFFLINE)
        self.offline_done.emit(comparison)

    def _live_partial(self, value: object) -> None:
        if isinstance(value, str):
            self.status.setText(value)
        elif isinstance(value, LiveRound):
            self.status.setText(f"Round {value.round} of {value.rounds}, {value.side}: "
                                f"{value.throughput:,.0f} req/s, p50 {value.p50_ms:.2f} ms")
            self.live_view.add_round(value)

    def show_live(self, comparison: LiveComparison) -> None:
        self.live = comparison
        self._idle("Compared live: " + comparison.plan)
        self.live_view.show_comparison(comparison)
        self.live_done.emit(comparison)

    # --- shadow --------------------------------------------------------------------------------

    @property
    def shadowing(self) -> bool:
        return self.shadow_task is not None

    def toggle_shadow(self, trust: bool = False) -> None:
        view = self.shadow_view
        if self.shadowing:
            self.shadow_task.cancel()
            view.run_button.setEnabled(False)
            view.where.setText("Stopping the proxy and both servers…")
            return
        versions = self._versions()
        if versions is None:
            return
        self.error_banner.hide()
        view.clear()
        view.run_button.setText("Stop shadow")
        view.where.setText("Serving both versions…")
        self.tabs.setCurrentIndex(SHADOW)
        self.shadow_task = self.runner.submit(
            shadow, *versions, port=view.port.value() or None,
            runtime=self._runtime(), trust=trust, name="Shadowing",
            on_partial=self._shadow_partial, on_result=self._shadow_stopped,
            on_error=self._shadow_failed, on_cancel=lambda: self._shadow_stopped(None))

    def _shadow_partial(self, value: object) -> None:
        view = self.shadow_view
        if isinstance(value, str):
            view.where.setText(value)
        elif isinstance(value, ShadowStarted):
            self.shadow_url = value.proxy_url
            view.where.setText(f"Proxy at {value.proxy_url}: answers from {value.a_title}, "
                               f"mirrors to {value.b_title}; its counters at /metrics.")
            view.send_button.setEnabled(True)
            self.shadow_changed.emit(value)
        elif isinstance(value, ShadowCounters):
            view.show_counters(value)
            self.shadow_changed.emit(value)

    def _shadow_stopped(self, final: ShadowCounters | None) -> None:
        view = self.shadow_view
        self.shadow_task = None
        self.shadow_url = None
        if final is not None:
            view.show_counters(final)
        view.run_button.setText("Start shadow")
        view.run_button.setEnabled(True)
        view.send_button.setEnabled(False)
        view.where.setText("Stopped: the proxy and both servers.")

    def _shadow_failed(self, error: StudioError) -> None:
        self._shadow_stopped(None)
        self.shadow_view.where.setText("Not running: stopped by an error.")
        self._explain(error, self.toggle_shadow)

    def shutdown(self) -> None:
        """Stop the shadow (the proxy and both servers) when the window closes."""
        if self.shadow_task is not None:
            self.shadow_task.cancel()
