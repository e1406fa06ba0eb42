"""QApplication, settings, theme, and `run_app`, the entry point of the desktop app."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from studio import __version__
from studio.ui.main_window import MainWindow

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
DEMO_MODEL = RESOURCES / "demo" / "wine_classifier.onnx"
DEMO_REFERENCE = DEMO_MODEL.parent / "wine_reference.csv"
"""The rows the demo model was trained on: its drift reference."""
ORGANIZATION = "Slipway"
APPLICATION = "Slipway Studio"


def apply_theme(app: QApplication) -> None:
    """Fusion with a calm light palette; details in resources/theme.qss."""
    app.setStyle("Fusion")
    palette = app.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor(246, 247, 249))
    palette.setColor(QPalette.ColorRole.Base, QColor(255, 255, 255))
    palette.setColor(QPalette.ColorRole.AlternateBase, QColor(243, 245, 248))
    palette.setColor(QPalette.ColorRole.Highlight, QColor(45, 110, 200))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    app.setPalette(palette)
    qss = RESOURCES / "theme.qss"
    if qss.exists():
        app.setStyleSheet(qss.read_text())


def create_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(__version__)
    apply_theme(app)
    return app


def create_window(settings: QSettings | None = None) -> MainWindow:
    return MainWindow(settings or QSettings(ORGANIZATION, APPLICATION),
                      demo_model=DEMO_MODEL if DEMO_MODEL.exists() else None,
                      demo_reference=DEMO_REFERENCE if DEMO_REFERENCE.exists() else None)


def has_screen() -> bool:
    """False on a Linux machine with no display, where Qt would abort instead of opening a window."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_app(model: str | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not has_screen():
        print("slipway: error: there is no screen to open the app on (DISPLAY is not set). "
              "Run it under xvfb-run, or use the command line: slipway inspect MODEL.",
              file=sys.stderr)
        return 1
    app = create_app()
    window = create_window()
    window.show()
    if model:
        window.open_model(model)
    return app.exec()
