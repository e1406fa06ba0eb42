"""The empty state of the Model page: where to drop a model, and what kinds it takes."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from studio.core.model.artifact import SUPPORTED_TEXT


class DropZone(QFrame):
    open_requested = Signal()
    demo_requested = Signal()

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
        buttons = QHBoxLayout()
        buttons.addStretch()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.demo_button)
        buttons.addStretch()
        layout = QVBoxLayout(self)
        layout.addStretch()
        layout.addWidget(title)
        layout.addWidget(formats)
        layout.addSpacing(12)
        layout.addLayout(buttons)
        layout.addStretch()

    def set_highlighted(self, highlighted: bool) -> None:
        self.setProperty("highlighted", highlighted)
        self.style().unpolish(self)
        self.style().polish(self)
