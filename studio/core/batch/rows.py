"""What the model takes, and the check of each chunk's rows against it.

A value fits when it has the feature's type (a number, a whole number, true or false, text), is
present (or the model can take a missing number: it imputes them, or its trees learned where
missing values go), and, for a categorical feature whose encoder refuses categories it did not
learn, is one it knows (an encoder that ignores unknown categories takes any). A row with a value
that does not fit becomes a Reject naming every such value; the others go on to the model as typed
columns. The fast path (a whole column that converts at once) costs one pyarrow cast per feature;
the slow path, which finds the bad values, runs only for a column that did not.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.compute as pc

from studio.core.batch.options import BatchError
from studio.core.batch.reading import Chunk, Reject
from studio.core.errors import ExitStatus, StudioError
from studio.core.model.schema import FeatureSpec
from studio.core.units import printable

NA_TEXT = pa.array(["", "na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>"])
"""Text that means "no value" in a numeric column (what pandas reads as missing, lower-cased)."""
NUMBER = r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$"
TRUE_TEXT = ("true", "t", "yes", "1")
FALSE_TEXT = ("false", "f", "no", "0")
PASS_THROUGH = {"Identity", "Cast", "Reshape", "Concat", "Squeeze", "Unsqueeze", "Flatten",
                "Gather", "ArrayFeatureExtractor"}
"""Operators that carry a feature's values on unchanged (in kind) towards its encoder."""
TREE_OPS = {"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"}
MAX_PROBLEMS_SHOWN = 3
SHOWN_VALUE_CHARS = 40


class BadRowError(StudioError):
    """A row does not fit the model, and the run was asked to stop at the first one."""

    exit_status = ExitStatus.USAGE


# --- what the model takes ------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelNeeds:
    takes_missing: bool
    """Numeric features may be missing: the graph imputes them, or its trees route them."""
    strict: frozenset[str]
    """Categorical features whose encoder refuses (or would silently misread) unknown ones."""


def model_needs(model_file: Path, features: list[FeatureSpec]) -> ModelNeeds:
    """Read from the ONNX graph: an Imputer, or trees with a learned way for missing values,
    take missing numbers; a OneHotEncoder with `zeros=0` fails on an unknown category, and a
    LabelEncoder with no default stands for an encoder that refused one when it was trained."""
    graph = onnx.load(str(model_file), load_external_data=False).graph
    takes_missing = False
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        if node.op_type == "Imputer":
            takes_missing = True
        elif node.op_type in TREE_OPS:
            takes_missing = takes_missing or any(
                any(onnx.helper.get_attribute_value(a)) for a in node.attribute
                if "missing_value_tracks_true" in a.name)
    strict = frozenset(f.name for f in features
                       if f.categories and _refuses_unknown(f.tensor or f.name, consumers))
    return ModelNeeds(takes_missing, strict)


def _refuses_unknown(tensor: str, consumers: dict[str, list[onnx.NodeProto]]) -> bool:
    queue, seen = deque([tensor]), {tensor}
    while queue:
        for node in consumers.get(queue.popleft(), []):
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "OneHotEncoder" and attributes.get("zeros", 1) == 0:
                return True
            if node.op_type == "LabelEncoder" and not any(k.startswith("default_")
                                                           for k in attributes):
                return True
            if node.op_type in PASS_THROUGH:
                for output in node.output:
                    if output not in seen:
                        seen.add(output)
                        queue.append(output)
    return False


# --- one column ----------------------------------------------------------------------------------

@dataclass
class Column:
    """One feature over a chunk: typed values (a placeholder where a value is bad or missing) and
    which rows are missing, of the wrong type, or an unknown category."""

    values: np.ndarray
    missing: np.ndarray
    wrong: np.ndarray | None = None
    unknown: np.ndarray | None = None


def _kind(dtype: str) -> str:
    if dtype == "string":
        return "text"
    if dtype == "bool":
        return "bool"
    if dtype.startswith(("int", "uint")):
        return "whole"
    return "number"


def _no_rows(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _numbers(column: pa.ChunkedArray, name: str) -> Column:
    """float64 values; NaN where missing or wrong."""
    column = _plain(column)
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) \
            or pa.types.is_decimal(kind):
        values = np.asarray(pc.cast(column, pa.float64()).to_numpy(), dtype=np.float64)
        return Column(values, np.isnan(values))
    if not _is_text(kind):
        raise _unusable(name, kind)
    try:  # the fast path: every value is a number or empty
        values = np.asarray(pc.cast(column, pa.float64()).to_numpy(), dtype=np.float64)
        return Column(values, np.isnan(values))
    except pa.ArrowInvalid:
        pass
    text = pc.utf8_trim_whitespace(column)
    na = pc.fill_null(pc.is_in(pc.utf8_lower(text), value_set=NA_TEXT), True)
    number = pc.fill_null(pc.match_substring_regex(text, NUMBER, ignore_case=True), False)
    cleaned = pc.if_else(number, text, pa.scalar(None, pa.string()))
    try:
        values = np.asarray(pc.cast(cleaned, pa.float64()).to_numpy(), dtype=np.float64)
    except pa.ArrowInvalid:  # a spelling the pattern lets through and pyarrow does not read
        values = np.array([_float_or_nan(v) for v in cleaned.to_pylist()], dtype=np.float64)
    is_na = na.to_numpy()
    wrong = ~is_na & np.isnan(values) & ~_is_nan_text(text)
    return Column(values, np.isnan(values) & ~wrong, wrong)


def _is_nan_text(text: pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(pc.match_substring_regex(text, r"^[+-]?nan$", ignore_case=True),
                        False).to_numpy()


def _float_or_nan(value: str | None) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except ValueError:
        return float("nan")


def _whole(column: pa.ChunkedArray, name: str) -> Column:
    """int64 values; 0 where missing or wrong."""
    plain = _plain(column)
    if pa.types.is_integer(plain.type) or _is_text(plain.type):
        try:
            filled = pc.fill_null(pc.cast(plain, pa.int64()), 0)
            return Column(filled.to_numpy(), plain.is_null().to_numpy())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    numbers = _numbers(plain, name)
    known = ~numbers.missing if numbers.wrong is None else ~numbers.missing & ~numbers.wrong
    with np.errstate(invalid="ignore"):
        whole = known & np.isfinite(numbers.values) & (np.floor(numbers.values) == numbers.values) \
            & (np.abs(numbers.values) < 2.0 ** 63)
    wrong = known & ~whole
    if numbers.wrong is not None:
        wrong |= numbers.wrong
    return Column(np.where(whole, numbers.values, 0).astype(np.int64), numbers.missing, wrong)


def _booleans(column: pa.ChunkedArray, name: str) -> Column:
    plain = _plain(column)
    if pa.types.is_boolean(plain.type):
        return Column(pc.fill_null(plain, False).to_numpy(zero_copy_only=False),
                      plain.is_null().to_numpy())
    if _is_text(plain.type):
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(plain))
        true = pc.fill_null(pc.is_in(lowered, value_set=pa.array(TRUE_TEXT)), False).to_numpy()
        false = pc.fill_null(pc.is_in(lowered, value_set=pa.array(FALSE_TEXT)), False).to_numpy()
        missing = plain.is_null().to_numpy()
        return Column(true, missing, ~missing & ~true & ~false)
    numbers = _numbers(plain, name)
    ok = np.isin(numbers.values, (0.0, 1.0))
    return Column(numbers.values == 1.0, numbers.missing, ~numbers.missing & ~ok)


def _text(column: pa.ChunkedArray, name: str) -> Column:
    plain = _plain(column)
    if not _is_text(plain.type):
        try:
            plain = pc.cast(plain, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise _unusable(name, plain.type) from exc
    missing = plain.is_null().to_numpy()
    values = pc.fill_null(plain, "").to_numpy(zero_copy_only=False).astype(object)
    return Column(values, missing)


CONVERTERS = {"number": _numbers, "whole": _whole, "bool": _booleans, "text": _text}


def _unusable(name: str, kind: pa.DataType) -> BatchError:
    return BatchError(f"Column '{name}' holds {kind} values, which no model feature takes.",
                      "Give the model a column of numbers or text for this feature.")


def _check_categories(column: Column, feature: FeatureSpec) -> None:
    known = np.array(feature.categories, dtype=object if _kind(feature.dtype) == "text" else None)
    present = ~column.missing if column.wrong is None else ~column.missing & ~column.wrong
    unknown = present & ~np.isin(column.values, known)
    if unknown.any():
        column.unknown = unknown


# --- a chunk ------------------------------------------------------------------------------------

@dataclass
class CheckedRows:
    good: np.ndarray
    """One per row of the chunk's table: it fits the model."""
    features: dict[str, np.ndarray]
    """Typed values of the rows that fit, per feature."""
    rejects: list[Reject]
    """The rows that do not fit, the chunk's malformed records among them, in file order."""


def check_rows(chunk: Chunk, features: list[FeatureSpec], needs: ModelNeeds) -> CheckedRows:
    table = chunk.table
    n = table.num_rows
    columns: dict[str, Column] = {}
    bad = _no_rows(n)
    for feature in features:
        kind = _kind(feature.dtype)
        column = CONVERTERS[kind](table.column(feature.name), feature.name)
        if feature.name in needs.strict:
            _check_categories(column, feature)
        columns[feature.name] = column
        if not (kind == "number" and needs.takes_missing):
            bad |= column.missing
        for mask in (column.wrong, column.unknown):
            if mask is not None:
                bad |= mask
    good = ~bad
    rejects = list(chunk.malformed)
    if bad.any():
        rejects += _rejects(chunk, features, needs, columns, np.flatnonzero(bad))
        rejects.sort(key=lambda r: r.position)
        typed = {name: column.values[good] for name, column in columns.items()}
    else:
        typed = {name: column.values for name, column in columns.items()}
    return CheckedRows(good, typed, rejects)


def _shown(value: object) -> str:
    text = printable(value)
    return "'" + (text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS] + "…") + "'"


def _rejects(chunk: Chunk, features: list[FeatureSpec], needs: ModelNeeds,
             columns: dict[str, Column], rows: np.ndarray) -> list[Reject]:
    values = row_texts(chunk.table, rows)
    index = {name: i for i, name in enumerate(chunk.table.column_names)}
    rejects = []
    for k, row in enumerate(rows):
        texts = values[k]
        if all(text is None for text in texts):
            rejects.append(Reject(int(chunk.positions[row]), "the line is empty", texts))
            continue
        problems = []
        for feature in features:
            column = columns[feature.name]
            raw = texts[index[feature.name]]
            kind = _kind(feature.dtype)
            if column.wrong is not None and column.wrong[row]:
                wanted = {"number": "a number", "bool": "true or false",
                          "whole": "a number" if np.isnan(_float_or_nan(raw))
                          else "a whole number"}[kind]
                problems.append(f"{feature.name}: {_shown(raw)} is not {wanted}")
            elif column.missing[row] and not (kind == "number" and needs.takes_missing):
                problems.append(f"{feature.name} is missing")
            elif column.unknown is not None and column.unknown[row]:
                categories = feature.categories or []
                known = ", ".join(str(c) for c in categories[:8])
                problems.append(f"{feature.name}: {_shown(raw)} is not a category the model "
                                f"knows ({known}{', …' if len(categories) > 8 else ''})")
        more = len(problems) - MAX_PROBLEMS_SHOWN
        reason = "; ".join(problems[:MAX_PROBLEMS_SHOWN]) + (f"; and {more} more" if more > 0
                                                             else "")
        rejects.append(Reject(int(chunk.positions[row]), reason, texts))
    return rejects


def row_texts(table: pa.Table, rows: np.ndarray) -> list[tuple[str | None, ...]]:
    """The values of some rows as text, for the rejects file and the reasons."""
    taken = table.take(pa.array(rows, type=pa.int64()))
    columns = []
    for column in taken.columns:
        try:
            columns.append(pc.cast(column, pa.string()).to_pylist())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            columns.append([None if v is None else str(v) for v in column.to_pylist()])
    return [tuple(column[i] for column in columns) for i in range(len(rows))]
