"""The Serve page with the process runtime: one button to a ready server, its log, and Stop."""

import httpx
from PySide6.QtCore import Qt

START_TIMEOUT_MS = 90_000


def test_build_and_run_serves_the_current_model_and_stop_ends_it(qtbot, window, demo_model):
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    window.nav.setCurrentRow(2)
    page = window.serve_page
    assert "wine_classifier" in page.subtitle.text()
    # The fixture's DOCKER_HOST points nowhere: Auto explains it will use a local process.
    qtbot.waitUntil(lambda: "Local process" in page.runtime_reason.text(), timeout=10_000)
    with qtbot.waitSignal(page.deployment_ready, timeout=START_TIMEOUT_MS) as ready:
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
        assert page.status.text().startswith("building")
        assert not page.run_button.isEnabled()
    deployment = ready.args[0]
    assert page.status.text() == "ready: process runtime"
    assert deployment.url in page.url_label.text()
    assert "Runtime: process" in page.build_log.toPlainText()
    # the server's own log follows, line by line, into the other tab
    qtbot.waitUntil(lambda: "serving wine_classifier" in page.server_log.toPlainText(),
                    timeout=10_000)
    body = window.model_page.artifact.schema.samples.rest
    answer = httpx.post(f"{deployment.url}/predict", json=body, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["label"] in ("class_0", "class_1", "class_2", 0, 1, 2)
    with qtbot.waitSignal(page.deployment_stopped, timeout=20_000):
        qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    assert page.status.text() == "stopped"
    assert deployment.process.poll() is not None
    assert page.run_button.isEnabled()


def test_a_failure_shows_in_the_page_and_the_page_recovers(qtbot, window, demo_model):
    import socket

    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    window.nav.setCurrentRow(2)
    page = window.serve_page
    page.runtime.setCurrentIndex(page.runtime.findData("process"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        page.port.setValue(taken.getsockname()[1])
        with qtbot.waitSignal(page.state_changed, timeout=START_TIMEOUT_MS,
                              check_params_cb=lambda state: state == "failed"):
            qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    assert page.error_banner.isVisible()
    assert "already in use" in page.error_banner.message.text()
    assert page.run_button.isEnabled()


def test_stop_while_starting_cancels(qtbot, window, demo_model):
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    page = window.serve_page
    page.runtime.setCurrentIndex(page.runtime.findData("process"))
    with qtbot.waitSignal(page.state_changed, timeout=START_TIMEOUT_MS,
                          check_params_cb=lambda state: state in ("stopped", "ready")):
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
        qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    if page.state == "ready":  # the server won the race: Stop must still end it
        with qtbot.waitSignal(page.deployment_stopped, timeout=20_000):
            qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    assert page.deployment is None


def test_the_logs_show_text_without_terminal_colour_codes(qtbot):
    from studio.ui.pages.serve_page import LogLines

    view = LogLines()
    qtbot.addWidget(view)
    view.append_line("\x1b[0;93m2026-12-01 [W:onnxruntime] a warning\x1b[m")
    view.append_line("INFO:     Application startup complete.")
    assert view.toPlainText() == ("2026-12-01 [W:onnxruntime] a warning\n"
                                  "INFO:     Application startup complete.")


def test_a_key_asked_for_on_the_serve_page_is_enforced_and_handed_to_the_other_pages(
        qtbot, window, demo_model, monkeypatch):
    import httpx

    monkeypatch.setenv("SLIPWAY_TEST_PAGE_KEY", "page-key-123")
    page = window.serve_page
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    page.runtime.setCurrentIndex(page.runtime.findData("process"))
    page.api_key_env.setText("SLIPWAY_TEST_PAGE_KEY")
    assert page.protect_metrics.isEnabled()
    page.protect_metrics.setChecked(True)
    with qtbot.waitSignal(page.deployment_ready, timeout=60_000) as ready:
        page.build_and_run()
    url = ready.args[0].url
    try:
        assert httpx.get(f"{url}/schema").status_code == 401
        assert httpx.get(f"{url}/metrics").status_code == 401
        headers = {"Authorization": "Bearer page-key-123"}
        assert httpx.get(f"{url}/metrics", headers=headers).status_code == 200
        for other in (window.probe_page, window.load_page, window.monitor_page):
            assert other.server.key() == "page-key-123"
            assert other.url.text() == url
    finally:
        with qtbot.waitSignal(page.deployment_stopped, timeout=30_000):
            page.stop()


def test_a_key_variable_that_is_not_set_is_refused_in_the_page(qtbot, window, demo_model,
                                                               monkeypatch):
    monkeypatch.delenv("SLIPWAY_TEST_UNSET_KEY", raising=False)
    page = window.serve_page
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    page.runtime.setCurrentIndex(page.runtime.findData("process"))
    page.api_key_env.setText("SLIPWAY_TEST_UNSET_KEY")
    page.build_and_run()
    qtbot.waitUntil(lambda: "SLIPWAY_TEST_UNSET_KEY" in page.error_banner.message.text(),
                    timeout=30_000)
    assert not page.error_banner.isHidden()
    assert page.state.value == "failed" and page.deployment is None


def test_a_long_build_step_does_not_widen_the_window(qtbot, window):
    page = window.serve_page
    before = page.minimumSizeHint().width()
    page.state = page.state.BUILDING
    step = "Step 5/21 : RUN python3 -m venv /opt/venv && " + "pip install --no-index x " * 40
    page._progress(None, step)
    assert page.status.text().startswith("building: Step 5/21")
    assert page.minimumSizeHint().width() <= max(before, 1024)


def test_the_process_runtime_hides_what_only_docker_uses(qtbot, window, demo_model):
    page = window.serve_page
    docker_only = (page.tag, page.base_image, page.cpus, page.memory)
    page.runtime.setCurrentIndex(page.runtime.findData("process"))
    assert not any(widget.isVisibleTo(page) for widget in docker_only)
    assert page.port.isVisibleTo(page) and page.reference.isVisibleTo(page)
    page.runtime.setCurrentIndex(page.runtime.findData("docker"))
    assert all(widget.isVisibleTo(page) for widget in docker_only)
    # Auto without an engine (the fixture's DOCKER_HOST points nowhere) runs a local process.
    page.runtime.setCurrentIndex(page.runtime.findData("auto"))
    qtbot.waitUntil(lambda: page.engine is not None, timeout=10_000)
    assert not any(widget.isVisibleTo(page) for widget in docker_only)


def dropped_on(window, path):
    from PySide6.QtCore import QMimeData, QPoint, QPointF, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    QApplication.sendEvent(window, QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime,
                                                   Qt.MouseButton.LeftButton,
                                                   Qt.KeyboardModifier.NoModifier))
    QApplication.sendEvent(window, QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime,
                                              Qt.MouseButton.LeftButton,
                                              Qt.KeyboardModifier.NoModifier))


def stop(qtbot, page):
    with qtbot.waitSignal(page.deployment_stopped, timeout=20_000):
        qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)


def test_dropping_a_pickle_on_the_serve_page_asks_for_trust_converts_and_serves_it(
        qtbot, window, iris_joblib):
    window.nav.setCurrentRow(2)
    page = window.serve_page
    dropped_on(window.serve_page, iris_joblib)
    qtbot.waitUntil(lambda: page.trust_dialog is not None and page.trust_dialog.isVisible(),
                    timeout=30_000)
    assert window.pages.currentWidget() is page  # the user stays where they dropped it
    with qtbot.waitSignal(page.deployment_ready, timeout=START_TIMEOUT_MS) as ready:
        qtbot.mouseClick(page.trust_dialog.trust_button, Qt.MouseButton.LeftButton)
    deployment = ready.args[0]
    try:
        assert window.current.path == iris_joblib  # the dropped model is the studio's model
        assert window.model_page.feature_table.rowCount() == 4
        log = page.build_log.toPlainText()
        assert "Runtime: process" in log and "pass on" in log  # converted, parity checked
        body = window.current.schema.samples.rest
        assert httpx.post(f"{deployment.url}/predict", json=body, timeout=10).status_code == 200
    finally:
        stop(qtbot, page)


def test_declining_trust_for_a_dropped_file_serves_nothing_and_says_so(qtbot, window,
                                                                      iris_joblib):
    window.nav.setCurrentRow(2)
    page = window.serve_page
    window.serve_file(iris_joblib)
    qtbot.waitUntil(lambda: page.trust_dialog is not None and page.trust_dialog.isVisible(),
                    timeout=30_000)
    page.trust_dialog.reject()
    assert page.error_banner.isVisible()
    assert "was not served" in page.error_banner.message.text()
    assert page.deployment is None and page.state == "failed"


def test_serve_from_the_drop_zone_menu_runs_the_demo_model(qtbot, window):
    page = window.serve_page
    assert window.model_page.drop_zone.serve_button.menu() is not None
    with qtbot.waitSignal(page.deployment_ready, timeout=START_TIMEOUT_MS):
        window.model_page.drop_zone.serve_demo_action.trigger()
    assert window.pages.currentWidget() is page
    assert page.status.text() == "ready: process runtime"
    stop(qtbot, page)


def test_stop_while_loading_a_dropped_file_cancels(qtbot, window, demo_model):
    page = window.serve_page
    with qtbot.waitSignal(page.state_changed, timeout=START_TIMEOUT_MS,
                          check_params_cb=lambda state: state in ("stopped", "ready")):
        window.serve_file(demo_model)
        assert page.status.text().startswith("building")
        qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    if page.state == "ready":
        stop(qtbot, page)
    assert page.deployment is None


def test_serving_after_optimizing_uses_the_verified_conversion(qtbot, window, iris_joblib):
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.model_page.open_path(iris_joblib, trust=True)
    optimize = window.optimize_page
    for box in optimize.optimization_boxes.values():
        box.setChecked(False)
    with qtbot.waitSignal(optimize.run_finished, timeout=START_TIMEOUT_MS):
        qtbot.mouseClick(optimize.run_button, Qt.MouseButton.LeftButton)
    converted = optimize.results[0].artifact.model_file
    page = window.serve_page
    with qtbot.waitSignal(page.deployment_ready, timeout=START_TIMEOUT_MS):
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    assert f"already made and verified: {converted}" in page.build_log.toPlainText()
    stop(qtbot, page)
