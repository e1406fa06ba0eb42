"""The files a batch run writes, chunk after chunk, into pending files (core/files.py) that the run
puts in place only once it has finished: the predictions (CSV or Parquet, by pyarrow's writers)
and the rejects (CSV: the line or row, the reason, and the row's values as text, so that the file
can be fixed and run again)."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from studio.core.batch.reading import Reject


class PredictionsWriter:
    """Opened on the first table, whose schema every later table is cast to."""

    def __init__(self, path: Path, file_format: str) -> None:
        self.path = path
        self.file_format = file_format
        self._writer: pa_csv.CSVWriter | pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None

    def _open(self, schema: pa.Schema) -> None:
        self.schema = schema
        if self.file_format == "csv":
            self._writer = pa_csv.CSVWriter(str(self.path), schema)
        else:
            self._writer = pq.ParquetWriter(str(self.path), schema)

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._open(table.schema)
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        self._writer.write_table(table)

    def close(self, schema_if_empty: pa.Schema) -> None:
        """Finish the file; a run that predicted nothing still writes the columns' names."""
        if self._writer is None:
            self._open(schema_if_empty)
        writer, self._writer = self._writer, None
        self.schema = self.schema or schema_if_empty
        writer.close()

    def abandon(self) -> None:
        """Close a file a failure left open, before its pending copy is deleted."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except (OSError, pa.ArrowException):
                pass


class RejectsWriter:
    def __init__(self, path: Path, position_name: str, columns: list[str]) -> None:
        self.path = path
        self._handle = open(path, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._handle)
        self._csv.writerow([position_name, "reason", *columns])

    def write(self, rejects: list[Reject]) -> None:
        self._csv.writerows([r.position, r.reason, *r.values] for r in rejects)

    def close(self) -> None:
        self._handle.close()
