"""`slipway monitor`: a served model's metrics and drift in the terminal.

    slipway monitor URL [--reference PROFILE.json | DATA] [--window 60s] [--once] [--json]
                        [--interval 1s]

Every figure and the drift are computed over one span, and the output names it. With `--once` it
prints one snapshot: without `--window`, of everything the server counted since it started
("since the server started (N requests)"); with `--window T`, of the traffic over the next T (it
waits that long). Without `--once` it reads /metrics every `--interval` and shows the last
`--window` (60 s unless given): redrawn in place on a terminal; piped into a file or another
program, printed again only when what the server served changed (with `--json`, one JSON line per
reading). Ctrl-C ends it.

A server bundled without reference data has a live baseline (its first requests), which cannot
show drift present from the start: the output says so, and `--reference DATA` gives the rows to
compare with (a CSV, Parquet or .npy file read against the server's schema, binned on its own
bins); `--reference PROFILE.json` gives a profile as a server answers at GET /reference.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from studio.cli.common import add_api_key_option, api_key, seconds
from studio.core.errors import ExitStatus
from studio.core.units import figure

NOW_GAP_S = 1.0
"""`--once` reads twice this far apart, so the rate "now" is measured too."""
DEFAULT_WINDOW_S = 60.0
DEFAULT_INTERVAL_S = 1.0
DATA_HINT = "Give it with --reference DATA (the rows the model was trained on)."
ESC = "\033"

COMMANDS = ("monitor",)


def add_commands(commands: argparse._SubParsersAction) -> None:
    monitor = commands.add_parser("monitor", help="watch a served model's metrics and drift")
    monitor.add_argument("url", help="the server's base URL (its /metrics is read)")
    monitor.add_argument("--reference", metavar="FILE",
                         help="what drift is measured against: the rows the model was trained on "
                              "(CSV, Parquet or .npy, binned on the server's own bins) or a "
                              "reference profile (.json, as GET /reference answers). Default: "
                              "the server's own, else its first --baseline-rows requests")
    monitor.add_argument("--window", type=seconds, default=None, metavar="TIME",
                         help="the span of rates, quantiles and drift: the last TIME (default "
                              f"{DEFAULT_WINDOW_S:g}s); with --once, wait TIME and report it "
                              "(default with --once: since the server started)")
    monitor.add_argument("--interval", type=seconds, default=DEFAULT_INTERVAL_S, metavar="TIME",
                         help=f"how often /metrics is read (default {DEFAULT_INTERVAL_S:g}s)")
    monitor.add_argument("--baseline-rows", type=int, default=500, metavar="N",
                         help="requests taken as the baseline when there is no reference data")
    monitor.add_argument("--once", action="store_true", help="print one snapshot and exit")
    monitor.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    add_api_key_option(monitor)
    monitor.set_defaults(run=run_monitor)


def _reference_data(args: argparse.Namespace) -> str | None:
    """--reference when it names rows (a dataset) rather than a profile."""
    from studio.core.model.datasets import DATASET_SUFFIXES

    given = args.reference
    return given if given and Path(given).suffix.lower() in DATASET_SUFFIXES else None


def _monitor(args: argparse.Namespace):
    from studio.core.monitor.monitor import Monitor
    from studio.core.monitor.reference import read_profile

    profile = args.reference and not _reference_data(args)
    reference = read_profile(args.reference) if profile else None
    return Monitor(args.url, reference=reference, baseline_rows=args.baseline_rows,
                   api_key=api_key(args))


def _attach_data(monitor, path: str) -> None:
    """Reference data, read against the server's schema and bins (it must be answering)."""
    from studio.core.monitor.monitor import data_note

    profile = monitor.reference_from_data(path)
    monitor.use_reference(profile, data_note(path, profile))


def render(summary: dict[str, Any]) -> str:
    """The snapshot as the terminal shows it: every figure under the span it covers."""
    figures = summary["figures"]
    lines = [f"{summary['url']}  {summary['span']}"]
    if summary["status"]:
        lines.append(f"  no answer: {summary['status']}")
    lines.append(f"  now {figure(figures.get('request_rate_now'), ',.1f', ' req/s')}, "
                 f"{figures.get('inflight') or 0:.0f} in flight")
    if figures.get("requests"):
        p50, p95, p99 = (figure(figures.get(f"p{q}_ms"), ".2f", " ms") for q in (50, 95, 99))
        lines.append(f"  {figures['requests']:,.0f} requests, "
                     f"{figure(figures.get('request_rate'), ',.1f', ' req/s')}   "
                     f"errors {figure(figures.get('error_ratio'), '.1%')}   "
                     f"p50 {p50}   p95 {p95}   p99 {p99}   "
                     f"rows per batch {figure(figures.get('batch_mean'), '.1f')}")
    else:
        lines.append("  no requests")
    if "slipway_connections_closed_total" in summary["recognized"]:
        closed = summary.get("connections_closed") or {}
        reasons = ", ".join(f"{reason.replace('_', ' ')} {count:,.0f}"
                            for reason, count in sorted(closed.items()) if count)
        lines.append(f"  connections closed by the server: {sum(closed.values()):,.0f}"
                     + (f" ({reasons})" if reasons else ""))
    memory = figures.get("memory_bytes")
    lines.append(f"  CPU {figure(figures.get('cpu_cores'), '.2f', ' cores')}   memory "
                 f"{figure(memory / 1e6 if memory is not None else None, ',.0f', ' MB')}")
    # Why there is no table, or what the baseline cannot show, comes before any table: a short
    # terminal keeps it.
    if summary["drift_note"]:
        lines.append(f"  {summary['drift_note']}")
    if summary.get("baseline_caveat"):
        lines.append(f"  ! {summary['baseline_caveat']}")
    if summary.get("needs_reference_data"):
        lines.append(f"  {DATA_HINT}")
    if summary["drift"] and not summary["drift_note"]:
        lines.append(f"  drift against {summary['baseline']}:")
        lines.append(f"    {'feature':<28} {'PSI':>7} {'JS':>7} {'KS':>7} {'chi2 p':>8} "
                     f"{'live n':>8}  level")
        for row in summary["drift"]:
            cells = [figure(row.get(k)) for k in ("psi", "js", "ks", "chi2_p")]
            lines.append(f"    {row['feature'][:28]:<28} {cells[0]:>7} {cells[1]:>7} "
                         f"{cells[2]:>7} {cells[3]:>8} {row['live_count']:>8,.0f}  {row['level']}")
    return "\n".join(lines)


class InPlace:
    """A picture redrawn over itself on a terminal: the cursor goes back up to the first line last
    drawn and what follows is cleared, so the picture stays where it is and what was above it (the
    command that was typed) stays on screen. Lines are cut to the terminal's width and the picture
    to its height: a wrapped or scrolled-off line would not be where the cursor goes back to."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.height = 0
        """Lines drawn last time."""

    def draw(self, text: str) -> None:
        columns, rows = shutil.get_terminal_size()
        lines = [line[:columns - 1] for line in text.splitlines()][:max(rows - 1, 1)]
        up = f"{ESC}[{self.height}F" if self.height else ""  # to the start of the line N up
        self.stream.write(up + f"{ESC}[J" + "".join(line + "\n" for line in lines))
        self.stream.flush()
        self.height = len(lines)


def _what_changed(summary: dict[str, Any]) -> tuple:
    """What a reader of piped output needs a new table for: what the server served (counted over
    the span), its errors and closed connections, whether it answers, and the drift's verdicts.
    Not the span's growing length, nor CPU and memory wobbling while nothing is served."""
    figures = summary["figures"]
    return (summary["status"], figures.get("requests"), figures.get("error_ratio"),
            figures.get("connections_closed"), summary["baseline"], summary["drift_note"],
            tuple((row["feature"], row["level"], row["live_count"]) for row in summary["drift"]))


def run_monitor(args: argparse.Namespace) -> int:
    monitor = _monitor(args)
    if args.once:
        first = monitor.poll()
        if first.scrape is None:
            from studio.core.monitor.scrape import MetricsError

            raise MetricsError(first.error or f"{monitor.metrics_url} did not answer.")
        if _reference_data(args):
            _attach_data(monitor, _reference_data(args))
        if args.window is not None:
            print(f"Reading {monitor.metrics_url} again in {args.window:g} s, to report that "
                  "window…", file=sys.stderr, flush=True)
        time.sleep(args.window if args.window is not None else NOW_GAP_S)
        monitor.poll()
        if args.window is None:
            summary = monitor.summary(None, since_start=True)
        else:
            # Between the two readings, however long the first took: a window cut at exactly
            # `--window` would leave the first reading out.
            summary = monitor.summary(None) | {"window_s": args.window}
        print(json.dumps(summary, indent=2) if args.json else render(summary))
        return ExitStatus.OK
    window = args.window if args.window is not None else DEFAULT_WINDOW_S
    screen = InPlace(sys.stdout) if sys.stdout.isatty() and not args.json else None
    shown, data = None, _reference_data(args)
    try:
        while True:
            started = time.monotonic()
            if monitor.poll().scrape is not None and data:
                _attach_data(monitor, data)  # once the server answers: its bins are needed
                data = None
            summary = monitor.summary(window)
            if args.json:
                print(json.dumps(summary), flush=True)
            elif screen is not None:
                screen.draw(render(summary))
            elif _what_changed(summary) != shown:
                shown = _what_changed(summary)
                print(render(summary) + "\n", flush=True)
            # One reading per interval: the figures cannot change faster than the scrapes.
            time.sleep(max(args.interval - (time.monotonic() - started), 0.0))
    except KeyboardInterrupt:
        # Ctrl-C is how watching ends: the last picture stays on screen, the prompt below it.
        return ExitStatus.OK
