"""Read-only JSON with a Copy button; long number arrays stay on one line and are elided on screen."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

SHOWN_VALUES = 64


def pretty_json(value: Any, indent: int = 0, elide: bool = False) -> str:
    """Indented JSON in which lists of plain values stay on one line (tensors stay readable)."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f'{pad}  {json.dumps(k)}: {pretty_json(v, indent + 1, elide)}' for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value and all(isinstance(v, (dict, list)) for v in value):
        items = [f"{pad}  {pretty_json(v, indent + 1, elide)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    if isinstance(value, list) and elide and len(value) > SHOWN_VALUES:
        shown = ", ".join(json.dumps(v) for v in value[:SHOWN_VALUES])
        return f"[{shown}, … {len(value) - SHOWN_VALUES:,} more]"
    return json.dumps(value)


class JsonView(QWidget):
    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self._value: Any | None = None
        self.title = QLabel(title)
        self.title.setObjectName("sectionTitle")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the whole body to the clipboard")
        self.copy_button.clicked.connect(self.copy)
        self.editor = QPlainTextEdit()
        self.editor.setReadOnly(True)
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.editor)

    def set_value(self, value: Any | None, empty_text: str = "") -> None:
        self._value = value
        self.copy_button.setEnabled(value is not None)
        self.editor.setPlainText(empty_text if value is None else pretty_json(value, elide=True))

    def copy(self) -> None:
        """The whole body, tensors not elided: formatted only when asked for (it can be MBs)."""
        if self._value is not None:
            QGuiApplication.clipboard().setText(pretty_json(self._value))
