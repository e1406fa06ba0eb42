"""`slipway --help`: every subcommand, one line each, with what it does."""

import os
import subprocess
import sys

from studio.cli import COMMANDS


def test_help_lists_every_subcommand_on_one_line_each():
    result = subprocess.run([sys.executable, "-m", "studio.cli", "--help"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("commands (slipway COMMAND --help for its options):")
    listed = lines[start + 1:start + 1 + len(COMMANDS)]
    assert [line.split()[0] for line in listed] == list(COMMANDS)
    for line in listed:
        name, what = line.split(None, 1)
        assert line.startswith(f"  {name} ") and len(what) > 10  # what it does, on the same line
    assert lines[start + 1 + len(COMMANDS):] == []  # nothing wrapped onto a line of its own
