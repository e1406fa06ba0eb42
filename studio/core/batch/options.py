"""What a batch run is asked to do, checked before anything is read: the chunk size, what a bad
row does, the threads the model runs on, and the files it writes (the output's format follows its
extension; the rejects file sits beside it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from studio.core.errors import ExitStatus, StudioError
from studio.core.files import check_not_a_source

DEFAULT_CHUNK_SIZE = 8_192
"""Rows per chunk. The chunks in flight (read ahead, predicted, waiting to be written) are what a
run holds, so the chunk sets the memory and the file does not. Measured on 20-column CSV files
through the 20-feature forest on 2 model threads: peak memory 261 MB on 100,000 rows and
287-303 MB on 1,000,000 with 8k-row chunks, 264 and 308-339 MB with 16k, in the same time
(5.8-6.2 s against 5.9-6.0 s); 64k-row chunks took 422 MB on 1,000,000."""
MIN_CHUNK_SIZE = 1
MAX_CHUNK_SIZE = 4_000_000
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
BadRows = Literal["skip", "fail"]
BAD_ROWS: tuple[BadRows, ...] = ("skip", "fail")


class BatchError(StudioError):
    """A batch run cannot start or go on: the data, the output or the model cannot be used."""

    exit_status = ExitStatus.USAGE


@dataclass(frozen=True)
class BatchOptions:
    chunk_size: int = DEFAULT_CHUNK_SIZE
    on_bad_rows: BadRows = "skip"
    """`skip`: a row that does not fit the model is written to the rejects file with its reason;
    `fail`: the first one stops the run and nothing is written."""
    threads: int | None = None
    """Threads the model runs on, each on its own slice of a chunk; None for every core. On 2
    cores, 1,000,000 rows through the 20-feature forest took 5.5-6 s with 2 against 6.6-7.5 s
    with 1: the reader and writer threads wait on the disk and the model often enough."""

    @property
    def model_threads(self) -> int:
        return self.threads or os.cpu_count() or 1


def check_options(options: BatchOptions) -> None:
    if not MIN_CHUNK_SIZE <= options.chunk_size <= MAX_CHUNK_SIZE:
        raise BatchError(f"A chunk of {options.chunk_size:,} rows cannot be used.",
                         f"Choose between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE:,} rows "
                         f"(default {DEFAULT_CHUNK_SIZE:,}).")
    if options.on_bad_rows not in BAD_ROWS:
        raise BatchError(f"'{options.on_bad_rows}' is not a way to handle bad rows.",
                         "Choose skip (set them aside in a rejects file) or fail (stop at the "
                         "first).")
    if options.threads is not None and options.threads < 1:
        raise BatchError(f"The model cannot run on {options.threads} threads.",
                         "Give at least 1, or leave it out to use every core.")


def file_format(path: Path, what: str) -> str:
    """csv or parquet, from the extension of `path`; `what` is "data" or "output"."""
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise BatchError(f"'{path.name}' is not a CSV or Parquet file name, so Slipway cannot "
                         f"tell which format the {what} is in.",
                         "Use a name ending in .csv, .parquet or .pq.")
    return found


def rejects_path(output: Path) -> Path:
    """Where the rows that did not fit go: beside the output, `<name>.rejects.csv`."""
    return output.with_name(f"{output.stem}.rejects.csv")


def check_files(data: Path, output: Path) -> tuple[str, str]:
    """The formats of the data and the output; refused when the data is missing or would be
    written over."""
    data_format = file_format(data, "data")
    output_format = file_format(output, "output")
    if not data.is_file():
        raise BatchError(f"There is no data file at '{data}'.", "Check the path.")
    if data.stat().st_size == 0:
        raise BatchError(f"'{data.name}' is empty (0 bytes).",
                         "Use a file with a header and a row per example.")
    for target in (output, rejects_path(output)):
        try:
            check_not_a_source(target, data)
        except StudioError as exc:
            raise BatchError(f"'{target.name}' is the data file itself.",
                             "Choose another output name; the data stays as it is.") from exc
    return data_format, output_format
