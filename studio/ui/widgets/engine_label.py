"""The status bar's word on the Docker engine: where models will run, and why (in its tooltip)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QLabel, QWidget

if TYPE_CHECKING:
    from studio.core.serve.runtimes.docker import EngineStatus


class EngineLabel(QLabel):
    def __init__(self, parent: QWidget | None = None):
        super().__init__("Checking for a Docker engine…", parent)
        self.setObjectName("engineStatus")  # coloured by the theme through "available"

    def show_status(self, status: EngineStatus) -> None:
        if status.available:
            self.setText(f"● Docker {status.version}: models run in containers")
        else:
            self.setText("○ No Docker engine: models run as local processes")
        self.setToolTip(status.reason)
        self.setProperty("available", status.available)
        self.style().unpolish(self)
        self.style().polish(self)
