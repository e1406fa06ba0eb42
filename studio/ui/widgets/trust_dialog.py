"""Asks before loading a file that runs code when loaded, and shows what it would import: the
dangerous imports first, in red, each with what it does; then what the scan cannot name; then the
rest, which is not known to be safe either, only not known to be dangerous."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import TrustFinding, TrustRequired

ORDER = {"dangerous": 0, "unnamed": 1, "listed": 2}
DANGER = QColor("#b3261e")
UNNAMED = QColor("#8a5a00")
WARNING_STYLE = ("QLabel { color: #8a1f1f; background: #fdecec; border: 1px solid #e0a4a4; "
                 "border-radius: 4px; padding: 8px; font-weight: 600; }")


def item_text(finding: TrustFinding) -> str:
    """A dangerous import says what it does; the others are their names."""
    return f"{finding.name} — {finding.why}" if finding.why else finding.name


def warning_text(findings: list[TrustFinding]) -> str:
    """The plain sentence above the list, or '' when nothing in it stands out."""
    dangerous = [f.name for f in findings if f.verdict == "dangerous"]
    if dangerous:
        named = ", ".join(dangerous[:3]) + (f" and {len(dangerous) - 3} more"
                                            if len(dangerous) > 3 else "")
        count = "something" if len(dangerous) == 1 else f"{len(dangerous)} things"
        return (f"Danger: this file would use {count} no model needs ({named}). It can run "
                "programs or hidden code, or reach your files or the network. Do not load it "
                "unless you wrote it yourself.")
    if any(f.verdict == "unnamed" for f in findings):
        return ("Part of this file cannot be named without running it, so it may import more "
                "than is listed here.")
    return ""


class TrustDialog(QDialog):
    def __init__(self, request: TrustRequired, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Load a file that runs code?")
        self.setModal(True)
        why = QLabel(
            f"<b>{html.escape(request.message)}</b><br><br>"
            "Files like this can run any program on this computer the moment they are opened, "
            "with your permissions. Slipway Studio loads them in a separate process, but that "
            "process can still read and change your files.<br><br>"
            "Continue only if you made this file or got it from someone you trust."
        )
        why.setWordWrap(True)
        findings = sorted(request.findings, key=lambda f: ORDER[f.verdict])
        # Names come from the file: shown as plain text, never as markup it could slip in.
        self.warning = QLabel(warning_text(findings))
        self.warning.setTextFormat(Qt.TextFormat.PlainText)
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(WARNING_STYLE)
        self.warning.setVisible(bool(self.warning.text()))
        listing = QLabel("What the file names (read without running it):")
        self.reasons = QListWidget()
        self.reasons.setWordWrap(True)  # a dangerous import's sentence is read whole
        for finding in findings:
            self.reasons.addItem(self._item(finding))
        if not findings:
            self.reasons.addItem("(nothing could be listed)")
        buttons = QDialogButtonBox()
        self.trust_button = QPushButton("Trust and load")
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.addButton(self.trust_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(why)
        layout.addWidget(self.warning)
        layout.addWidget(listing)
        layout.addWidget(self.reasons)
        layout.addWidget(buttons)
        # Enter must never trust a file: Cancel is the default, set once the buttons are inside
        # the dialog (before that the dialog does not know them and makes Trust its default).
        self.trust_button.setAutoDefault(False)
        self.cancel_button.setDefault(True)
        self.resize(640, 460)

    @staticmethod
    def _item(finding: TrustFinding) -> QListWidgetItem:
        item = QListWidgetItem(item_text(finding))
        item.setData(Qt.ItemDataRole.UserRole, finding.verdict)
        if finding.verdict == "listed":
            return item
        item.setForeground(QBrush(DANGER if finding.verdict == "dangerous" else UNNAMED))
        font = item.font()
        font.setBold(finding.verdict == "dangerous")
        item.setFont(font)
        item.setToolTip(finding.why or finding.name)
        return item
