"""The input of a batch run as a stream of chunks of rows, each row with its place in the file.

CSV goes through pyarrow's streaming reader with every column read as text: the studio, not the
reader, decides what a value means for the model, so a stray word in a numeric column is one bad
row instead of a reader that stops (pyarrow's own type inference raises mid-file). The reader runs
serially, which is what makes it report the record number of a row it cannot split into the
header's columns; a row's line in the file (the header being line 1) follows from record numbers
and the line breaks inside quoted values. Parquet is read batch by batch with buffered column
chunks, so neither format is ever held whole: memory follows the chunk size, not the file size.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from studio.core.batch.options import BatchError
from studio.core.errors import first_line

CSV_BLOCK_BYTES = 1 << 20
PARQUET_BUFFER_BYTES = 1 << 20


@dataclass(frozen=True)
class Reject:
    """A row that was not predicted: where it is, why, and its values as text as far as the row
    could be split into the file's columns."""

    position: int
    """The line in a CSV file (the header is line 1), the row of a Parquet file (the first is 1)."""
    reason: str
    values: tuple[str | None, ...] = ()


@dataclass
class Chunk:
    table: pa.Table
    """The rows read, every column of the file."""
    positions: np.ndarray
    """Each row's line (CSV) or row number (Parquet)."""
    malformed: list[Reject] = field(default_factory=list)
    """CSV records among these rows that did not split into the header's columns."""

    @property
    def rows(self) -> int:
        return self.table.num_rows + len(self.malformed)


def _unreadable(path: Path, exc: Exception) -> BatchError:
    return BatchError(f"'{path.name}' could not be read: {first_line(exc)}",
                      "Check that the file is complete and in the format its name says.",
                      detail=repr(exc))


class TableReader:
    """Chunks of `chunk_size` rows (the last one shorter) from a CSV or Parquet file."""

    position_name = "row"

    def __init__(self, path: Path, chunk_size: int) -> None:
        self.path = path
        self.chunk_size = chunk_size
        self.schema: pa.Schema = pa.schema([])

    @property
    def columns(self) -> list[str]:
        return self.schema.names

    def fraction(self) -> float | None:
        """How much of the file has been read, 0..1."""
        return None

    def chunks(self) -> Iterator[Chunk]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> TableReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_table(path: Path, file_format: str, chunk_size: int) -> TableReader:
    opened = CsvReader if file_format == "csv" else ParquetReader
    reader = opened(path, chunk_size)
    duplicated = sorted({name for name in reader.columns if reader.columns.count(name) > 1})
    if duplicated:
        reader.close()
        raise BatchError(f"'{path.name}' names the column '{duplicated[0]}' more than once.",
                         "Give every column its own name in the header.")
    return reader


def _rechunk(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Tables of exactly `size` rows from batches of any size, the last one shorter."""
    held: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - rows, batch.num_rows)
            held.append(batch.slice(0, take))
            rows += take
            batch = batch.slice(take)
            if rows == size:
                yield pa.Table.from_batches(held)
                held, rows = [], 0
    if rows:
        yield pa.Table.from_batches(held)


class ParquetReader(TableReader):
    def __init__(self, path: Path, chunk_size: int) -> None:
        super().__init__(path, chunk_size)
        try:
            self.file = pq.ParquetFile(path, buffer_size=PARQUET_BUFFER_BYTES, pre_buffer=False)
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(path, exc) from exc
        self.schema = self.file.schema_arrow
        self.total = self.file.metadata.num_rows
        self.done = 0

    def fraction(self) -> float | None:
        return self.done / self.total if self.total else 1.0

    def chunks(self) -> Iterator[Chunk]:
        try:
            for table in _rechunk(self.file.iter_batches(batch_size=self.chunk_size),
                                  self.chunk_size):
                positions = np.arange(self.done + 1, self.done + table.num_rows + 1)
                self.done += table.num_rows
                yield Chunk(table, positions)
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(self.path, exc) from exc

    def close(self) -> None:
        self.file.close()


class CsvReader(TableReader):
    position_name = "line"

    def __init__(self, path: Path, chunk_size: int) -> None:
        super().__init__(path, chunk_size)
        names = self._header()
        self.schema = pa.schema([(name, pa.string()) for name in names])
        self._invalid: list[tuple[int, str]] = []  # (record number, text), as the reader meets them
        try:
            self._handle = pa.OSFile(str(path), "r")
            self.size = max(self._handle.size(), 1)
            self._reader = pa_csv.open_csv(
                self._handle,
                read_options=pa_csv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES),
                parse_options=pa_csv.ParseOptions(invalid_row_handler=self._set_aside,
                                                  newlines_in_values=True,
                                                  ignore_empty_lines=False),
                convert_options=pa_csv.ConvertOptions(
                    column_types={name: pa.string() for name in names},
                    # Only an empty field is no value: "NA" may be a category (Namibia), and
                    # what counts as a missing number is the studio's call (rows.py).
                    null_values=[""], strings_can_be_null=True))
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(path, exc) from exc
        # Records are numbered from the header (record 1); a line is a record plus the line
        # breaks inside the quoted values before it.
        self._next_record = 2
        self._breaks_before = sum(name.count("\n") for name in names)
        self._bytes_done = sum(len(name.encode()) + 1 for name in names)

    def _header(self) -> list[str]:
        try:
            with pa_csv.open_csv(self.path, read_options=pa_csv.ReadOptions(use_threads=False),
                                 parse_options=pa_csv.ParseOptions(
                                     newlines_in_values=True,
                                     invalid_row_handler=lambda row: "skip")) as probe:
                return probe.schema.names
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(self.path, exc) from exc

    def _set_aside(self, row: pa_csv.InvalidRow) -> str:
        self._invalid.append((row.number, row.text))
        return "skip"

    def fraction(self) -> float | None:
        """The bytes of the rows handed out so far, over the file's size. Not the file's read
        position: pyarrow reads blocks ahead, and a small file is read whole at once."""
        return min(self._bytes_done / self.size, 1.0)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise _unreadable(self.path, exc) from exc
            yield batch

    def chunks(self) -> Iterator[Chunk]:
        for table in _rechunk(self._batches(), self.chunk_size):
            yield self._placed(table, final=False)
        if self._invalid:  # records after the last row that split
            yield self._placed(pa.Table.from_batches([], schema=self.schema), final=True)

    def _placed(self, table: pa.Table, final: bool) -> Chunk:
        """The chunk with each row's line, and the unsplittable records that lie among them."""
        n = table.num_rows
        records = np.arange(self._next_record, self._next_record + n, dtype=np.int64)
        invalid = sorted(self._invalid)
        taken: list[tuple[int, str]] = []
        for record, text in invalid:
            if not final and (n == 0 or record > records[-1]):
                break  # it lies after these rows
            records[records >= record] += 1
            taken.append((record, text))
        self._invalid = invalid[len(taken):]
        if n:
            self._next_record = int(records[-1]) + 1
        if taken:
            self._next_record = max(self._next_record, taken[-1][0] + 1)

        breaks = self._breaks_within(table)
        all_records = np.concatenate([records, [r for r, _ in taken]]).astype(np.int64)
        all_breaks = np.concatenate([breaks, [t.count("\n") for _, t in taken]]).astype(np.int64)
        order = np.argsort(all_records, kind="stable")
        before = np.empty_like(all_breaks)
        before[order] = np.cumsum(all_breaks[order]) - all_breaks[order] + self._breaks_before
        lines = all_records + before
        self._breaks_before += int(all_breaks.sum())
        self._bytes_done += _text_bytes(table) + sum(len(text.encode()) + 1 for _, text in taken)
        width = len(self.columns)
        malformed = [Reject(int(lines[n + i]), _split_reason(text, width), _fields(text, width))
                     for i, (_, text) in enumerate(taken)]
        return Chunk(table, lines[:n], malformed)

    @staticmethod
    def _breaks_within(table: pa.Table) -> np.ndarray:
        """Line breaks inside each row's quoted values (0 for almost every row of every file)."""
        breaks = np.zeros(table.num_rows, dtype=np.int64)
        for column in table.columns:
            if _may_hold_a_break(column):
                counts = pc.count_substring(column, "\n")
                breaks += pc.fill_null(counts, 0).to_numpy().astype(np.int64)
        return breaks

    def close(self) -> None:
        for closable in (getattr(self, "_reader", None), getattr(self, "_handle", None)):
            if closable is not None:
                closable.close()


def _text_bytes(table: pa.Table) -> int:
    """About the bytes these rows took in the file: their values and a separator after each
    (quotes are not counted)."""
    values = sum(pc.sum(pc.binary_length(column)).as_py() or 0 for column in table.columns)
    return values + table.num_rows * table.num_columns


def _may_hold_a_break(column: pa.ChunkedArray) -> bool:
    """Whether a text column's bytes hold a line break: one scan of its data buffers, which are
    shared by the slices of a batch, so a break anywhere in the batch answers yes."""
    for array in column.chunks:
        data = array.buffers()[2] if len(array.buffers()) > 2 else None
        if data is not None and data.size and \
                (np.frombuffer(data, dtype=np.uint8) == 10).any():
            return True
    return False


def _fields(text: str, width: int) -> tuple[str | None, ...]:
    """A record's fields as far as the header's columns go."""
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error:
        fields = [text]
    return tuple(fields[:width]) + (None,) * max(0, width - len(fields))


def _split_reason(text: str, width: int) -> str:
    try:
        count = len(next(csv.reader([text]), []))
    except csv.Error:
        return f"the line does not split into the header's {width} columns"
    more_or_less = "an extra column" if count > width else "a missing column"
    return f"{count} fields where the header has {width} ({more_or_less})"
