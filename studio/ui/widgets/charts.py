"""pyqtgraph charts, in one colour-blind-safe palette, with legends that never cover data.

Every chart takes its colours from PALETTE (Okabe and Ito's eight colours, which people with any
common colour blindness tell apart; the HTML load report uses the same, studio/core/loadtest/
report.py), and no two series of a chart share one: a series takes its usual colour (PREFERRED)
when that is free, else the next free one. A SeriesChart's legend is a row under the plot, outside
the data, wrapped to the chart's width.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QGraphicsWidget, QWidget

from studio.ui.theme import chart_colors

OKABE_ITO = {"blue": (0, 114, 178), "vermillion": (213, 94, 0), "bluish green": (0, 158, 115),
             "orange": (230, 159, 0), "reddish purple": (204, 121, 167),
             "sky blue": (86, 180, 233), "black": (0, 0, 0), "yellow": (240, 228, 66)}
PALETTE: tuple[tuple[int, int, int], ...] = tuple(OKABE_ITO.values())
"""The colours series take, in order (yellow last: it is faint on white)."""
PREFERRED = {"ok": OKABE_ITO["blue"], "errors": OKABE_ITO["vermillion"],
             "p50": OKABE_ITO["blue"], "p95": OKABE_ITO["orange"], "p99": OKABE_ITO["vermillion"],
             "live": OKABE_ITO["blue"]}
"""A series' usual colour, so that a name looks the same from chart to chart."""
PREVIOUS = (130, 130, 130)
"""A run laid over the current one ("previous …"): grey and dashed, when no other series is."""
ACCENT = OKABE_ITO["blue"]
TEXT = (40, 48, 58)
DASHES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine,
          Qt.PenStyle.DashDotLine)
"""Past eight series the colours come round again, each round in a line style of its own."""


def pick_color(name: str, taken: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """The colour for a new series called `name` in a chart whose series have `taken`."""
    if name.startswith("previous") and PREVIOUS not in taken:
        return PREVIOUS
    preferred = PREFERRED.get(name.split()[-1] if name.startswith("previous") else name)
    if preferred is not None and preferred not in taken:
        return preferred
    free = [color for color in PALETTE if color not in taken]
    return free[0] if free else PALETTE[len(taken) % len(PALETTE)]


class OperatorChart(pg.PlotWidget):
    """Horizontal bars: how many nodes of each operator type the graph has, most used on top."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, background=chart_colors()[0])
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.getPlotItem().showGrid(x=True, y=False, alpha=0.2)
        self.getPlotItem().setLabel("bottom", "nodes")
        for axis in ("left", "bottom"):
            self.getPlotItem().getAxis(axis).setTextPen(pg.mkPen(*TEXT))
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
            label = pg.TextItem(str(value), color=TEXT, anchor=(0, 0.5))
            label.setPos(value, i)
            plot.addItem(label)
            self._labels.append(label)
        plot.getAxis("left").setTicks([[(i, n) for i, n in enumerate(names)]])
        plot.setYRange(-0.6, len(names) - 0.4, padding=0)
        plot.setXRange(0, max(values) * 1.12, padding=0)


class LegendRow:
    """A plot's legend in a row of its own under the bottom axis, outside the data, wrapped to the
    plot's width: `LegendRow(plot_item).item` is the LegendItem, and named items added to the
    plot join it."""

    ROW = 4
    """The row of a PlotItem's layout under the bottom axis (its label included)."""

    def __init__(self, plot: pg.PlotItem) -> None:
        self.plot = plot
        self.item = pg.LegendItem(offset=None, labelTextColor=TEXT, frame=False, colCount=8,
                                  horSpacing=4)
        self.item.setParentItem(plot)
        plot.legend = self.item  # named items join it, as PlotItem.addLegend would arrange
        self._room = QGraphicsWidget()
        plot.layout.addItem(self._room, self.ROW, 1)
        plot.layout.setRowFixedHeight(self.ROW, 0)
        self._height = 0.0
        plot.geometryChanged.connect(self.place)

    def place(self) -> None:
        """Wrap the entries to the plot's width and give them the rows they need."""
        entries = [label.boundingRect().width() + 20 + 12 for _, label in self.item.items]
        left = self.plot.getAxis("left").width()
        width = max(1.0, self.plot.width() - left - 8)
        columns = max(1, min(len(entries), int(width // max(entries)))) if entries else 1
        if columns != self.item.columnCount:
            self.item.setColumnCount(columns)
        # The legend's own height (its rows in this font): a guessed line height let a second
        # row of entries rise over the axis label.
        height = self.item.height() if entries else 0.0
        if height != self._height:
            self._height = height
            self.plot.layout.setRowFixedHeight(self.ROW, height)
        self.item.anchor(itemPos=(0, 1), parentPos=(0, 1), offset=(left, 0))


class SeriesChart(pg.PlotWidget):
    """Named lines against a shared x axis (seconds, or offered load), updated in place.

    `set_series` replaces a line's points without re-creating it, so a chart fed four times a
    second stays cheap. Each line keeps the colour it was given (see `pick_color`); a series named
    "previous …" is drawn dashed, in grey, for overlays. The legend sits in a row of its own under
    the plot, so it never covers a line.
    """

    def __init__(self, title: str, y_label: str, x_label: str = "seconds",
                 parent: QWidget | None = None):
        super().__init__(parent, background=chart_colors()[0])
        self.setMenuEnabled(False)
        self.hideButtons()
        plot = self.getPlotItem()
        plot.setTitle(title, color=TEXT, size="10pt")
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setLabel("left", y_label)
        plot.setLabel("bottom", x_label)
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setTextPen(pg.mkPen(*TEXT))
            plot.getAxis(axis).enableAutoSIPrefix(False)  # "rows (x0.001)" reads as a bug
        # Every figure charted here (rates, latencies, counts, scores) is non-negative.
        plot.getViewBox().setLimits(yMin=0)
        self._legend = LegendRow(plot)
        self.legend = self._legend.item
        self.lines: dict[str, pg.PlotDataItem] = {}
        self.colors: dict[str, tuple[int, int, int]] = {}
        """Each line's colour, as the legend shows it."""

    def set_series(self, name: str, xs, ys, markers: bool = False) -> None:
        """Replace the points of the line `name`, creating it on first use; `markers` (taken
        when it is created) draws each point too, for lines of a few points, one of which alone
        would draw nothing."""
        line = self.lines.get(name)
        if line is None:
            color = pick_color(name, list(self.colors.values()))
            previous = name.startswith("previous")
            round_ = sum(c == color for c in self.colors.values())
            style = Qt.PenStyle.DashLine if previous else DASHES[round_ % len(DASHES)]
            pen = pg.mkPen(color=color, width=1.5 if previous else 2, style=style)
            dots = {"symbol": "o", "symbolSize": 7, "symbolBrush": pg.mkBrush(*color),
                    "symbolPen": None} if markers else {}
            self.colors[name] = color
            line = self.lines[name] = self.plot([], [], pen=pen, name=name, connect="finite",
                                                **dots)
            self._legend.place()
        line.setData(list(xs), list(ys))

    def remove_series(self, name: str) -> None:
        line = self.lines.pop(name, None)
        self.colors.pop(name, None)
        if line is not None:
            self.getPlotItem().removeItem(line)
            self.legend.removeItem(line)
            self._legend.place()

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
        super().__init__(parent, background=chart_colors()[0])
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        plot = self.getPlotItem()
        plot.showGrid(x=False, y=True, alpha=0.2)
        plot.setLabel("left", "share of values")
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setTextPen(pg.mkPen(*TEXT))
            plot.getAxis(axis).enableAutoSIPrefix(False)
        self._legend = LegendRow(plot)
        self.legend = self._legend.item
        self.bars: list[pg.BarGraphItem] = []
        self._labels: list[str] = []
        plot.vb.geometryChanged.connect(self._label_ticks)

    def set_bins(self, labels: list[str], reference: list[float], live: list[float]) -> None:
        plot = self.getPlotItem()
        for bar in self.bars:
            plot.removeItem(bar)
            self.legend.removeItem(bar)
        self.bars = []
        ref_total, live_total = sum(reference) or 1.0, sum(live) or 1.0
        xs = list(range(len(labels)))
        for offset, name, counts, total, color in (
                (-0.2, "reference", reference, ref_total, PREVIOUS),
                (0.2, "live", live, live_total, PREFERRED["live"])):
            bar = pg.BarGraphItem(x=[x + offset for x in xs], height=[c / total for c in counts],
                                  width=0.38, brush=pg.mkBrush(*color), pen=pg.mkPen(None))
            plot.addItem(bar)
            self.legend.addItem(bar, name)
            self.bars.append(bar)
        self._legend.place()
        self._labels = labels
        self._label_ticks()
        plot.setXRange(-0.7, max(0.7, len(labels) - 0.3), padding=0)

    def _label_ticks(self) -> None:
        """Label every bin the width allows, else every second, third...: labels never overlap."""
        axis = self.getPlotItem().getAxis("bottom")
        if not self._labels:
            axis.setTicks([[]])
            return
        metrics = QFontMetricsF(axis.font())
        widest = max(metrics.horizontalAdvance(label) for label in self._labels) + 8
        per_bin = self.getPlotItem().vb.width() / max(len(self._labels), 1)
        step = max(1, math.ceil(widest / per_bin)) if per_bin > 0 else 1
        axis.setTicks([[(x, label) for x, label in enumerate(self._labels)][::step]])
