"""`slipway monitor`: a served model's metrics and drift in the terminal.

    slipway monitor URL [--reference PROFILE.json] [--window 60s] [--once] [--json]

Without `--once` it redraws a table every second until Ctrl-C; with `--once` it takes two scrapes a
second apart and prints one snapshot (with `--json`, the rates, quantiles and drift per feature as
JSON). Drift in a one-off snapshot covers everything the server counted since it started.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from studio.cli.common import add_api_key_option, api_key, seconds
from studio.core.errors import ExitStatus
from studio.core.units import figure

ONCE_GAP_S = 1.0
REFRESH_S = 1.0


COMMANDS = ("monitor",)


def add_commands(commands: argparse._SubParsersAction) -> None:
    monitor = commands.add_parser("monitor", help="watch a served model's metrics and drift")
    monitor.add_argument("url", help="the server's base URL (its /metrics is read)")
    monitor.add_argument("--reference", metavar="PROFILE.json",
                         help="a reference profile (default: the server's own, else the first "
                              "--baseline-rows requests)")
    monitor.add_argument("--window", type=seconds, default=60.0, metavar="TIME",
                         help="the sliding window for rates, quantiles and drift (default 60s)")
    monitor.add_argument("--baseline-rows", type=int, default=500, metavar="N",
                         help="requests taken as the baseline when there is no reference data")
    monitor.add_argument("--once", action="store_true", help="print one snapshot and exit")
    monitor.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    add_api_key_option(monitor)
    monitor.set_defaults(run=run_monitor)


def _monitor(args: argparse.Namespace):
    from studio.core.monitor.monitor import Monitor
    from studio.core.monitor.reference import read_profile

    reference = read_profile(args.reference) if args.reference else None
    return Monitor(args.url, reference=reference, baseline_rows=args.baseline_rows,
                   api_key=api_key(args))


def render(summary: dict[str, Any]) -> str:
    """The snapshot as the terminal shows it."""
    figures = summary["figures"]
    lines = [f"{summary['url']}  (window {summary['window_s']:g} s)"]
    if summary["status"]:
        lines.append(f"  no answer: {summary['status']}")
    rate = figures.get("request_rate") or 0.0
    p50, p95, p99 = (figure(figures.get(f"p{q}_ms"), ".2f", " ms") for q in (50, 95, 99))
    inflight = figures.get("inflight") or 0
    lines.append(f"  {rate:,.1f} req/s   errors {(figures.get('error_ratio') or 0):.1%}   "
                 f"p50 {p50}   p95 {p95}   p99 {p99}   in flight {inflight:.0f}")
    cpu, memory = figures.get("cpu_cores"), figures.get("memory_bytes")
    lines.append(f"  CPU {cpu:.2f} cores" if cpu is not None else "  CPU –")
    if memory is not None:
        lines[-1] += f"   memory {memory / 1e6:,.0f} MB"
    if summary["drift_note"]:
        lines.append(f"  {summary['drift_note']}")
    elif summary["drift"]:
        lines.append(f"  drift against {summary['baseline']}:")
        lines.append(f"    {'feature':<28} {'PSI':>7} {'JS':>7} {'KS':>7} {'chi2 p':>8} "
                     f"{'live n':>8}  level")
        for row in summary["drift"]:
            cells = [figure(row.get(k)) for k in ("psi", "js", "ks", "chi2_p")]
            lines.append(f"    {row['feature'][:28]:<28} {cells[0]:>7} {cells[1]:>7} "
                         f"{cells[2]:>7} {cells[3]:>8} {row['live_count']:>8,.0f}  {row['level']}")
    return "\n".join(lines)


def run_monitor(args: argparse.Namespace) -> int:
    monitor = _monitor(args)
    if args.once:
        first = monitor.poll()
        if first.scrape is None:
            from studio.core.monitor.scrape import MetricsError

            raise MetricsError(first.error or f"{monitor.metrics_url} did not answer.")
        time.sleep(ONCE_GAP_S)
        monitor.poll()
        summary = monitor.summary(args.window, since_start=True)
        print(json.dumps(summary, indent=2) if args.json else render(summary))
        return ExitStatus.OK
    interactive = sys.stdout.isatty() and not args.json
    try:
        while True:
            monitor.poll()
            summary = monitor.summary(args.window)
            if args.json:
                print(json.dumps(summary), flush=True)
            else:
                print(("\033[H\033[J" if interactive else "") + render(summary), flush=True)
            time.sleep(REFRESH_S)
    except KeyboardInterrupt:
        return ExitStatus.OK
