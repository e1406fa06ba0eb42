"""The Model page driven through real widgets: drops, dialogs, buttons and signals."""

import json

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication

from studio.ui.settings import load as load_settings

LOAD_TIMEOUT_MS = 30_000


def drop_file(target, path):
    """Drag a file from a file manager and drop it on `target` (any widget of the window)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted(), "the window refused the drag"
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, drop)


def test_dropping_a_model_fills_the_schema_table(qtbot, window, demo_model):
    page = window.model_page
    with qtbot.waitSignal(page.artifact_loaded, timeout=LOAD_TIMEOUT_MS) as loaded:
        drop_file(page.drop_zone, demo_model)
    artifact = loaded.args[0]
    names = page.feature_table.column_values(0)
    assert names[:3] == ["alcohol", "malic_acid", "ash"]
    assert names == [f.name for f in artifact.schema.features] and len(names) == 13
    assert page.feature_table.column_values(1) == ["numeric"] * 13
    assert page.tensor_table.column_values(2) == ["[?, 13]"]
    assert page.output_table.column_values(0) == ["label", "probabilities"]
    assert "class_0, class_1, class_2" in page.classes_label.text()
    assert page.operator_chart.counts == {"Scaler": 1, "LinearClassifier": 1, "Normalizer": 1}
    assert page.title.text() == "wine_classifier"
    assert "wine_classifier" in window.windowTitle()
    assert not page.error_banner.isVisible()


def test_dropping_on_any_part_of_the_window_opens_the_model(qtbot, window, demo_model):
    page = window.model_page
    with qtbot.waitSignal(page.artifact_loaded, timeout=LOAD_TIMEOUT_MS):
        drop_file(window.nav, demo_model)
    assert page.feature_table.rowCount() == 13


def test_a_bad_file_shows_the_error_in_the_page_and_keeps_the_model(qtbot, window, demo_model,
                                                                     random_onnx):
    page = window.model_page
    with qtbot.waitSignal(page.artifact_loaded, timeout=LOAD_TIMEOUT_MS):
        drop_file(window, demo_model)
    with qtbot.waitSignal(page.load_failed, timeout=LOAD_TIMEOUT_MS):
        drop_file(window, random_onnx)
    assert page.error_banner.isVisible()
    assert "noise.onnx" in page.error_banner.message.text()
    assert "not a readable ONNX model" in page.error_banner.message.text()
    assert page.error_banner.hint.text()  # says what to do next
    # Nothing was lost: the previous model is still on screen.
    assert page.title.text() == "wine_classifier"
    assert page.feature_table.rowCount() == 13
    # The details went to the log view, not to the page.
    qtbot.mouseClick(page.error_banner.log_button, Qt.MouseButton.LeftButton)
    assert window.log_dock.isVisible()
    assert "noise.onnx" in window.log_view.toPlainText()
    # And the window still works: the next model loads.
    with qtbot.waitSignal(page.artifact_loaded, timeout=LOAD_TIMEOUT_MS):
        drop_file(window, demo_model)
    assert not page.error_banner.isVisible()


def test_a_missing_file_from_the_recent_list_is_an_in_page_error(qtbot, window, tmp_path):
    with qtbot.waitSignal(window.model_page.load_failed, timeout=LOAD_TIMEOUT_MS):
        window.open_model(tmp_path / "gone.onnx")
    assert "There is no file or folder" in window.model_page.error_banner.message.text()


def test_a_pickle_asks_for_trust_then_loads_in_a_child_process(qtbot, window, iris_joblib):
    page = window.model_page
    drop_file(window, iris_joblib)
    qtbot.waitUntil(lambda: page.trust_dialog is not None and page.trust_dialog.isVisible(),
                    timeout=LOAD_TIMEOUT_MS)
    listed = [page.trust_dialog.reasons.item(i).text()
              for i in range(page.trust_dialog.reasons.count())]
    assert "sklearn.pipeline.Pipeline" in listed
    with qtbot.waitSignal(page.artifact_loaded, timeout=LOAD_TIMEOUT_MS) as loaded:
        qtbot.mouseClick(page.trust_dialog.trust_button, Qt.MouseButton.LeftButton)
    assert loaded.args[0].trusted
    assert page.feature_table.column_values(0) == [
        "sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    assert "standardscaler" in [page.metadata_tree.topLevelItem(i).child(j).text(0)
                                for i in range(page.metadata_tree.topLevelItemCount())
                                for j in range(page.metadata_tree.topLevelItem(i).childCount())]


def test_declining_trust_loads_nothing_and_says_so(qtbot, window, iris_joblib):
    page = window.model_page
    drop_file(window, iris_joblib)
    qtbot.waitUntil(lambda: page.trust_dialog is not None and page.trust_dialog.isVisible(),
                    timeout=LOAD_TIMEOUT_MS)
    qtbot.mouseClick(page.trust_dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert page.artifact is None
    assert page.error_banner.isVisible()
    assert "was not trusted" in page.error_banner.message.text()


def test_the_window_stays_responsive_while_a_load_hangs_and_cancel_stops_it(
        qtbot, window, hanging_pickle):
    page = window.model_page
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    page.open_path(hanging_pickle, trust=True)
    assert page.states.currentIndex() == page.LOADING
    # The child process sleeps; the GUI thread must keep processing events meanwhile.
    qtbot.waitUntil(lambda: len(ticks) >= 25, timeout=5000)
    assert page.task is not None and not page.task.done
    with qtbot.waitSignal(page.task.signals.cancelled, timeout=5000):
        qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    timer.stop()
    assert page.states.currentIndex() == page.EMPTY
    assert not page.error_banner.isVisible()


def test_copy_puts_the_whole_sample_body_on_the_clipboard(qtbot, window, demo_model):
    page = window.model_page
    with qtbot.waitSignal(page.artifact_loaded, timeout=LOAD_TIMEOUT_MS) as loaded:
        window.open_model(demo_model)
    qtbot.mouseClick(page.v2_view.copy_button, Qt.MouseButton.LeftButton)
    copied = json.loads(QGuiApplication.clipboard().text())
    assert copied == loaded.args[0].schema.samples.v2
    qtbot.mouseClick(page.rest_view.copy_button, Qt.MouseButton.LeftButton)
    assert json.loads(QGuiApplication.clipboard().text())["features"]["alcohol"] == 13.001


def test_tensor_models_show_inputs_and_operators_without_features(qtbot, window):
    from pathlib import Path

    import onnx

    squeezenet = Path(onnx.__file__).parent / "backend/test/data/light/light_squeezenet.onnx"
    page = window.model_page
    with qtbot.waitSignal(page.artifact_loaded, timeout=LOAD_TIMEOUT_MS):
        window.open_model(squeezenet)
    assert page.tensor_table.column_values(0) == ["data_0"]
    assert page.tensor_table.column_values(2) == ["[1, 3, 224, 224]"]
    assert not page.feature_table.isVisibleTo(page)
    assert page.operator_chart.counts["Conv"] == 26
    assert "tensors only" in page.rest_view.editor.toPlainText()


def test_recent_files_are_remembered_and_reopen(qtbot, window, demo_model):
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=LOAD_TIMEOUT_MS):
        window.open_model(demo_model)
    assert window.recent_files() == [str(demo_model.resolve())]
    action = window.recent_menu.actions()[0]
    assert action.text() == str(demo_model.resolve())
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=LOAD_TIMEOUT_MS):
        action.trigger()
    assert load_settings(window.settings).recent_files == [str(demo_model.resolve())]


def test_what_a_model_file_says_is_shown_as_text_not_obeyed(qtbot, window, tmp_path):
    import onnx

    source = onnx.load(f"{onnx.__file__.rsplit('/', 1)[0]}/backend/test/data/light/"
                       "light_squeezenet.onnx")
    source.producer_name = "exporter\x1b[31mRED\u202e"
    path = tmp_path / "escaping.onnx"
    onnx.save_model(source, path)
    page = window.model_page
    with qtbot.waitSignal(page.artifact_loaded, timeout=LOAD_TIMEOUT_MS):
        window.open_model(path)
    shown = []
    for index in range(page.metadata_tree.topLevelItemCount()):
        section = page.metadata_tree.topLevelItem(index)
        shown += [section.child(i).text(1) for i in range(section.childCount())]
    assert "exporter\\x1b[31mRED\\u202e" in shown
    assert not any("\x1b" in text or "\u202e" in text for text in shown)
