"""What every page of the studio has, built in one place.

A page gets the TaskRunner its slow work goes through, follows the current model (`source`, set by
the main window through `set_source`), and shows, from the top: its title with an optional
subtitle line (and room on their right for a page-wide button), its error banner (hidden until an
error; its "Show details" emits `log_requested`), and `body`, the layout each page fills with its
own widgets. `checked(make)` shows a StudioError raised while checking what the user asked for in
that banner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from studio.core.errors import StudioError
from studio.core.model.artifact import ModelArtifact
from studio.ui.settings import StudioSettings
from studio.ui.widgets.error_banner import ErrorBanner
from studio.ui.workers import TaskRunner

T = TypeVar("T")

NO_MODEL = "Open a model on the Model page first."


class Page(QWidget):
    log_requested = Signal()
    """The user asked for the details of an error: the main window shows its log."""

    def __init__(self, runner: TaskRunner, title: str, subtitle: str | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.source: ModelArtifact | None = None

        self.title = QLabel(title)
        self.title.setObjectName("modelTitle")  # styled by the theme
        self.subtitle = QLabel(subtitle or "")
        self.subtitle.setObjectName("modelSubtitle")
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.subtitle.setVisible(subtitle is not None)
        titles = QVBoxLayout()
        titles.addWidget(self.title)
        titles.addWidget(self.subtitle)
        self.header = QWidget()
        self._header_row = QHBoxLayout(self.header)
        self._header_row.setContentsMargins(0, 0, 0, 0)
        self._header_row.addLayout(titles, 1)

        self.error_banner = ErrorBanner()
        self.error_banner.show_log_requested.connect(self.log_requested)

        self.body = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.error_banner)
        layout.addLayout(self.body, 1)

    def add_header_button(self, button: QWidget) -> None:
        """A button on the right of the title, for what concerns the whole page."""
        self._header_row.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)

    def set_source(self, artifact: ModelArtifact | None) -> None:
        """The model every stage works with now (None before one is opened)."""
        self.source = artifact

    def apply_settings(self, settings: StudioSettings) -> None:
        """The user's preferences, at start and whenever they change; pages that use some
        (the default runtime, drift thresholds, load presets...) take them here."""

    def checked(self, make: Callable[[], T]) -> T | None:
        """What `make()` returns; or None, with its StudioError shown in the banner. For what a
        page checks on the GUI thread before it starts anything."""
        try:
            return make()
        except StudioError as error:
            self.error_banner.show_error(error)
            return None
