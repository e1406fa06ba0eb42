"""The Probe page against a real server process: send, read, replay, copy as curl, fail plainly."""

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from studio.core.serve.runtimes.base import free_port

ANSWER_TIMEOUT_MS = 15_000


@pytest.fixture
def probe(qtbot, window, demo_model, demo_server):
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    window.nav.setCurrentRow(3)
    page = window.probe_page
    page.set_url(demo_server.url)
    return page


def send(qtbot, page):
    with qtbot.waitSignal(page.answered, timeout=ANSWER_TIMEOUT_MS) as answered:
        qtbot.mouseClick(page.send_button, Qt.MouseButton.LeftButton)
    return answered.args[0]


def test_the_sample_body_is_prefilled_and_answered(qtbot, probe):
    assert probe.route.currentText() == "/predict"
    assert json.loads(probe.editor.toPlainText())["features"]["alcohol"] == 13.001
    reply = send(qtbot, probe)
    assert reply.status == 200
    assert probe.status.text().startswith("HTTP 200 OK in ")
    assert set(json.loads(probe.response.toPlainText())["probabilities"]) == {
        "class_0", "class_1", "class_2"}
    probe.route.setCurrentText("/v2/models/wine_classifier/infer")
    assert json.loads(probe.editor.toPlainText())["inputs"][0]["datatype"] == "FP32"
    assert send(qtbot, probe).status == 200


def test_a_bad_request_shows_the_servers_reason(qtbot, probe):
    probe.editor.setPlainText('{"features": {"alcohol": "strong"}}')
    reply = send(qtbot, probe)
    assert reply.status == 400
    assert probe.status.text().startswith("HTTP 400 client error")
    assert "alcohol" in json.loads(probe.response.toPlainText())["error"]
    assert not probe.error_banner.isVisible()


def test_invalid_json_is_caught_before_anything_is_sent(qtbot, probe):
    probe.editor.setPlainText('{"features": [1, 2,')
    qtbot.mouseClick(probe.send_button, Qt.MouseButton.LeftButton)
    assert probe.error_banner.isVisible()
    assert "not valid JSON" in probe.error_banner.message.text()
    assert probe.history == []


def test_history_replays_and_get_routes_read(qtbot, probe):
    send(qtbot, probe)
    probe.route.setCurrentText("/metrics")
    assert probe.method() == "GET"
    reply = send(qtbot, probe)
    assert "slipway_requests_total" in probe.response.toPlainText() and not reply.is_json
    assert probe.history_list.count() == 2
    with qtbot.waitSignal(probe.answered, timeout=ANSWER_TIMEOUT_MS) as replayed:
        probe.history_list.itemDoubleClicked.emit(probe.history_list.item(1))
    assert replayed.args[0].status == 200 and probe.route.currentText() == "/predict"
    assert probe.history_list.count() == 3


def test_copy_as_curl(probe):
    probe.copy_curl()
    command = QGuiApplication.clipboard().text()
    assert command.startswith(f"curl -sS -X POST {probe.url.text()}/predict ")
    assert "Content-Type: application/json" in command


def test_an_unreachable_server_is_shown_plainly(qtbot, probe):
    probe.set_url(f"http://127.0.0.1:{free_port()}")
    qtbot.mouseClick(probe.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: probe.error_banner.isVisible(), timeout=ANSWER_TIMEOUT_MS)
    assert probe.error_banner.message.text().startswith("Nothing answers at http://127.0.0.1:")
    assert probe.status.text() == "No answer"
    assert probe.send_button.isEnabled()


def test_the_page_is_ready_for_the_next_request_when_it_says_answered(qtbot, probe):
    ready = []
    probe.answered.connect(lambda reply: ready.append(probe.send_button.isEnabled()))
    send(qtbot, probe)
    assert ready == [True]


def test_a_new_error_clears_the_previous_answer(qtbot, probe):
    assert send(qtbot, probe).status == 200
    probe.editor.setPlainText('{"features": [1, 2,')
    qtbot.mouseClick(probe.send_button, Qt.MouseButton.LeftButton)
    assert probe.error_banner.isVisible()
    assert probe.status.text() == "Nothing was sent."
    assert probe.response.toPlainText() == ""


def test_the_error_banner_does_not_push_the_controls_down(qtbot, window, probe):
    window.resize(1024, 700)
    qtbot.waitExposed(window)
    before = probe.send_button.mapTo(window, probe.send_button.rect().topLeft())
    editor_before = probe.editor.mapTo(window, probe.editor.rect().topLeft())
    probe.editor.setPlainText('{"features": [1, 2,')
    qtbot.mouseClick(probe.send_button, Qt.MouseButton.LeftButton)
    assert probe.error_banner.isVisible()
    qtbot.wait(50)  # let the layout settle
    assert probe.send_button.mapTo(window, probe.send_button.rect().topLeft()) == before
    assert probe.editor.mapTo(window, probe.editor.rect().topLeft()) == editor_before


def test_a_long_list_of_missing_features_is_shown_compactly(qtbot, probe):
    probe.editor.setPlainText('{"features": {"alcohol": 13.0}}')
    reply = send(qtbot, probe)
    assert reply.status == 400
    reason = probe.reason.text()
    assert probe.reason.isVisible()
    assert "'malic_acid', 'ash', 'alcalinity_of_ash', 'magnesium', 'total_phenols' and 7 more " \
           "are missing" in reason
    assert "(the model takes 13 features: alcohol, malic_acid, ash, alcalinity_of_ash, " \
           "magnesium, …)" in reason
    assert "proline" not in reason  # the last name is left to the full answer below
    assert "proline" in probe.response.toPlainText()


def test_a_short_reason_is_shown_as_the_server_gave_it():
    from studio.ui.pages.probe_page import compact_reason

    reason = "features 'a', 'b' are missing (the model takes: a, b, c)"
    assert compact_reason(reason) == reason
