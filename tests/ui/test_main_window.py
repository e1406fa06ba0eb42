"""The shell: pages, Docker engine status, the command line's way into the app."""

import subprocess
import sys

import pytest

CHECK_TIMEOUT_MS = 10_000


def test_every_stage_of_the_journey_has_a_page(window):
    titles = [window.nav.item(i).text() for i in range(window.nav.count())]
    assert titles == ["Model", "Optimize", "Serve", "Probe", "Load", "Monitor", "Compare", "Export"]
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
