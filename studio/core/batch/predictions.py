"""The model over a chunk: its ONNX session, the inputs made from typed feature columns, and the
columns its answers become.

A classifier gives `label` (a class name when the model names its classes) and one
`probability_<class>` column per class; a regressor gives `value` (`value_0`, `value_1` … for
several targets); any other model one column per output value, named after the output. When the
session refuses a chunk, the chunk is halved until the rows it refuses are found: they are set
apart with the model's own reason and every other row is still predicted. A row whose answer is
not a number (NaN) is set apart too: writing it would pass off a failure as a prediction.

Several threads split a chunk into slices and run them side by side, each slice on one thread
of ONNX Runtime: a row's answer is then computed in the same order whatever the number of threads.
Threads inside one run would not do: a forest's votes would be summed in an order that depends on
the threads, and a tied vote's class would change with the machine's cores.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from studio.core.batch.options import BatchError
from studio.core.errors import first_line
from studio.core.model.artifact import ModelArtifact
from studio.core.model.session import onnx_session

MIN_SLICE_ROWS = 1024
"""Fewer rows than this per thread are run on one thread: a handful of rows costs less than
handing them over."""
PREDICTED_PREFIX = "predicted_"
"""Put before an output column's name when the data already has a column of that name (a `label`
the model was trained on, say), so that no input column is ever overwritten."""


@dataclass
class Predicted:
    """A chunk's answers: for the rows that were predicted, the output columns; for the others,
    the model's reason."""

    ok: np.ndarray
    """One per row given: it was predicted."""
    columns: list[tuple[str, pa.Array]]
    refused: dict[int, str]
    """Row (in the rows given) -> why it has no prediction."""


def unique_name(name: str, taken: set[str]) -> str:
    while name in taken:
        name = PREDICTED_PREFIX + name
    return name


class Predictor:
    """`close()` when done: it ends the threads."""

    def __init__(self, artifact: ModelArtifact, threads: int) -> None:
        schema = artifact.schema
        self.schema = schema
        self.inputs = []
        for tensor in schema.inputs:
            carried = [f.name for f in schema.features if f.tensor == tensor.name]
            if not carried:
                raise BatchError(f"The model's input '{tensor.name}' is not described as table "
                                 "columns, so no row of a file can feed it.",
                                 "Batch predictions take tabular models; convert the model with "
                                 "the studio so that its features are named.")
            dtype = object if tensor.dtype == "string" else np.dtype(tensor.dtype)
            self.inputs.append((tensor.name, carried, dtype, len(tensor.shape)))
        self.session = onnx_session(artifact.model_file, threads=1)
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, "batch-model") if threads > 1 else None
        outputs = self.session.get_outputs()
        self.output_names = [o.name for o in outputs]
        self.output_types = {o.name: o.type for o in outputs}
        roles = {o.name: o.role for o in schema.outputs}
        self.label = next((n for n in self.output_names if roles.get(n) == "label"), None)
        self.probabilities = next((n for n in self.output_names
                                   if roles.get(n) == "probabilities"), None)
        values = [n for n in self.output_names if roles.get(n) == "value"]
        self.values = values[0] if values else (self.output_names[0] if self.output_names else None)
        self.classes = list(schema.class_names or [])
        self.task = schema.task if (schema.task != "classification" or self.label
                                    or self.probabilities) else "other"

    # --- in -------------------------------------------------------------------------------------

    def feeds(self, columns: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        feeds = {}
        for name, carried, dtype, rank in self.inputs:
            if len(carried) == 1:
                array = np.asarray(columns[carried[0]]).astype(dtype, copy=False).reshape(n, 1)
            else:
                array = np.empty((n, len(carried)), dtype=dtype)
                for j, feature in enumerate(carried):
                    array[:, j] = columns[feature]
            feeds[name] = array.reshape(n) if rank == 1 else array
        return feeds

    # --- through the model ----------------------------------------------------------------------

    def predict(self, feeds: dict[str, np.ndarray], n: int) -> Predicted:
        slices = max(1, min(self.threads, n // MIN_SLICE_ROWS))
        bounds = np.linspace(0, n, slices + 1).astype(int)
        spans = [(int(start), int(stop)) for start, stop in zip(bounds[:-1], bounds[1:])]
        if self._pool is None or slices == 1:
            answered = [self._run(feeds, start, stop) for start, stop in spans]
        else:
            answered = list(self._pool.map(lambda span: self._run(feeds, *span), spans))
        parts = [part for slice_parts, _ in answered for part in slice_parts]
        refused = {row: why for _, slice_refused in answered for row, why in slice_refused.items()}
        ok = np.ones(n, dtype=bool)
        for row in refused:
            ok[row] = False
        if not parts:
            return Predicted(ok, [], refused)
        outputs = [_joined([part[2][i] for part in parts]) for i in range(len(self.output_names))]
        columns, finite = self._columns(dict(zip(self.output_names, outputs)))
        if not finite.all():
            done = np.flatnonzero(ok)
            for row in done[~finite]:
                refused[int(row)] = "the model gave no number for it (NaN)"
            ok[done[~finite]] = False
            columns = [(name, array.filter(pa.array(finite))) for name, array in columns]
        return Predicted(ok, columns, refused)

    def _run(self, feeds: dict[str, np.ndarray], first: int,
             end: int) -> tuple[list[tuple[int, int, list[Any]]], dict[int, str]]:
        """The answers for rows first..end in order, and the rows the model refused (with its
        reason), found by halving the range it refuses."""
        parts: list[tuple[int, int, list[Any]]] = []
        refused: dict[int, str] = {}
        # Row ranges still to run, the next on top. A plain loop, not a recursive closure: a
        # closure that calls itself is a reference cycle, which would keep every chunk's inputs
        # and outputs alive until the garbage collector's next full pass.
        ranges = [(first, end)] if end > first else []
        while ranges:
            start, stop = ranges.pop()
            try:
                outputs = self.session.run(self.output_names,
                                           {k: v[start:stop] for k, v in feeds.items()})
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
                if stop - start == 1:
                    refused[start] = f"the model refused it: {first_line(exc)[:300]}"
                else:
                    middle = (start + stop) // 2
                    ranges += [(middle, stop), (start, middle)]
                continue
            parts.append((start, stop, outputs))
        return parts, refused

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    # --- out ------------------------------------------------------------------------------------

    def _columns(self, outputs: dict[str, Any]) -> tuple[list[tuple[str, pa.Array]], np.ndarray]:
        if self.task == "classification":
            return self._classes(outputs)
        if self.task == "regression" and self.values is not None:
            matrix = _matrix(outputs[self.values])
            return _numbered("value", matrix), _finite(matrix)
        columns: list[tuple[str, pa.Array]] = []
        finite = None
        for name, value in outputs.items():
            if isinstance(value, np.ndarray):
                matrix = _matrix(value)
                columns += _numbered(name, matrix)
                row_finite = _finite(matrix)
                finite = row_finite if finite is None else finite & row_finite
        if finite is None:
            raise BatchError("The model's outputs are not tensors Slipway can write as columns.",
                             "Batch predictions write tensor outputs; look at the model's outputs "
                             "on the Model page.")
        return columns, finite

    def _classes(self, outputs: dict[str, Any]) -> tuple[list[tuple[str, pa.Array]], np.ndarray]:
        probabilities = keys = None
        if self.probabilities is not None:
            raw = outputs[self.probabilities]
            if isinstance(raw, list):  # a ZipMap: one {class: probability} per row
                keys = list(raw[0].keys()) if raw else list(self.classes)
                probabilities = np.array([[row[k] for k in keys] for row in raw],
                                         dtype=np.float32).reshape(len(raw), len(keys))
            else:
                probabilities = _matrix(raw)
                width = probabilities.shape[1]
                keys = self.classes if len(self.classes) == width else list(range(width))
        if self.label is not None:
            labels = self._named(np.asarray(outputs[self.label]).reshape(-1))
        else:
            labels = pa.array(np.array(keys, dtype=object)[probabilities.argmax(axis=1)].tolist())
        columns = [("label", labels)]
        finite = np.ones(len(labels), dtype=bool)
        if probabilities is not None:
            columns += [(f"probability_{key}", pa.array(np.ascontiguousarray(probabilities[:, j])))
                        for j, key in enumerate(keys)]
            finite = _finite(probabilities)
        return columns, finite

    def _named(self, labels: np.ndarray) -> pa.Array:
        """Labels as the model's class names when it has them: a model trained on class indices
        with display names (0 -> "class_0") answers with the name, as the server does."""
        names = self.classes
        if labels.dtype.kind in "iu" and names and all(isinstance(c, str) for c in names) \
                and labels.size and 0 <= labels.min() and labels.max() < len(names):
            return pa.array(np.array(names, dtype=object)[labels], type=pa.string())
        if labels.dtype == object:
            return pa.array(labels, type=pa.string())
        return pa.array(labels)

    def empty_fields(self) -> list[tuple[str, pa.DataType]]:
        """The output columns' names and types as the model declares them, for a file in which no
        row was predicted."""
        declared = {o.name: o for o in self.schema.outputs}

        def width(name: str | None, default: int) -> int:
            shape = declared[name].shape if name in declared else []
            return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else default

        if self.task == "classification":
            label = declared.get(self.label) if self.label else None
            names_are_text = bool(self.classes) and all(isinstance(c, str) for c in self.classes)
            label_type = pa.string() if names_are_text or (label and label.dtype == "string") \
                else pa.int64()
            if self.probabilities is None:
                return [("label", label_type)]
            count = width(self.probabilities, len(self.classes))
            keys = self.classes if len(self.classes) == count else list(range(count))
            return [("label", label_type)] + [(f"probability_{k}", pa.float32()) for k in keys]
        if self.task == "regression" and self.values is not None:
            return [(name, pa.float32()) for name, _ in _numbered(
                "value", np.zeros((0, width(self.values, 1)), dtype=np.float32))]
        fields = []
        for name in self.output_names:
            if name in declared and declared[name].dtype not in ("string",) and \
                    self.output_types[name].startswith("tensor"):
                fields += [(column, pa.float32()) for column, _ in _numbered(
                    name, np.zeros((0, width(name, 1)), dtype=np.float32))]
        return fields


def _joined(parts: list[Any]) -> Any:
    if isinstance(parts[0], list):
        return [row for part in parts for row in part]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _matrix(value: Any) -> np.ndarray:
    array = np.asarray(value)
    rows = array.shape[0] if array.ndim else 1
    return array.reshape(rows, -1) if rows else array.reshape(0, max(1, math.prod(array.shape[1:])))


def _numbered(name: str, matrix: np.ndarray) -> list[tuple[str, pa.Array]]:
    if matrix.shape[1] == 1:
        return [(name, pa.array(matrix[:, 0]))]
    return [(f"{name}_{j}", pa.array(np.ascontiguousarray(matrix[:, j])))
            for j in range(matrix.shape[1])]


def _finite(matrix: np.ndarray) -> np.ndarray:
    if matrix.dtype.kind not in "fc":
        return np.ones(matrix.shape[0], dtype=bool)
    return ~np.isnan(matrix).any(axis=1)
