"""`slipway`: the studio's journey without a screen, one module per stage.

    slipway                     open the app
    slipway MODEL               open the app on a model
    slipway inspect FILE        describe a model (--json for the ModelSchema)       cli/model.py
    slipway convert MODEL -o OUT.onnx       to ONNX, with a parity check            cli/optimize.py
    slipway optimize MODEL.onnx -o OUT.onnx (--int8 | --int8-static | --fp16 | --graph)
    slipway build MODEL [--tag T] [--base-image I]      a serving image (Docker)    cli/serve.py
    slipway serve MODEL [--runtime docker|process]      run it until Ctrl-C
    slipway predict URL --data '{...}'                  one request to a served model
    slipway containers [--clean]                       the containers the studio started
    slipway load URL [--connections N] [--rate R]      a load test                 cli/loadtest.py
    slipway sweep URL --slo-p99 50ms                   the highest rate meeting a p99 objective
    slipway monitor URL [--once --json]                metrics and drift            cli/monitor.py
    slipway batch MODEL DATA -o OUT                    predictions for every row    cli/batch.py
    slipway versions [NAME | NAME:N] [--json]          versions, lineage, aliases   cli/versions.py
    slipway alias NAME@ALIAS (VERSION | --rollback)    point an alias, or move it back
    slipway compare A B [--target COLUMN] [--live]     two versions side by side    cli/compare.py
    slipway shadow A B [--port P]                      answer from A, mirror to B

Exit status (studio.core.errors.ExitStatus): 0 success, 1 a build, a server or a request failed,
2 bad usage, 3 the file is not a model that can be loaded or converted (or the optimization cannot
help it), 4 the new model was written but failed its parity check, 130 interrupted. A StudioError
carries its own status (`exit_status`); errors print one line with the reason and the next step,
and no traceback reaches the terminal.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from studio import __version__
from studio.cli import batch, compare, export, loadtest, model, monitor, optimize, serve, versions
from studio.core.errors import Cancelled, ExitStatus, StudioError, TrustRequired

STAGES = (model, optimize, serve, loadtest, monitor, batch, versions, compare, export)
COMMANDS = tuple(name for stage in STAGES for name in stage.COMMANDS)


def command_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slipway",
                                     description="Slipway Studio on the command line.")
    parser.add_argument("--version", action="version", version=f"slipway {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print error details")
    commands = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        stage.add_commands(commands)
    return parser


def command_lines() -> list[str]:
    """Every subcommand with its one-line help, as `slipway --help` lists them."""
    subcommands = next(action for action in command_parser()._actions
                       if isinstance(action, argparse._SubParsersAction))
    width = max(len(name) for name in COMMANDS) + 2
    return [f"  {choice.dest:<{width}}{choice.help}" for choice in subcommands._choices_actions]


def _app_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slipway",
        description="Slipway Studio: from a model file to a measured, monitored service.\n"
                    "Without a command it opens the app.",
        epilog="commands (slipway COMMAND --help for its options):\n" + "\n".join(command_lines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"slipway {__version__}")
    parser.add_argument("model", nargs="?", help="open the app on this model file or folder")
    return parser


def _report(exc: StudioError, verbose: bool) -> None:
    findings = exc.findings if isinstance(exc, TrustRequired) else []
    for finding in findings:  # one line each, before the error, where they cannot be missed
        if finding.verdict == "dangerous":
            print(f"slipway: danger: {finding.name} {finding.why}", file=sys.stderr)
    print(f"slipway: error: {exc}", file=sys.stderr)
    named = [f.name for f in findings if f.verdict != "unnamed"]
    if named:
        print("  the file would import: " + ", ".join(named), file=sys.stderr)
    for finding in findings:
        if finding.verdict == "unnamed":
            print(f"  {finding.name}", file=sys.stderr)
    if verbose and exc.detail:
        print(exc.detail, file=sys.stderr)


def _report_unexpected(exc: Exception, command: str) -> None:
    import time
    import traceback

    from studio.core.errors import first_line
    from studio.core.workspace import cache_root

    log = cache_root() / "logs" / "cli.log"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} slipway {command}\n"
                         f"{traceback.format_exc()}\n")
        where = f"the details are in {log}"
    except OSError as failure:
        where = f"the details could not be written to {log} ({failure.strerror})"
    print(f"slipway: error: `slipway {command}` stopped on an unexpected "
          f"{type(exc).__name__}: {first_line(exc)[:200]}. This is a bug in Slipway Studio; "
          f"{where}.", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first_word = next((a for a in argv if not a.startswith("-")), None)
    if first_word in COMMANDS:
        args = command_parser().parse_args(argv)
        # Ctrl-C stops a command even when a script started it in the background: the script's
        # shell leaves SIGINT ignored there, and Python keeps an ignored SIGINT ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return args.run(args)
        except StudioError as exc:
            _report(exc, args.verbose)
            return exc.exit_status
        except (Cancelled, KeyboardInterrupt):
            return ExitStatus.CANCELLED
        except BrokenPipeError:  # `slipway load --json | head`: the reader left, nothing to report
            sys.stdout = None  # type: ignore[assignment]  # no flush at exit into a closed pipe
            return ExitStatus.OK
        except MemoryError:
            print("slipway: error: the command ran out of memory. Close other programs, or use a "
                  "machine with more memory.", file=sys.stderr)
            return ExitStatus.FAILED
        except Exception as exc:  # a bug: one line for the person, the whole story in a log file
            _report_unexpected(exc, first_word)
            return ExitStatus.FAILED
    args = _app_parser().parse_args(argv)
    from studio.ui.app import run_app

    return run_app(args.model)
