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


PALETTE = {"ok": (37, 99, 235), "errors": (220, 38, 38), "p50": (37, 99, 235),
           "p95": (217, 119, 6), "p99": (220, 38, 38), "previous": (150, 150, 150)}


class SeriesChart(pg.PlotWidget):
    """Named lines against a shared x axis (seconds, or offered load), updated in place.

    `set_series` replaces a line's points without re-creating it, so a chart fed four times a
    second stays cheap. A series named "previous …" is drawn dashed in grey, for overlays.
    """

    def __init__(self, title: str, y_label: str, x_label: str = "seconds",
                 parent: QWidget | None = None):
        super().__init__(parent, background="w")
        self.setMenuEnabled(False)
        self.hideButtons()
        plot = self.getPlotItem()
        plot.setTitle(title, color=(40, 48, 58), size="10pt")
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setLabel("left", y_label)
        plot.setLabel("bottom", x_label)
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setTextPen(pg.mkPen(40, 48, 58))
            plot.getAxis(axis).enableAutoSIPrefix(False)  # "rows (x0.001)" reads as a bug
        # Every figure charted here (rates, latencies, counts, scores) is non-negative.
        plot.getViewBox().setLimits(yMin=0)
        self.legend = plot.addLegend(offset=(-8, 8), labelTextColor=(40, 48, 58))
        self.lines: dict[str, pg.PlotDataItem] = {}

    def set_series(self, name: str, xs, ys) -> None:
        line = self.lines.get(name)
        if line is None:
            previous = name.startswith("previous")
            key = name.split()[-1] if previous else name
            color = PALETTE["previous"] if previous else PALETTE.get(key, ACCENT)
            pen = pg.mkPen(color=color, width=1.5 if previous else 2,
                           style=pg.QtCore.Qt.PenStyle.DashLine if previous
                           else pg.QtCore.Qt.PenStyle.SolidLine)
            line = self.lines[name] = self.plot([], [], pen=pen, name=name,
                                                connect="finite")
        line.setData(list(xs), list(ys))

    def remove_series(self, name: str) -> None:
        line = self.lines.pop(name, None)
        if line is not None:
            self.getPlotItem().removeItem(line)
            self.legend.removeItem(line)

    def clear_series(self) -> None:
        for name in list(self.lines):
            self.remove_series(name)

    def points(self, name: str) -> int:
        """How many points a line shows (0 when it does not exist)."""
        line = self.lines.get(name)
        return 0 if line is None or line.xData is None else len(line.xData)


class BinsChart(pg.PlotWidget):
    """Reference and live distributions of one feature over the same bins, as side-by-side bars of
    each bin's share (so a reference of 10,000 rows and a window of 300 compare)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, background="w")
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        plot = self.getPlotItem()
        plot.showGrid(x=False, y=True, alpha=0.2)
        plot.setLabel("left", "share of values")
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setTextPen(pg.mkPen(40, 48, 58))
            plot.getAxis(axis).enableAutoSIPrefix(False)
        self.legend = plot.addLegend(offset=(-8, 8), labelTextColor=(40, 48, 58))
        self.bars: list[pg.BarGraphItem] = []

    def set_bins(self, labels: list[str], reference: list[float], live: list[float]) -> None:
        plot = self.getPlotItem()
        for bar in self.bars:
            plot.removeItem(bar)
            self.legend.removeItem(bar)
        self.bars = []
        ref_total, live_total = sum(reference) or 1.0, sum(live) or 1.0
        xs = list(range(len(labels)))
        for offset, name, counts, total, color in (
                (-0.2, "reference", reference, ref_total, PALETTE["previous"]),
                (0.2, "live", live, live_total, PALETTE["ok"])):
            bar = pg.BarGraphItem(x=[x + offset for x in xs], height=[c / total for c in counts],
                                  width=0.38, brush=pg.mkBrush(*color), pen=pg.mkPen(None))
            plot.addItem(bar)
            self.legend.addItem(bar, name)
            self.bars.append(bar)
        step = max(1, len(labels) // 8)  # keep the axis readable with many bins
        plot.getAxis("bottom").setTicks([[(x, labels[x]) for x in xs[::step]]])
        plot.setXRange(-0.7, max(0.7, len(labels) - 0.3), padding=0)
