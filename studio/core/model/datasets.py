"""Rows to feed a model: read from a dataset the user attaches, or sampled from its schema.

Golden inputs for parity checks, calibration data for static quantization and (later) payloads for
load tests all come from here, as a pandas DataFrame with one column per feature, or, for tensor
models, as ready ONNX feeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from studio.core.errors import ExitStatus, StudioError
from studio.core.model.schema import FeatureSpec, TensorSpec

if TYPE_CHECKING:  # pandas is imported where a table is read: it costs a second at start-up
    import pandas as pd

DATASET_SUFFIXES = (".csv", ".parquet", ".pq", ".npy")
NUMPY_DTYPES = {"string": object, "bool": bool}


class DatasetError(StudioError):
    """A reference dataset that cannot be read or does not match the model."""

    exit_status = ExitStatus.NOT_LOADABLE


def read_table(path: str | Path, features: list[FeatureSpec]) -> pd.DataFrame:
    """The feature columns of a CSV, Parquet or .npy file, in the model's order and types.

    Extra columns (a target, an id) are ignored; a missing feature column is an error naming it.
    A .npy file has no column names: its columns are taken in the model's feature order.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"There is no dataset file at '{path}'.", "Check the path.")
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise DatasetError(f"'{path.name}' is empty (0 bytes).",
                           "Use a dataset with a row per example and a column per feature.")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix == ".npy":
            frame = _frame_from_array(np.load(path, allow_pickle=False), features, path)
        else:
            raise DatasetError(f"'{path.name}' is not a dataset format Slipway Studio reads.",
                               "Use a CSV, Parquet or .npy file.")
    except DatasetError:
        raise
    except (ValueError, OSError, ImportError, pd.errors.ParserError) as exc:
        raise DatasetError(f"'{path.name}' could not be read as a dataset: {exc}",
                           "Check that the file is a complete CSV, Parquet or .npy file.",
                           detail=repr(exc)) from exc
    missing = [f.name for f in features if f.name not in frame.columns]
    if missing:
        shown = ", ".join(missing[:8]) + (" …" if len(missing) > 8 else "")
        raise DatasetError(
            f"'{path.name}' lacks {len(missing)} of the model's feature columns: {shown}.",
            "Use a dataset with a column for every feature, named as the model names them.",
        )
    if frame.empty:
        raise DatasetError(f"'{path.name}' has no rows.", "Use a dataset with at least one row.")
    return _typed(frame[[f.name for f in features]], features)


def _frame_from_array(array: np.ndarray, features: list[FeatureSpec], path: Path) -> pd.DataFrame:
    import pandas as pd

    if array.ndim != 2 or array.shape[1] != len(features):
        raise DatasetError(
            f"'{path.name}' holds an array of shape {array.shape}; the model takes "
            f"{len(features)} features per row.",
            "Save a 2-D array with one column per feature, in the model's feature order.",
        )
    return pd.DataFrame(array, columns=[f.name for f in features])


def _typed(frame: pd.DataFrame, features: list[FeatureSpec]) -> pd.DataFrame:
    import pandas as pd

    typed = {}
    for feature in features:
        column = frame[feature.name]
        if feature.dtype == "string":
            typed[feature.name] = column.astype(str).astype(object)
        elif feature.kind == "categorical" or feature.dtype.startswith(("int", "uint")):
            typed[feature.name] = column
        else:
            try:
                typed[feature.name] = pd.to_numeric(column).astype(np.float64)
            except (ValueError, TypeError) as exc:
                bad = np.flatnonzero(pd.to_numeric(column, errors="coerce").isna() & column.notna())
                example = f" (data row {bad[0] + 1}: {column.iloc[bad[0]]!r})" if len(bad) else ""
                raise DatasetError(f"Column '{feature.name}' holds values that are not "
                                   f"numbers{example}.",
                                   "Clean the column, or check it is the right dataset.") from exc
    return pd.DataFrame(typed)


def sample_frame(features: list[FeatureSpec], rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """Random but valid rows: known categories drawn uniformly, numbers spread around the example
    by the feature's learned spread when the model knows it."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns = {}
    for feature in features:
        if feature.categories:
            picks = rng.integers(0, len(feature.categories), rows)
            columns[feature.name] = np.array(feature.categories, dtype=object)[picks]
            if feature.dtype != "string":
                columns[feature.name] = columns[feature.name].astype(np.int64)
        elif feature.dtype == "string":
            columns[feature.name] = np.array([str(feature.example or "")] * rows, dtype=object)
        else:
            centre = float(feature.example or 0.0)
            if feature.spread:  # what a scaler learned: the data's own deviation
                spread = float(feature.spread)
            else:  # no statistics known: a quarter of the example's size
                spread = max(abs(centre) * 0.25, 1.0 if centre == 0 else abs(centre) * 0.05)
            values = rng.normal(centre, spread, rows)
            if feature.dtype.startswith(("int", "uint")):
                values = np.round(values)
            columns[feature.name] = values
    return pd.DataFrame(columns)


def onnx_feeds(inputs: list[TensorSpec], features: list[FeatureSpec],
               frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The ONNX inputs for a table of rows: one matrix for all-numeric models, or a column each."""
    feeds: dict[str, np.ndarray] = {}
    for tensor in inputs:
        carried = [f.name for f in features if f.tensor == tensor.name]
        if not carried:
            raise DatasetError(f"No feature feeds the model input '{tensor.name}'.",
                               "The model's schema does not describe its inputs as features.")
        values = frame[carried].to_numpy()
        if tensor.dtype == "string":
            feeds[tensor.name] = values.astype(str).astype(object).reshape(len(frame), len(carried))
        else:
            feeds[tensor.name] = values.astype(tensor.dtype).reshape(len(frame), len(carried))
    return feeds


def tensor_feeds(inputs: list[TensorSpec], rows: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for tensor models (images, embeddings): a symbolic first dimension is `rows`."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for tensor in inputs:
        shape = [d if isinstance(d, int) and d > 0 else (rows if i == 0 else 1)
                 for i, d in enumerate(tensor.shape)]
        if tensor.dtype == "string":
            feeds[tensor.name] = np.full(shape, "", dtype=object)
        elif tensor.dtype.startswith(("int", "uint")):
            feeds[tensor.name] = rng.integers(0, 10, shape).astype(tensor.dtype)
        elif tensor.dtype == "bool":
            feeds[tensor.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[tensor.name] = rng.standard_normal(shape).astype(tensor.dtype)
    return feeds
