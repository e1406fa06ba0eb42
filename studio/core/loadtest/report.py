"""A finished load test as files: JSON (everything), a CSV timeline, and a self-contained HTML page.

The HTML report has no scripts and loads nothing: its charts are inline SVG, so it opens the same in
any browser, in a mail attachment, or archived beside a CI run.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from studio.core.files import write_text
from studio.core.loadtest.results import LoadReport, SweepReport
from studio.core.units import figure


def to_json(report: LoadReport | SweepReport) -> str:
    return json.dumps(report.to_dict(), indent=2, allow_nan=False)


TIMELINE_COLUMNS = ("elapsed_s", "throughput", "error_rate", "p50_ms", "p90_ms", "p95_ms",
                    "p99_ms", "max_ms", "sent", "completed", "errors", "inflight", "late_sends")


def timeline_csv(report: LoadReport) -> str:
    """One row per 250 ms snapshot; the percentiles are those of the interval."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(TIMELINE_COLUMNS)
    for s in report.timeline:
        writer.writerow([f"{s.elapsed_s:.3f}", f"{s.throughput:.1f}", f"{s.error_rate:.1f}",
                         *(figure(v, missing="") for v in (s.interval.p50_ms, s.interval.p90_ms,
                                              s.interval.p95_ms, s.interval.p99_ms,
                                              s.interval.max_ms)),
                         s.sent, s.completed, s.errors, s.inflight, s.late_sends])
    return out.getvalue()


def report_suffixes(sweep: bool = False) -> tuple[str, ...]:
    """The file kinds a report is written as (a sweep has no timeline, so no CSV)."""
    return (".html", ".htm", ".json") if sweep else (".html", ".htm", ".json", ".csv")


def save(report: LoadReport | SweepReport, path: str | Path) -> Path:
    """Write the report in the format the file name asks for: .json, .csv or .html."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in report_suffixes(isinstance(report, SweepReport)):
        raise ValueError(f"cannot write a report as '{suffix or path.name}': use "
                         + ", ".join(report_suffixes(isinstance(report, SweepReport))))
    if suffix == ".json":
        text = to_json(report)
    elif suffix == ".csv":
        text = timeline_csv(report)
    else:
        text = html_report(report) if isinstance(report, LoadReport) else sweep_html(report)
    return write_text(path, text)  # whole or not at all: a full disk keeps the previous one


# --- charts ----------------------------------------------------------------------------------------

OKABE_ITO = {"blue": "#0072B2", "vermillion": "#D55E00", "bluish green": "#009E73",
             "orange": "#E69F00", "reddish purple": "#CC79A7", "sky blue": "#56B4E9",
             "black": "#000000", "yellow": "#F0E442"}
"""Okabe and Ito's colour-blind-safe palette, the app's charts' too (ui/widgets/charts.py), in
the order series take them."""
SERIES_COLORS = tuple(OKABE_ITO.values())
PREFERRED = {"ok": "blue", "served": "blue", "p50": "blue", "latency": "blue",
             "errors": "vermillion", "p99": "vermillion", "p95": "orange", "offered": "black",
             "objective": "black"}
"""A series' usual colour, so that a name looks the same from chart to chart."""
REFERENCE_SERIES = ("offered", "objective")
"""Lines drawn as references to read the data against: dashed."""
FONT_PX = {"title": 13, "axis": 11}
"""The font sizes STYLE gives the charts' text classes."""
CHAR_EM = 0.62
"""A generous average glyph width of the sans-serif fonts, in ems: text is laid out with room."""


def text_width(text: str, css_class: str = "axis") -> float:
    """How wide `text` is drawn, at most, in pixels (no font metrics in a file without scripts)."""
    return len(text) * FONT_PX[css_class] * CHAR_EM


def series_colors(names: Sequence[str]) -> list[str]:
    """One colour per series, no two alike: its usual colour when free, else the next free one."""
    taken: list[str] = []
    for name in names:
        preferred = OKABE_ITO.get(PREFERRED.get(name, ""), "")
        free = [c for c in SERIES_COLORS if c not in taken]
        taken.append(preferred if preferred and preferred not in taken else free[0])
    return taken


def svg_chart(title: str, x_label: str, y_label: str,
              series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
              width: int = 640, height: int = 260, log_y: bool = False,
              x_ticks: Sequence[tuple[float, str]] | None = None) -> str:
    """A line chart as inline SVG: (name, xs, ys) per series; NaN values break a line.
    `x_ticks` gives (x, label) pairs for an axis that is not plain numbers. The legend is a row
    between the title and the plot, never over the data; margins are made wide enough for every
    label."""
    xs = [x for _, sx, _ in series for x in sx if math.isfinite(x)]
    ys = [y for _, _, sy in series for y in sy if math.isfinite(y) and (y > 0 or not log_y)]
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">'),
             f'<text x="8" y="16" class="title">{html.escape(title)}</text>']
    if not xs or not ys:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" '
                     'class="axis">no data</text></svg>')
        return "".join(parts)
    colors = series_colors([name for name, _, _ in series])
    legend, top = _legend([name for name, _, _ in series], colors, width)
    parts += legend
    x0, x1 = min(xs), max(xs)
    y0, y1 = (0.0, max(ys)) if not log_y else (min(ys), max(ys))
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 * 2 if y0 > 0 else 1.0
    y_ticks = [(tick, _tick_text(tick)) for tick in _ticks(y0, y1, log_y)]
    shown_x = [(tick, label) for tick, label in (
        x_ticks or [(t, _tick_text(t)) for t in _ticks(x0, x1, False)]) if x0 <= tick <= x1]
    # Room for the widest y tick label and the rotated axis name; for the last x label's half.
    left = 26 + max((text_width(label) for _, label in y_ticks), default=0) + 6
    right = max(12.0, max((text_width(label) / 2 for tick, label in shown_x if tick == x1),
                          default=0) + 4)
    bottom = 40
    plot_bottom = height - bottom

    def fy(y: float) -> float:
        if log_y:
            ratio = (math.log10(y) - math.log10(y0)) / (math.log10(y1) - math.log10(y0))
        else:
            ratio = (y - y0) / (y1 - y0)
        return top + (1 - ratio) * (plot_bottom - top)

    def fx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    parts.append(f'<line x1="{left:.1f}" y1="{plot_bottom}" x2="{width - right:.1f}" '
                 f'y2="{plot_bottom}" class="frame"/>')
    parts.append(f'<line x1="{left:.1f}" y1="{top}" x2="{left:.1f}" y2="{plot_bottom}" '
                 'class="frame"/>')
    for tick, label in y_ticks:
        y = fy(tick)
        parts.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{width - right:.1f}" y2="{y:.1f}" '
                     'class="grid"/>')
        parts.append(f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" '
                     f'class="axis">{html.escape(label)}</text>')
    for tick, label in shown_x:
        parts.append(f'<text x="{fx(tick):.1f}" y="{plot_bottom + 16}" text-anchor="middle" '
                     f'class="axis">{html.escape(label)}</text>')
    parts.append(f'<text x="{(left + width - right) / 2:.1f}" y="{height - 6}" '
                 f'text-anchor="middle" class="axis">{html.escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{(top + plot_bottom) / 2:.1f}" text-anchor="middle" '
                 f'class="axis" transform="rotate(-90 14 {(top + plot_bottom) / 2:.1f})">'
                 f'{html.escape(y_label)}</text>')
    for (name, sx, sy), color in zip(series, colors):
        dash = ' stroke-dasharray="6 4"' if name in REFERENCE_SERIES else ""
        for run in _runs(sx, sy, log_y):
            points = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in run)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" '
                         f'stroke-width="1.8"{dash}/>')
            if len(run) == 1:
                x, y = run[0]
                parts.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3" fill="{color}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _legend(names: Sequence[str], colors: Sequence[str], width: int) -> tuple[list[str], int]:
    """The legend's swatches and names in rows under the title, and where the plot may begin."""
    parts, x, row = [], 8.0, 0
    for name, color in zip(names, colors):
        item = 14 + text_width(name) + 14
        if x > 8 and x + item > width - 8:
            x, row = 8.0, row + 1
        y = 26 + 16 * row
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 14:.1f}" y="{y + 9}" class="axis">{html.escape(name)}</text>')
        x += item
    return parts, 26 + 16 * (row + 1) + 8


def _runs(xs: Sequence[float], ys: Sequence[float], log_y: bool) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, ys):
        if math.isfinite(x) and math.isfinite(y) and (y > 0 or not log_y):
            runs[-1].append((x, y))
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _ticks(low: float, high: float, log: bool) -> list[float]:
    if log:
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        steps = (1, 2, 5) if last - first <= 3 else (1,)
        ticks = [m * 10.0 ** e for e in range(first, last + 1) for m in steps]
        return [t for t in ticks if low <= t <= high] or [low, high]
    step = 10 ** math.floor(math.log10((high - low) / 4 or 1))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= 5:
            step *= factor
            break
    start = math.ceil(low / step) * step
    return [start + i * step for i in range(int((high - start) / step) + 1)]


def _tick_text(value: float) -> str:
    if value == 0:
        return "0"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}" if value >= 0.01 else f"{value:.1e}"


NINES_TICKS = [(0.0, "0%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%"),
               (5.0, "99.999%")]


def _nines(percentile: float) -> float:
    """The percentile axis of HdrHistogram's plots: 90% is 1, 99% is 2, 99.9% is 3, ..."""
    return min(5.0, -math.log10(max(1e-5, 1 - percentile / 100)))


# --- pages -----------------------------------------------------------------------------------------

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1000px; color: #111 }
h1 { font-size: 20px } h2 { font-size: 16px; margin-top: 28px }
table { border-collapse: collapse } td, th { padding: 3px 12px 3px 0; text-align: left }
td.n { text-align: right; font-variant-numeric: tabular-nums }
.title { font: 600 13px system-ui, sans-serif } .axis { font: 11px system-ui, sans-serif; fill: #444 }
.frame { stroke: #888 } .grid { stroke: #e5e7eb } .warn { color: #b45309 } .bad { color: #b91c1c }
.charts { display: flex; flex-wrap: wrap; gap: 8px }
"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body>{body}</body></html>")


def _ms(value: float | None) -> str:
    return figure(value, ",.2f", " ms")


def started_text(started_at: str) -> str:
    """'2026-05-20T17:00:00+00:00' as '2026-05-20 17:00:00 UTC'."""
    if not started_at:
        return "–"
    try:
        moment = datetime.fromisoformat(started_at)
    except ValueError:
        return started_at
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def about_rows(report: LoadReport | SweepReport) -> list[tuple[str, str]]:
    """What was tested, where, when and how: the first lines of every report."""
    return [("Model", report.model or "not asked: the bodies came from a file"),
            ("URL", report.url or "–"), ("Started", started_text(report.started_at)),
            ("Plan", report.plan)]


def summary_rows(report: LoadReport) -> list[tuple[str, str]]:
    """The headline figures, as label and text: the HTML report, the app and the command line show
    the same, each saying what it is computed over."""
    answers = report.latency.count
    rows = [("Throughput", f"{report.throughput:,.1f} req/s"
             + (f" of {report.offered_rate:,.0f} offered" if report.offered_rate else "")),
            ("Answers",
             f"{report.completed:,} ok, {report.errors:,} errors of {report.sent:,} sent"),
            ("Computed over", f"{answers:,} answers in the measured {report.duration_s:,.1f} s"
             + (" (cancelled)" if report.cancelled else "")),
            ("Latency p50 / p90 / p99", " / ".join(_ms(v) for v in (
                report.latency.p50_ms, report.latency.p90_ms, report.latency.p99_ms))),
            ("Latency p99.9 / max", " / ".join(_ms(v) for v in (
                report.latency.p999_ms, report.latency.max_ms))),
            ("Measured from", report.latency_from)]
    if report.mode == "open":
        rows.append(("Late sends", (f"{report.late_sends:,} (more than 10 ms behind schedule; "
                                    f"worst {report.max_send_lag_ms:,.1f} ms)")))
    elif report.corrected is not None:
        rows.append(("Delayed sends", (f"{report.delayed_sends:,} sends a steady client would "
                                       "have made while the server stalled a worker (kept it "
                                       f"waiting over {_ms(report.stall_threshold_ms)}, ten "
                                       "times the p99)")))
        rows.append(("Corrected p99 / max", " / ".join(
            _ms(v) for v in (report.corrected.p99_ms, report.corrected.max_ms))))
    rows.append(("Tester CPU", f"{report.client_cpu_percent:.0f}% of one core, in its own "
                               f"process (longest pause of its own: "
                               f"{report.tester_pause_ms:,.0f} ms)"))
    return rows


def _table(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                               for k, v in rows) + "</table>"


def html_report(report: LoadReport) -> str:
    times = [s.elapsed_s for s in report.timeline]
    charts = [
        svg_chart("Throughput per 250 ms window", "seconds", "req/s",
                  [("ok", times, [s.throughput for s in report.timeline]),
                   ("errors", times, [s.error_rate for s in report.timeline])]),
        svg_chart("Latency per 250 ms window", "seconds", "ms",
                  [(name, times, [getattr(s.interval, f"{name}_ms") for s in report.timeline])
                   for name in ("p50", "p95", "p99")]),
        svg_chart("Latency by percentile, whole run", "percentile", "ms",
                  [("latency", [_nines(p) for p, _ in report.distribution],
                    [v for _, v in report.distribution])], log_y=True, x_ticks=NINES_TICKS),
    ]
    errors = "".join(
        f"<tr><td>{html.escape(kind)}</td><td class=n>{count:,}</td>"
        f"<td>{html.escape(report.error_samples.get(kind, ''))}</td></tr>"
        for kind, count in report.errors_by_kind.items())
    status = " <span class=warn>(cancelled)</span>" if report.cancelled else ""
    title = f"Load test of {report.model}" if report.model else "Load test"
    body = (f"<h1>{html.escape(title)}{status}</h1>{_table(about_rows(report))}"
            f"<h2>Results</h2>{_table(summary_rows(report))}"
            f"<h2>Charts</h2><div class=charts>{''.join(charts)}</div>"
            + (f"<h2>Errors</h2><table><tr><th>Kind</th><th>Count</th><th>First answer</th></tr>"
               f"{errors}</table>" if errors else "<h2>Errors</h2><p>None.</p>"))
    return _page(f"Slipway {title.lower()}", body)


def sweep_html(report: SweepReport) -> str:
    rates = [s.rate for s in report.steps]
    chart = svg_chart("Latency against offered load", "offered req/s", "ms",
                      [("p50", rates, [s.p50_ms for s in report.steps]),
                       ("p99", rates, [s.p99_ms for s in report.steps]),
                       ("objective", rates, [report.slo_p99_ms] * len(rates))], log_y=True)
    served = svg_chart("Served against offered load", "offered req/s", "served req/s",
                       [("served", rates, [s.throughput for s in report.steps]),
                        ("offered", rates, rates)])
    rows = "".join(
        f"<tr><td class=n>{s.rate:,.0f}</td><td class=n>{s.throughput:,.0f}</td>"
        f"<td class=n>{_ms(s.p50_ms)}</td><td class=n>{_ms(s.p99_ms)}</td>"
        f"<td class=n>{s.errors:,}</td><td class={'' if s.met else 'bad'}>"
        f"{'met' if s.met else html.escape(s.reason)}</td></tr>" for s in report.steps)
    knee = (f"{report.knee_rate:,.0f} req/s" if report.knee_rate is not None
            else "none: the first step already broke the objective")
    title = f"Rate sweep of {report.model}" if report.model else "Rate sweep"
    body = (f"<h1>{html.escape(title)}</h1>{_table(about_rows(report))}"
            f"<p>Objective: p99 ≤ {report.slo_p99_ms:g} ms with no errors. "
            f"Highest rate that met it: <b>{knee}</b>. Closed-loop capacity estimate: "
            f"{report.capacity_estimate:,.0f} req/s.</p><div class=charts>{chart}{served}</div>"
            "<table><tr><th>Offered</th><th>Served</th><th>p50</th><th>p99</th><th>Errors</th>"
            f"<th>Verdict</th></tr>{rows}</table>")
    return _page(f"Slipway {title.lower()}", body)
