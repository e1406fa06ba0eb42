"""QApplication, its identity and look, and `run_app`, the entry point of the desktop app."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from studio import __version__
from studio.ui.settings import load as load_settings
from studio.ui.single_instance import APP_ID, SingleInstance
from studio.ui.theme import apply_theme

if TYPE_CHECKING:
    from studio.ui.main_window import MainWindow

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
DEMO_MODEL = RESOURCES / "demo" / "wine_classifier.onnx"
DEMO_REFERENCE = DEMO_MODEL.parent / "wine_reference.csv"
"""The rows the demo model was trained on: its drift reference."""
ORGANIZATION = "Slipway"
APPLICATION = "Slipway Studio"


def create_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(__version__)
    # The .desktop file's id: Wayland compositors find the window's icon and launcher through it.
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())
    apply_theme(app, load_settings(QSettings(ORGANIZATION, APPLICATION)).theme)
    return app


def app_icon() -> QIcon:
    """The installed theme's icon when there is one, else the sizes shipped in resources/."""
    icon = QIcon()
    for png in sorted((RESOURCES / "icons" / "hicolor").glob(f"*/apps/{APP_ID}.png")):
        icon.addFile(str(png))
    return QIcon.fromTheme(APP_ID, icon)


def create_window(settings: QSettings | None = None) -> MainWindow:
    # Imported here, not above: the pages import the model libraries, seconds that a launch
    # handing its model to the running studio (run_app) should not spend.
    from studio.ui.main_window import MainWindow

    return MainWindow(settings or QSettings(ORGANIZATION, APPLICATION),
                      demo_model=DEMO_MODEL if DEMO_MODEL.exists() else None,
                      demo_reference=DEMO_REFERENCE if DEMO_REFERENCE.exists() else None)


def has_screen() -> bool:
    """False on a Linux machine with no display, where Qt would abort instead of opening a window."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_app(model: str | None = None) -> int:
    # The terminal gets warnings and worse; the Log dock shows the studio's INFO lines, and its
    # logger's level (INFO) must not let them through to this handler too.
    terminal = logging.StreamHandler()
    terminal.setLevel(logging.WARNING)
    terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[terminal])
    if not has_screen():
        print("slipway: error: there is no screen to open the app on (DISPLAY is not set). "
              "Run it under xvfb-run, or use the command line: slipway inspect MODEL.",
              file=sys.stderr)
        return 1
    app = create_app()
    instance = SingleInstance(parent=app)
    if not instance.claim():
        if instance.hand_over(model):
            print(f"slipway: {'opened ' + model + ' in' if model else 'brought forward'} the "
                  "Slipway Studio that is already running")
            return 0
        print("slipway: error: Slipway Studio is already running but did not answer; close it "
              "(or end its process) and try again.", file=sys.stderr)
        return 1
    window = create_window()
    instance.model_requested.connect(window.open_from_another_launch)
    window.show()
    if os.environ.get("SLIPWAY_QUIT_WHEN_SHOWN"):
        _quit_when_shown(app, window, model)
    if model:
        window.open_model(model)  # the other pages are built once it is shown
    else:
        window.build_stages_soon(restore_page=True)
    return app.exec()


def _quit_when_shown(app: QApplication, window: MainWindow, model: str | None) -> None:
    """For benchmarks/startup.py: once the window has painted the model's schema (or itself,
    without a model), print the moment on the system's monotonic clock and quit."""
    import time

    from PySide6.QtCore import QTimer

    def report() -> None:
        window.repaint()  # paints now, not at the next turn of the event loop
        print(f"slipway-shown {time.monotonic():.6f}", flush=True)
        app.quit()

    if model:
        window.model_page.artifact_loaded.connect(lambda _: QTimer.singleShot(0, report))
    else:
        QTimer.singleShot(0, report)
