"""The stack of pages in the main window, in which only the page shown asks for room.

A QStackedWidget is as large as its largest page: a page the user is not looking at would widen or
heighten the window (past a 1024x700 screen, or when the Log opens). Here the hidden pages ask for
nothing, so the window follows the page on screen, and a scroll area around the stack scrolls a
page only when the window is smaller than that page's minimum.
"""

from __future__ import annotations

from PySide6.QtWidgets import QSizePolicy, QStackedWidget, QWidget


class PageStack(QStackedWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.currentChanged.connect(lambda _: self._size_to_current())

    def addWidget(self, page: QWidget) -> int:  # noqa: N802 (Qt's name)
        index = super().addWidget(page)
        self._size_to_current()
        return index

    def _size_to_current(self) -> None:
        for index in range(self.count()):
            shown = index == self.currentIndex()
            policy = QSizePolicy.Policy.Preferred if shown else QSizePolicy.Policy.Ignored
            self.widget(index).setSizePolicy(policy, policy)
        self.updateGeometry()

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt's name)
        # A layout's height for a width is its preferred height (the tallest page's, for a
        # stack), and the scroll area would take it as the least it may give: none is given, so
        # the page on screen gets the window's height, down to its minimum.
        return -1
