"""What the Compare page shows, one view per tab: the offline comparison, the live one and the
shadow's counters. Each view only draws what the core computed; the page runs the work.

A is drawn in blue and B in orange everywhere; a cell that shows B better is green, worse red, and
only where the interval (or the count) says so.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.units import figure, printable
from studio.core.versions.compare_live import LiveComparison, LiveOptions, LiveRound
from studio.core.versions.compare_offline import OfflineComparison
from studio.core.versions.compare_report import facts_rows, figure_cells, metric_cells
from studio.core.versions.compare_stats import MetricComparison
from studio.core.versions.shadow import ShadowCounters
from studio.ui.theme import chart_colors
from studio.ui.widgets.charts import TEXT, LegendRow
from studio.ui.widgets.page_parts import count_box, number_box

SIDE_COLORS = {"A": (37, 99, 235), "B": (217, 119, 6)}
BETTER = QColor(214, 240, 221)
WORSE = QColor(250, 218, 218)
SHADOW_POINTS = 300
"""Seconds of shadow history the latency chart keeps."""
MAX_FITTED_ROWS = 12
CHART_HEIGHT = 240
BAR_PX = 26
ROW_HEIGHT = 24


def table(headers: list[str], stretch: bool = False) -> QTableWidget:
    """A read-only table; `stretch` shares the width among the columns after the first (side by
    side columns that must fit), else each column fits its contents and the last takes the rest."""
    shown = QTableWidget(0, len(headers))
    shown.setHorizontalHeaderLabels(headers)
    shown.verticalHeader().setVisible(False)
    shown.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
    shown.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    header = shown.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch if stretch
                                else QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    if stretch:
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
    fill(shown, [])  # as short as an empty table needs, until there are rows
    return shown


def fill(shown: QTableWidget, rows: list[list[str]], colors: list[QColor | None] | None = None,
         headers: list[str] | None = None) -> None:
    """Replace the table's rows (and headers), and size it to show up to MAX_FITTED_ROWS rows."""
    if headers is not None:
        shown.setColumnCount(len(headers))
        shown.setHorizontalHeaderLabels(headers)
    shown.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            if colors and colors[r] is not None:
                item.setBackground(QBrush(colors[r]))
            shown.setItem(r, c, item)
    visible = range(min(len(rows), MAX_FITTED_ROWS))
    shown.setFixedHeight(shown.horizontalHeader().sizeHint().height() + 6
                         + sum(shown.rowHeight(r) for r in visible) + (0 if rows else 24))


def better_or_worse(metric: MetricComparison) -> QColor | None:
    """Green where the interval of B − A says B is better, red where it says B is worse."""
    if metric.low is None or metric.high is None:
        return None
    better = metric.low > 0 if metric.higher_is_better else metric.high < 0
    worse = metric.high < 0 if metric.higher_is_better else metric.low > 0
    return BETTER if better else WORSE if worse else None


def log_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """Ticks of a log axis at 1, 2 and 5 times a power of ten from `low` to `high` (positions in
    log10, as a log-mode axis places them): pyqtgraph's own label every minor step, which crowd."""
    ticks = []
    for power in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for step in (1, 2, 5):
            value = step * 10.0 ** power
            if low / 2 <= value <= high * 2:
                ticks.append((math.log10(value), f"{value:g}"))
    return ticks


def group(title: str, *widgets: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    for widget in widgets:
        layout.addWidget(widget)
    layout.addStretch(1)  # beside a taller neighbour, the contents stay at the top
    return box


def wrapped(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def plain_plot(chart: pg.PlotWidget, x_label: str, y_label: str) -> pg.PlotItem:
    """A chart without pyqtgraph's menu and buttons, its axes labelled in the page's text colour."""
    chart.setMenuEnabled(False)
    chart.hideButtons()
    plot = chart.getPlotItem()
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    for axis in ("left", "bottom"):
        plot.getAxis(axis).setTextPen(pg.mkPen(*TEXT))
        plot.getAxis(axis).enableAutoSIPrefix(False)
    return plot


class SidesChart(pg.PlotWidget):
    """Lines of side A (blue) and side B (orange), each side named once in the legend."""

    def __init__(self, title: str, x_label: str, y_label: str, parent: QWidget | None = None):
        super().__init__(parent, background=chart_colors()[0])
        plot = plain_plot(self, x_label, y_label)
        plot.setTitle(title, color=TEXT, size="10pt")
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.getViewBox().setLimits(yMin=0)  # latencies and shares are never negative
        self.legend_row = LegendRow(plot)
        self.legend = self.legend_row.item
        self.lines: dict[str, pg.PlotDataItem] = {}

    def set_line(self, key: str, side: str, xs, ys, *, dashed: bool = False) -> None:
        line = self.lines.get(key)
        if line is None:
            named = f"{side} named" not in self.lines
            pen = pg.mkPen(color=SIDE_COLORS[side], width=1.5 if dashed else 2,
                           style=Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine)
            line = self.lines[key] = self.plot([], [], pen=pen, connect="finite",
                                               name=side if named else None)
            if named:
                self.lines[f"{side} named"] = line
                self.legend_row.place()
        line.setData(list(xs), list(ys))

    def points(self, key: str) -> int:
        line = self.lines.get(key)
        return 0 if line is None or line.xData is None else len(line.xData)

    def clear_lines(self) -> None:
        for line in set(self.lines.values()):
            self.getPlotItem().removeItem(line)
        self.legend.clear()
        self.lines.clear()


class OperatorsChart(pg.PlotWidget):
    """The operator histogram of A and B side by side: a blue and an orange bar per operator, the
    most used on top."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, background=chart_colors()[0])
        self.setMouseEnabled(x=False, y=False)
        plot = plain_plot(self, "nodes", "")
        plot.showGrid(x=True, y=False, alpha=0.2)
        # Bottom right: the most used operators, the longest bars, are at the top.
        self.legend = plot.addLegend(offset=(-8, -8), labelTextColor=TEXT)
        self.bars: dict[str, pg.BarGraphItem] = {}

    def set_operators(self, operators: list[tuple[str, int, int]]) -> None:
        plot = self.getPlotItem()
        for bar in self.bars.values():
            plot.removeItem(bar)
        self.legend.clear()
        self.bars = {}
        rows = operators[::-1]  # the most used at the top
        self.setFixedHeight(max(120, 70 + BAR_PX * len(rows)))
        if not rows:
            return
        for side, offset, column in (("A", 0.2, 1), ("B", -0.2, 2)):
            bar = pg.BarGraphItem(x0=0, y=[i + offset for i in range(len(rows))], height=0.38,
                                  width=[row[column] for row in rows],
                                  brush=pg.mkBrush(*SIDE_COLORS[side]), pen=pg.mkPen(None))
            plot.addItem(bar)
            self.legend.addItem(bar, side)
            self.bars[side] = bar
        axis = plot.getAxis("left")
        axis.setTicks([[(i, name) for i, (name, _, _) in enumerate(rows)]])
        # Wide enough for the longest name: the axis drops a label that does not fit.
        axis.setWidth(QFontMetrics(axis.font()).horizontalAdvance(
            max((name for name, _, _ in rows), key=len)) + 16)
        plot.setYRange(-0.6, len(rows) - 0.4, padding=0)
        plot.setXRange(0, max(max(a, b) for _, a, b in rows) * 1.15, padding=0)


class OfflineView(QScrollArea):
    """The schema differences, label agreement, quality with intervals, each version's file in
    its column, the rows that disagree most and the operators side by side."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.facts = table(["", "A", "B", "B vs A"], stretch=True)
        self.schema_note = wrapped("Not compared yet.")
        self.schema = table(["part", "name", "change", "A", "B"])
        self.agreement = wrapped()
        self.confusion = table([], stretch=True)
        self.differences = wrapped()
        self.quality_note = wrapped("Give reference data and its target column to score both.")
        self.quality = table(["metric", "A", "B", "B − A", "interval"])
        self.mcnemar = wrapped()
        self.disagreeing = table(["row", "A", "B", "largest |B − A|", "features"])
        self.operators = table(["operator", "A", "B"])
        self.operators_chart = OperatorsChart()
        operators = QWidget()
        side_by_side = QHBoxLayout(operators)
        side_by_side.setContentsMargins(0, 0, 0, 0)
        side_by_side.addWidget(self.operators, 2, Qt.AlignmentFlag.AlignTop)
        side_by_side.addWidget(self.operators_chart, 3, Qt.AlignmentFlag.AlignTop)
        # What differs first (inputs, answers, quality), then the files in their columns.
        content = QWidget()
        grid = QGridLayout(content)
        grid.addWidget(group("Schema differences", self.schema_note, self.schema), 0, 0, 1, 2)
        grid.addWidget(group("Labels: A's down, B's across", self.agreement, self.confusion,
                             self.differences), 1, 0)
        grid.addWidget(group("Quality", self.quality_note, self.quality, self.mcnemar), 1, 1)
        grid.addWidget(group("Versions", self.facts), 2, 0, 1, 2)
        grid.addWidget(group("Rows that disagree most", self.disagreeing), 3, 0, 1, 2)
        grid.addWidget(group("Operators, side by side", operators), 4, 0, 1, 2)
        # The quality table has the wider cells (intervals); a confusion matrix fits in less.
        grid.setColumnStretch(0, 2)
        grid.setColumnStretch(1, 3)
        grid.setRowStretch(5, 1)
        self.setWidgetResizable(True)
        self.setWidget(content)

    def show_comparison(self, comparison: OfflineComparison) -> None:
        fill(self.facts, facts_rows(comparison)[1:])
        changes = comparison.schema_changes
        self.schema_note.setText("The same inputs, outputs, features and classes." if not changes
                                 else f"{len(changes)} difference{'s' * (len(changes) > 1)}:")
        self.schema.setVisible(bool(changes))
        fill(self.schema, [[c.part, printable(c.name), c.change, c.a or "", c.b or ""]
                           for c in changes])
        fill(self.operators, [[op, str(a), str(b)] for op, a, b in comparison.operators],
             [None if a == b else WORSE for _, a, b in comparison.operators])
        self.operators_chart.set_operators(comparison.operators)
        self._show_labels(comparison)
        self._show_quality(comparison)
        fill(self.disagreeing, [
            [str(row.row), printable(row.a), printable(row.b), figure(row.difference, ".3g"),
             ", ".join(f"{printable(k)}={printable(v)}" for k, v in row.features.items())]
            for row in comparison.disagreeing],
            [WORSE if row.labels_differ else None for row in comparison.disagreeing])

    def _show_labels(self, comparison: OfflineComparison) -> None:
        labels = comparison.labels
        if comparison.predictions_note:
            self.agreement.setText(comparison.predictions_note)
        elif labels is None:
            self.agreement.setText(f"No labels to compare; rows: {comparison.rows_from}.")
        else:
            self.agreement.setText(f"Labels agree on {labels.agreed} of {labels.rows} rows "
                                   f"({labels.agreement:.2%}); rows: {comparison.rows_from}.")
        classes = [printable(c) for c in labels.classes] if labels else []
        counts = labels.confusion if labels else []
        fill(self.confusion, [[name, *map(str, row)] for name, row in zip(classes, counts)],
             headers=["A \\ B", *classes])
        for r, row in enumerate(counts):
            for c, count in enumerate(row):
                color = BETTER if r == c else WORSE if count else None
                if color is not None:
                    self.confusion.item(r, c + 1).setBackground(QBrush(color))
        self.confusion.setVisible(bool(classes))
        self.differences.setText("\n".join(
            f"{o.name}: max |B − A| {o.max_abs_diff:.3g}, mean {o.mean_abs_diff:.3g}"
            + (f" ({o.note})" if o.note else "") if o.max_abs_diff is not None
            else f"{o.name}: {o.note}" for o in comparison.outputs))

    def _show_quality(self, comparison: OfflineComparison) -> None:
        quality = comparison.quality
        if quality is None:
            self.quality_note.setText(comparison.quality_note or "Give reference data and its "
                                      "target column to score both.")
            fill(self.quality, [])
            self.mcnemar.clear()
            return
        self.quality_note.setText(
            f"Against '{printable(quality.target)}' on {quality.rows} rows; B − A with its "
            f"{quality.confidence:.0%} paired bootstrap interval ({quality.resamples} resamples, "
            f"seed {quality.seed}).")
        fill(self.quality, [metric_cells(m) for m in quality.metrics],
             [better_or_worse(m) for m in quality.metrics])
        test = quality.mcnemar
        self.mcnemar.setText("" if test is None else
                             f"McNemar ({test.method}): only A right on {test.only_a_right} "
                             f"rows, only B right on {test.only_b_right}; p = {test.p_value:.4g}.")


class LiveView(QWidget):
    """The live comparison's options, every round's latency distribution overlaid, the median per
    round, and the table and verdict."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rounds = count_box(1, 50, LiveOptions.rounds)
        self.round_s = number_box(0.5, 600, LiveOptions.round_s, suffix=" s")
        self.connections = count_box(1, 512, LiveOptions.connections)
        self.route = QComboBox()
        self.route.addItems(["/predict", "/predict/batch", "/v2/models/{name}/infer"])
        self.run_button = QPushButton("Compare live")
        row = QHBoxLayout()
        for label, widget in (("Rounds", self.rounds), ("each", self.round_s),
                              ("Connections", self.connections), ("Route", self.route)):
            row.addWidget(QLabel(label))
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(self.run_button)
        self.distribution = SidesChart("Latency distribution, every round",
                                       "latency (ms, log scale)", "% answered within")
        # A tail ten times the median would squeeze the bulk of the answers into one edge.
        self.distribution.getPlotItem().setLogMode(x=True, y=False)
        self.per_round = SidesChart("Median latency per round", "round", "p50 (ms)")
        charts = QHBoxLayout()
        for chart in (self.distribution, self.per_round):
            chart.setFixedHeight(CHART_HEIGHT)
            charts.addWidget(chart)
        self.verdict = wrapped("Serve both and load them in turn with the same requests.")
        self.verdict.setObjectName("sectionTitle")
        self.figures = table(["", "A", "B", "B / A per round"], stretch=True)
        self.servers = table(["", "version", "requests", "p50 (ms)", "p99 (ms)", "CPU (s)"],
                             stretch=True)
        self.answers = wrapped()
        content = QWidget()
        column = QVBoxLayout(content)
        column.addWidget(self.verdict)
        column.addLayout(charts)
        column.addWidget(group("Median over rounds (range)", self.figures))
        column.addWidget(group("As each server counted itself", self.servers, self.answers))
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(scroll, 1)
        self.measured: list[LiveRound] = []

    def options(self, reference: str | None, runtime: str) -> LiveOptions:
        return LiveOptions(rounds=self.rounds.value(), round_s=self.round_s.value(),
                           connections=self.connections.value(), route=self.route.currentText(),
                           runtime=runtime, reference=reference)

    def clear(self) -> None:
        self.measured = []
        self.distribution.clear_lines()
        self.per_round.clear_lines()

    def add_round(self, measured: LiveRound) -> None:
        self.measured.append(measured)
        self.distribution.set_line(f"{measured.side} {measured.round}", measured.side,
                                   [ms for _, ms in measured.distribution],
                                   [percentile for percentile, _ in measured.distribution])
        mine = [r for r in self.measured if r.side == measured.side]
        self.per_round.set_line(measured.side, measured.side, [r.round for r in mine],
                                [r.p50_ms for r in mine])
        self.per_round.getPlotItem().getAxis("bottom").setTicks(
            [[(n, str(n)) for n in sorted({r.round for r in self.measured})], []])
        latencies = [ms for r in self.measured for _, ms in r.distribution if ms > 0]
        if latencies:
            self.distribution.getPlotItem().getAxis("bottom").setTicks(
                [log_ticks(min(latencies), max(latencies)), []])

    def show_comparison(self, comparison: LiveComparison) -> None:
        self.clear()
        for measured in comparison.rounds:
            self.add_round(measured)
        self.verdict.setText(comparison.verdict)
        rows = [figure_cells(row) for row in comparison.latency]
        if comparison.throughput is not None:
            rows.append(figure_cells(comparison.throughput))
        fill(self.figures, rows)
        fill(self.servers, [[s.side, s.version or "–", figure(s.requests, ",.0f"),
                             figure(s.p50_ms, ".2f"), figure(s.p99_ms, ".2f"),
                             figure(s.cpu_seconds, ".1f")] for s in comparison.servers])
        answers = comparison.answers
        self.answers.setText("" if answers is None or not answers.examples else
                             "Answers that differ:\n" + "\n".join(printable(e)
                                                                  for e in answers.examples))


class ShadowView(QWidget):
    """The proxy's controls and URL, its counters, A's and B's latency per second, and the latest
    disagreements."""

    COUNTERS = (("answered", "Answered by A"), ("mirrored", "Mirrored to B"), ("agreed", "Agreed"),
                ("disagreed", "Disagreed"), ("b_errors", "B errors"),
                ("skipped", "Not mirrored (B behind)"))

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.port = count_box(0, 65535)
        self.port.setSpecialValueText("any free port")
        self.run_button = QPushButton("Start shadow")
        self.where = wrapped("Not running.")
        self.send_button = QPushButton("Send Probe and Load here")
        self.send_button.setToolTip("Point the Probe and Load pages at the proxy: their requests "
                                    "are answered by A and mirrored to B")
        self.send_button.setEnabled(False)
        row = QHBoxLayout()
        for widget in (QLabel("Port"), self.port, self.run_button):
            row.addWidget(widget)
        row.addWidget(self.where, 1)
        row.addWidget(self.send_button)
        self.values: dict[str, QLabel] = {}
        counters = QGridLayout()
        for index, (key, title) in enumerate(self.COUNTERS):
            value = QLabel("0")
            value.setObjectName("modelTitle")
            self.values[key] = value
            counters.addWidget(QLabel(title), 0, index)
            counters.addWidget(value, 1, index)
        self.detail = wrapped()
        self.chart = SidesChart("Latency as the proxy sees it, each second", "seconds",
                                "ms (solid p50, dashed p99)")
        self.examples = QPlainTextEdit(readOnly=True,
                                       placeholderText="The latest disagreements appear here.")
        split = QSplitter(Qt.Orientation.Horizontal)
        for widget in (self.chart, self.examples):
            split.addWidget(widget)
        split.setSizes([620, 380])
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(counters)
        layout.addWidget(self.detail)
        layout.addWidget(split, 1)
        self.history: list[ShadowCounters] = []
        self.points: list[tuple[float, dict[tuple[str, float], float]]] = []

    def clear(self) -> None:
        self.history, self.points = [], []
        self.chart.clear_lines()
        self.examples.clear()

    def show_counters(self, counters: ShadowCounters) -> None:
        previous = self.history[-1] if self.history else None
        self.history = (self.history + [counters])[-SHADOW_POINTS:]
        for key, label in self.values.items():
            label.setText(f"{getattr(counters, key):,}")
        kinds = ", ".join(f"{n} by {k}" for k, n in sorted(counters.disagreed_by.items()))
        errors = ", ".join(f"{n} {k}" for k, n in sorted(counters.b_errors_by.items()))
        self.detail.setText(
            f"Disagreed on {figure(counters.disagreement_rate * 100, '.2f', '%')} of the answers "
            "compared" + (f" ({kinds})" if kinds else "") + (f"; B errors: {errors}" if errors
                                                               else "")
            + f"; {counters.in_flight} in flight to B; since the proxy started "
              f"{counters.elapsed_s:.0f} s ago.")
        if previous is not None:
            self._chart(previous, counters)
        self.examples.setPlainText("\n".join(printable(e) for e in counters.examples))

    def _chart(self, previous: ShadowCounters, counters: ShadowCounters) -> None:
        """Each side's p50 and p99 over the last second (NaN, a gap, when nothing was answered)."""
        self.points = (self.points + [(counters.elapsed_s, {
            (side, q): counters.quantile_ms(side.lower(), q, since=previous)
            for side in ("A", "B") for q in (0.5, 0.99)})])[-SHADOW_POINTS:]
        xs = [t for t, _ in self.points]
        for side in ("A", "B"):
            for q, dashed in ((0.5, False), (0.99, True)):
                self.chart.set_line(f"{side} p{q * 100:g}", side, xs,
                                    [values[(side, q)] for _, values in self.points],
                                    dashed=dashed)
