"""The Export page on the demo model: a preview per file, each file's verdict, Save and Copy, and
options refused by field."""

import pytest
import yaml
from PySide6.QtGui import QGuiApplication

from studio.core.export.options import kubernetes_versions

CHECK_TIMEOUT_MS = 120_000
IMAGE = "registry.example.com/ml/wine:1"


@pytest.fixture
def export_page(qtbot, window, demo_model):
    with qtbot.waitSignal(window.model_page.artifact_loaded, timeout=30_000):
        window.open_model(demo_model)
    window.nav.setCurrentRow(window.nav.count() - 1)
    assert window.nav.currentItem().text() == "Export"
    return window.export_page


def checked(qtbot, page):
    with qtbot.waitSignal(page.checked_report, timeout=CHECK_TIMEOUT_MS) as done:
        pass
    return done.args[0]


def test_the_preview_is_checked_file_by_file_and_saved(qtbot, export_page, tmp_path):
    page = export_page
    assert not page.save_button.isEnabled()
    with qtbot.waitSignal(page.checked_report, timeout=CHECK_TIMEOUT_MS) as done:
        page.image.setText(IMAGE)
    report = done.args[0]
    assert report.passed, [f.line() for f in report.findings]
    titles = [page.tabs.tabText(i) for i in range(page.tabs.count())]
    assert titles[0] == "✓ compose" and "✓ deployment" in titles
    assert "✓ staging/kustomization" in titles
    assert page.status.text().startswith("✓ Every check passed")
    deployment = yaml.safe_load(page.tabs.widget(titles.index("✓ deployment")).toPlainText())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert page.save_button.isEnabled()
    with qtbot.waitSignal(page.saved) as saved:
        page.save_to(str(tmp_path))
    assert (tmp_path / "kubernetes/overlays/production/kustomization.yaml").exists()
    assert len(saved.args[0]) == page.tabs.count()
    page.tabs.setCurrentIndex(0)
    page.copy_current()
    assert QGuiApplication.clipboard().text().startswith("# wine_classifier")


def test_options_change_the_preview_at_once(qtbot, export_page):
    page = export_page
    page.image.setText(IMAGE)
    page.autoscale.setChecked(True)
    page.kserve.setChecked(True)
    page.version.setCurrentText(kubernetes_versions()[-1])
    titles = [page.tabs.tabText(i).split(" ", 1)[1] for i in range(page.tabs.count())]
    assert "hpa" in titles and "kserve/inferenceservice" in titles
    assert not page.replicas.isEnabled()
    report = checked(qtbot, page)
    assert report.passed, [f.line() for f in report.findings]


def test_a_bad_option_is_named_and_nothing_can_be_saved(qtbot, export_page):
    page = export_page
    page.image.setText(IMAGE)
    page.replicas.setValue(0)
    assert page.error_banner.isVisible()
    assert "replicas" in page.error_banner.message.text()
    assert page.replicas.property("invalid") is True
    assert page.export is None and not page.save_button.isEnabled()
    page.memory.setText("1Gi")
    page.replicas.setValue(2)
    assert "memory_limit" in page.error_banner.message.text()
    assert page.memory_limit.property("invalid") is True
    page.memory_limit.setText("1Gi")
    assert not page.error_banner.isVisible() and page.export is not None


def test_a_process_deployment_leaves_the_image_alone(qtbot, export_page, window, demo_server):
    export_page.image.setText(IMAGE)
    window.serve_page.deployment_ready.emit(demo_server)
    assert export_page.image.text() == IMAGE
