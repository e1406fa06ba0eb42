"""The Batch page driven as a person does: the demo model, a data file picked, Run, and what the
page shows while the file streams and after (progress, rejected rows with their lines, preview,
summary), Cancel, and a run stopped by a bad row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from PySide6.QtCore import Qt

from studio.core.model.artifact import load
from studio.ui.app import DEMO_REFERENCE
from studio.ui.pages.batch_page import BatchPage
from studio.ui.workers import TaskRunner

RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def page(qtbot, demo_model):
    runner = TaskRunner()
    widget = BatchPage(runner)
    qtbot.addWidget(widget)
    widget.resize(1024, 700)
    widget.show()
    widget.set_source(load(demo_model))
    yield widget
    runner.shutdown()


@pytest.fixture
def wine_with_bad_rows(tmp_path) -> Path:
    """The demo's rows with 'twelve' on line 6 and an empty proline on line 9."""
    lines = DEMO_REFERENCE.read_text().splitlines()
    fields = lines[5].split(",")
    fields[0] = "twelve"
    lines[5] = ",".join(fields)
    fields = lines[8].split(",")
    fields[12] = ""
    lines[8] = ",".join(fields)
    path = tmp_path / "wine.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_run_shows_progress_rejected_lines_and_the_first_predictions(
        qtbot, page, wine_with_bad_rows, tmp_path):
    page.set_data(wine_with_bad_rows)
    assert page.output.text() == str(tmp_path / "wine.predictions.csv")
    page.output.setText(str(tmp_path / "wine.predictions.parquet"))
    page.chunk_size.setValue(20)

    with qtbot.waitSignal(page.finished, timeout=RUN_TIMEOUT_MS) as finished:
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
        assert not page.run_button.isEnabled() and page.cancel_button.isEnabled()

    summary = finished.args[0]
    assert (summary.rows_read, summary.rows_predicted, summary.rows_rejected) == (178, 176, 2)
    assert pq.read_metadata(tmp_path / "wine.predictions.parquet").num_rows == 176
    assert [page.rejects.item(r, 0).text() for r in range(page.rejects.rowCount())] == ["6", "9"]
    assert page.rejects.item(0, 1).text() == "alcohol: 'twelve' is not a number"
    assert page.rejects.item(1, 1).text() == "proline is missing"
    headers = [page.preview.horizontalHeaderItem(c).text()
               for c in range(page.preview.columnCount())]
    assert headers[:5] == ["label", "probability_class_0", "probability_class_1",
                           "probability_class_2", "alcohol"]
    assert page.preview.item(0, headers.index("label")).text() == "class_0"
    assert "176 of 178 rows predicted" in page.status.text()
    assert page.written.text() == (
        f"Predictions: {tmp_path / 'wine.predictions.parquet'}   "
        f"Rows that did not fit: {tmp_path / 'wine.predictions.rejects.csv'}")
    assert page.progress.value() == page.progress.maximum()
    assert page.run_button.isEnabled() and not page.cancel_button.isEnabled()


def test_cancel_stops_the_run_and_leaves_no_predictions_file(qtbot, page, tmp_path):
    data = tmp_path / "many.csv"
    rows = pd.read_csv(DEMO_REFERENCE)
    pd.concat([rows] * 300, ignore_index=True).to_csv(data, index=False)  # 53,400 rows
    page.set_data(data)
    page.chunk_size.setValue(50)

    qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "rows/s" in page.status.text(), timeout=RUN_TIMEOUT_MS)
    assert 0 < page.progress.value() < page.progress.maximum()
    qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.run_button.isEnabled(), timeout=RUN_TIMEOUT_MS)

    assert page.status.text() == "Cancelled; nothing was written to many.predictions.csv."
    assert page.summary is None
    assert files_in(tmp_path) == ["many.csv"]


def test_a_bad_row_stops_a_run_told_to_stop_and_the_banner_names_its_line(
        qtbot, page, wine_with_bad_rows, tmp_path):
    page.set_data(wine_with_bad_rows)
    page.on_bad_rows.setCurrentIndex(page.on_bad_rows.findData("fail"))

    qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.error_banner.isVisible(), timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: page.run_button.isEnabled(), timeout=RUN_TIMEOUT_MS)

    assert page.error_banner.message.text().startswith("Line 6 of 'wine.csv' does not fit")
    assert files_in(tmp_path) == ["wine.csv"]


def test_without_a_model_or_data_nothing_runs(qtbot, page, tmp_path):
    page.start()
    assert page.error_banner.isVisible()
    assert page.error_banner.message.text() == "There is no data file to predict."
    assert page.task is None

    page.set_source(None)
    assert not page.run_button.isEnabled()
    assert page.model_label.text() == "Open a model on the Model page first."


def test_the_window_has_a_batch_page_that_follows_the_current_model(window, demo_model):
    titles = [window.nav.item(i).text() for i in range(window.nav.count())]
    assert "Batch" in titles

    window.set_current(load(demo_model))

    assert window.batch_page.source is window.current
    assert "wine_classifier.onnx" in window.batch_page.model_label.text()
    assert window.batch_page.run_button.isEnabled()
