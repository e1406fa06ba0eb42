"""The Compare page in the real window: two real model files compared offline (every table held
against onnxruntime run here), live and in shadow with real servers, the Probe and Load pages sent
to the proxy, and a missing version explained rather than run."""

from __future__ import annotations

import json

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from compare_models import WINE_CSV, int8_of, wine_rows, wine_version
from PySide6.QtCore import Qt
from sklearn.ensemble import RandomForestClassifier
from sklearn.neural_network import MLPClassifier

from studio.core.versions.shadow import ShadowCounters, ShadowStarted

CLASSES = ["class_0", "class_1", "class_2"]
RUN_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compared")
    mlp = wine_version(folder, "wine_mlp",
                       MLPClassifier(hidden_layer_sizes=(8,), max_iter=200, random_state=0))
    forest = wine_version(folder, "wine_forest",
                          RandomForestClassifier(n_estimators=20, max_depth=2, random_state=0),
                          drop=("alcohol",))
    return {"mlp": mlp, "int8": int8_of(mlp, folder), "forest": forest}


@pytest.fixture
def page(window):
    titles = [window.nav.item(row).text() for row in range(window.nav.count())]
    window.nav.setCurrentRow(titles.index("Compare"))
    assert window.pages.currentWidget() is window.compare_page
    yield window.compare_page
    window.compare_page.shutdown()


def _labels(path, drop=()) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rows = wine_rows()[0].drop(columns=list(drop)).to_numpy(dtype=np.float32)
    return np.array([CLASSES[session.run(["label"], {"input": rows[i:i + 1]})[0][0]]
                     for i in range(len(rows))])


def _cells(table) -> list[list[str]]:
    return [[table.item(r, c).text() for c in range(table.columnCount())]
            for r in range(table.rowCount())]


def test_offline_comparison_fills_both_columns(qtbot, page, versions):
    page.a.setText(str(versions["mlp"]))
    page.b.setText(str(versions["int8"]))
    page.reference.setText(str(WINE_CSV))
    page.target.setText("target")
    with qtbot.waitSignal(page.offline_done, timeout=RUN_TIMEOUT_MS) as done:
        qtbot.mouseClick(page.compare_button, Qt.MouseButton.LeftButton)
    comparison = done.args[0]
    view = page.offline_view

    labels_a, labels_b = _labels(versions["mlp"]), _labels(versions["int8"])
    expected = [[str(int(((labels_a == x) & (labels_b == y)).sum())) for y in CLASSES]
                for x in CLASSES]
    assert [row[1:] for row in _cells(view.confusion)] == expected
    assert f"Labels agree on {int((labels_a == labels_b).sum())} of 178 rows" in \
        view.agreement.text()
    facts = {row[0]: row[1:] for row in _cells(view.facts)}
    assert facts["model"][:2] == ["wine_mlp.onnx", "wine_mlp.int8.onnx"]
    assert "1 row (ms, median)" in facts
    assert view.schema_note.text() == "The same inputs, outputs, features and classes."
    quality = {row[0]: row for row in _cells(view.quality)}
    accuracy = np.mean(labels_b == np.array(CLASSES, dtype=object)[wine_rows()[1]])
    assert quality["accuracy"][2] == f"{accuracy:.4f}"
    assert quality["accuracy"][4].startswith("[")
    assert "McNemar (exact binomial)" in view.mcnemar.text()
    assert view.disagreeing.rowCount() == len(comparison.disagreeing) > 0
    operators = {row[0]: row[1:] for row in _cells(view.operators)}
    assert operators["MatMulInteger"] == ["0", "2"]
    assert page.tabs.currentWidget() is view



def test_an_input_that_changed_is_listed(qtbot, page, versions):
    page.a.setText(str(versions["mlp"]))
    page.b.setText(str(versions["forest"]))
    with qtbot.waitSignal(page.offline_done, timeout=RUN_TIMEOUT_MS):
        page.compare()
    view = page.offline_view
    assert not view.schema.isHidden()
    changes = {(row[0], row[1]): row[2:] for row in _cells(view.schema)}
    assert changes[("feature", "alcohol")][0] == "removed"
    assert changes[("input", "input")] == ["changed", "float32 [?, 13]", "float32 [?, 12]"]
    assert view.quality_note.text().startswith("Give reference data")


def test_live_comparison_draws_every_round(qtbot, page, versions):
    page.a.setText(str(versions["mlp"]))
    page.b.setText(str(versions["int8"]))
    live = page.live_view
    live.rounds.setValue(2)
    live.round_s.setValue(0.5)
    live.connections.setValue(2)
    page.runtime.setCurrentText("process")
    with qtbot.waitSignal(page.live_done, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(live.run_button, Qt.MouseButton.LeftButton)
    assert page.tabs.currentWidget() is live
    assert [row[0] for row in _cells(live.figures)] == ["p50 (ms)", "p90 (ms)", "p99 (ms)",
                                                         "throughput (req/s)"]
    assert [row[0] for row in _cells(live.servers)] == ["A", "B"]
    assert "faster" in live.verdict.text() and "sampled requests" in live.verdict.text()
    assert {key for key in live.distribution.lines if "named" not in key} == {
        "A 1", "B 1", "A 2", "B 2"}
    assert live.per_round.points("A") == 2 and live.per_round.points("B") == 2
    assert page.compare_button.isEnabled()



def test_shadow_counts_and_sends_probe_and_load_to_the_proxy(qtbot, window, page, versions):
    page.a.setText(str(versions["mlp"]))
    page.b.setText(str(versions["int8"]))
    page.runtime.setCurrentText("process")
    shadow = page.shadow_view
    with qtbot.waitSignal(page.shadow_changed, timeout=RUN_TIMEOUT_MS,
                          check_params_cb=lambda v: isinstance(v, ShadowStarted)) as started:
        qtbot.mouseClick(shadow.run_button, Qt.MouseButton.LeftButton)
    proxy = started.args[0].proxy_url
    assert shadow.run_button.text() == "Stop shadow" and shadow.send_button.isEnabled()

    qtbot.mouseClick(shadow.send_button, Qt.MouseButton.LeftButton)
    assert window.probe_page.url.text() == proxy and window.load_page.url.text() == proxy

    # The Probe page's request goes through the proxy: answered by A, mirrored to B.
    rows = wine_rows()[0].to_dict(orient="records")[:30]
    probe = window.probe_page
    probe.route.setCurrentText("/predict")
    probe.editor.setPlainText(json.dumps({"features": rows[0]}))
    with qtbot.waitSignal(probe.answered, timeout=RUN_TIMEOUT_MS) as answered:
        qtbot.mouseClick(probe.send_button, Qt.MouseButton.LeftButton)
    assert answered.args[0].status == 200
    for row in rows[1:]:
        assert httpx.post(proxy + "/predict", json={"features": row}).status_code == 200
    qtbot.waitUntil(lambda: shadow.values["mirrored"].text() == str(len(rows)),
                    timeout=RUN_TIMEOUT_MS)
    assert shadow.values["answered"].text() == str(len(rows))
    assert shadow.values["b_errors"].text() == "0"
    assert "Disagreed on" in shadow.detail.text()
    assert page.shadow_view.chart.points("A p50") > 0


    qtbot.mouseClick(shadow.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: shadow.run_button.text() == "Start shadow", timeout=RUN_TIMEOUT_MS)
    assert not shadow.send_button.isEnabled()
    assert isinstance(shadow.history[-1], ShadowCounters)
    with pytest.raises(httpx.ConnectError):
        httpx.get(proxy + "/metrics", timeout=5)


def test_a_missing_version_is_explained_not_run(qtbot, window, page, demo_model):
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    assert page.a.text() == str(demo_model)  # A follows the current model
    page.b.clear()
    qtbot.mouseClick(page.compare_button, Qt.MouseButton.LeftButton)
    assert page.task is None
    assert "Choose both versions" in page.error_banner.message.text()
