"""Drift on purpose, end to end: a load test shifts one feature of real reference rows, the real
server counts what it serves into the reference bins, and the Monitor page shows that feature
drifting within 10 s while the untouched ones stay below the warn threshold."""

import os
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QSettings

from studio.core.loadtest.engine import run
from studio.core.loadtest.payloads import bodies_for, parse_drift
from studio.core.loadtest.plan import LoadPlan
from studio.core.model.artifact import load
from studio.core.serve.bundle import ImageOptions, ServingOptions
from studio.core.serve.deploy import DeployOptions, deploy
from studio.core.tasks import Progress
from studio.ui.app import DEMO_MODEL, create_window

DRIFTED = "alcohol"
SEEN_WITHIN_MS = 10_000


def _deployment(runtime, wine_csv, base_image=None):
    options = DeployOptions(runtime=runtime, tag="slipway-test/wine-drift:1",
                            serving=ServingOptions(reference_data=wine_csv))
    if base_image is not None:
        options.image = ImageOptions(base_image=base_image)
    return deploy(load(DEMO_MODEL), options)


@pytest.fixture(params=["process", pytest.param("docker", marks=[pytest.mark.docker,
                                                                   pytest.mark.needs_base_image])])
def served_wine(request, wine_csv):
    base_image = request.getfixturevalue("base_image") if request.param == "docker" else None
    deployment = _deployment(request.param, wine_csv, base_image)
    yield deployment
    deployment.stop()


def test_a_drifted_feature_shows_on_the_monitor_page_within_ten_seconds(qtbot, tmp_path,
                                                                       served_wine,
                                                                       wine_csv):
    window = create_window(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    page = window.monitor_page
    page.attach(served_wine)
    page.window_choice.setCurrentIndex(0)  # a one-minute window
    with qtbot.waitSignal(page.refreshed, timeout=5000):
        page.start()
    assert "reference profile" in page.baseline_note.text()

    schema = load(DEMO_MODEL).schema
    bodies, _ = bodies_for(schema, "/predict", "reference", wine_csv,
                           [parse_drift(f"{DRIFTED}=+2sd")])
    stop = Progress()
    plan = LoadPlan(served_wine.url, payloads=bodies, mode="open", rate=150, duration_s=20,
                    connections=8)
    load_thread = threading.Thread(target=run, args=(plan, stop), daemon=True)
    started = time.monotonic()
    load_thread.start()
    try:
        qtbot.waitUntil(lambda: _level(page, DRIFTED) == "alert", timeout=SEEN_WITHIN_MS)
        seen_after = time.monotonic() - started
        # One full pass over the 178 reference rows: untouched features match their reference.
        qtbot.waitUntil(lambda: _live_rows(page) >= 2 * len(bodies), timeout=SEEN_WITHIN_MS)
    finally:
        stop.cancel()
        load_thread.join(5)
    page.stop()

    assert seen_after < SEEN_WITHIN_MS / 1000
    rows = {row.feature: row for row in page.drift_rows}
    assert rows[DRIFTED].level == "alert" and page.drift_rows[0].feature == DRIFTED
    assert not page.alert_banner.isHidden() and DRIFTED in page.alert_banner.text()
    untouched = {name: row.psi for name, row in rows.items()
                 if name not in (DRIFTED, "(predictions)")}
    assert len(untouched) == 12
    assert all(psi < page.monitor.thresholds.psi_warn for psi in untouched.values()), untouched


def _level(page, feature):
    return next((row.level for row in page.drift_rows if row.feature == feature), None)


def _live_rows(page):
    return max((row.live_count for row in page.drift_rows), default=0)


def test_the_monitor_charts_cpu_and_memory_from_the_runtime(qtbot, tmp_path, served_wine):
    """In Docker, from the engine's stats of the container; as a process, from the server's own
    process metrics."""
    window = create_window(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    page = window.monitor_page
    page.attach(served_wine)
    page.start()
    source = "container" if served_wine.runtime == "docker" else "process"
    # The engine takes about a second per stats sample: wait for the charts, not a scrape count.
    qtbot.waitUntil(lambda: page.charts["cpu"].points(source) >= 2
                    and page.charts["memory"].points(source) >= 2, timeout=20_000)
    page.stop()
    memory = page.monitor.resources(None)["memory_bytes"]
    assert 10e6 < memory < 2e9, memory
    if served_wine.runtime == "docker":
        usage = served_wine.usage()
        assert usage is not None and usage.cpu_seconds > 0 and usage.memory_bytes > 0
