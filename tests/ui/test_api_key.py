"""The pages that talk to a served model (Probe, Load, Monitor) against a server that wants an API
key: each has the same URL and API key fields, and what it sends carries the key it is given."""

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLineEdit

from studio.core.loadtest.results import LoadReport

TIMEOUT_MS = 20_000
API_KEY = "ui-test-key"
API_KEY_ENV = "SLIPWAY_UI_TEST_KEY"


@pytest.fixture(scope="module")
def keyed_server(demo_model, wine_csv):
    """The demo model served as a local process that wants `API_KEY` on its model routes (and
    /reference, bundled from the wine rows); /metrics and the health routes stay open."""
    from studio.core.model.artifact import load
    from studio.core.serve.bundle import ServingOptions
    from studio.core.serve.deploy import DeployOptions, deploy

    with pytest.MonkeyPatch.context() as env:
        env.setenv(API_KEY_ENV, API_KEY)
        deployment = deploy(load(demo_model), DeployOptions(
            runtime="process",
            serving=ServingOptions(api_key_env=API_KEY_ENV, reference_data=wine_csv)))
    yield deployment
    deployment.stop()


@pytest.fixture
def server_pages(window):
    return {"Probe": window.probe_page, "Load": window.load_page, "Monitor": window.monitor_page}


def show(window, page):
    window.nav.setCurrentRow(window.pages.indexOf(page))
    assert window.pages.currentWidget() is page


def test_every_page_that_talks_to_a_server_has_the_same_url_and_key_fields(window, server_pages):
    for name, page in server_pages.items():
        show(window, page)
        assert page.url is page.server.url, name
        assert page.server.api_key.echoMode() == QLineEdit.EchoMode.Password, name
        assert page.server.api_key.isVisible() and page.server.url.isVisible(), name
        assert page.server.key() is None, name  # optional: empty means no key
        page.server.api_key.setText(f"  {API_KEY} ")
        assert page.server.key() == API_KEY, name


def test_probe_sends_the_key_and_copies_it_into_curl(qtbot, window, keyed_server):
    page = window.probe_page
    show(window, page)
    page.set_url(keyed_server.url)
    page.route.setCurrentText("/schema")
    assert page.method() == "GET"

    with qtbot.waitSignal(page.answered, timeout=TIMEOUT_MS) as refused:
        qtbot.mouseClick(page.send_button, Qt.MouseButton.LeftButton)
    assert refused.args[0].status == 401
    assert page.status.text().startswith("HTTP 401 client error")

    page.server.api_key.setText(API_KEY)
    with qtbot.waitSignal(page.answered, timeout=TIMEOUT_MS) as answered:
        qtbot.mouseClick(page.send_button, Qt.MouseButton.LeftButton)
    assert answered.args[0].status == 200
    assert answered.args[0].body["name"] == "wine_classifier"

    page.copy_curl()
    command = QGuiApplication.clipboard().text()
    assert command.startswith(f"curl -sS -X GET {keyed_server.url}/schema ")
    assert f"Authorization: Bearer {API_KEY}" in command


def run_load(qtbot, page) -> LoadReport:
    with qtbot.waitSignal(page.finished, timeout=TIMEOUT_MS) as finished:
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.running, timeout=5_000)
    return finished.args[0]


def test_load_prepares_its_test_with_the_key(qtbot, window, keyed_server):
    """No model is open: the bodies are made for the schema the server gives at GET /schema,
    which it gives only with the key; and then every request carries it."""
    page = window.load_page
    show(window, page)
    assert page.source is None
    page.set_url(keyed_server.url)
    page.preset.setCurrentIndex(page.preset.findText("Smoke"))
    page.duration.setValue(1.0)

    qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.error_banner.isVisible(), timeout=TIMEOUT_MS)
    assert "GET /schema answered 401" in page.error_banner.message.text()
    qtbot.waitUntil(lambda: page.run_button.isEnabled(), timeout=5_000)
    assert page.report is None

    page.server.api_key.setText(API_KEY)
    report = run_load(qtbot, page)
    assert not page.error_banner.isVisible()
    assert report.completed > 0 and report.errors == 0, report.errors_by_kind
    assert "rows like the server's reference data" in report.plan  # GET /reference, keyed too
    assert page.throughput_chart.points("ok") >= 2  # the snapshots reached the charts


def test_load_without_the_key_is_refused_per_request(qtbot, window, demo_model, keyed_server):
    """With the model open its schema is local, so the test runs; the server refuses each
    request it sends without the key."""
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    page = window.load_page
    show(window, page)
    page.set_url(keyed_server.url)
    page.preset.setCurrentIndex(page.preset.findText("Smoke"))
    page.duration.setValue(1.0)
    report = run_load(qtbot, page)
    assert report.completed == 0 and set(report.errors_by_kind) == {"HTTP 401"}


def test_monitor_asks_for_the_servers_reference_with_the_key(qtbot, window, keyed_server):
    page = window.monitor_page
    show(window, page)
    page.url.setText(keyed_server.url)
    try:
        with qtbot.waitSignal(page.refreshed, timeout=TIMEOUT_MS):
            page.start()  # /metrics is open to all, /reference only with the key
        assert page.monitor.api_key is None
        assert page.monitor.reference_note == "the server wants an API key for GET /reference"

        page.stop()
        page.server.api_key.setText(API_KEY)
        with qtbot.waitSignal(page.refreshed, timeout=TIMEOUT_MS):
            page.start()
        assert page.monitor.api_key == API_KEY
        assert page.monitor.reference_note == "the server's reference profile"
        assert "the server's reference profile" in page.baseline_note.text()
    finally:
        page.stop()
        qtbot.waitUntil(lambda: not page.fetching, timeout=5_000)
