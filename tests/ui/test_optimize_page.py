"""The Optimize page with real models: conversion, optimizations, reports, cancel, save, carry on."""

from pathlib import Path

import onnx
import pandas as pd
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from studio.core.optimize.optimize import Optimization

RUN_TIMEOUT_MS = 120_000


def open_trusted(qtbot, window, path):
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=60_000):
        window.model_page.open_path(path, trust=True)
    window.nav.setCurrentRow(1)
    return window.optimize_page


def choose(page, *optimizations):
    for optimization, box in page.optimization_boxes.items():
        box.setChecked(optimization in optimizations)


def run(qtbot, page):
    with qtbot.waitSignal(page.run_finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)


def column(page, index):
    return [page.table.item(r, index).text() for r in range(page.table.rowCount())]


def test_convert_and_optimize_an_mlp_shows_one_passing_row_per_step(qtbot, window, sklearn_models):
    page = open_trusted(qtbot, window, sklearn_models["mlp_wine"].path)
    assert page.convert_box.isEnabled()
    choose(page, Optimization.INT8, Optimization.FP16)
    assert page.planned_steps() == ["convert", "int8", "fp16"]
    run(qtbot, page)
    assert column(page, 0) == ["convert to ONNX", "int8", "fp16"]
    assert column(page, 1) == ["pass", "pass", "pass"]
    assert page.progress_label.text() == "Done"
    # Every row, the conversion's too, times the model before and after its step.
    for text in column(page, 4) + column(page, 5):
        before, after = text.split(" → ")
        assert float(before) > 0 and float(after.split()[0]) > 0
    for result in page.results:
        assert result.artifact.model_file.exists()
        assert [f.name for f in result.artifact.schema.features] == \
            sklearn_models["mlp_wine"].feature_names
    # A 16-unit MLP has too few weights for int8 to pay for its extra nodes: the report says so.
    int8 = page.results[1]
    assert int8.report.size_after >= int8.report.size_before
    assert "not smaller than the original" in int8.report.note
    page.table.selectRow(1)
    assert "Parity on 200 rows" in page.details.toPlainText()
    assert "Dynamic int8" in page.details.toPlainText()


def test_nothing_to_quantize_is_said_plainly_and_nothing_can_be_saved(qtbot, window,
                                                                      sklearn_models):
    page = open_trusted(qtbot, window, sklearn_models["forest_wine"].path)
    choose(page, Optimization.INT8)
    run(qtbot, page)
    assert column(page, 1) == ["pass", "not applicable"]
    # The run ends on the row that can be saved, so Save and Use work at once.
    assert page.selected_result() is page.results[0]
    assert page.save_button.isEnabled() and page.use_button.isEnabled()
    assert "Nothing to quantize" in page.table.item(1, 8).text()
    assert "TreeEnsembleClassifier" in page.table.item(1, 8).text()
    page.table.selectRow(1)
    assert not page.save_button.isEnabled()
    assert not page.use_button.isEnabled()
    page.table.selectRow(0)
    assert page.save_button.isEnabled()


def test_a_reference_dataset_is_used_and_a_bad_one_is_an_in_page_error(qtbot, window,
                                                                        sklearn_models, tmp_path):
    model = sklearn_models["logreg_iris"]
    page = open_trusted(qtbot, window, model.path)
    choose(page)
    reference = tmp_path / "iris.csv"
    model.X.assign(species=model.y).to_csv(reference, index=False)
    page.reference.setText(str(reference))
    run(qtbot, page)
    assert page.results[0].parity.rows == len(model.X)
    assert "iris.csv" in page.results[0].parity.inputs

    broken = tmp_path / "broken.csv"
    pd.DataFrame({"something": [1, 2]}).to_csv(broken, index=False)
    page.reference.setText(str(broken))
    run(qtbot, page)
    assert page.error_banner.isVisible()
    assert "lacks 4 of the model's feature columns" in page.error_banner.message.text()
    assert page.run_button.isEnabled()


def test_cancel_stops_the_run_promptly(qtbot, window, sklearn_models):
    page = open_trusted(qtbot, window, sklearn_models["mlp_wine"].path)
    choose(page, *Optimization)
    with qtbot.waitSignal(page.run_finished, timeout=20_000):
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
        assert page.cancel_button.isEnabled()
        qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    assert page.progress_label.text() == "Cancelled"
    assert page.table.rowCount() < 5
    assert page.run_button.isEnabled()


def test_use_in_later_stages_makes_the_optimized_model_current(qtbot, window, demo_model):
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    page = window.optimize_page
    assert not page.convert_box.isEnabled()  # already ONNX
    choose(page, Optimization.GRAPH)
    run(qtbot, page)
    page.table.selectRow(0)
    with qtbot.waitSignal(window.current_changed) as changed:
        qtbot.mouseClick(page.use_button, Qt.MouseButton.LeftButton)
    optimized = changed.args[0]
    assert optimized.model_file.name == "wine_classifier.graph.onnx"
    assert window.current is optimized
    assert window.model_page.title.text() == "wine_classifier.graph"
    assert window.model_page.feature_table.rowCount() == 13


def test_saving_a_model_that_failed_parity_asks_first(qtbot, window, sklearn_models, tmp_path):
    page = open_trusted(qtbot, window, sklearn_models["mlp_wine"].path)
    choose(page)
    page.atol.setValue(page.atol.minimum())
    page.rtol.setValue(0.0)
    run(qtbot, page)
    assert column(page, 1) == ["FAIL"]
    written = page.results[0].artifact.model_file
    props = {p.key: p.value for p in onnx.load(written).metadata_props}
    assert '"passed": false' in props["slipway.parity"]

    destination = tmp_path / "kept-anyway.onnx"
    page.choose_destination = lambda suggested: destination
    page.table.selectRow(0)
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert page.confirm_box is not None and page.confirm_box.isVisible()
    assert "failed its parity check" in page.confirm_box.text() or \
        "does not answer like the original" in page.confirm_box.text()
    with qtbot.waitSignal(page.saved, timeout=10_000) as saved:
        page.confirm_box.button(QMessageBox.StandardButton.Save).click()
    assert Path(saved.args[0]) == destination
    assert destination.read_bytes() == written.read_bytes()


def test_int8_is_ticked_by_default_only_on_a_model_it_can_help(qtbot, window, sklearn_models,
                                                                demo_model):
    page = open_trusted(qtbot, window, sklearn_models["forest_wine"].path)
    assert not page.optimization_boxes[Optimization.INT8].isChecked()
    page = open_trusted(qtbot, window, sklearn_models["mlp_wine"].path)
    assert page.optimization_boxes[Optimization.INT8].isChecked()
    page = open_trusted(qtbot, window, demo_model)  # Scaler + LinearClassifier: nothing to shrink
    assert not page.optimization_boxes[Optimization.INT8].isChecked()


def test_without_a_model_there_is_nothing_to_run(window):
    page = window.optimize_page
    assert not page.run_button.isEnabled()
    assert "Open a model" in page.subtitle.text()
