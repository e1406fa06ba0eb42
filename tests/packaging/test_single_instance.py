"""One studio per person: a second launch hands its model to the running window and exits."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtNetwork import QLocalSocket

from studio.ui.app import DEMO_MODEL, create_window
from studio.ui.single_instance import SingleInstance, rendezvous_path

WAIT_MS = 20_000


@pytest.fixture
def runtime_dir(monkeypatch):
    """A private runtime folder of this test's own (short: a socket path has a length limit)."""
    folder = tempfile.mkdtemp(prefix="sw-")
    monkeypatch.setenv("XDG_RUNTIME_DIR", folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def running(qapp, runtime_dir):
    instance = SingleInstance()
    assert instance.claim()
    yield instance
    instance.release()


@pytest.fixture
def window(qtbot, qapp, tmp_path, monkeypatch, running):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    win = create_window(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    running.model_requested.connect(win.open_from_another_launch)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def test_slipway_model_while_the_studio_runs_opens_it_in_the_running_window(qtbot, window):
    # A real second `slipway MODEL`, from another folder with a relative path, as a terminal would.
    result = subprocess.run(
        [sys.executable, "-m", "studio.cli", DEMO_MODEL.name], cwd=DEMO_MODEL.parent,
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout
    qtbot.waitUntil(lambda: window.current is not None, timeout=WAIT_MS)
    assert window.current.path == DEMO_MODEL
    assert window.nav.currentRow() == 0  # the Model page shows it


def test_a_launch_without_a_model_brings_the_minimized_window_back(qtbot, window, runtime_dir):
    window.showMinimized()
    assert window.windowState() & Qt.WindowState.WindowMinimized
    assert SingleInstance().claim() is False  # the running studio holds the rendezvous
    assert SingleInstance().hand_over(None)
    qtbot.waitUntil(lambda: not window.windowState() & Qt.WindowState.WindowMinimized,
                    timeout=WAIT_MS)
    assert window.isVisible()
    assert window.current is None


def test_the_running_studio_gets_the_absolute_path_and_the_activation_token(
        qtbot, running, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_ACTIVATION_TOKEN", "token-from-the-launcher")
    second = SingleInstance()
    assert not second.claim()
    with qtbot.waitSignal(running.model_requested, timeout=WAIT_MS) as received:
        assert second.hand_over("model.onnx")
        monkeypatch.delenv("XDG_ACTIVATION_TOKEN")  # the sender's; the receiver must set it anew
    assert received.args == [str(tmp_path / "model.onnx")]
    assert os.environ["XDG_ACTIVATION_TOKEN"] == "token-from-the-launcher"


def test_messages_that_are_not_a_launch_are_ignored(qtbot, running):
    requested = []
    running.model_requested.connect(requested.append)
    for garbage in (b"not json\n", b'{"model": "relative.onnx"}\n', b'["a list"]\n'):
        raw = QLocalSocket()
        raw.connectToServer(running.socket_path)
        assert raw.waitForConnected(2000)
        raw.write(garbage)
        raw.waitForBytesWritten(2000)
        raw.disconnectFromServer()
    with qtbot.waitSignal(running.model_requested, timeout=WAIT_MS):
        assert SingleInstance().hand_over(None)
    assert requested == [None]


def test_a_studio_that_died_leaves_nothing_in_the_way(qapp, runtime_dir):
    """A studio killed outright leaves its lock and socket files; the next launch takes them over
    instead of handing its model to no one."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "from PySide6.QtCore import QCoreApplication\n"
         "from studio.ui.single_instance import SingleInstance\n"
         "app = QCoreApplication([])\n"
         "instance = SingleInstance()\n"
         "print('claimed' if instance.claim() else 'refused', flush=True)\n"
         "import time; time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert holder.stdout.readline().strip() == "claimed"
        assert SingleInstance().claim() is False  # another live process holds it
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert rendezvous_path().with_name(rendezvous_path().name + ".socket").exists()
    instance = SingleInstance()
    assert instance.claim()
    try:
        assert SingleInstance().hand_over(None)
    finally:
        instance.release()


def test_studios_with_separate_data_folders_run_side_by_side(monkeypatch, tmp_path, runtime_dir):
    first = rendezvous_path()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "other-data"))
    assert rendezvous_path() != first
    assert rendezvous_path().parent == first.parent
