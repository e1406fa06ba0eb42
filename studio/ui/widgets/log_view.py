"""The log view: everything the studio logs, including the details errors leave out of pages."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QSize, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QPlainTextEdit, QWidget

MAX_LINES = 5000
SHOWN_LINES = 7
"""How tall the Log opens: a few lines, leaving the page above it its room."""


class QtLogHandler(QObject, logging.Handler):
    """A logging handler that hands records to the GUI thread through a queued signal."""

    record_formatted = Signal(str)

    def __init__(self, parent: QObject | None = None):
        QObject.__init__(self, parent)
        logging.Handler.__init__(self)
        self.setFormatter(logging.Formatter("%(asctime)s  %(levelname)-7s %(name)s  %(message)s",
                                            "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.record_formatted.emit(self.format(record))
        except RuntimeError:  # the view is gone while a worker still logs during shutdown
            pass


class LogView(QPlainTextEdit):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LINES)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setPlaceholderText("Log messages and error details appear here.")
        self.handler = QtLogHandler(self)
        self.handler.record_formatted.connect(self.appendPlainText)

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(),
                     self.fontMetrics().lineSpacing() * SHOWN_LINES + 2 * self.frameWidth() + 8)

    def attach(self, logger_name: str = "studio", level: int = logging.INFO) -> None:
        logger = logging.getLogger(logger_name)
        logger.setLevel(min(logger.level or level, level))
        logger.addHandler(self.handler)

    def detach(self, logger_name: str = "studio") -> None:
        logging.getLogger(logger_name).removeHandler(self.handler)
