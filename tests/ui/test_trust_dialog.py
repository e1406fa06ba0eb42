"""The trust dialog as a person meets it: opening a pickle that hides a call to os.system shows
that call first, in red, with what it does and a plain warning above the list; an ordinary model
shows its classes and no warning; and Enter never trusts a file."""

from __future__ import annotations

import pytest
from hostile_pickles import (
    COMPUTED_IMPORT,
    call_hidden_in_joblib,
    called_with,
    global_,
    os_system_call,
    program,
)
from PySide6.QtCore import Qt
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from studio.core.errors import TrustRequired
from studio.core.model.pickle_scan import scan_pickle
from studio.ui.widgets.trust_dialog import DANGER, UNNAMED, TrustDialog

LOAD_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def hostile_joblib(tmp_path_factory):
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    return call_hidden_in_joblib(model, tmp_path_factory.mktemp("hostile") / "iris.joblib",
                                 os_system_call())


def open_and_wait_for_the_dialog(qtbot, window, path) -> TrustDialog:
    page = window.model_page
    window.open_model(path)
    qtbot.waitUntil(lambda: page.trust_dialog is not None and page.trust_dialog.isVisible(),
                    timeout=LOAD_TIMEOUT_MS)
    return page.trust_dialog


def listed(dialog: TrustDialog) -> list[str]:
    return [dialog.reasons.item(i).text() for i in range(dialog.reasons.count())]


def test_a_hidden_os_system_is_shown_first_in_red_with_a_warning(qtbot, window, hostile_joblib):
    dialog = open_and_wait_for_the_dialog(qtbot, window, hostile_joblib)
    first = dialog.reasons.item(0)
    assert first.text() == "os.system — runs other programs and shell commands"
    assert first.foreground().color() == DANGER
    assert first.font().bold()
    assert first.data(Qt.ItemDataRole.UserRole) == "dangerous"
    assert dialog.warning.isVisible()
    assert dialog.warning.text().startswith("Danger: this file would use something no model "
                                            "needs (os.system).")
    rest = listed(dialog)[1:]
    assert "sklearn.linear_model._logistic.LogisticRegression" in rest
    assert all(dialog.reasons.item(i).data(Qt.ItemDataRole.UserRole) == "listed"
               for i in range(1, dialog.reasons.count()))
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert window.model_page.artifact is None


def test_enter_does_not_trust_the_file(qtbot, window, hostile_joblib):
    dialog = open_and_wait_for_the_dialog(qtbot, window, hostile_joblib)
    assert dialog.cancel_button.isDefault() and not dialog.trust_button.isDefault()
    with qtbot.waitSignal(dialog.rejected, timeout=LOAD_TIMEOUT_MS):
        qtbot.keyClick(dialog.reasons, Qt.Key.Key_Return)
    assert window.model_page.artifact is None
    assert "was not trusted" in window.model_page.error_banner.message.text()


def test_an_ordinary_model_shows_no_warning(qtbot, window, iris_joblib):
    dialog = open_and_wait_for_the_dialog(qtbot, window, iris_joblib)
    assert dialog.warning.isHidden()
    assert listed(dialog)[0] == "sklearn.pipeline.Pipeline"
    assert {dialog.reasons.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(dialog.reasons.count())} == {"listed"}
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)


def test_plain_reasons_from_skops_are_listed_as_they_are(qtbot):
    dialog = TrustDialog(TrustRequired("'m.skops' contains 1 type(s) that skops does not trust.",
                                       reasons=["model_code.log1p_abs"]))
    qtbot.addWidget(dialog)
    assert listed(dialog) == ["model_code.log1p_abs"]
    assert dialog.warning.isHidden()


def test_what_the_scan_cannot_name_is_shown_in_amber_with_its_own_warning(qtbot, window, tmp_path):
    path = tmp_path / "computed.pkl"
    path.write_bytes(COMPUTED_IMPORT)
    dialog = open_and_wait_for_the_dialog(qtbot, window, path)
    first = dialog.reasons.item(0)
    assert first.text() == ("(an import the scan cannot name: its module or attribute is computed "
                            "while the file loads)")
    assert first.foreground().color() == UNNAMED
    assert listed(dialog)[1:] == ["builtins.str"]
    assert dialog.warning.text() == ("Part of this file cannot be named without running it, so it "
                                     "may import more than is listed here.")
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)


def test_markup_in_a_name_from_the_file_is_shown_as_text(qtbot, tmp_path):
    hidden = "<span style='color:white'>system</span>"
    path = tmp_path / "markup.pkl"
    path.write_bytes(program(global_("os", hidden), called_with("echo")))
    dialog = TrustDialog(TrustRequired("'markup.pkl' is a Python pickle.",
                                       findings=scan_pickle(path)))
    qtbot.addWidget(dialog)
    assert f"os.{hidden}" in dialog.warning.text()
    assert dialog.warning.textFormat() == Qt.TextFormat.PlainText
