"""Open the app on a model the way `slipway MODEL` does, and quit once the model is on screen.

    BUNDLE/slipway -c "$(cat packaging/window_check.py)" MODEL SCREENSHOT.png

Run by packaging/check.sh with the bundle's own Python (slipway_entry.py's `-c` mode), so every
import, Qt plugin and resource comes from the bundle. The only change to the real app: when the
Model page has shown the model, the window is saved to SCREENSHOT and the app quits, printing
`WINDOW <model name> <feature rows>`; after a minute without that it exits with status 1.
"""

import sys

# As the bundle's `slipway` does: ONNX Runtime's native libraries before Qt's.
import onnxruntime  # noqa: F401
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

import studio.ui.main_window as main_window
from studio.cli import main
from studio.ui.app import create_app

TIMEOUT_MS = 60_000

model, screenshot = sys.argv[1], sys.argv[2]
shown_model = main_window.MainWindow._model_loaded


def model_loaded(window, artifact):
    shown_model(window, artifact)
    window.resize(1024, 700)
    if not window.grab().save(screenshot):
        print(f"window_check: could not save {screenshot}", file=sys.stderr)
        QApplication.instance().exit(1)
        return
    print("WINDOW", artifact.schema.name, window.model_page.feature_table.rowCount(), flush=True)
    QTimer.singleShot(0, QApplication.instance().quit)


def give_up():
    print(f"window_check: the model was not shown within {TIMEOUT_MS // 1000} s", file=sys.stderr)
    QApplication.instance().exit(1)


main_window.MainWindow._model_loaded = model_loaded
create_app()  # the one run_app will use: the timer needs it
QTimer.singleShot(TIMEOUT_MS, give_up)  # runs once the app's event loop starts
sys.exit(main([model]))
