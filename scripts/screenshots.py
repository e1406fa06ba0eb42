"""Regenerate the README's screenshots: .venv/bin/python scripts/screenshots.py

Opens the real app offscreen on real models and saves what the window shows to docs/screenshots/:
three views of the Model page, then the Optimize page after converting and optimizing an MLP
trained here on scikit-learn's breast-cancer data.
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


def _mlp_artifact(folder: Path):
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from studio.core.artifacts import load

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), MLPClassifier((256, 256), max_iter=300, random_state=0))
    path = folder / "cancer_mlp.joblib"
    joblib.dump(model.fit(X, y), path)
    X.assign(target=y).to_csv(path.with_suffix(".csv"), index=False)
    return load(path, trust=True)  # the script made this pickle itself


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    app = create_app()
    settings = QSettings(os.path.join(tempfile.mkdtemp(), "s.ini"), QSettings.Format.IniFormat)
    window = create_window(settings)
    window.resize(1200, 760)
    window.show()
    queue = list(SHOTS)

    def save(name: str, then) -> None:
        QTimer.singleShot(300, lambda: (window.grab().save(str(OUT / name)), print(OUT / name),
                                        then()))

    def next_shot() -> None:
        if queue:
            window.open_model(queue[0][0])
        else:
            optimize_shot()

    def loaded(_artifact) -> None:
        _, tab, name = queue.pop(0)
        window.model_page.tabs.setCurrentIndex(tab)
        save(name, next_shot)

    def optimize_shot() -> None:
        source = _mlp_artifact(Path(tempfile.mkdtemp()))
        window.use_artifact(source)
        window.nav.setCurrentRow(1)
        page = window.optimize_page
        for box in page.optimization_boxes.values():
            box.setChecked(True)
        page.reference.setText(str(source.path.with_suffix(".csv")))
        page.run_finished.connect(lambda: (page.table.selectRow(2), save("optimize.png", app.quit)))
        page.run()

    window.model_page.artifact_loaded.connect(loaded)
    window.model_page.load_failed.connect(lambda e: (print(e, file=sys.stderr), app.exit(1)))
    QTimer.singleShot(0, next_shot)
    QTimer.singleShot(180_000, lambda: app.exit(1))
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
