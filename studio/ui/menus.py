"""The main window's menu bar: File, Edit, View (the log, a shortcut per page), Help.

`window` is studio.ui.main_window.MainWindow (typed as its Qt base: the window imports this).

Every action the studio offers a key for is here, so Help > Keyboard shortcuts lists exactly what
the menus hold.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from studio.ui.settings import save as save_settings


def build_menus(window: QMainWindow) -> None:
    file_menu = window.menuBar().addMenu("&File")
    _add(file_menu, "&Open…", window.choose_file, QKeySequence.StandardKey.Open)
    serve = _add(file_menu, "&Serve a model…", window.choose_file_to_serve,
                 QKeySequence("Ctrl+Shift+O"))
    serve.setToolTip("Load, convert and run a model file in one step")
    _add(file_menu, "Open MLflow &folder…", window.choose_folder)
    window.recent_menu = RecentMenu(window)
    file_menu.addMenu(window.recent_menu)
    if window.demo_model is not None:
        _add(file_menu, "Open the &demo model", window.open_demo)
    file_menu.addSeparator()
    # Not StandardKey.Quit: some desktops leave it empty, and Ctrl+Q is what users press.
    _add(file_menu, "&Quit", window.close, QKeySequence("Ctrl+Q"))

    edit_menu = window.menuBar().addMenu("&Edit")
    settings = _add(edit_menu, "&Settings…", window.edit_settings)
    settings.setShortcuts([QKeySequence.StandardKey.Preferences, QKeySequence("Ctrl+,")])

    view_menu = window.menuBar().addMenu("&View")
    log_action = window.log_dock.toggleViewAction()
    log_action.setShortcut(QKeySequence("Ctrl+L"))
    view_menu.addAction(log_action)
    view_menu.addSeparator()
    for row in range(window.nav.count()):  # Ctrl+1 .. Ctrl+9, then Ctrl+0, in the pages' order
        keys = QKeySequence(f"Ctrl+{(row + 1) % 10}") if row < 10 else None
        _add(view_menu, f"Go to {window.nav.item(row).text()}",
             lambda _=False, r=row: window.nav.setCurrentRow(r), keys)

    help_menu = window.menuBar().addMenu("&Help")
    _add(help_menu, "&User guide", window.show_user_guide, QKeySequence.StandardKey.HelpContents)
    _add(help_menu, "&Keyboard shortcuts", window.show_shortcuts, QKeySequence("Ctrl+/"))
    _add(help_menu, "&Copy diagnostics", window.copy_diagnostics)
    _add(help_menu, "&About Slipway Studio", window.show_about)


def menu_actions(window: QMainWindow) -> list[QAction]:
    """Every action of the menu bar (not separators or submenus), for the shortcuts list."""
    actions: list[QAction] = []
    for menu_action in window.menuBar().actions():
        menu = menu_action.menu()
        if menu is not None:
            actions += [a for a in menu.actions() if not a.isSeparator() and a.menu() is None]
    return actions


def _add(menu: QMenu, text: str, slot, keys=None) -> QAction:
    action = QAction(text, menu)
    if keys is not None:
        action.setShortcut(keys)
    action.triggered.connect(slot)
    menu.addAction(action)
    return action


class RecentMenu(QMenu):
    """File > Open recent: the models opened last, newest first, kept in the settings."""

    def __init__(self, window: QMainWindow):
        super().__init__("Open &recent", window)
        self.window = window
        self.rebuild()

    def rebuild(self) -> None:
        self.clear()
        recent = self.window.recent_files()
        for entry in recent:
            action = self.addAction(entry)
            action.triggered.connect(lambda _=False, p=entry: self.window.open_model(p))
        if recent:
            self.addSeparator()
            self.addAction("Clear list").triggered.connect(self._clear_list)
        self.setEnabled(bool(recent))

    def _clear_list(self) -> None:
        self.window.prefs.recent_files = []
        save_settings(self.window.prefs, self.window.settings)
        self.rebuild()
