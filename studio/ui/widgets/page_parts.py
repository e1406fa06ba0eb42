"""Pieces every page starts with: its title, its error banner, and (for the pages that talk to a
served model) the URL field that follows the Serve page."""

from __future__ import annotations

from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QLabel, QLineEdit

from studio.ui.widgets.error_banner import ErrorBanner


def page_title(text: str) -> QLabel:
    title = QLabel(text)
    title.setObjectName("modelTitle")  # styled by the theme
    return title


def error_banner(show_log: SignalInstance) -> ErrorBanner:
    """A hidden banner whose "Show log" emits the page's `log_requested`."""
    banner = ErrorBanner()
    banner.show_log_requested.connect(show_log)
    return banner


def server_url_field(also: str = "") -> QLineEdit:
    field = QLineEdit()
    field.setPlaceholderText("http://127.0.0.1:8000 (filled in when the Serve page runs a model)"
                             + also)
    return field
