"""The Versions page over a real registry in a temporary folder: the table, a version's lineage,
alias history and details, and its actions (serve, set alias, roll back, compare with, export,
delete); and the studio recording what it opens and serving a version in one action."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from studio.core.model.artifact import load
from studio.core.serve.runtimes.base import DeploymentState
from studio.core.units import human_size
from studio.core.versions.registry import OPTIMIZED, Registry
from studio.ui.pages.versions_page import COLUMNS, FAIL_COLOR, PASS_COLOR, VersionsPage
from studio.ui.workers import TaskRunner

WAIT_MS = 30_000
SERVE_TIMEOUT_MS = 180_000


def tiny_onnx(path, offset: float):
    """y = x + offset on four float32 features: a real ONNX model whose bytes depend on offset."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "offset"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(np.full([4], offset, dtype=np.float32), "offset")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, path)
    return load(path)


def parity(passed: bool) -> dict:
    return {"passed": passed, "rows": 200, "inputs": "200 rows sampled from the schema",
            "outputs": [{"name": "y", "role": "values", "max_abs_diff": 0.03 if passed else 0.4,
                         "passed": passed}]}


@pytest.fixture
def registry(tmp_path):
    """churn:1 loaded, churn:2 optimized from it (parity passed) and churn:3 from churn:2 (parity
    failed), fraud:1 loaded; churn@champion on 2, tag team=risk on churn:2."""
    registry = Registry(tmp_path / "registry")
    first = registry.record(tiny_onnx(tmp_path / "a" / "churn.onnx", 1.0)).version
    second = registry.record(tiny_onnx(tmp_path / "b" / "churn.onnx", 1.01), parent=first,
                             step=OPTIMIZED, parameters={"optimization": "int8"},
                             parity=parity(True)).version
    registry.record(tiny_onnx(tmp_path / "c" / "churn.onnx", 1.5), parent=second,
                    step=OPTIMIZED, parameters={"optimization": "fp16"}, parity=parity(False))
    registry.record(tiny_onnx(tmp_path / "d" / "fraud.onnx", 2.0))
    registry.set_alias("churn", "champion", 2)
    registry.set_tag(second, "team", "risk")
    return registry


@pytest.fixture
def page(qtbot, registry):
    runner = TaskRunner()
    page = VersionsPage(runner, registry)
    qtbot.addWidget(page)
    page.resize(874, 700)
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.show()
    yield page
    runner.shutdown()


def cells(page) -> list[list[str]]:
    return [[page.table.item(row, column).text() for column in range(page.table.columnCount())]
            for row in range(page.table.rowCount())]


def select(qtbot, page, *references):
    """Select these rows (the first one current) and wait for the first one's details."""
    rows = [[v.reference for v in page.versions].index(r) for r in references]
    with qtbot.waitSignal(page.details_shown, timeout=WAIT_MS,
                          check_params_cb=lambda v: v.reference == references[0]):
        page.table.clearSelection()
        page.table.setCurrentCell(rows[0], 0)
        for row in rows[1:]:
            page.table.selectionModel().select(
                page.table.model().index(row, 0),
                page.table.selectionModel().SelectionFlag.Select
                | page.table.selectionModel().SelectionFlag.Rows)


def acted(qtbot, page, action):
    """Run an action and wait until the table shows its outcome."""
    with qtbot.waitSignal(page.changed, timeout=WAIT_MS) as changed, \
            qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        action()
    return changed.args[0]


def test_the_table_lists_each_version_with_aliases_size_format_and_parity(page, registry):
    assert [page.table.horizontalHeaderItem(c).text() for c in range(len(COLUMNS))][:7] == [
        "Model", "Version", "Aliases", "Size", "Format", "Created", "Parity"]
    rows = cells(page)
    assert [(r[0], r[1], r[2], r[4], r[6]) for r in rows] == [
        ("churn", "3", "", "onnx", "FAIL"), ("churn", "2", "champion", "onnx", "pass"),
        ("churn", "1", "", "onnx", "-"), ("fraud", "1", "", "onnx", "-")]
    assert [r[3] for r in rows] == [human_size(v.size) for v in registry.versions()]
    assert rows[0][7] == "fp16 of churn:2"
    assert page.table.item(0, 6).background().color() == FAIL_COLOR
    assert page.table.item(1, 6).background().color() == PASS_COLOR
    assert page.subtitle.text().startswith("4 versions of 2 models")
    assert str(registry.root) in page.subtitle.text()


def test_a_version_s_lineage_alias_history_and_details(qtbot, page, registry):
    select(qtbot, page, "churn:2")
    top = page.lineage.topLevelItem(0)
    assert page.lineage.topLevelItemCount() == 1
    assert (top.text(0), top.text(1)) == ("churn:1", "loaded")
    current = top.child(0)
    assert (current.text(0), current.text(1), current.text(2)) == ("churn:2", "int8 of churn:1",
                                                                   "pass")
    assert current.font(0).bold()
    assert (current.child(0).text(0), current.child(0).text(2)) == ("churn:3", "FAIL")

    history = [[page.history.item(0, c).text() for c in range(4)]]
    assert history[0][1:] == [registry.alias_history("churn")[0].user, "champion", "- → 2"]

    facts = {page.facts.topLevelItem(i).text(0): page.facts.topLevelItem(i).text(1)
             for i in range(page.facts.topLevelItemCount())}
    version = registry.get("churn", 2)
    assert facts["sha256"] == version.sha256
    assert facts["parity"].startswith("pass on 200 rows")
    assert facts["tags"] == "team=risk"
    assert facts["schema"] == "other: 4 features → y"


def test_setting_an_alias_and_rolling_it_back_are_kept_in_its_history(qtbot, page, registry):
    select(qtbot, page, "churn:3")
    page.ask_alias = lambda version, suggestions: "champion" if "champion" in suggestions else None
    move = acted(qtbot, page, page.alias_button.click)
    assert (move.from_version, move.to_version) == (2, 3)
    assert registry.by_alias("churn", "champion").version == 3
    assert [r[2] for r in cells(page)][:2] == ["champion", ""]
    assert page.status.text() == "churn@champion moved: 2 → 3"

    page.ask_which_alias = lambda version, aliases: pytest.fail("only one alias to choose")
    move = acted(qtbot, page, page.rollback_button.click)
    assert (move.from_version, move.to_version, move.action) == (3, 2, "rollback")
    assert registry.by_alias("churn", "champion").version == 2
    select(qtbot, page, "churn:2")
    assert page.history.item(0, 3).text() == "3 → 2 (rolled back)"
    assert page.history.item(1, 3).text() == "2 → 3"


def test_roll_back_asks_which_alias_when_the_model_has_several(qtbot, page, registry):
    registry.set_alias("churn", "challenger", 3)
    registry.set_alias("churn", "challenger", 1)
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.refresh_button.click()
    select(qtbot, page, "churn:1")
    asked = []
    page.ask_which_alias = lambda version, aliases: asked.append(aliases) or "challenger"
    acted(qtbot, page, page.rollback_button.click)
    assert asked == [["challenger", "champion"]]
    assert registry.by_alias("churn", "challenger").version == 3
    assert registry.by_alias("churn", "champion").version == 2


def test_search_finds_versions_by_name_tag_and_alias(qtbot, page):
    for text, expected in (("champion", ["churn:2"]), ("risk", ["churn:2"]),
                           ("fraud", ["fraud:1"]), ("nothing-like-it", [])):
        with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS) as shown:
            page.search.setText(text)
        assert [v.reference for v in shown.args[0]] == expected
        assert page.table.rowCount() == len(expected)
    assert page.status.text() == "No version matches."


def test_compare_with_sends_both_references(qtbot, page):
    select(qtbot, page, "churn:3", "churn:2")
    assert page.compare_button.text() == "Compare"
    with qtbot.waitSignal(page.compare_requested, timeout=WAIT_MS) as asked:
        page.compare_button.click()
    assert sorted(asked.args) == ["churn:2", "churn:3"]

    select(qtbot, page, "churn:1")
    assert page.compare_button.text() == "Compare with…"
    with qtbot.waitSignal(page.compare_requested, timeout=WAIT_MS) as asked:
        page.compare_button.click()
        actions = [a.text() for a in page.compare_menu.actions()]
        assert actions == ["churn:3", "churn:2  (champion)", "fraud:1"]
        page.compare_menu.actions()[1].trigger()
    assert asked.args == ["churn:1", "churn:2"]


def test_serve_hands_out_the_checked_file_and_a_missing_one_says_what_to_do(qtbot, page,
                                                                           registry):
    select(qtbot, page, "churn:2")
    with qtbot.waitSignal(page.serve_requested, timeout=WAIT_MS) as served:
        page.serve_button.click()
    resolved = served.args[0]
    version = registry.get("churn", 2)
    assert (resolved.path, resolved.reference) == (version.path, "churn:2")

    version.path.unlink()
    with qtbot.assertNotEmitted(page.serve_requested, wait=500):
        page.serve_button.click()
        qtbot.waitUntil(page.error_banner.isVisible, timeout=WAIT_MS)
    assert "is missing from the registry" in page.error_banner.message.text()
    assert str(version.source_path) in page.error_banner.hint.text()


def test_export_writes_the_version_s_file(qtbot, page, registry, tmp_path):
    select(qtbot, page, "fraud:1")
    destination = tmp_path / "out" / "fraud-v1.onnx"
    page.choose_destination = lambda suggested: destination if suggested.name == \
        "fraud-v1.onnx" else None
    written = acted(qtbot, page, page.export_button.click)
    assert written == destination
    assert destination.read_bytes() == registry.get("fraud", 1).path.read_bytes()


def test_delete_asks_first_and_takes_the_alias_naming_it_along(qtbot, page, registry):
    select(qtbot, page, "churn:2")
    page.delete_button.click()
    box = page.confirm_box
    assert "churn@champion names it" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert [v.reference for v in registry.versions("churn")] == ["churn:3", "churn:2", "churn:1"]

    page.delete_button.click()
    deleted = acted(qtbot, page, page.confirm_box.button(QMessageBox.StandardButton.Yes).click)
    assert deleted.reference == "churn:2"
    assert [v.reference for v in registry.versions("churn")] == ["churn:3", "churn:1"]
    assert registry.alias_history("churn", "champion")[0].action == "remove"
    assert not deleted.path.exists()
    assert "churn:2" not in [r[0] + ":" + r[1] for r in cells(page)]


def test_a_damaged_database_is_explained_on_the_page(qtbot, tmp_path):
    root = tmp_path / "broken"
    root.mkdir()
    (root / "registry.db").write_bytes(b"this is not a database" * 100)
    runner = TaskRunner()
    page = VersionsPage(runner, Registry(root))
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(page.error_banner.isVisible, timeout=WAIT_MS)
    assert "database is damaged" in page.error_banner.message.text()
    assert "registry.db.damaged" in page.error_banner.hint.text()
    runner.shutdown()


@pytest.fixture
def private_registry(tmp_path, monkeypatch):
    """The studio's default registry, in this test's own data folder (set before the window)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return Registry()


def test_what_the_studio_opens_is_recorded_and_serving_a_version_is_one_action(
        qtbot, private_registry, window, demo_model):
    versions = window.versions_page
    assert versions.registry.root == private_registry.root
    with qtbot.waitSignal(versions.refreshed, timeout=WAIT_MS,
                          check_params_cb=lambda found: len(found) == 1):
        window.open_model(demo_model)
    recorded = private_registry.versions()
    assert [v.reference for v in recorded] == ["wine_classifier:1"]
    assert versions.status.text() == "Recorded wine_classifier:1"
    private_registry.set_alias("wine_classifier", "champion", 1)

    window.nav.setCurrentRow(window.pages.indexOf(versions))
    qtbot.waitUntil(lambda: versions.versions and versions.versions[0].aliases == ("champion",),
                    timeout=WAIT_MS)
    select(qtbot, versions, "wine_classifier:1")
    with qtbot.waitSignal(window.serve_page.deployment_ready, timeout=SERVE_TIMEOUT_MS) as ready:
        qtbot.mouseClick(versions.serve_button, Qt.MouseButton.LeftButton)
    assert window.pages.currentWidget() is window.serve_page
    assert window.current.path == recorded[0].path
    assert window.serve_page.state == DeploymentState.READY
    assert ready.args[0].url.startswith("http://127.0.0.1:")
    window.serve_page.stop()


def test_a_conversion_and_an_optimization_in_the_studio_become_versions_with_lineage(
        qtbot, private_registry, window, sklearn_models):
    from studio.core.optimize.optimize import Optimization

    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=60_000):
        window.model_page.open_path(sklearn_models["mlp_wine"].path, trust=True)
    optimize = window.optimize_page
    for optimization, box in optimize.optimization_boxes.items():
        box.setChecked(optimization == Optimization.INT8)
    assert optimize.planned_steps() == ["convert", "int8"]
    with qtbot.waitSignal(window.versions_page.refreshed, timeout=SERVE_TIMEOUT_MS,
                          check_params_cb=lambda found: len(found) == 3):
        optimize.run_button.click()
    found = {v.reference: v for v in private_registry.versions()}
    assert [(v.step, v.parent) for v in found.values()] == [
        ("optimized", "mlp_wine:2"), ("converted", "mlp_wine:1"), ("loaded", None)]
    assert found["mlp_wine:3"].parameters["optimization"] == "int8"
    assert found["mlp_wine:3"].report["size_before"] == found["mlp_wine:2"].size
    assert found["mlp_wine:2"].parity["passed"] is True and found["mlp_wine:2"].format == "onnx"
    assert found["mlp_wine:1"].format == "sklearn-joblib"


def test_a_model_served_from_the_studio_carries_its_version_number(
        qtbot, private_registry, window, demo_model, tmp_path):
    import httpx

    private_registry.record(tiny_onnx(tmp_path / "older" / "wine_classifier.onnx", 1.0))
    with qtbot.waitSignal(window.versions_page.version_recorded, timeout=WAIT_MS):
        window.open_model(demo_model)
    serve = window.serve_page
    assert serve.model_version == "2"  # the registry's number, not the default "1"
    serve.runtime.setCurrentIndex(serve.runtime.findData("process"))
    with qtbot.waitSignal(serve.deployment_ready, timeout=SERVE_TIMEOUT_MS) as ready:
        serve.build_and_run()
    metrics = httpx.get(f"{ready.args[0].url}/metrics", timeout=10).text
    info = [line for line in metrics.splitlines() if line.startswith("slipway_model_info{")]
    assert 'version="2"' in info[0]
    serve.stop()
