"""Regenerate the README's screenshots: .venv/bin/python scripts/screenshots.py

Opens the real app offscreen on real models and saves what the window shows to docs/screenshots/:
three views of the Model page, then the Optimize page after converting and optimizing an MLP
trained here on scikit-learn's breast-cancer data, the Serve page running the demo model (in
Docker when an engine answers; set SLIPWAY_BASE_IMAGE to a local base image where no registry
does), the Probe page with a request that misses features, the Export page for that image, then the
Load and Monitor pages against the demo model served as a local process with its reference data,
under a load test that shifts one feature; then the Versions page with what the run recorded, the
Compare page on the MLP against its int8 quantization, the Batch page predicting the demo's rows,
and the settings dialog. The README and docs/user-guide.md show these files. The registry and the
settings live in a temporary folder: the script leaves yours alone.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="slipway-shots-")  # a registry of its own

import onnx  # noqa: E402
from PySide6.QtCore import QSettings, QTimer  # noqa: E402

from studio.ui.app import DEMO_MODEL, DEMO_REFERENCE, create_app, create_window  # noqa: E402

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

    from studio.core.model.artifact import load

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
        page.run_finished.connect(lambda: (page.table.selectRow(2),
                                           save("optimize.png", serve_shot)))
        page.run()

    def serve_shot() -> None:
        from studio.core.model.artifact import load

        window.set_current(load(DEMO_MODEL))  # fills in the demo's reference data too
        page = window.serve_page
        if os.environ.get("SLIPWAY_BASE_IMAGE"):
            page.base_image.setText(os.environ["SLIPWAY_BASE_IMAGE"])
        window.nav.setCurrentRow(window.pages.indexOf(page))
        app.aboutToQuit.connect(page.shutdown)

        def ready(_deployment) -> None:
            page.deployment_ready.disconnect(ready)
            QTimer.singleShot(1500, lambda: save("serve.png", probe_shot))  # a few log lines

        page.deployment_ready.connect(ready)
        page.state_changed.connect(lambda state: state == "failed" and (
            print(page.error_banner.message.text(), file=sys.stderr), app.exit(1)))
        page.build_and_run()

    def probe_shot() -> None:
        page = window.probe_page
        window.nav.setCurrentRow(window.pages.indexOf(page))
        page.route.setCurrentText("/predict")
        page.editor.setPlainText(json.dumps({"features": {"alcohol": 13.2, "malic_acid": 1.8}},
                                            indent=2))

        def answered(_reply) -> None:
            page.answered.disconnect(answered)
            save("probe.png", export_shot)

        page.answered.connect(answered)
        page.send()

    def export_shot() -> None:
        page = window.export_page  # the image of the Serve page's container is filled in
        window.nav.setCurrentRow(window.pages.indexOf(page))

        def checked(_report) -> None:
            page.checked_report.disconnect(checked)
            save("export.png", load_shot)

        page.checked_report.connect(checked)
        page.run_checks()  # now, whether or not the image's arrival already ran them

    def load_shot() -> None:
        from studio.core.model.artifact import load
        from studio.core.serve.bundle import ServingOptions
        from studio.core.serve.deploy import DeployOptions, deploy

        demo = load(DEMO_MODEL)
        deployment = deploy(demo, DeployOptions(
            runtime="process", serving=ServingOptions(reference_data=DEMO_REFERENCE)))
        app.aboutToQuit.connect(deployment.stop)
        window.resize(1400, 900)  # the live pages have more to show
        window.set_current(demo)
        window.monitor_page.attach(deployment)
        window.load_page.set_url(deployment.url)
        window.nav.setCurrentRow(window.pages.indexOf(window.load_page))
        page = window.load_page
        runs = [("Smoke", 4.0), ("Steady", 8.0)]  # the second is drawn over the first

        def run_next(_report=None) -> None:
            if not runs:
                page.finished.disconnect(run_next)
                save("load.png", monitor_shot)
                return
            preset, seconds = runs.pop(0)
            page.preset.setCurrentText(preset)
            page.duration.setValue(seconds)
            page.start()

        page.finished.connect(run_next)
        run_next()

    def monitor_shot() -> None:
        import threading

        from studio.core.loadtest.engine import run
        from studio.core.loadtest.payloads import bodies_for, parse_drift
        from studio.core.loadtest.plan import LoadPlan

        page = window.monitor_page
        window.nav.setCurrentRow(window.pages.indexOf(page))
        page.window_choice.setCurrentIndex(0)
        page.start()
        schema = window.current.schema
        steady, _ = bodies_for(schema, "/predict", "reference", DEMO_REFERENCE)
        drifted, _ = bodies_for(schema, "/predict", "reference", DEMO_REFERENCE,
                                [parse_drift("alcohol=+2sd")])

        def traffic() -> None:
            for bodies, seconds in ((steady, 6), (drifted, 12)):
                run(LoadPlan(page.url.text(), payloads=bodies, mode="open", rate=200,
                             arrival="poisson", duration_s=seconds))

        sender = threading.Thread(target=traffic)
        sender.start()
        QTimer.singleShot(17_000, lambda: save("monitor.png", lambda: (sender.join(),
                                                                       versions_shot())))

    def versions_shot() -> None:
        page = window.versions_page
        window.resize(1200, 760)
        window.nav.setCurrentRow(window.pages.indexOf(page))
        from studio.core.versions.registry import Registry

        registry = Registry()  # in this script's own data folder (XDG_DATA_HOME above)
        registry.set_alias("cancer_mlp", "champion", 2)  # the conversion serves today,
        registry.set_alias("cancer_mlp", "challenger", 4)  # its int8 quantization is next
        page.refreshed.connect(lambda rows: len(rows) > 2 and page.table.selectRow(2))
        page.refresh()
        save("versions.png", compare_shot)

    def compare_shot() -> None:
        from studio.core.optimize.convert import convert
        from studio.core.optimize.optimize import Optimization, optimize

        folder = Path(tempfile.mkdtemp())
        source = _mlp_artifact(folder)
        converted = convert(source, folder / "cancer_mlp.onnx")
        quantized = optimize(converted.artifact, Optimization.INT8, folder / "cancer_mlp.int8.onnx")
        page = window.compare_page
        window.nav.setCurrentRow(window.pages.indexOf(page))
        page.reference.setText(str(source.path.with_suffix(".csv")))
        page.target.setText("target")

        def compared(_result) -> None:
            page.offline_done.disconnect(compared)
            save("compare.png", batch_shot)

        page.offline_done.connect(compared)
        page.compare_versions(str(converted.artifact.path), str(quantized.artifact.path))

    def batch_shot() -> None:
        from studio.core.model.artifact import load

        window.set_current(load(DEMO_MODEL))
        page = window.batch_page
        window.nav.setCurrentRow(window.pages.indexOf(page))
        page.set_data(DEMO_REFERENCE)
        page.output.setText(str(Path(tempfile.mkdtemp()) / "wine_predictions.csv"))

        def done(_summary) -> None:
            page.finished.disconnect(done)
            save("batch.png", settings_shot)

        page.finished.connect(done)
        page.start()

    def settings_shot() -> None:
        from studio.ui.settings_dialog import SettingsDialog

        presets = [window.load_page.preset.itemText(i)
                   for i in range(window.load_page.preset.count())]
        dialog = SettingsDialog(window.prefs, presets, window)
        dialog.show()
        QTimer.singleShot(300, lambda: (dialog.grab().save(str(OUT / "settings.png")),
                                        print(OUT / "settings.png"), dialog.close(), finish()))

    def finish() -> None:
        window.confirm_quit = lambda running: True  # stop what the shots started, then quit
        window.close()
        app.quit()

    window.model_page.artifact_loaded.connect(loaded)
    window.model_page.load_failed.connect(lambda e: (print(e, file=sys.stderr), app.exit(1)))
    QTimer.singleShot(0, next_shot)
    QTimer.singleShot(300_000, lambda: app.exit(1))
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
