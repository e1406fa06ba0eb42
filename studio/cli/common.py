"""What every group of subcommands shares: argument types, the options several commands take, and
how progress and logs reach the terminal (stderr, so stdout stays the command's answer).

Commands import the core lazily, inside the function that runs them: `slipway --version` and
`slipway predict` should not pay for ONNX, pandas or the load tester.
"""

from __future__ import annotations

import argparse
import re
import sys

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


def add_api_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-key", help="API key, when the server requires one")


def log_line(line: object) -> None:
    """A line of a build or server log, as it comes."""
    print(line, file=sys.stderr, flush=True)
