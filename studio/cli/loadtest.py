"""`slipway load` and `slipway sweep`: load tests from the terminal.

    slipway load URL [--connections N] [--rate R [--poisson]] (--duration 10s | --requests N)
    slipway sweep URL --slo-p99 50ms

`--connections` is the closed loop's workers, or the connections an open loop (`--rate`) sends
on; there is one flag for both. The bodies are rows like the server's reference data when it has
some (`--random` for random valid rows from the schema), else random rows. The test runs in the
load tester's own process, as the app's does. Progress goes to stderr once a second; `--json`
prints the report on stdout; `--report` writes it as .html, .json or .csv. Exit status 1 when any
request failed (load) or no rate met the objective (sweep).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from studio.cli.common import add_api_key_option, api_key, milliseconds, seconds
from studio.core.errors import ExitStatus
from studio.core.units import figure

if TYPE_CHECKING:  # the load tester's imports are paid only by the commands that run it
    from studio.core.loadtest.plan import LoadPlan
    from studio.core.loadtest.results import Snapshot
    from studio.core.loadtest.sweep import SweepStep

COMMANDS = ("load", "sweep")


class _UseConnections(argparse.Action):
    """A flag that is gone: one line saying which to use instead."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.exit(ExitStatus.USAGE, f"slipway: error: {option_string} is gone: use "
                                      "--connections N (the closed loop's workers, or the open "
                                      "loop's connections)\n")


def add_commands(commands: argparse._SubParsersAction) -> None:
    load = commands.add_parser("load", help="load test a served model")
    _target_options(load)
    load.add_argument("--connections", type=int, default=16, metavar="N",
                      help="the closed loop's N workers, each waiting for its answer, or the "
                           "connections the open loop sends on (default 16)")
    load.add_argument("--concurrency", action=_UseConnections, nargs="?", help=argparse.SUPPRESS)
    load.add_argument("--rate", type=float, metavar="R",
                      help="open loop: R requests per second whatever the server does")
    load.add_argument("--poisson", action="store_true",
                      help="open loop with Poisson (random) arrivals instead of evenly spaced")
    length = load.add_mutually_exclusive_group()
    length.add_argument("--duration", type=seconds, metavar="TIME",
                        help="how long to measure, e.g. 10s (default 10s)")
    length.add_argument("--requests", type=int, metavar="N", help="stop after N requests")
    load.add_argument("--warmup", type=seconds, default=0.0, metavar="TIME",
                      help="load sent before measuring, e.g. 1s (default none)")
    load.add_argument("--report", metavar="FILE", help="write the report: .html, .json or .csv")
    load.set_defaults(run=run_load)

    sweep = commands.add_parser("sweep", help="find the highest rate that meets a p99 objective")
    _target_options(sweep)
    sweep.add_argument("--slo-p99", type=milliseconds, required=True, metavar="TIME",
                       help="the p99 latency objective, e.g. 50ms")
    sweep.add_argument("--start-rate", type=float, metavar="R",
                       help="first rate (default: a quarter of a quick closed-loop estimate)")
    sweep.add_argument("--step", type=seconds, default=3.0, metavar="TIME",
                       help="how long each rate runs (default 3s)")
    sweep.add_argument("--connections", type=int, default=64, metavar="N",
                       help="connections to send on (default 64)")
    sweep.add_argument("--report", metavar="FILE", help="write the sweep: .html or .json")
    sweep.set_defaults(run=run_sweep)


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--route", default="/predict", help="the route to load (default /predict)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--payload", metavar="FILE",
                        help="a JSON body to send (or JSON Lines, one body per line, in turn)")
    source.add_argument("--from-reference", metavar="DATA",
                        help="send rows of this CSV, Parquet or .npy file")
    source.add_argument("--random", action="store_true",
                        help="send random valid rows from the schema (default: rows like the "
                             "server's reference data, when it has some)")
    parser.add_argument("--drift", action="append", default=[], metavar="FEATURE=+2sd",
                        help="shift or scale a feature: +2sd, -0.5, *1.5 (repeatable)")
    parser.add_argument("--timeout", type=seconds, default=5.0, metavar="TIME",
                        help="per-request timeout (default 5s)")
    add_api_key_option(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _prepared(args: argparse.Namespace, plan: LoadPlan) -> LoadPlan:
    """`plan` with its bodies and API key, through the same core function the Load page uses."""
    from studio.core.loadtest.payloads import parse_drift
    from studio.core.loadtest.prepare import PayloadChoice, prepare

    drifts = tuple(parse_drift(text) for text in args.drift)
    if args.payload is not None:
        payload = PayloadChoice("file", args.payload, drifts)
    elif args.from_reference is not None:
        payload = PayloadChoice("reference", args.from_reference, drifts)
    else:
        payload = PayloadChoice("random" if args.random else "default", None, drifts)
    return prepare(plan, payload, api_key=api_key(args))


def _progress_line(snapshot: Snapshot) -> str:
    """The last 250 ms window's throughput; percentiles over the run so far."""
    overall = snapshot.overall
    return (f"{snapshot.elapsed_s:6.1f} s  {snapshot.throughput:9,.0f} req/s  "
            f"p50 {figure(overall.p50_ms, '.2f', ' ms'):>10}  "
            f"p99 {figure(overall.p99_ms, '.2f', ' ms'):>11}  "
            f"errors {snapshot.errors:,}  (percentiles over the run so far)")


class _EverySecond:
    """Prints a snapshot line at most once a second (snapshots come four times a second)."""

    def __init__(self) -> None:
        self.next_at = 1.0

    def __call__(self, snapshot: Snapshot) -> None:
        if snapshot.warming_up or snapshot.elapsed_s < self.next_at:
            return
        self.next_at = snapshot.elapsed_s + 1.0
        print(_progress_line(snapshot), file=sys.stderr, flush=True)


def _cancel_on_interrupt(progress) -> None:
    """Ctrl-C ends the test early and still reports what was measured."""
    import signal

    signal.signal(signal.SIGINT, lambda *_: progress.cancel())


def run_load(args: argparse.Namespace) -> int:
    from studio.core.loadtest import report as loadreport
    from studio.core.loadtest.engine import run
    from studio.core.loadtest.plan import LoadPlan, LoadTestError
    from studio.core.tasks import Progress

    if args.poisson and args.rate is None:
        raise LoadTestError("--poisson goes with --rate (the open loop).")
    _check_report_path(args.report, sweep=False)
    plan = _prepared(args, LoadPlan(
        url=args.url, route=args.route, timeout_s=args.timeout,
        mode="open" if args.rate is not None else "closed", rate=args.rate,
        arrival="poisson" if args.poisson else "constant", connections=args.connections,
        duration_s=None if args.requests is not None else (
            args.duration if args.duration is not None else 10.0),
        requests=args.requests, warmup_s=args.warmup))
    print(f"Loading {plan.url}: {plan.describe()}. Ctrl-C stops early.", file=sys.stderr)
    progress = Progress(on_partial=_EverySecond())
    _cancel_on_interrupt(progress)
    report = run(plan, progress)
    if args.report:
        _write(report, args.report)
    if args.json:
        print(loadreport.to_json(report))
    else:
        for label, text in loadreport.about_rows(report) + loadreport.summary_rows(report):
            print(f"{label:>24}  {text}")
        for kind, count in report.errors_by_kind.items():
            sample = report.error_samples.get(kind, "")
            print(f"{'error':>24}  {count:,} × {kind}" + (f": {sample[:120]}" if sample else ""))
    if report.errors:
        print(f"slipway: error: {report.errors:,} of {report.completed + report.errors:,} requests "
              "failed.", file=sys.stderr)
        return ExitStatus.FAILED
    return ExitStatus.OK


def _step_line(step: SweepStep) -> str:
    verdict = "met" if step.met else f"missed: {step.reason}"
    return (f"{step.rate:9,.0f} req/s offered  {step.throughput:9,.0f} served  "
            f"p50 {figure(step.p50_ms, '.2f', ' ms'):>10}  "
            f"p99 {figure(step.p99_ms, '.2f', ' ms'):>11}  {verdict}")


def run_sweep(args: argparse.Namespace) -> int:
    from studio.core.loadtest import report as loadreport
    from studio.core.loadtest.plan import LoadPlan, LoadTestError
    from studio.core.loadtest.sweep import SweepStep, sweep
    from studio.core.tasks import Progress

    if not args.slo_p99 > 0:
        raise LoadTestError("The latency objective must be positive, e.g. --slo-p99 50ms.")
    _check_report_path(args.report, sweep=True)
    plan = _prepared(args, LoadPlan(url=args.url, route=args.route, timeout_s=args.timeout,
                                    connections=args.connections))
    print(f"Sweeping {plan.url}{plan.route} for p99 ≤ {args.slo_p99:g} ms "
          f"({plan.connections} connections, {args.step:g} s a step). Ctrl-C stops early.",
          file=sys.stderr)
    progress = Progress(on_partial=lambda part: print(_step_line(part), file=sys.stderr,
                                                      flush=True)
                        if isinstance(part, SweepStep) else None)
    _cancel_on_interrupt(progress)
    report = sweep(plan, args.slo_p99, start_rate=args.start_rate, step_s=args.step,
                   progress=progress)
    if args.report:
        _write(report, args.report)
    if args.json:
        print(loadreport.to_json(report))
    elif report.knee_rate is not None:
        print(f"Highest rate meeting p99 ≤ {args.slo_p99:g} ms: {report.knee_rate:,.0f} req/s.")
    if report.knee_rate is None:
        print(f"slipway: error: no rate met p99 ≤ {args.slo_p99:g} ms without errors.",
              file=sys.stderr)
        return ExitStatus.FAILED
    return ExitStatus.OK


def _check_report_path(path: str | None, sweep: bool) -> None:
    """Refuse a report file of an unknown kind before the test runs, not after."""
    from studio.core.loadtest.plan import LoadTestError
    from studio.core.loadtest.report import report_suffixes

    suffixes = report_suffixes(sweep)
    if path is not None and Path(path).suffix.lower() not in suffixes:
        raise LoadTestError(f"Cannot write a report as '{Path(path).name}'.",
                            f"Name it {' or '.join(suffixes)}.")


def _write(report, path: str) -> None:
    from studio.core.loadtest import report as loadreport
    from studio.core.loadtest.plan import LoadTestError

    try:
        written = loadreport.save(report, path)
    except ValueError as exc:  # a disk error is a WriteError of its own
        raise LoadTestError(f"Cannot write the report to {path}: {exc}") from exc
    print(f"Report written to {written}.", file=sys.stderr)
