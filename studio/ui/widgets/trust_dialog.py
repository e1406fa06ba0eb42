"""Asks before loading a file that runs code when loaded, and shows what it would import."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import TrustRequired


class TrustDialog(QDialog):
    def __init__(self, request: TrustRequired, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Load a file that runs code?")
        self.setModal(True)
        why = QLabel(
            f"<b>{request.message}</b><br><br>"
            "Files like this can run any program on this computer the moment they are opened, "
            "with your permissions. Slipway Studio loads them in a separate process, but that "
            "process can still read and change your files.<br><br>"
            "Continue only if you made this file or got it from someone you trust."
        )
        why.setWordWrap(True)
        listing = QLabel("What the file names (read without running it):")
        self.reasons = QListWidget()
        self.reasons.addItems(request.reasons or ["(nothing could be listed)"])
        buttons = QDialogButtonBox()
        self.trust_button = QPushButton("Trust and load")
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.addButton(self.trust_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.cancel_button.setDefault(True)
        layout = QVBoxLayout(self)
        layout.addWidget(why)
        layout.addWidget(listing)
        layout.addWidget(self.reasons)
        layout.addWidget(buttons)
        self.resize(560, 420)
