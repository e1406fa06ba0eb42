"""The empty state of the Model page: where to drop a model, and what kinds it takes.

Its menu (right click, or the Serve button) also serves a model in one gesture: load, trust where
needed, convert and run it on the Serve page."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMenu, QPushButton, QVBoxLayout, QWidget

from studio.core.model.artifact import SUPPORTED_TEXT


class DropZone(QFrame):
    open_requested = Signal()
    demo_requested = Signal()
    serve_requested = Signal()
    """Choose a model file and serve it at once."""
    serve_demo_requested = Signal()

    def __init__(self, parent: QWidget | None = None, demo_available: bool = True):
        super().__init__(parent)
        self.setObjectName("dropZone")
        title = QLabel("Drop a model file here")
        title.setObjectName("dropTitle")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        formats = QLabel(f"Slipway Studio opens {SUPPORTED_TEXT}. Drop it anywhere on the window.")
        formats.setWordWrap(True)
        formats.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.open_button = QPushButton("Open a model…")
        self.open_button.clicked.connect(self.open_requested)
        self.demo_button = QPushButton("Open the demo model")
        self.demo_button.clicked.connect(self.demo_requested)
        self.demo_button.setVisible(demo_available)
        self.menu = QMenu(self)
        self.menu.addAction("Open a model…", self.open_requested.emit)
        self.menu.addAction("Serve a model…", self.serve_requested.emit)
        self.demo_actions = [self.menu.addAction("Open the demo model", self.demo_requested.emit),
                             self.menu.addAction("Serve the demo model",
                                                 self.serve_demo_requested.emit)]
        self.serve_button = QPushButton("Serve")
        self.serve_button.setToolTip("Load a model, convert it if needed and run it: one step "
                                     "from file to URL")
        self.serve_button.setMenu(self._serve_menu(demo_available))
        buttons = QHBoxLayout()
        buttons.addStretch()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.demo_button)
        buttons.addWidget(self.serve_button)
        buttons.addStretch()
        layout = QVBoxLayout(self)
        layout.addStretch()
        layout.addWidget(title)
        layout.addWidget(formats)
        layout.addSpacing(12)
        layout.addLayout(buttons)
        layout.addStretch()

    def _serve_menu(self, demo_available: bool) -> QMenu:
        menu = QMenu(self)
        menu.addAction("Serve a model…", self.serve_requested.emit)
        self.serve_demo_action = menu.addAction("Serve the demo model",
                                                self.serve_demo_requested.emit)
        self.serve_demo_action.setVisible(demo_available)
        return menu

    def set_demo_available(self, available: bool) -> None:
        self.demo_button.setVisible(available)
        self.serve_demo_action.setVisible(available)
        for action in self.demo_actions:
            action.setVisible(available)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        self.menu.popup(event.globalPos())

    def set_highlighted(self, highlighted: bool) -> None:
        self.setProperty("highlighted", highlighted)
        self.style().unpolish(self)
        self.style().polish(self)
