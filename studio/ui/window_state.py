"""The window comes back as it was left: size and position, docks, the last page, every splitter.

Kept in QSettings under "window/". Geometry comes back when the window is made; the splitters and
the last page once the stage pages exist (they are built after the first paint). Splitters are
keyed by their place among the window's splitters (pages build theirs in a fixed order), their
orientation and how many parts they split: a state saved by another layout of the app matches no
key, and the splitter keeps its built-in sizes (restoreState would also take the saved orientation).
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QListWidget, QMainWindow, QSplitter


def remember_layout(window: QMainWindow, nav: QListWidget, store: QSettings) -> None:
    store.setValue("window/geometry", window.saveGeometry())
    store.setValue("window/state", window.saveState())
    store.setValue("window/page", nav.currentRow())
    for index, splitter in enumerate(window.findChildren(QSplitter)):
        store.setValue(_splitter_key(index, splitter), splitter.saveState())
    store.sync()


def restore_geometry(window: QMainWindow, store: QSettings) -> None:
    geometry = store.value("window/geometry")
    if isinstance(geometry, QByteArray):
        window.restoreGeometry(geometry)
    state = store.value("window/state")
    if isinstance(state, QByteArray):
        window.restoreState(state)


def restore_splitters(window: QMainWindow, store: QSettings) -> None:
    for index, splitter in enumerate(window.findChildren(QSplitter)):
        saved = store.value(_splitter_key(index, splitter))
        if isinstance(saved, QByteArray):
            splitter.restoreState(saved)


def _splitter_key(index: int, splitter: QSplitter) -> str:
    return f"window/splitter{index}-{splitter.orientation().name}-{splitter.count()}"


def last_page(store: QSettings, pages: int) -> int:
    """The row of the page shown when the window was closed (0 when unknown)."""
    try:
        page = int(store.value("window/page", 0))
    except (TypeError, ValueError):
        return 0
    return page if 0 <= page < pages else 0
