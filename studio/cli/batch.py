"""`slipway batch`: a model's predictions for every row of a CSV or Parquet file.

    slipway batch MODEL DATA -o OUT [--chunk-size N] [--on-bad-rows skip|fail] [--trust]

Progress goes to stderr about once a second (rows read, rows per second, rows rejected, with the
first rejected rows as they are found); the summary (rows read, predicted, rejected, and where
each went) to stdout, or as JSON with --json. Exit status 0 when the run finished, bad rows
skipped or not; 2 when a bad row stopped it (--on-bad-rows fail) or the data does not fit the
model; 130 on Ctrl-C. A run that does not finish writes nothing under OUT.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from studio.cli.common import MODEL_HELP, add_trust_option, model_path
from studio.core.batch.options import BAD_ROWS, DEFAULT_CHUNK_SIZE
from studio.core.errors import ExitStatus

if TYPE_CHECKING:
    from studio.core.batch.run import BatchProgress

COMMANDS = ("batch",)
REJECTS_PRINTED = 10


def _count(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of rows") from None
    if value < 1:
        raise argparse.ArgumentTypeError("give at least 1")
    return value


def add_commands(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser("batch", help="predict every row of a CSV or Parquet file")
    batch.add_argument("model", help="model file or MLflow folder" + MODEL_HELP)
    batch.add_argument("data", help="a CSV or Parquet file with a column per feature")
    batch.add_argument("-o", "--output", required=True, metavar="OUT",
                       help="where the predictions go: a .csv or .parquet file (the rejected rows "
                            "go beside it, OUT's name + .rejects.csv)")
    batch.add_argument("--chunk-size", type=_count, default=DEFAULT_CHUNK_SIZE, metavar="N",
                       help=f"rows read and predicted at a time (default {DEFAULT_CHUNK_SIZE:,})")
    batch.add_argument("--on-bad-rows", choices=BAD_ROWS, default="skip",
                       help="skip: set rows that do not fit the model aside in the rejects file "
                            "(default); fail: stop at the first one and write nothing")
    batch.add_argument("--threads", type=_count, metavar="N",
                       help="threads the model runs on, each on a slice of a chunk (default: "
                            "every core)")
    add_trust_option(batch)
    batch.add_argument("--json", action="store_true", help="print the summary as JSON")
    batch.set_defaults(run=run_batch)


class _Printer:
    """Progress at most once a second, and the first rejected rows as they are found."""

    def __init__(self) -> None:
        self.next_at = time.monotonic() + 1.0
        self.rejects_shown = 0

    def __call__(self, part: BatchProgress | str) -> None:
        if isinstance(part, str):  # a conversion's log line
            print(part, file=sys.stderr, flush=True)
            return
        for reject in part.new_rejects[:max(0, REJECTS_PRINTED - self.rejects_shown)]:
            print(f"rejected {part.position_name} {reject.position}: {reject.reason}",
                  file=sys.stderr, flush=True)
            self.rejects_shown += 1
        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + 1.0
        done = "" if part.fraction is None else f" ({part.fraction:.0%})"
        print(f"{part.rows_read:>12,} rows read{done}  {part.rows_per_second:>9,.0f} rows/s  "
              f"{part.rows_rejected:,} rejected", file=sys.stderr, flush=True)


def run_batch(args: argparse.Namespace) -> int:
    import signal

    from studio.core.batch.options import BatchOptions
    from studio.core.batch.run import run_batch as predict_all
    from studio.core.model.artifact import load
    from studio.core.tasks import Progress

    model = load(model_path(args.model), trust=args.trust)
    progress = Progress(on_partial=_Printer())
    signal.signal(signal.SIGINT, lambda *_: progress.cancel())
    summary = predict_all(model, args.data, args.output,
                          BatchOptions(chunk_size=args.chunk_size, on_bad_rows=args.on_bad_rows,
                                       threads=args.threads),
                          progress=progress)
    print(summary.to_json() if args.json else "\n".join(summary.lines()))
    return ExitStatus.OK
