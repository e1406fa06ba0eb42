"""Preferences: one typed object kept with QSettings, a migration from the older layout, a dialog
that refuses values it cannot keep, the look, and a window that comes back as it was left."""

import dataclasses

import pyqtgraph as pg
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QDialog, QDialogButtonBox

from studio.ui.app import create_window
from studio.ui.settings import SCHEMA_VERSION, LoadPreset, StudioSettings, load, save
from studio.ui.settings_dialog import SettingsDialog
from studio.ui.theme import apply_theme


def _store(tmp_path, name="settings.ini") -> QSettings:
    return QSettings(str(tmp_path / name), QSettings.Format.IniFormat)


def test_an_empty_store_gives_the_defaults(tmp_path):
    assert load(_store(tmp_path)) == StudioSettings()


def test_the_defaults_are_the_stages_own():
    from studio.core.monitor.drift import Thresholds
    from studio.core.serve.bundle import DEFAULT_BASE_IMAGE

    defaults = StudioSettings()
    assert (defaults.psi_warn, defaults.psi_alert) == (Thresholds().psi_warn,
                                                       Thresholds().psi_alert)
    assert defaults.base_image == DEFAULT_BASE_IMAGE


def test_what_is_saved_comes_back_in_its_types(tmp_path):
    chosen = StudioSettings(theme="dark", default_runtime="process", base_image="me/py:3.11",
                            wheelhouse_dir="/srv/wheels", psi_warn=0.05, psi_alert=0.3,
                            scrape_interval_s=5.0, load_preset="Spike",
                            recent_files=["/models/a.onnx"])
    chosen.my_preset.connections = 48
    save(chosen, _store(tmp_path))
    again = load(_store(tmp_path))  # a fresh QSettings reads the file, as a restart does
    assert again == chosen
    assert isinstance(again.psi_warn, float) and isinstance(again.my_preset.connections, int)


def test_the_older_layout_is_migrated(tmp_path):
    old = _store(tmp_path)
    old.setValue("recentFiles", ["/models/wine.onnx", "/models/iris.joblib"])
    old.sync()
    store = _store(tmp_path)
    assert load(store).recent_files == ["/models/wine.onnx", "/models/iris.joblib"]
    assert not store.contains("recentFiles")
    assert int(store.value("schemaVersion")) == SCHEMA_VERSION


def test_values_that_cannot_be_read_fall_back_to_defaults(tmp_path):
    store = _store(tmp_path)
    store.setValue("schemaVersion", SCHEMA_VERSION)
    store.setValue("psi_warn", "lots")
    store.setValue("theme", "purple")
    store.setValue("default_runtime", "kubernetes")
    store.setValue("scrape_interval_s", "nan")
    settings = load(store)
    assert (settings.psi_warn, settings.theme, settings.default_runtime,
            settings.scrape_interval_s) == (0.1, "system", "auto", 0.5)


def test_the_dialog_refuses_a_warning_level_above_the_alert_level(qtbot):
    dialog = SettingsDialog(StudioSettings(), ["Steady", "Smoke"])
    qtbot.addWidget(dialog)
    dialog.psi_warn.setValue(0.5)
    dialog.psi_alert.setValue(0.2)
    dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert "below the alert level" in dialog.problem.text()
    assert not dialog.problem.isHidden()


def test_settings_chosen_in_the_dialog_are_kept_and_applied(qtbot, window, qapp):
    def choose():
        dialog = qapp.activeModalWidget()
        dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
        dialog.psi_alert.setValue(0.4)
        dialog.accept()

    QTimer.singleShot(100, choose)
    try:
        window.edit_settings()
        assert load(window.settings).psi_alert == 0.4
        assert window.prefs.theme == "dark"
        assert qapp.palette().color(QPalette.ColorRole.Window).lightness() < 80
        charts = window.findChildren(pg.PlotWidget)
        assert charts, "the pages have charts"
        assert all(chart.backgroundBrush().color().lightness() < 80 for chart in charts)
    finally:
        apply_theme(qapp, "light")


def test_the_window_comes_back_as_it_was_left(qtbot, qapp, tmp_path):
    first = create_window(_store(tmp_path))
    qtbot.addWidget(first)
    first.show()
    first.resize(first.width(), 720)  # the offscreen screen is 800 px wide: heights are kept
    first.nav.setCurrentRow(4)
    first.log_dock.show()
    first.close()

    second = create_window(_store(tmp_path))
    qtbot.addWidget(second)
    second.show()
    assert second.height() == 720  # not the 760 a new window opens at
    second.build_stages_soon(restore_page=True)  # what run_app does when no model is named
    qtbot.waitUntil(lambda: second.nav.currentRow() == 4, timeout=10_000)
    assert second.log_dock.isVisible()
    second.close()


def test_the_pages_take_their_settings(qtbot, window, tmp_path):
    chosen = dataclasses.replace(window.prefs, default_runtime="process", base_image="me/py:3.11",
                                 wheelhouse_dir=str(tmp_path / "wheels"), load_preset="Mine",
                                 psi_warn=0.05, psi_alert=0.3,
                                 my_preset=LoadPreset(connections=7, duration_s=3.0, warmup_s=0.0))
    window.prefs = chosen
    window._apply_prefs()
    serve, load = window.serve_page, window.load_page
    assert serve.runtime.currentData() == "process"
    assert serve.base_image.text() == "me/py:3.11"
    assert serve.wheelhouse_cache == tmp_path / "wheels"
    assert load.preset.currentText() == "Mine"
    assert (load.connections.value(), load.duration.value(), load.warmup.value()) == (7, 3.0, 0.0)
    monitor = window.monitor_page
    assert (monitor.warn.value(), monitor.alert.value()) == (chosen.psi_warn, chosen.psi_alert)
    assert monitor.timer.interval() == 500

    serve.base_image.setText("typed/by-hand:1")  # what the user typed on the page stays
    window.prefs = dataclasses.replace(chosen, base_image="other/py:3.12")
    window._apply_prefs()
    assert serve.base_image.text() == "typed/by-hand:1"


def test_a_splitter_comes_back_with_its_sizes_and_its_own_orientation(qtbot, tmp_path):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel, QListWidget, QMainWindow, QSplitter

    from studio.ui.window_state import remember_layout, restore_splitters

    def window_with(orientation):
        window = QMainWindow()
        splitter = QSplitter(orientation)
        splitter.addWidget(QLabel("a"))
        splitter.addWidget(QLabel("b"))
        window.setCentralWidget(splitter)
        window.resize(600, 600)
        qtbot.addWidget(window)
        window.show()
        return window, splitter

    first, splitter = window_with(Qt.Orientation.Vertical)
    splitter.setSizes([100, 400])
    remember_layout(first, QListWidget(), _store(tmp_path))

    same, again = window_with(Qt.Orientation.Vertical)
    restore_splitters(same, _store(tmp_path))
    assert again.sizes()[0] < again.sizes()[1]
    other, different = window_with(Qt.Orientation.Horizontal)  # the layout changed since
    restore_splitters(other, _store(tmp_path))
    assert different.orientation() == Qt.Orientation.Horizontal


def test_changing_another_setting_keeps_the_plan_in_the_load_form(window):
    load = window.load_page
    load.connections.setValue(42)  # the user's own plan: "Custom"
    window.prefs = dataclasses.replace(window.prefs, psi_alert=0.3)
    window._apply_prefs()
    assert load.connections.value() == 42 and load.preset.currentText() == "Custom"
