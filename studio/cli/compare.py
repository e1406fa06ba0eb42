"""`slipway compare` and `slipway shadow`: two versions of a model side by side, without a screen.

    slipway compare A B [--reference DATA] [--target COLUMN] [--live] [--json] [--trust]
    slipway shadow A B [--port P]

A and B are model files or folders, or registered versions (`name:3`, `name@champion`).
Comparing is not judging: `compare` exits 0 whenever the versions were compared, however much they
differ, and a failure to compare (a model that does not load, a target column that is not there)
exits with that error's status. `shadow` runs until Ctrl-C, printing its counters every second,
and exits 0 when stopped.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from studio.cli.common import add_trust_option, log_line, seconds
from studio.core.errors import ExitStatus

COMMANDS = ("compare", "shadow")


def add_commands(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser("compare", help="compare two versions of a model side by side")
    _add_versions(compare)
    compare.add_argument("--reference", metavar="DATA",
                         help="rows to compare on: CSV, Parquet or .npy (default: sampled from "
                              "the schema)")
    compare.add_argument("--target", metavar="COLUMN",
                         help="the column of DATA with the true answers: scores both, with B − A "
                              "and its bootstrap interval")
    compare.add_argument("--rows", type=int, default=500, metavar="N",
                         help="rows sampled from the schema when there is no DATA (default 500)")
    compare.add_argument("--seed", type=int, default=0,
                         help="seed of the sampled rows and the bootstrap (default 0)")
    compare.add_argument("--resamples", type=int, default=2000, metavar="N",
                         help="bootstrap resamples (default 2000)")
    compare.add_argument("--live", action="store_true",
                         help="also serve both and load them with the same requests in "
                              "interleaved rounds")
    compare.add_argument("--rounds", type=int, default=5, metavar="N",
                         help="live: rounds of A then B (default 5)")
    compare.add_argument("--round-time", type=seconds, default=3.0, metavar="TIME",
                         help="live: how long each version is loaded per round (default 3s)")
    compare.add_argument("--connections", type=int, default=8, metavar="N",
                         help="live: concurrent connections (default 8)")
    compare.add_argument("--route", default="/predict",
                         help="live: /predict, /predict/batch or /v2/models/{name}/infer")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.set_defaults(run=run_compare)

    shadow = commands.add_parser(
        "shadow", help="answer from A and mirror every request to B, counting differences")
    _add_versions(shadow)
    shadow.add_argument("--port", type=int,
                        help="the proxy's port on 127.0.0.1 (default: a free one)")
    shadow.add_argument("--json", action="store_true",
                        help="print the counters as a JSON line each second")
    shadow.set_defaults(run=run_shadow)


def _add_versions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="the version in use: a model file, name:N or "
                                               "name@alias")
    parser.add_argument("b", metavar="B", help="the version to compare with it")
    parser.add_argument("--runtime", choices=("auto", "docker", "process"), default="auto",
                        help="how served versions run (default: Docker when an engine answers)")
    add_trust_option(parser)


def _progress_line(value: object) -> None:
    from studio.core.versions.compare_live import LiveRound

    if isinstance(value, str):
        log_line(value)
    elif isinstance(value, LiveRound):
        log_line(f"round {value.round} of {value.rounds}, {value.side}: "
                 f"{value.throughput:,.0f} req/s, p50 {value.p50_ms:.2f} ms, p99 "
                 f"{value.p99_ms:.2f} ms, {value.errors} errors")


def run_compare(args: argparse.Namespace) -> int:
    from studio.core.tasks import Progress
    from studio.core.versions.compare_live import LiveOptions, compare_live
    from studio.core.versions.compare_offline import compare_offline
    from studio.core.versions.compare_report import live_lines, offline_lines

    progress = Progress(on_partial=_progress_line)
    offline = compare_offline(args.a, args.b, reference=args.reference, target=args.target,
                              trust=args.trust, rows=args.rows, seed=args.seed,
                              resamples=args.resamples, progress=progress)
    live = None
    if args.live:
        options = LiveOptions(rounds=args.rounds, round_s=args.round_time,
                              connections=args.connections, route=args.route,
                              runtime=args.runtime, reference=args.reference, seed=args.seed)
        live = compare_live(args.a, args.b, options, trust=args.trust, progress=progress)
    if args.json:
        document = {"offline": offline.model_dump(mode="json")}
        if live is not None:
            document["live"] = live.to_dict()
        print(json.dumps(document, indent=2))
    else:
        print("\n".join(offline_lines(offline)))
        if live is not None:
            print("\n" + "\n".join(live_lines(live)))
    return ExitStatus.OK


def run_shadow(args: argparse.Namespace) -> int:
    from studio.core.tasks import Progress
    from studio.core.versions.compare_report import shadow_line
    from studio.core.versions.shadow import ShadowCounters, ShadowStarted, describe, shadow

    def show(value: object) -> None:
        if isinstance(value, ShadowStarted):
            print(f"Shadowing at {value.proxy_url}: answers from {value.a_title} "
                  f"({value.a_url}), mirrored to {value.b_title} ({value.b_url}). Its counters "
                  f"are at {value.proxy_url}/metrics; Ctrl-C stops.", flush=True)
        elif isinstance(value, ShadowCounters):
            print(json.dumps(describe(value)) if args.json else shadow_line(value), flush=True)
        else:
            _progress_line(value)

    progress = Progress(on_partial=show)
    # Ctrl-C (or a service manager's stop) ends the shadowing; the last counters are still shown.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: progress.cancel())
    final = shadow(args.a, args.b, port=args.port, runtime=args.runtime, trust=args.trust,
                   progress=progress)
    print(json.dumps(describe(final)) if args.json else shadow_line(final), flush=True)
    print("Stopped: the proxy and both servers.", file=sys.stderr)
    return ExitStatus.OK
