"""What every group of subcommands shares: argument types, the options several commands take, and
how progress and logs reach the terminal (stderr, so stdout stays the command's answer).

Commands import the core lazily, inside the function that runs them: `slipway --version` and
`slipway predict` should not pay for ONNX, pandas or the load tester.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|min)?\s*$")


def seconds(text: str) -> float:
    """'10s', '500ms', '2m' or a bare number of seconds."""
    match = DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration such as 10s, 500ms or 2m")
    value, unit = float(match[1]), match[2] or "s"
    return value / 1000 if unit == "ms" else value * 60 if unit in ("m", "min") else value


def milliseconds(text: str) -> float:
    """'50ms', '0.2s' or a bare number of milliseconds."""
    bare = DURATION.match(text)
    if bare is not None and bare[2] is None:
        return float(bare[1])
    return seconds(text) * 1000


def add_trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust", action="store_true",
                        help="allow loading files that run code when loaded (pickle, joblib)")


MODEL_HELP = " (or a registered version: NAME:3, NAME@champion)"


def model_path(text: str) -> Path:
    """The file or folder a MODEL argument names: a path as it is, or the stored file of a
    registered version (`name:3`, `name@champion`), checked against its sha256."""
    from studio.core.versions.references import resolve

    return resolve(text).path


def add_record_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-record", action="store_true",
                        help="do not record the model as a version in the registry")


def record_version(args: argparse.Namespace, record: Callable[[], Any]) -> None:
    """Record what a command loaded or made (`record()` returns the registry's Recorded) unless
    --no-record. The command has done its work by then: a registry that cannot record is a
    warning, not a failure. The version is named after the readable output, never inside JSON."""
    if args.no_record:
        return
    from studio.core.errors import StudioError
    from studio.core.units import printable

    try:
        recorded = record()
    except StudioError as exc:
        print(f"slipway: warning: not recorded in the registry: {exc}", file=sys.stderr)
        return
    if not args.json:
        version = recorded.version
        print(printable(f"{'Recorded' if recorded.created else 'Already recorded'} as "
                        f"{version.reference} (slipway versions {version.reference})."))


API_KEY_ENV = "SLIPWAY_API_KEY"
"""Where the commands that talk to a served model find its API key, when no file is given."""


def _key_from_file(text: str) -> str:
    try:
        key = Path(text).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read the API key from {text}: "
                                         f"{getattr(exc, 'strerror', None) or exc}") from exc
    if not key:
        raise argparse.ArgumentTypeError(f"{text} holds no API key")
    return key


class _RefuseKeyOnCommandLine(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error(f"{option_string} would show the key to every user of this machine (ps, "
                     f"shell history); put it in ${API_KEY_ENV} or in a file given with "
                     "--api-key-file")


def add_api_key_option(parser: argparse.ArgumentParser) -> None:
    """A server's API key comes from a file or the environment, never the command line, where
    every user of the machine can read it in the process list."""
    parser.add_argument("--api-key-file", dest="api_key_from_file", type=_key_from_file,
                        metavar="FILE",
                        help=f"read the API key from FILE (default: ${API_KEY_ENV}, if set)")
    parser.add_argument("--api-key", action=_RefuseKeyOnCommandLine, help=argparse.SUPPRESS)


def api_key(args: argparse.Namespace) -> str | None:
    """The key the user gave (a file first, then the environment), or None."""
    return args.api_key_from_file or os.environ.get(API_KEY_ENV) or None


def log_line(line: object) -> None:
    """A line of a build or server log, as it comes."""
    print(line, file=sys.stderr, flush=True)
