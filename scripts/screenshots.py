"""Regenerate the README's screenshots: .venv/bin/python scripts/screenshots.py

Opens the real app offscreen on real models and saves what the window shows to docs/screenshots/.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import onnx  # noqa: E402
from PySide6.QtCore import QSettings, QTimer  # noqa: E402

from studio.ui.app import DEMO_MODEL, create_app, create_window  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
SHOTS = [  # (model, tab index on the Model page, file name)
    (DEMO_MODEL, 0, "model-inputs.png"),
    (DEMO_MODEL, 4, "model-samples.png"),
    (LIGHT / "light_resnet50.onnx", 3, "model-operators.png"),
]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    app = create_app()
    settings = QSettings(os.path.join(tempfile.mkdtemp(), "s.ini"), QSettings.Format.IniFormat)
    window = create_window(settings)
    window.resize(1200, 760)
    window.show()
    queue = list(SHOTS)

    def next_shot() -> None:
        if not queue:
            app.quit()
            return
        model, tab, name = queue[0]
        window.open_model(model)

    def loaded(_artifact) -> None:
        model, tab, name = queue.pop(0)
        window.model_page.tabs.setCurrentIndex(tab)
        QTimer.singleShot(300, lambda: (window.grab().save(str(OUT / name)), print(OUT / name),
                                        next_shot()))

    window.model_page.artifact_loaded.connect(loaded)
    window.model_page.load_failed.connect(lambda e: (print(e, file=sys.stderr), app.exit(1)))
    QTimer.singleShot(0, next_shot)
    QTimer.singleShot(60_000, lambda: app.exit(1))
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
