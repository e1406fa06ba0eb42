"""The tabular codec: the features a model takes, how each JSON value is checked, and how rows of
them become the model's input tensors.

Validation happens here, in plain Python and numpy, once per request: a feature row is checked value
by value against the element type of the ONNX input that carries it, so a wrong value is named
before onnxruntime sees it. The onnxruntime session is the authority on element types and shapes;
the schema (from serving.json) adds names, kinds, categories and examples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError, json_type
from .settings import StartupError

if TYPE_CHECKING:
    from .model import TensorInfo

NUMBER_TYPES = frozenset((int, float))


@dataclass
class Feature:
    name: str
    kind: str
    dtype: str
    """numpy-style name of the element type the model takes for it (float32, int64, string...)."""
    tensor: str
    column: int | None
    """Column in a [N, F] input; None when the feature has its own [N, 1] (or [N]) input."""
    categories: list[Any] | None = None
    example: Any = None
    check: Callable[[Any], Any] = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def numeric(self) -> bool:
        return self.dtype not in ("string", "bool")

    @property
    def json_type(self) -> str:
        if self.dtype == "string":
            return "string"
        if self.dtype == "bool":
            return "boolean"
        if self.dtype.startswith(("int", "uint")):
            return "integer"
        return "number"

    def example_value(self) -> Any:
        if self.example is not None and _acceptable(self, self.example):
            return self.example
        if self.categories:
            return self.categories[0]
        return {"string": "", "bool": False, "integer": 0}.get(
            self.dtype if self.dtype in ("string", "bool") else self.json_type, 0.0)


def _acceptable(feature: Feature, value: Any) -> bool:
    try:
        feature.check(value)
        return True
    except InputError:
        return False


# --- value checkers: one per feature, built once -------------------------------------------------

def _range_checker(name: str, dtype: str, low: float, high: float, kinds: tuple[type, ...],
                   wanted: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) in kinds:
            if low <= value <= high:
                return value
            raise InputError(f"feature '{name}' is out of range for {dtype}: {value}")
        raise InputError(f"feature '{name}' must be {wanted}, got {json_type(value)}")
    return check


def _float_checker(name: str, dtype: str) -> Callable[[Any], Any]:
    limit = float(np.finfo(dtype).max)
    return _range_checker(name, dtype, -limit, limit, (float, int), "a number")


def _int_checker(name: str, dtype: str) -> Callable[[Any], Any]:
    info = np.iinfo(dtype)
    in_range = _range_checker(name, dtype, int(info.min), int(info.max), (int,), "an integer")

    def check(value: Any) -> Any:
        # A float with no fraction (2.0) is the integer it spells.
        if type(value) is float:
            if not value.is_integer():
                raise InputError(f"feature '{name}' must be an integer, got {value}")
            value = int(value)
        return in_range(value)
    return check


def _exact_type_checker(name: str, kind: type, wanted: str) -> Callable[[Any], Any]:
    """Strings and booleans: no conversion, so 1 is not true and 3 is not "3"."""
    def check(value: Any) -> Any:
        if type(value) is kind:
            return value
        raise InputError(f"feature '{name}' must be {wanted}, got {json_type(value)}")
    return check


def value_checker(name: str, dtype: str) -> Callable[[Any], Any]:
    """The check of one feature's JSON values against the element type the model takes."""
    if dtype == "string":
        return _exact_type_checker(name, str, "a string")
    if dtype == "bool":
        return _exact_type_checker(name, bool, "true or false")
    if dtype.startswith(("int", "uint")):
        return _int_checker(name, dtype)
    return _float_checker(name, dtype)


# --- the schema's features, placed on the model's inputs ----------------------------------------

def schema_features(specs: Any, inputs: list[TensorInfo]) -> list[Feature]:
    """The schema's features (None: inferred from the inputs' shapes), each on the input and column
    that carries it; StartupError where the schema and the model's inputs disagree."""
    if specs is None:
        specs = _inferred_features(inputs)
    if not isinstance(specs, list):
        raise StartupError("serving.json: 'schema.features' must be a list")
    if not specs:
        return []
    input_by_name = {t.name: t for t in inputs}
    features: list[Feature] = []
    seen_columns: dict[str, int] = {}
    single = inputs[0] if len(inputs) == 1 else None
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise StartupError("serving.json: every schema feature needs a 'name'")
        name = spec["name"]
        tensor_name = spec.get("tensor")
        if tensor_name is None:
            tensor_name = name if name in input_by_name else (
                single.name if single is not None else name)
        tensor = input_by_name.get(tensor_name)
        if tensor is None:
            raise StartupError(f"serving.json: feature '{name}' is carried by input "
                               f"'{tensor_name}', which the model does not have "
                               f"(inputs: {', '.join(t.name for t in inputs)})")
        width = tensor.shape[-1] if len(tensor.shape) >= 2 else 1
        if len(tensor.shape) >= 2 and width != 1:
            column = seen_columns.get(tensor_name, 0)
            seen_columns[tensor_name] = column + 1
        else:
            column = None
            if tensor_name in seen_columns:
                raise StartupError(f"serving.json: input '{tensor_name}' carries one feature, "
                                   "but the schema gives it several")
            seen_columns[tensor_name] = 1
        dtype = _dtype_name(tensor.dtype)
        kind = spec.get("kind") or ("categorical" if dtype == "string" else "numeric")
        categories = spec.get("categories")
        features.append(Feature(
            name=name, kind=kind, dtype=dtype, tensor=tensor_name, column=column,
            categories=categories if isinstance(categories, list) and categories else None,
            example=spec.get("example"), check=value_checker(name, dtype)))
    for tensor in inputs:
        carried = seen_columns.get(tensor.name, 0)
        if carried == 0:
            raise StartupError(f"serving.json: the schema's features leave model input "
                               f"'{tensor.name}' empty")
        width = tensor.shape[-1] if len(tensor.shape) >= 2 else 1
        if isinstance(width, int) and len(tensor.shape) >= 2 and width != 1 \
                and carried != width:
            raise StartupError(f"serving.json: input '{tensor.name}' takes {width} columns, "
                               f"but the schema gives it {carried} features")
    if len({f.name for f in features}) != len(features):
        raise StartupError("serving.json: two schema features have the same name")
    return features


def _inferred_features(inputs: list[TensorInfo]) -> list[dict[str, Any]]:
    """Without a schema: per-column [N, 1] inputs, or one [N, F] matrix, are tabular."""
    if inputs and all(len(t.shape) == 2 and t.shape[1] == 1 and t.shape[0] is None
                      for t in inputs):
        return [{"name": t.name, "tensor": t.name} for t in inputs]
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].shape[0] is None \
            and isinstance(inputs[0].shape[1], int) and inputs[0].dtype is not object:
        return [{"name": f"x{i}", "tensor": inputs[0].name} for i in range(inputs[0].shape[1])]
    return []


def _dtype_name(dtype: Any) -> str:
    return "string" if dtype is object else np.dtype(dtype).name


class TabularCodec:
    """Feature rows (JSON lists or objects) -> validated Python rows -> the model's input feeds."""

    def __init__(self, features: list[Feature], inputs: list[TensorInfo]) -> None:
        self.features = features
        self.names = [f.name for f in features]
        self.name_set = frozenset(self.names)
        self.count = len(features)
        self.checks = [f.check for f in features]
        by_input = {t.name: t for t in inputs}
        # One group per input: the feature positions it carries, in column order.
        self.groups: list[tuple[str, list[int], Any, bool]] = []
        for tensor in inputs:
            carried = sorted((f.column or 0, i) for i, f in enumerate(features)
                             if f.tensor == tensor.name)
            self.groups.append((tensor.name, [i for _, i in carried], tensor.dtype,
                                len(tensor.shape) >= 2))
        first = by_input[features[0].tensor]
        self.matrix = (len(inputs) == 1 and len(first.shape) == 2
                       and [i for _, i in sorted((f.column, i) for i, f in enumerate(features))]
                       == list(range(self.count)) and all(f.column is not None for f in features))
        self.matrix_name = first.name
        self.matrix_dtype = first.dtype
        # All features floats in one matrix: the common case, validated in a few C-level passes.
        self.fast_limit = None
        if self.matrix and all(f.dtype in ("float32", "float64") for f in features):
            self.fast_limit = float(np.finfo(features[0].dtype).max)
        self.names_text = ", ".join(self.names)

    def row(self, features: Any, where: str = "") -> list[Any]:
        """One validated row in feature order; InputError naming the problem otherwise."""
        kind = type(features)
        if kind is list:
            if len(features) != self.count:
                raise InputError(f"{where}expected {self.count} feature values "
                                 f"({self.names_text}), got {len(features)}")
            values = features
        elif kind is dict:
            try:
                if len(features) != self.count:
                    raise KeyError
                values = [features[name] for name in self.names]
            except KeyError:
                raise InputError(where + self._key_problem(features)) from None
        else:
            raise InputError(f"{where}'features' must be a list of values in feature order or an "
                             f"object of feature name to value, got {json_type(features)}")
        limit = self.fast_limit
        if limit is not None and set(map(type, values)) <= NUMBER_TYPES \
                and -limit <= min(values) and max(values) <= limit:
            return values
        try:
            return [check(value) for check, value in zip(self.checks, values)]
        except InputError as exc:
            if where:
                raise InputError(f"{where}{exc}") from None
            raise

    def _key_problem(self, given: dict[str, Any]) -> str:
        unknown = [key for key in given if key not in self.name_set]
        missing = [name for name in self.names if name not in given]
        problems = []
        if unknown:
            problems.append(("unknown feature " if len(unknown) == 1 else "unknown features ")
                            + ", ".join(f"'{k}'" for k in unknown))
        if missing:
            problems.append(f"feature '{missing[0]}' is missing" if len(missing) == 1 else
                            "features " + ", ".join(f"'{m}'" for m in missing) + " are missing")
        return "; ".join(problems) + f" (the model takes: {self.names_text})"

    def feeds(self, rows: list[list[Any]]) -> dict[str, np.ndarray]:
        if self.matrix:
            return {self.matrix_name: np.array(rows, dtype=self.matrix_dtype)}
        feeds = {}
        for name, positions, dtype, rank2 in self.groups:
            if len(positions) == 1:
                i = positions[0]
                array = np.array([row[i] for row in rows], dtype=dtype)
                if rank2:
                    array = array.reshape(-1, 1)
            else:
                array = np.array([[row[i] for i in positions] for row in rows], dtype=dtype)
            feeds[name] = array
        return feeds
