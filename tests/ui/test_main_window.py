"""The shell: pages, Docker engine status, the command line's way into the app."""

import os
import re
import subprocess
import sys

import pytest

CHECK_TIMEOUT_MS = 10_000


def test_every_stage_of_the_journey_has_a_page(window):
    titles = [window.nav.item(i).text() for i in range(window.nav.count())]
    assert titles == ["Model", "Optimize", "Serve", "Probe", "Load", "Monitor", "Versions",
                      "Compare", "Batch", "Export"]
    window.nav.setCurrentRow(3)
    assert window.pages.currentIndex() == 3


def test_status_bar_says_the_process_runtime_is_used_without_an_engine(qtbot, window):
    # The fixture points DOCKER_HOST at a socket that does not exist.
    with qtbot.waitSignal(window.engine_checked, timeout=CHECK_TIMEOUT_MS) as checked:
        window.check_engine()
    status = checked.args[0]
    assert not status.available
    assert "No Docker engine" in window.engine_label.text()
    assert "local processes" in window.engine_label.text()
    assert "no-engine.sock" in window.engine_label.toolTip()


@pytest.mark.docker
def test_status_bar_names_the_running_docker_engine(qtbot, window, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST")
    with qtbot.waitSignal(window.engine_checked, timeout=CHECK_TIMEOUT_MS) as checked:
        window.check_engine()
    assert checked.args[0].available
    assert f"Docker {checked.args[0].version}" in window.engine_label.text()
    assert "containers" in window.engine_label.text()


def test_slipway_model_opens_the_app_on_that_model(tmp_path, demo_model):
    """`slipway MODEL` starts the real app; it quits by itself once the model is shown."""
    script = (
        "import sys\n"
        "from PySide6.QtCore import QTimer\n"
        "from PySide6.QtWidgets import QApplication\n"
        "import studio.ui.main_window as mw\n"
        "original = mw.MainWindow._model_loaded\n"
        "def loaded(self, artifact):\n"
        "    original(self, artifact)\n"
        "    print('LOADED', artifact.schema.name, self.model_page.feature_table.rowCount())\n"
        "    QTimer.singleShot(0, QApplication.instance().quit)\n"
        "mw.MainWindow._model_loaded = loaded\n"
        "from studio.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(demo_model)], check=False, capture_output=True,
        text=True, timeout=60, env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen",
                                    "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED wine_classifier 13" in result.stdout


# --- finding the way -----------------------------------------------------------------------------

def test_ctrl_and_a_digit_goes_to_that_page(qtbot, window):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    for row in (2, 4, 0):
        QTest.keyClick(window, getattr(Qt.Key, f"Key_{row + 1}"), Qt.KeyboardModifier.ControlModifier)
        assert window.nav.currentRow() == row


def test_help_lists_the_keyboard_shortcuts_the_window_answers_to(qtbot, window):
    window.show_shortcuts()
    text = window._help_dialog.browser.toPlainText()
    assert "Ctrl+1" in text and "Go to Model" in text
    assert "Ctrl+3" in text and "Go to Serve" in text
    assert "Ctrl+Q" in text and "Quit" in text
    assert "Ctrl+O" in text and "Open" in text
    assert "Ctrl+Shift+O" in text and "Serve a model" in text
    assert "Ctrl+," in text and "Settings" in text


def test_copy_diagnostics_puts_the_versions_on_the_clipboard(qtbot, window):
    from importlib.metadata import version

    from PySide6.QtCore import qVersion
    from PySide6.QtGui import QGuiApplication

    with qtbot.waitSignal(window.engine_checked, timeout=CHECK_TIMEOUT_MS):
        window.check_engine()
    window.copy_diagnostics()
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1)
                for line in QGuiApplication.clipboard().text().splitlines())
    assert rows["ONNX Runtime"] == version("onnxruntime")
    assert rows["onnx"] == version("onnx")
    assert rows["scikit-learn"] == version("scikit-learn")
    assert rows["Qt"] == qVersion()
    assert rows["Docker engine"].startswith("none (no Docker engine is running")


def test_about_names_the_versions_of_what_the_studio_runs_on(qtbot, window):
    from importlib.metadata import version

    from PySide6.QtCore import qVersion
    from PySide6.QtWidgets import QLabel

    from studio import __version__

    window.show_about()
    text = window._help_dialog.findChild(QLabel, "aboutText").text()
    for name, value in (("Slipway Studio", __version__), ("ONNX Runtime", version("onnxruntime")),
                        ("onnx", version("onnx")), ("scikit-learn", version("scikit-learn")),
                        ("Qt", qVersion())):
        assert f"<td>{name}</td><td>{value}</td>" in text
    assert "<td>Docker engine</td>" in text


def test_the_user_guide_is_shown_from_the_help_menu(qtbot, window, tmp_path):
    from studio.ui import help

    guide = tmp_path / "user-guide.md"
    guide.write_text("# Slipway user guide\n\nDrop a model on the window.\n")
    dialog = help.user_guide_dialog(window, guide)
    assert "Drop a model on the window." in dialog.browser.toPlainText()
    missing = help.user_guide_dialog(window, tmp_path / "nowhere.md")
    assert "not installed" in missing.browser.toPlainText()
    window.show_user_guide()
    assert window._help_dialog.isVisible()


def test_the_model_page_offers_the_next_step(qtbot, window, demo_model):
    from PySide6.QtCore import Qt

    page = window.model_page
    with qtbot.waitSignal(page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    assert page.serve_button.isVisible() and page.optimize_button.isVisible()
    qtbot.mouseClick(page.serve_button, Qt.MouseButton.LeftButton)
    assert window.pages.currentWidget() is window.serve_page
    window.nav.setCurrentRow(0)
    qtbot.mouseClick(page.optimize_button, Qt.MouseButton.LeftButton)
    assert window.pages.currentWidget() is window.optimize_page


def test_the_log_records_what_each_stage_did(qtbot, window, demo_model, iris_joblib):
    window.show_log()
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    qtbot.waitUntil(lambda: "Loading wine_classifier.onnx: done" in
                    window.log_view.toPlainText(), timeout=5_000)
    window.open_model(iris_joblib)
    qtbot.waitUntil(lambda: window.model_page.trust_dialog is not None, timeout=30_000)
    text = window.log_view.toPlainText()
    assert "Loading iris_pipeline.joblib: waiting for the user to trust the file" in text
    assert "failed" not in text


def test_opening_the_log_does_not_grow_a_1024x700_window(qtbot, window):
    window.resize(1024, 700)
    qtbot.waitExposed(window)
    for row in range(window.nav.count()):
        window.nav.setCurrentRow(row)
        window.log_dock.hide()
        window.show_log()
        qtbot.wait(20)
        assert (window.width(), window.height()) == (1024, 700), window.nav.item(row).text()
        assert window.log_dock.height() < 200


# --- quitting ------------------------------------------------------------------------------------

def test_quitting_during_a_long_task_stops_it_without_an_error(qtbot, qapp, window, capfd):
    def streams_until_cancelled(progress):
        while not progress.cancelled:
            progress.partial("snapshot")
            progress.wait(0.01)
        for _ in range(20):  # a task that reports a little after being told to stop
            progress.partial("late snapshot")

    task = window.runner.submit(streams_until_cancelled, name="A load test",
                                on_partial=lambda part: None)
    qtbot.wait(100)
    window.close()
    assert task.done
    qapp.processEvents()
    errors = capfd.readouterr().err
    assert "Signal source has been deleted" not in errors and "Traceback" not in errors


class Running:
    """What the Serve page holds while it serves a model, without starting one."""

    name = "wine_classifier"
    url = "http://127.0.0.1:1"

    def __init__(self):
        self.stopped = False

    def stop(self, timeout=None):
        self.stopped = True


def test_quitting_asks_first_when_models_are_running(qtbot, window):
    running = Running()
    window.serve_page.deployment = running
    asked: list[list[str]] = []
    window.confirm_quit = lambda what: asked.append(what) or False
    assert not window.close()
    assert window.isVisible() and not running.stopped
    assert asked == [["wine_classifier at http://127.0.0.1:1"]]

    window.confirm_quit = lambda what: True
    assert window.close()
    assert running.stopped


def test_quitting_with_nothing_running_does_not_ask(qtbot, window):
    window.confirm_quit = lambda what: pytest.fail("asked with nothing running")
    assert window.close()


def test_the_window_opens_without_the_stages_heavy_libraries(tmp_path):
    # Start-up time: the Model page and the menus need none of the chart library, statistics,
    # scikit-learn or the Docker SDK; the other pages import them when they are built.
    probe = (
        "import os, sys\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from PySide6.QtCore import QSettings\n"
        "from studio.ui.app import create_app, create_window\n"
        "app = create_app()\n"
        f"window = create_window(QSettings({str(tmp_path / 's.ini')!r}, QSettings.Format.IniFormat))\n"
        "window.show(); app.processEvents()\n"
        "heavy = ['pyqtgraph', 'scipy', 'sklearn', 'docker', 'pandas', 'onnxruntime']\n"
        "print([name for name in heavy if name in sys.modules])\n"
        "window.serve_page\n"  # asking for a stage page builds the stage pages
        "print(window.pages.count(), 'pyqtgraph' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, env={**os.environ,
                                            "XDG_RUNTIME_DIR": str(tmp_path),
                                            "XDG_CONFIG_HOME": str(tmp_path)})
    lines = done.stdout.splitlines()
    assert lines[0] == "[]", done.stderr[-2000:]
    assert lines[1] == "10 True"


def test_the_stage_pages_follow_the_model_shown_before_they_were_built(qtbot, qapp, tmp_path,
                                                                      demo_model):
    from PySide6.QtCore import QSettings

    from studio.ui.app import create_window

    window = create_window(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    assert window.pages.count() == 1  # only the Model page until the model is shown
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    qtbot.waitUntil(lambda: window.pages.count() == 10, timeout=30_000)
    assert all(window.pages.widget(i).source is window.current for i in range(10))
    assert window.serve_page.reference.text().endswith("wine_reference.csv")
    window.close()
