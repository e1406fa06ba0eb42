"""run_batch: a model's predictions for every row of a file, chunk after chunk.

    check options and files -> the model as ONNX (a verified conversion when it is not)
        -> the data's columns against the model's features
        -> per chunk: read, check rows (a thread ahead) -> predict -> write predictions, rejects
        -> put both files in place

Reading and checking the next chunk runs on a thread of its own while the model works on this
one: the model releases the interpreter while it runs, so the two overlap on a multi-core machine.
At most two chunks wait between the stages, which is what bounds memory whatever the file's size.
Nothing is put under the output's name before the last chunk is written: a cancel, a bad row
when bad rows are fatal, or any failure leaves the destination as it was.

Hands out a BatchProgress through `progress.partial` a few times a second (rows read, predicted
and rejected, rows per second, the new rejects, and once the first predicted rows as a preview).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from studio.core.batch.options import (
    BatchError,
    BatchOptions,
    check_files,
    check_options,
    rejects_path,
)
from studio.core.batch.predictions import Predictor, unique_name
from studio.core.batch.reading import Chunk, Reject, TableReader, open_table
from studio.core.batch.rows import (
    BadRowError,
    CheckedRows,
    ModelNeeds,
    check_rows,
    model_needs,
    row_texts,
)
from studio.core.batch.writing import PredictionsWriter, RejectsWriter
from studio.core.files import pending_file
from studio.core.model.artifact import ModelArtifact
from studio.core.model.schema import FeatureSpec
from studio.core.tasks import Progress, quiet
from studio.core.units import figure

PARTIAL_EVERY_S = 0.25
REJECTS_KEPT = 100
"""Rejects the summary keeps to show (all of them are in the rejects file)."""
REJECTS_PER_PARTIAL = 200
PREVIEW_ROWS = 20
CHUNKS_AHEAD = 2


@dataclass(frozen=True)
class Preview:
    """The first predicted rows, as text."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    predicted_columns: int = 0
    """How many of the last columns are the model's (the others are the data's)."""


@dataclass(frozen=True)
class BatchProgress:
    rows_read: int
    rows_predicted: int
    rows_rejected: int
    fraction: float | None
    elapsed_s: float
    position_name: str = "line"
    new_rejects: tuple[Reject, ...] = ()
    """Rejects since the previous BatchProgress (at most REJECTS_PER_PARTIAL of them)."""
    preview: Preview | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.elapsed_s if self.elapsed_s > 0 else float("nan")


@dataclass(frozen=True)
class BatchSummary:
    model: str
    data: Path
    output: Path
    rejects_file: Path | None
    """Beside the output when bad rows were skipped; None when they were fatal."""
    rows_read: int
    rows_predicted: int
    rows_rejected: int
    seconds: float
    position_name: str
    first_rejects: tuple[Reject, ...] = ()
    converted: bool = False
    """The model was converted to ONNX (and passed its parity check) for this run."""
    chunk_size: int = 0
    threads: int = 1

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else float("nan")

    def lines(self, rejects_shown: int = 10) -> list[str]:
        """The summary for a person: rows read, predicted, rejected, where each went."""
        where = f"  -> {self.rejects_file}" if self.rejects_file else ""
        lines = [f"rows read  {self.rows_read:>12,}",
                 f"predicted  {self.rows_predicted:>12,}  -> {self.output}",
                 f"rejected   {self.rows_rejected:>12,}{where}",
                 f"time       {figure(self.seconds, '.1f', ' s'):>12}  "
                 f"({figure(self.rows_per_second, ',.0f')} rows/s, model {self.model}"
                 f"{', converted to ONNX' if self.converted else ''})"]
        for reject in self.first_rejects[:rejects_shown]:
            lines.append(f"  {self.position_name} {reject.position}: {reject.reason}")
        if self.rows_rejected > rejects_shown:
            lines.append(f"  … {self.rows_rejected - rejects_shown:,} more in {self.rejects_file}")
        return lines

    def to_json(self) -> str:
        value: dict[str, Any] = asdict(self)
        value.update(data=str(self.data), output=str(self.output),
                     rejects_file=str(self.rejects_file) if self.rejects_file else None,
                     rows_per_second=round(self.rows_per_second, 1),
                     first_rejects=[{self.position_name: r.position, "reason": r.reason}
                                    for r in self.first_rejects])
        return json.dumps(value, indent=2)


def as_onnx(model: ModelArtifact, progress: Progress | None = None) -> tuple[ModelArtifact, bool]:
    """The ONNX model to run, and whether it was converted for this: an ONNX file as it is, any
    other through the verified conversion the Serve stage uses."""
    if model.schema.metadata.onnx is not None:
        return model, False
    from studio.core.serve.deploy import ensure_onnx
    from studio.core.serve.runtimes.base import DeploymentError
    from studio.core.workspace import new_work_dir

    try:
        return ensure_onnx(model, new_work_dir(model.name), progress=progress), True
    except DeploymentError as exc:  # the parity gate: the ONNX model does not answer as the model
        raise BatchError(exc.message, "Look at the differences on the Optimize page (or with "
                         "slipway convert); predictions from a conversion that failed its parity "
                         "check would not be the model's.", detail=exc.detail) from exc


# --- the run -------------------------------------------------------------------------------------

@dataclass
class _Prepared:
    chunk: Chunk
    checked: CheckedRows
    feeds: dict[str, np.ndarray]


@dataclass
class _Tally:
    position_name: str
    source: str
    started: float = field(default_factory=time.perf_counter)
    read: int = 0
    predicted: int = 0
    rejected: int = 0
    kept: list[Reject] = field(default_factory=list)
    fresh: list[Reject] = field(default_factory=list)
    preview: Preview | None = None
    preview_sent: bool = False
    last_sent: float = 0.0

    def add_rejects(self, rejects: list[Reject]) -> None:
        self.rejected += len(rejects)
        self.kept += rejects[:max(0, REJECTS_KEPT - len(self.kept))]
        self.fresh += rejects[:max(0, REJECTS_PER_PARTIAL - len(self.fresh))]

    def snapshot(self, fraction: float | None) -> BatchProgress:
        preview = self.preview if not self.preview_sent else None
        self.preview_sent = self.preview_sent or preview is not None
        fresh, self.fresh = tuple(self.fresh), []
        self.last_sent = time.perf_counter()
        return BatchProgress(self.read, self.predicted, self.rejected, fraction,
                             self.last_sent - self.started, self.position_name, fresh, preview)


def run_batch(model: ModelArtifact, data: str | Path, output: str | Path,
              options: BatchOptions | None = None, *,
              progress: Progress | None = None) -> BatchSummary:
    """Predict every row of `data` (CSV or Parquet) with `model` into `output` (CSV or Parquet,
    by its extension): the data's columns, then the model's (label and a probability per class,
    or the value). Rows that do not fit go to `<output>.rejects.csv` with their reason, or stop
    the run (`options.on_bad_rows`)."""
    progress = progress or quiet()
    options = options or BatchOptions()
    check_options(options)
    data, output = Path(data).expanduser(), Path(output).expanduser()
    data_format, output_format = check_files(data, output)
    tally = _Tally("line" if data_format == "csv" else "row", data.name)
    onnx_model, converted = as_onnx(model, progress)
    features = onnx_model.schema.features
    if not features:
        raise BatchError(f"'{model.name}' takes tensors, not rows of named columns.",
                         "Batch predictions run tabular models (scikit-learn, boosters, or ONNX "
                         "models the studio converted).")
    needs = model_needs(onnx_model.model_file, features)
    progress.update(0.0, f"Reading {data.name}")
    with open_table(data, data_format, options.chunk_size) as reader:
        _check_columns(reader, features, data)
        predictor = Predictor(onnx_model, options.model_threads)
        tally.started = time.perf_counter()
        with closing(predictor), ExitStack() as files:
            pending = files.enter_context(pending_file(output))
            writer = PredictionsWriter(pending.path, output_format)
            files.callback(writer.abandon)
            rejects = None
            if options.on_bad_rows == "skip":
                pending_rejects = files.enter_context(pending_file(rejects_path(output)))
                rejects = RejectsWriter(pending_rejects.path, reader.position_name, reader.columns)
                files.callback(rejects.close)
            taken = set(reader.columns)
            names = [(name, unique_name(name, taken)) for name, _ in predictor.empty_fields()]
            renamed = dict(names)
            # A CSV file's values are copied to a CSV output as they were read (what the person
            # wrote, and no number formatting to pay for); Parquet gets them typed.
            retyped = features if output_format == "parquet" else []

            def write(item: tuple[pa.Table, list[Reject]]) -> None:
                table, bad = item
                if table.num_rows:
                    writer.write(table)
                if rejects is not None and bad:
                    rejects.write(bad)

            prepared = _prepared(reader, features, needs, predictor)
            with closing(_ahead(prepared, CHUNKS_AHEAD)) as chunks, \
                    _Behind(write, CHUNKS_AHEAD) as behind:
                for item in chunks:
                    progress.check()
                    behind.put(_predicted(item, predictor, retyped, renamed, options, tally))
                    if time.perf_counter() - tally.last_sent >= PARTIAL_EVERY_S:
                        _report(progress, tally, reader)
                behind.finish()
            writer.close(_empty_schema(reader, retyped, predictor, names))
            if rejects is not None:
                rejects.close()
            _report(progress, tally, reader, fraction=1.0)  # the last chance to cancel
            pending.commit()
            if rejects is not None:
                pending_rejects.commit()
    return BatchSummary(
        model=model.name, data=data, output=output,
        rejects_file=rejects_path(output) if options.on_bad_rows == "skip" else None,
        rows_read=tally.read, rows_predicted=tally.predicted, rows_rejected=tally.rejected,
        seconds=time.perf_counter() - tally.started, position_name=tally.position_name,
        first_rejects=tuple(tally.kept), converted=converted, chunk_size=options.chunk_size,
        threads=options.model_threads)


def _check_columns(reader: TableReader, features: list[FeatureSpec], data: Path) -> None:
    missing = [f.name for f in features if f.name not in reader.columns]
    if missing:
        shown = ", ".join(missing[:8]) + (" …" if len(missing) > 8 else "")
        raise BatchError(f"'{data.name}' has no column for {len(missing)} of the model's "
                         f"{len(features)} features: {shown}.",
                         "Name the columns as the model names its features (the Model page "
                         "lists them); other columns are copied to the output as they are.")


def _prepared(reader: TableReader, features: list[FeatureSpec], needs: ModelNeeds,
              predictor: Predictor) -> Iterator[_Prepared]:
    for chunk in reader.chunks():
        checked = check_rows(chunk, features, needs)
        feeds = predictor.feeds(checked.features, int(checked.good.sum()))
        yield _Prepared(chunk, checked, feeds)


def _predicted(item: _Prepared, predictor: Predictor, retyped: list[FeatureSpec],
               renamed: dict[str, str], options: BatchOptions,
               tally: _Tally) -> tuple[pa.Table, list[Reject]]:
    """The chunk's output table and its rejects, in file order; the `retyped` features are
    written as the values the model was given."""
    chunk, checked = item.chunk, item.checked
    good_rows = np.flatnonzero(checked.good)
    result = predictor.predict(item.feeds, len(good_rows))
    bad = checked.rejects
    if result.refused:
        if not result.ok.any() and tally.predicted == 0 and len(result.refused) == len(good_rows) \
                and all(r.startswith("the model refused") for r in result.refused.values()):
            reason = next(iter(result.refused.values()))
            raise BatchError(f"The model fails on every row of '{tally.source}' it was given "
                             f"({chunk_span(chunk, tally.position_name)}): "
                             f"{reason.removeprefix('the model refused it: ')}",
                             "Check that the file holds the data the model was trained on; the "
                             "Model page shows what it takes.")
        refused_rows = good_rows[sorted(result.refused)]
        texts = row_texts(chunk.table, refused_rows)
        bad = sorted(bad + [Reject(int(chunk.positions[row]), result.refused[i], texts[k])
                            for k, (i, row) in enumerate(zip(sorted(result.refused),
                                                             refused_rows))],
                     key=lambda r: r.position)
    if bad and options.on_bad_rows == "fail":
        first = bad[0]
        raise BadRowError(f"{tally.position_name.capitalize()} {first.position} of "
                          f"'{tally.source}' does not fit the model: {first.reason}.",
                          "Fix that row, or choose to skip bad rows: they are set aside in a "
                          "rejects file with their reasons. Nothing was written.")
    kept_rows = good_rows[result.ok]
    table = _output_table(chunk.table, kept_rows, checked, result.ok, retyped,
                          len(good_rows) == chunk.table.num_rows and result.ok.all())
    for name, array in result.columns:
        table = table.append_column(renamed.get(name, name), array)
    tally.read += chunk.rows
    tally.predicted += table.num_rows
    tally.add_rejects(bad)
    if tally.preview is None and table.num_rows:
        tally.preview = _preview(table, len(result.columns))
    return table, bad


def chunk_span(chunk: Chunk, position_name: str) -> str:
    return f"{position_name}s {int(chunk.positions[0]):,} to {int(chunk.positions[-1]):,}"


def _output_table(table: pa.Table, kept_rows: np.ndarray, checked: CheckedRows,
                  predicted: np.ndarray, retyped: list[FeatureSpec], everything: bool) -> pa.Table:
    """The input's columns for the rows that were predicted; a feature in `retyped` read as text
    from a CSV file is written as the value the model was given (a number, a whole number, true or
    false)."""
    if not everything:
        table = table.take(pa.array(kept_rows, type=pa.int64()))
    for feature in retyped:
        index = table.schema.get_field_index(feature.name)
        column_type = table.schema.field(index).type
        if (pa.types.is_string(column_type) or pa.types.is_large_string(column_type)) \
                and feature.dtype != "string":
            values = checked.features[feature.name]
            values = values if everything else values[predicted]
            table = table.set_column(index, feature.name, pa.array(values))
    return table


def _empty_schema(reader: TableReader, retyped: list[FeatureSpec], predictor: Predictor,
                  names: list[tuple[str, str]]) -> pa.Schema:
    typed = {"string": pa.string(), "bool": pa.bool_()}
    fields = []
    for field_ in reader.schema:
        feature = next((f for f in retyped if f.name == field_.name), None)
        if feature is not None and pa.types.is_string(field_.type) and feature.dtype != "string":
            kind = typed.get(feature.dtype, pa.int64() if feature.dtype.startswith(("int", "uint"))
                             else pa.float64())
            fields.append(pa.field(field_.name, kind))
        else:
            fields.append(field_)
    fields += [pa.field(dict(names)[name], kind) for name, kind in predictor.empty_fields()]
    return pa.schema(fields)


def _preview(table: pa.Table, predicted_columns: int) -> Preview:
    head = table.slice(0, PREVIEW_ROWS)
    columns = []
    for column in head.columns:
        try:  # as the CSV writer writes it: a float32 probability in its shortest form
            columns.append(pc.cast(column, pa.string()).to_pylist())
        except (pa.ArrowException, ValueError):
            columns.append([None if v is None else str(v) for v in column.to_pylist()])
    rows = tuple(tuple("" if c[i] is None else c[i] for c in columns) for i in range(head.num_rows))
    return Preview(tuple(head.column_names), rows, predicted_columns)


def _report(progress: Progress, tally: _Tally, reader: TableReader,
            fraction: float | None = None) -> None:
    snapshot = tally.snapshot(reader.fraction() if fraction is None else fraction)
    progress.partial(snapshot)
    progress.update(snapshot.fraction, f"{snapshot.rows_read:,} rows")


# --- reading ahead, writing behind ----------------------------------------------------------------

class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def _ahead(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """`items`, produced on a thread of their own up to `depth` ahead of the consumer. Closing
    the iterator stops the thread (between two items) and waits for it."""
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            put(_Failed(error))

    thread = threading.Thread(target=produce, name="batch-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = waiting.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                waiting.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


class _Behind:
    """Hands items to `write` on a thread of its own, at most `depth` waiting. A failure of
    `write` is raised by the next `put` or by `finish`; leaving the block early (a cancel, an
    error) drops what is still waiting and waits for the thread."""

    def __init__(self, write: Callable[[Any], None], depth: int) -> None:
        self._write = write
        self._waiting: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._finished = False
        self._thread = threading.Thread(target=self._drain, name="batch-write-behind",
                                        daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            item = self._waiting.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as error:  # noqa: BLE001 - raised in the consumer's thread
                    self._error = error

    def put(self, item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._waiting.put(item)

    def finish(self) -> None:
        self._finished = True
        self._waiting.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> _Behind:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._finished:
            self._finished = True
            self._error = self._error or _Abandoned()
            self._waiting.put(_DONE)
            self._thread.join()


class _Abandoned(Exception):
    """What is still waiting to be written is dropped: the run did not finish."""
