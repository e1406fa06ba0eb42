"""pyqtgraph charts."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

ACCENT = (45, 110, 200)


class OperatorChart(pg.PlotWidget):
    """Horizontal bars: how many nodes of each operator type the graph has, most used on top."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, background="w")
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.getPlotItem().showGrid(x=True, y=False, alpha=0.2)
        self.getPlotItem().setLabel("bottom", "nodes")
        for axis in ("left", "bottom"):
            self.getPlotItem().getAxis(axis).setTextPen(pg.mkPen(40, 48, 58))
        self._bars: pg.BarGraphItem | None = None
        self._labels: list[pg.TextItem] = []
        self.counts: dict[str, int] = {}

    def set_counts(self, counts: dict[str, int]) -> None:
        self.counts = dict(counts)
        plot = self.getPlotItem()
        if self._bars is not None:
            plot.removeItem(self._bars)
            self._bars = None
        for label in self._labels:
            plot.removeItem(label)
        self._labels = []
        names = list(counts)[::-1]  # most used at the top
        if not names:
            return
        values = [counts[n] for n in names]
        self._bars = pg.BarGraphItem(x0=0, y=list(range(len(names))), height=0.7, width=values,
                                     brush=pg.mkBrush(*ACCENT), pen=pg.mkPen(None))
        plot.addItem(self._bars)
        for i, value in enumerate(values):
            label = pg.TextItem(str(value), color=(40, 48, 58), anchor=(0, 0.5))
            label.setPos(value, i)
            plot.addItem(label)
            self._labels.append(label)
        plot.getAxis("left").setTicks([[(i, n) for i, n in enumerate(names)]])
        plot.setYRange(-0.6, len(names) - 0.4, padding=0)
        plot.setXRange(0, max(values) * 1.12, padding=0)
