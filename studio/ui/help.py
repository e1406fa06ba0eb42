"""The Help menu's content: the user guide, the keyboard shortcuts, the diagnostics a bug report
needs, and the About dialog with the versions of what the studio runs on.

The shortcuts are read from the window's own actions, so the list cannot drift from what the keys
do. Versions are read from the installed packages' metadata: nothing heavy is imported to show
them.
"""

from __future__ import annotations

import html
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QUrl, qVersion
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from studio import __version__

if TYPE_CHECKING:
    from studio.core.serve.runtimes.docker import EngineStatus

USER_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "user-guide.md"
PACKAGES = (("ONNX Runtime", "onnxruntime"), ("onnx", "onnx"), ("scikit-learn", "scikit-learn"),
            ("skl2onnx", "skl2onnx"), ("pyqtgraph", "pyqtgraph"))


def package_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def engine_text(engine: EngineStatus | None) -> str:
    if engine is None:
        return "not checked yet"
    return engine.version if engine.available and engine.version else f"none ({engine.reason})"


def versions(engine: EngineStatus | None) -> list[tuple[str, str]]:
    """(what, version) for the studio and everything the About dialog and diagnostics name."""
    return [("Slipway Studio", __version__),
            *((name, package_version(distribution)) for name, distribution in PACKAGES),
            ("Qt", qVersion()), ("PySide6", pyside_version),
            ("Docker engine", engine_text(engine)),
            ("Python", platform.python_version()),
            ("System", platform.platform())]


def diagnostics(engine: EngineStatus | None) -> str:
    """Plain text to paste into a bug report."""
    width = max(len(name) for name, _ in versions(engine))
    lines = [f"{name:<{width}}  {value}" for name, value in versions(engine)]
    return "\n".join(lines + [f"{'Executable':<{width}}  {sys.executable}"]) + "\n"


def shortcuts(actions: list[QAction]) -> list[tuple[str, str]]:
    """(keys, what they do) for every action of the window that has a shortcut."""
    rows = []
    for action in actions:
        keys = ", ".join(key.toString(QKeySequence.SequenceFormat.NativeText)
                         for key in action.shortcuts() if not key.isEmpty())
        if keys:
            rows.append((keys, action.text().replace("&&", "\0").replace("&", "")
                         .replace("\0", "&").rstrip("…")))
    return rows


class TextDialog(QDialog):
    """A read-only page of text (HTML or Markdown) with a Close button."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser, 1)
        layout.addWidget(buttons)
        self.resize(760, 560)


def user_guide_dialog(parent: QWidget | None = None, guide: Path = USER_GUIDE) -> TextDialog:
    dialog = TextDialog("Slipway Studio user guide", parent)
    if guide.is_file():
        dialog.browser.setSearchPaths([str(guide.parent)])  # its screenshots are relative links
        dialog.browser.document().setBaseUrl(QUrl.fromLocalFile(str(guide.parent) + "/"))
        dialog.browser.setMarkdown(guide.read_text(encoding="utf-8"))
    else:
        dialog.browser.setPlainText(
            f"The user guide is not installed with this copy of Slipway Studio ({guide} is "
            "missing). It is docs/user-guide.md in the project's repository.")
    return dialog


def shortcuts_dialog(actions: list[QAction], parent: QWidget | None = None) -> TextDialog:
    dialog = TextDialog("Keyboard shortcuts", parent)
    rows = "".join(f"<tr><td><b>{html.escape(keys)}</b></td><td>{html.escape(what)}</td></tr>"
                   for keys, what in shortcuts(actions))
    dialog.browser.setHtml(f"<table cellspacing='0' cellpadding='4'>{rows}</table>")
    dialog.resize(480, 520)
    return dialog


def about_dialog(engine: EngineStatus | None, parent: QWidget | None = None) -> QDialog:
    dialog = QDialog(parent)
    dialog.setWindowTitle("About Slipway Studio")
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{html.escape(value)}</td></tr>"
                   for name, value in versions(engine))
    text = QLabel(f"<h3>Slipway Studio {html.escape(__version__)}</h3>"
                  "<p>From a model file to a measured, monitored local service.</p>"
                  f"<table cellspacing='0' cellpadding='3'>{rows}</table>")
    text.setWordWrap(True)
    text.setObjectName("aboutText")
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(text)
    layout.addWidget(buttons)
    return dialog
