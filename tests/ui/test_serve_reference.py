"""The Serve page asks for reference data, says what serving without costs, and remembers the
choice per model: serving the same model again brings the same data."""

import shutil

import httpx
from PySide6.QtCore import Qt

from studio.core.monitor.reference_choice import remember_reference, remembered_reference

START_TIMEOUT_MS = 90_000


def open_model(qtbot, window, path):
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(path)
    return window.model_page.artifact


def test_the_reference_data_served_with_is_remembered_for_the_model(qtbot, window, demo_model,
                                                                     wine_csv, tmp_path):
    model = tmp_path / "wine_copy.onnx"  # not the demo: nothing fills the field for it
    shutil.copyfile(demo_model, model)
    open_model(qtbot, window, model)
    page = window.serve_page
    window.nav.setCurrentRow(2)
    assert page.reference.text() == ""
    assert page.reference_caveat.isVisible()
    assert "drift present from the start cannot be seen" in page.reference_caveat.text()

    page.reference.setText(str(wine_csv))
    assert page.reference_caveat.isHidden()
    page.runtime.setCurrentIndex(page.runtime.findData("process"))
    with qtbot.waitSignal(page.deployment_ready, timeout=START_TIMEOUT_MS) as ready:
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    profile = httpx.get(f"{ready.args[0].url}/reference", timeout=10).json()
    assert profile["source"] == "dataset" and profile["rows"] == 178
    with qtbot.waitSignal(page.deployment_stopped, timeout=20_000):
        qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    assert remembered_reference(model).data == wine_csv.resolve()

    page.set_source(None)
    assert page.reference.text() == ""
    open_model(qtbot, window, model)  # the same model again: the same data, nothing to ask
    assert page.reference.text() == str(wine_csv.resolve())
    assert page.reference_caveat.isHidden()


def test_each_model_brings_its_own_choice(qtbot, window, demo_model, wine_csv, tmp_path):
    chosen, without, unknown = (tmp_path / f"{name}.onnx" for name in ("chosen", "without",
                                                                         "unknown"))
    for path in (chosen, without, unknown):
        shutil.copyfile(demo_model, path)
    remember_reference(chosen, wine_csv)
    remember_reference(without, None)
    page = window.serve_page

    open_model(qtbot, window, chosen)
    assert page.reference.text() == str(wine_csv.resolve())
    open_model(qtbot, window, without)  # served without on purpose: the field is emptied
    assert page.reference.text() == "" and not page.reference_caveat.isHidden()
    open_model(qtbot, window, chosen)
    # nothing chosen yet for a model of the same features (an optimized copy): the field stays
    open_model(qtbot, window, unknown)
    assert page.reference.text() == str(wine_csv.resolve())
