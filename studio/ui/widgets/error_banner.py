"""An error shown inside the page that caused it: what happened, what to do, where the details are."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from studio.core.errors import StudioError


class ErrorBanner(QFrame):
    show_log_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.message = QLabel()
        self.message.setObjectName("errorMessage")
        self.message.setWordWrap(True)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.log_button = QPushButton("Show details")
        self.log_button.clicked.connect(self.show_log_requested)
        self.close_button = QPushButton("Dismiss")
        self.close_button.clicked.connect(self.hide)
        text = QVBoxLayout()
        text.addWidget(self.message)
        text.addWidget(self.hint)
        layout = QHBoxLayout(self)
        layout.addLayout(text, 1)
        layout.addWidget(self.log_button)
        layout.addWidget(self.close_button)
        self.hide()

    def show_error(self, error: StudioError) -> None:
        self.message.setText(error.message)
        self.hint.setText(error.hint or "")
        self.hint.setVisible(bool(error.hint))
        self.show()
