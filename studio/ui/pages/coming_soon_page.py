"""A stage of the journey whose page is not built yet: says what it will do, and does nothing else."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from studio.ui.pages.page import Page
from studio.ui.workers import TaskRunner


class ComingSoonPage(Page):
    def __init__(self, runner: TaskRunner, title: str, description: str,
                 parent: QWidget | None = None):
        super().__init__(runner, title, parent=parent)
        text = QLabel(description + "\n\nThis stage is not available in this version yet.")
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.body.addWidget(text)
        self.body.addStretch()
