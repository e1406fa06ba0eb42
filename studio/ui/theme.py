"""Light and dark looks for the whole app: Fusion, a palette, resources/theme*.qss, the charts.

"system" follows the desktop's colour scheme (Qt's style hints), also when it changes while the app
runs. Charts are pyqtgraph widgets that do not follow the palette, so `apply_theme` repaints their
background and axes too.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

RESOURCES = Path(__file__).resolve().parents[2] / "resources"

LIGHT = {
    QPalette.ColorRole.Window: "#f6f7f9", QPalette.ColorRole.Base: "#ffffff",
    QPalette.ColorRole.AlternateBase: "#f3f5f8", QPalette.ColorRole.Highlight: "#2d6ec8",
    QPalette.ColorRole.HighlightedText: "#ffffff",
}
DARK = {
    QPalette.ColorRole.Window: "#1e232a", QPalette.ColorRole.WindowText: "#e3e7ec",
    QPalette.ColorRole.Base: "#161a1f", QPalette.ColorRole.AlternateBase: "#222831",
    QPalette.ColorRole.Text: "#e3e7ec", QPalette.ColorRole.Button: "#2a313a",
    QPalette.ColorRole.ButtonText: "#e3e7ec", QPalette.ColorRole.ToolTipBase: "#2a313a",
    QPalette.ColorRole.ToolTipText: "#e3e7ec", QPalette.ColorRole.PlaceholderText: "#8a94a0",
    QPalette.ColorRole.Highlight: "#3b7fd9", QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#7fb0f0", QPalette.ColorRole.BrightText: "#ffffff",
}
CHART_COLORS = {"light": ("w", "#3c4450"), "dark": ("#161a1f", "#c7cdd4")}
"""Per look: the chart background and the colour of its axes and their labels."""


def resolved(theme: str, app: QApplication) -> str:
    """"light" or "dark": the theme asked for, with "system" read from the desktop."""
    if theme in ("light", "dark"):
        return theme
    return "dark" if app.styleHints().colorScheme() == Qt.ColorScheme.Dark else "light"


def apply_theme(app: QApplication, theme: str = "system") -> str:
    """Give the app the look `theme` names; returns the one applied ("light" or "dark")."""
    look = resolved(theme, app)
    app.setStyle("Fusion")
    palette = app.style().standardPalette()
    for role, colour in (DARK if look == "dark" else LIGHT).items():
        palette.setColor(role, QColor(colour))
    if look == "dark":
        for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                     QPalette.ColorRole.ButtonText):
            palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6c7580"))
    app.setPalette(palette)
    sheets = [RESOURCES / "theme.qss"] + ([RESOURCES / "theme-dark.qss"] if look == "dark" else [])
    app.setStyleSheet("\n".join(s.read_text() for s in sheets if s.exists()))
    app.setProperty("slipwayLook", look)
    restyle_charts(app)
    return look


def restyle_charts(app: QApplication) -> None:
    """Repaint the charts that exist now in the app's current look (new ones ask `chart_colors`)."""
    if "pyqtgraph" not in sys.modules:
        return  # no chart has been made yet
    import pyqtgraph as pg

    background, foreground = chart_colors()
    for widget in app.allWidgets():
        if isinstance(widget, pg.PlotWidget):
            widget.setBackground(background)
            title = widget.getPlotItem().titleLabel
            if title.text:
                title.setText(title.text, color=foreground)
            for name in ("left", "bottom", "right", "top"):
                axis = widget.getPlotItem().getAxis(name)
                axis.setPen(foreground)
                axis.setTextPen(foreground)


def chart_colors() -> tuple[str, str]:
    """(background, axes) for a chart made now, in the app's current look."""
    app = QApplication.instance()
    look = app.property("slipwayLook") if app is not None else None
    return CHART_COLORS.get(look or "light", CHART_COLORS["light"])
