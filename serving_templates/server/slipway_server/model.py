"""The served model: an onnxruntime session, how JSON becomes its input tensors, and how its output
tensors become answers.

Validation happens here, in plain Python and numpy, once per request: a feature row is checked value
by value against the element type of the ONNX input that carries it, so a wrong value is named
before onnxruntime sees it. The onnxruntime session is the authority on element types and shapes;
the schema (from serving.json) adds names, kinds, categories and examples.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .metrics import FeatureProfile, Metrics
from .settings import Settings, StartupError

# onnxruntime type string -> (numpy dtype, Open Inference Protocol v2 datatype)
ORT_TYPES: dict[str, tuple[Any, str]] = {
    "tensor(float)": (np.float32, "FP32"),
    "tensor(double)": (np.float64, "FP64"),
    "tensor(float16)": (np.float16, "FP16"),
    "tensor(int64)": (np.int64, "INT64"),
    "tensor(int32)": (np.int32, "INT32"),
    "tensor(int16)": (np.int16, "INT16"),
    "tensor(int8)": (np.int8, "INT8"),
    "tensor(uint64)": (np.uint64, "UINT64"),
    "tensor(uint32)": (np.uint32, "UINT32"),
    "tensor(uint16)": (np.uint16, "UINT16"),
    "tensor(uint8)": (np.uint8, "UINT8"),
    "tensor(bool)": (np.bool_, "BOOL"),
    "tensor(string)": (object, "BYTES"),
}
NUMPY_NAMES = {"FP32": "float32", "FP64": "float64", "FP16": "float16", "INT64": "int64",
               "INT32": "int32", "INT16": "int16", "INT8": "int8", "UINT64": "uint64",
               "UINT32": "uint32", "UINT16": "uint16", "UINT8": "uint8", "BOOL": "bool",
               "BYTES": "string"}
logger = logging.getLogger("slipway")

LABEL_OUTPUTS = {"label", "output_label"}
PROBABILITY_OUTPUTS = {"probabilities", "output_probability", "probability"}
WARM_UP_RUNS = 3


class InputError(Exception):
    """The request's content is wrong (shape, type, missing or unknown feature): a 400."""


class ModelRunError(Exception):
    """onnxruntime refused input that passed validation: a 422 with its message."""


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    # onnxruntime prefixes "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : "; keep what follows.
    if line.startswith("[ONNXRuntimeError]"):
        line = line.split(" : ", 3)[-1]
    return line


@dataclass
class TensorInfo:
    name: str
    dtype: Any
    """numpy dtype (object for strings); None for a non-tensor output."""
    datatype: str
    """Open Inference Protocol v2 datatype: FP32, INT64, BYTES..."""
    shape: list[int | None]
    """None for a dynamic dimension."""
    kind: str = "tensor"
    """tensor, or seqmap for a ZipMap output (a list of {class: probability} per row)."""
    role: str = "tensor"

    @property
    def v2_shape(self) -> list[int]:
        return [-1 if d is None else d for d in self.shape]

    @property
    def dynamic_batch(self) -> bool:
        if self.kind == "seqmap":
            return True
        return bool(self.shape) and self.shape[0] is None


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

def _float_checker(name: str, dtype: str) -> Callable[[Any], Any]:
    limit = float(np.finfo(dtype).max)

    def check(value: Any) -> Any:
        kind = type(value)
        if kind is float or kind is int:
            if -limit <= value <= limit:
                return value
            raise InputError(f"feature '{name}' is out of range for {dtype}: {value}")
        raise InputError(f"feature '{name}' must be a number, got {json_type(value)}")
    return check


def _int_checker(name: str, dtype: str) -> Callable[[Any], Any]:
    info = np.iinfo(dtype)
    low, high = int(info.min), int(info.max)

    def check(value: Any) -> Any:
        kind = type(value)
        if kind is float and value.is_integer():
            value = int(value)
            kind = int
        if kind is int:
            if low <= value <= high:
                return value
            raise InputError(f"feature '{name}' is out of range for {dtype}: {value}")
        if kind is float:
            raise InputError(f"feature '{name}' must be an integer, got {value}")
        raise InputError(f"feature '{name}' must be an integer, got {json_type(value)}")
    return check


def _string_checker(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) is str:
            return value
        raise InputError(f"feature '{name}' must be a string, got {json_type(value)}")
    return check


def _bool_checker(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) is bool:
            return value
        raise InputError(f"feature '{name}' must be true or false, got {json_type(value)}")
    return check


def _checker(name: str, dtype: str) -> Callable[[Any], Any]:
    if dtype == "string":
        return _string_checker(name)
    if dtype == "bool":
        return _bool_checker(name)
    if dtype.startswith(("int", "uint")):
        return _int_checker(name, dtype)
    return _float_checker(name, dtype)


NUMBER_TYPES = frozenset((int, float))


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tensor_info(node: Any) -> TensorInfo:
    shape = [d if isinstance(d, int) and d >= 0 else None for d in (node.shape or [])]
    if node.type in ORT_TYPES:
        dtype, datatype = ORT_TYPES[node.type]
        return TensorInfo(node.name, dtype, datatype, shape)
    if node.type.startswith("seq(map("):
        return TensorInfo(node.name, np.float32, "FP32", [None, None], kind="seqmap")
    return TensorInfo(node.name, None, node.type, shape, kind="unsupported")


def _dtype_name(dtype: Any) -> str:
    return "string" if dtype is object else np.dtype(dtype).name


class Model:
    """An onnxruntime session with everything needed to serve it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.name
        self.version = settings.version
        path = settings.model_path
        if not path.is_file():
            raise StartupError(f"model file '{path}' does not exist")
        self.sha256 = sha256_of(path)
        if settings.sha256 and settings.sha256 != self.sha256:
            raise StartupError(f"model file '{path.name}' has sha256 {self.sha256[:12]}..., but "
                               f"serving.json expects {settings.sha256[:12]}...: the file changed")
        self.session = _session(path, settings.threads)
        self.inputs = [_tensor_info(i) for i in self.session.get_inputs()]
        self.outputs = [_tensor_info(o) for o in self.session.get_outputs()]
        self.input_names = [t.name for t in self.inputs]
        self.output_names = [t.name for t in self.outputs]
        self.input_by_name = {t.name: t for t in self.inputs}
        self.output_index = {t.name: i for i, t in enumerate(self.outputs)}
        for tensor in self.inputs:
            if tensor.kind != "tensor":
                raise StartupError(f"model input '{tensor.name}' has type {tensor.datatype}, "
                                   "which this server cannot feed")

        schema = dict(settings.schema or {})
        self._from_model_metadata(schema)
        self.task = schema.get("task") if schema.get("task") in (
            "classification", "regression", "other") else None
        self.features = self._features(schema)
        self.codec = TabularCodec(self.features, self.inputs) if self.features else None
        self._roles(schema)
        self.batchable = all(t.dynamic_batch for t in self.inputs) and all(
            t.dynamic_batch for t in self.outputs if t.kind != "unsupported")
        self._split_ok = True
        try:
            profile = FeatureProfile(settings.reference, self.features,
                                     self.task == "classification")
        except ValueError as exc:
            raise StartupError(f"serving.json: {exc}") from None
        if profile.predictions is not None:
            profile.predictions.update((key, 0) for key in self.class_keys or [])
        self.metrics = Metrics(name=self.name, version=self.version, sha256=self.sha256,
                               profile=profile)
        self._observers = self._feature_observers(profile)
        self._observe_labels = profile.predictions is not None
        self._observe_values = profile.prediction_values is not None

    # --- schema ----------------------------------------------------------------------------------

    def _from_model_metadata(self, schema: dict[str, Any]) -> None:
        """Without a schema, what the studio's converter stored in the model: features and class
        names (metadata properties slipway.features and slipway.class_names)."""
        if schema.get("features") is not None and schema.get("class_names") is not None:
            return
        try:
            properties = self.session.get_modelmeta().custom_metadata_map
        except Exception:  # noqa: BLE001 - onnxruntime builds without model metadata
            return
        for key, prop in (("features", "slipway.features"),
                          ("class_names", "slipway.class_names")):
            if schema.get(key) is None and prop in properties:
                try:
                    schema[key] = orjson.loads(properties[prop])
                except orjson.JSONDecodeError:
                    pass

    def _features(self, schema: dict[str, Any]) -> list[Feature]:
        specs = schema.get("features")
        if specs is None:
            specs = self._inferred_features()
        if not isinstance(specs, list):
            raise StartupError("serving.json: 'schema.features' must be a list")
        if not specs:
            return []
        features: list[Feature] = []
        seen_columns: dict[str, int] = {}
        single = self.inputs[0] if len(self.inputs) == 1 else None
        for spec in specs:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise StartupError("serving.json: every schema feature needs a 'name'")
            name = spec["name"]
            tensor_name = spec.get("tensor")
            if tensor_name is None:
                tensor_name = name if name in self.input_by_name else (
                    single.name if single is not None else name)
            tensor = self.input_by_name.get(tensor_name)
            if tensor is None:
                raise StartupError(f"serving.json: feature '{name}' is carried by input "
                                   f"'{tensor_name}', which the model does not have "
                                   f"(inputs: {', '.join(self.input_names)})")
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
                example=spec.get("example"), check=_checker(name, dtype)))
        for tensor in self.inputs:
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

    def _inferred_features(self) -> list[dict[str, Any]]:
        """Without a schema: per-column [N, 1] inputs, or one [N, F] matrix, are tabular."""
        inputs = self.inputs
        if inputs and all(len(t.shape) == 2 and t.shape[1] == 1 and t.shape[0] is None
                          for t in inputs):
            return [{"name": t.name, "tensor": t.name} for t in inputs]
        if len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].shape[0] is None \
                and isinstance(inputs[0].shape[1], int) and inputs[0].dtype is not object:
            return [{"name": f"x{i}", "tensor": inputs[0].name} for i in range(inputs[0].shape[1])]
        return []

    def _roles(self, schema: dict[str, Any]) -> None:
        roles = {o.get("name"): o.get("role") for o in schema.get("outputs") or []
                 if isinstance(o, dict)}
        names = set(self.output_names)
        if self.task is None:
            if names & LABEL_OUTPUTS or names & PROBABILITY_OUTPUTS:
                self.task = "classification"
            elif names == {"variable"}:
                self.task = "regression"
            else:
                self.task = "other"
        for tensor in self.outputs:
            role = roles.get(tensor.name)
            if role is None:
                if tensor.name in LABEL_OUTPUTS:
                    role = "label"
                elif tensor.name in PROBABILITY_OUTPUTS or tensor.kind == "seqmap":
                    role = "probabilities"
                elif self.task == "regression":
                    role = "value"
                else:
                    role = "tensor"
            tensor.role = role
        self.label_index = next((i for i, t in enumerate(self.outputs) if t.role == "label"), None)
        self.proba_index = next(
            (i for i, t in enumerate(self.outputs) if t.role == "probabilities"), None)
        self.value_index = next((i for i, t in enumerate(self.outputs) if t.role == "value"), None)
        if self.task == "classification" and self.label_index is None and self.proba_index is None:
            self.task = "other"
        if self.task == "regression" and self.value_index is None:
            self.task = "other"
        class_names = schema.get("class_names")
        self.class_names = class_names if isinstance(class_names, list) and class_names else None
        self.class_keys = [str(c) for c in self.class_names] if self.class_names else None
        if self.class_keys is None and self.proba_index is not None:
            width = self.outputs[self.proba_index].shape[-1:] or [None]
            if isinstance(width[0], int):
                self.class_keys = [str(i) for i in range(width[0])]

    def _feature_observers(self, profile: FeatureProfile
                           ) -> list[tuple[str, str, int | None, bool]]:
        observers = []
        for feature in self.features:
            if feature.name in profile.numeric:
                observers.append((feature.name, feature.tensor, feature.column, True))
            elif feature.name in profile.categories:
                observers.append((feature.name, feature.tensor, feature.column, False))
        return observers

    # --- running ---------------------------------------------------------------------------------

    def run_items(self, items: Sequence[tuple[dict[str, np.ndarray], int]]) -> list[Any]:
        """Run several requests' feeds as one batch; each item gets its outputs or its error.

        Runs in an inference thread. When the batch fails, each item runs alone so only the
        offending request gets the error.
        """
        if len(items) == 1:
            feeds, rows = items[0]
            return [self._run(feeds, rows)]
        rows = sum(n for _, n in items)
        try:
            feeds = {name: np.concatenate([f[name] for f, _ in items])
                     for name in self.input_names}
        except ValueError:  # dynamic dimensions besides the batch one that differ: run alone
            return [self._run(f, n) for f, n in items]
        result = self._run(feeds, rows)
        if isinstance(result, Exception) or not self._splittable(result, rows):
            return [self._run(f, n) for f, n in items]
        answers = []
        start = 0
        for _, n in items:
            end = start + n
            answers.append([output[start:end] for output in result])
            start = end
        return answers

    def _splittable(self, outputs: list[Any], rows: int) -> bool:
        if all(len(o) == rows for o in outputs):
            return True
        self.batchable = False  # the shapes lied: never batch this model again
        return False

    def _run(self, feeds: dict[str, np.ndarray], rows: int) -> Any:
        if rows > 1 and not self.batchable and self.codec is not None:
            # A tabular model exported for one row at a time: feed it row by row.
            parts = [self._run({k: v[i:i + 1] for k, v in feeds.items()}, 1) for i in range(rows)]
            for part in parts:
                if isinstance(part, Exception):
                    return part
            return [_concat([p[j] for p in parts]) for j in range(len(self.outputs))]
        started = time.perf_counter()
        try:
            outputs = self.session.run(self.output_names, feeds)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            return ModelRunError(first_line(exc))
        self.metrics.batch_done(rows, time.perf_counter() - started)
        if self._observers or self._observe_labels or self._observe_values:
            try:
                self._observe(feeds, outputs)
            except Exception:  # a metric must never cost a request its answer
                logger.exception("could not record feature metrics")
        return outputs

    def _observe(self, feeds: dict[str, np.ndarray], outputs: list[Any]) -> None:
        metrics = self.metrics
        for name, tensor, column, numeric in self._observers:
            array = feeds[tensor]
            values = array[:, column] if column is not None and array.ndim == 2 else \
                array.reshape(-1)
            if numeric:
                if values.dtype.kind != "f":
                    values = values.astype(np.float64)
                metrics.observe_numeric(name, values)
            else:
                metrics.observe_categories(name, values.tolist())
        if self._observe_labels:
            metrics.observe_labels(self._labels(outputs))
        if self._observe_values and self.value_index is not None:
            values = np.asarray(outputs[self.value_index], dtype=np.float64).reshape(-1)
            metrics.observe_prediction_values(values)

    def _labels(self, outputs: list[Any]) -> list[Any]:
        if self.label_index is not None:
            labels = np.asarray(outputs[self.label_index]).reshape(-1).tolist()
            names = self.class_names
            # A model trained on class indices with display names (0 -> "class_0") answers with
            # the name, as its probabilities are keyed.
            if names and all(isinstance(n, str) for n in names) \
                    and all(isinstance(label, int) and 0 <= label < len(names) for label in labels):
                return [names[label] for label in labels]
            return labels
        probabilities = outputs[self.proba_index]
        if self.outputs[self.proba_index].kind == "seqmap":
            return [max(row, key=row.get) for row in probabilities]
        keys = self.class_keys
        indices = np.asarray(probabilities).argmax(axis=1).tolist()
        return [keys[i] if keys and i < len(keys) else i for i in indices]

    # --- answers ---------------------------------------------------------------------------------

    def predictions(self, outputs: list[Any], rows: int) -> list[dict[str, Any]]:
        """The /predict answer for each row: label and probabilities, or value."""
        if self.task == "classification":
            labels = self._labels(outputs) if self.label_index is not None else None
            if self.proba_index is None:
                return [{"label": label} for label in labels]
            probabilities = outputs[self.proba_index]
            if self.outputs[self.proba_index].kind == "seqmap":
                rows_p = [{str(k): v for k, v in row.items()} for row in probabilities]
            else:
                keys = self.class_keys
                if keys is None or len(keys) != probabilities.shape[1]:
                    keys = [str(i) for i in range(probabilities.shape[1])]
                # numpy float32 scalars: orjson writes them as float32 (0.8114073, not
                # 0.8114072680473328).
                rows_p = [dict(zip(keys, probabilities[i])) for i in range(len(probabilities))]
            if labels is None:
                labels = [max(p, key=p.get) for p in rows_p]
            return [{"label": label, "probabilities": p} for label, p in zip(labels, rows_p)]
        if self.task == "regression":
            values = np.asarray(outputs[self.value_index])
            if values.ndim == 2 and values.shape[1] == 1:
                values = values[:, 0]
            return [{"value": _jsonable(v)} for v in values]
        answers = []
        for i in range(rows):
            answers.append({"outputs": {
                t.name: _jsonable(o[i]) for t, o in zip(self.outputs, outputs)
                if t.kind != "unsupported"}})
        return answers

    # --- Open Inference Protocol v2 --------------------------------------------------------------

    def v2_feeds(self, body: dict[str, Any]) -> tuple[dict[str, np.ndarray], int, list[int]]:
        """Feeds from an inference request; the batch size; indices of the outputs to return."""
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise InputError("'inputs' must be a non-empty list of tensors")
        feeds: dict[str, np.ndarray] = {}
        for position, tensor in enumerate(inputs):
            if not isinstance(tensor, dict):
                raise InputError(f"inputs[{position}] must be an object with name, shape, "
                                 f"datatype and data, got {json_type(tensor)}")
            name = tensor.get("name")
            expected = self.input_by_name.get(name) if isinstance(name, str) else None
            if expected is None:
                raise InputError(f"unknown input {name!r} (the model takes: "
                                 f"{', '.join(self.input_names)})")
            if name in feeds:
                raise InputError(f"input '{name}' is given twice")
            feeds[name] = _v2_tensor(tensor, expected)
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise InputError(f"input '{missing[0]}' is missing (the model takes: "
                             f"{', '.join(self.input_names)})")
        rows = 1
        if self.batchable:
            sizes = {array.shape[0] for array in feeds.values()}
            if len(sizes) > 1:
                raise InputError("the inputs disagree on the batch size (first dimension): "
                                 + ", ".join(f"{k}={v.shape[0]}" for k, v in feeds.items()))
            rows = sizes.pop()
            if rows == 0:
                raise InputError("the inputs hold no rows (first dimension is 0)")
        wanted = body.get("outputs")
        if wanted is None:
            indices = [i for i, t in enumerate(self.outputs) if t.kind != "unsupported"]
        else:
            if not isinstance(wanted, list) or not wanted:
                raise InputError("'outputs' must be a non-empty list of {\"name\": ...}")
            indices = []
            for request in wanted:
                name = request.get("name") if isinstance(request, dict) else None
                if name not in self.output_index:
                    raise InputError(f"unknown output {name!r} (the model gives: "
                                     f"{', '.join(self.output_names)})")
                indices.append(self.output_index[name])
        return feeds, rows, indices

    def v2_outputs(self, outputs: list[Any], indices: list[int]) -> list[dict[str, Any]]:
        answer = []
        for index in indices:
            info = self.outputs[index]
            value = outputs[index]
            if info.kind == "seqmap":
                keys = list(value[0].keys()) if len(value) else []
                array = np.array([[row[k] for k in keys] for row in value], dtype=np.float32)
                array = array.reshape(len(value), len(keys))
            else:
                array = np.asarray(value)
            if array.dtype == object or array.dtype.kind in "US":
                data: Any = [v.decode() if isinstance(v, bytes) else v
                             for v in array.reshape(-1).tolist()]
            elif array.dtype.kind == "f" and array.dtype.itemsize == 2:
                data = array.reshape(-1).tolist()
            else:
                data = np.ascontiguousarray(array).reshape(-1)
            answer.append({"name": info.name, "datatype": info.datatype,
                           "shape": list(array.shape), "data": data})
        return answer

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": t.v2_shape}
                       for t in self.inputs],
            "outputs": [{"name": t.name, "datatype": t.datatype, "shape": t.v2_shape}
                        for t in self.outputs if t.kind != "unsupported"],
        }

    # --- warm-up ---------------------------------------------------------------------------------

    def sample_feeds(self, rows: int = 1) -> dict[str, np.ndarray]:
        if self.codec is not None:
            row = [f.example_value() for f in self.features]
            return self.codec.feeds([row] * rows)
        feeds = {}
        for tensor in self.inputs:
            shape = [d if d is not None else 1 for d in tensor.shape]
            if tensor.dynamic_batch and shape:
                shape[0] = rows
            if tensor.dtype is object:
                feeds[tensor.name] = np.full(shape, "", dtype=object)
            else:
                feeds[tensor.name] = np.zeros(shape, dtype=tensor.dtype)
        return feeds

    def warm_up(self, batch_rows: int) -> str | None:
        """A few inferences on a sample, outside the metrics; the error text if the model fails."""
        try:
            feeds = self.sample_feeds(1)
            for _ in range(WARM_UP_RUNS):
                self.session.run(self.output_names, feeds)
            if self.batchable and batch_rows > 1:
                self.session.run(self.output_names, self.sample_feeds(batch_rows))
        except Exception as exc:  # noqa: BLE001 - reported, and the server serves anyway
            return first_line(exc)
        return None


def _concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], list):
        return [row for part in parts for row in part]
    return np.concatenate(parts)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind in "US" or value.dtype == np.float16:
            return value.tolist()
        return np.ascontiguousarray(value)
    if isinstance(value, np.float16):
        return float(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if type(item) is list:
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _v2_tensor(tensor: dict[str, Any], expected: TensorInfo) -> np.ndarray:
    name = expected.name
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InputError(f"input '{name}': 'shape' must be a list of non-negative integers, "
                         f"got {shape!r}")
    datatype = tensor.get("datatype")
    if datatype != expected.datatype:
        raise InputError(f"input '{name}' has datatype {datatype!r}, the model takes "
                         f"{expected.datatype}")
    want = expected.shape
    if len(shape) != len(want) or any(w is not None and w != d for w, d in zip(want, shape)):
        raise InputError(f"input '{name}' has shape {shape}, the model takes "
                         f"{expected.v2_shape} (-1: any size)")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise InputError(f"input '{name}': 'data' must be a list of values, "
                         f"got {json_type(data)}")
    size = math.prod(shape)
    if data and type(data[0]) is list:
        data = _flatten(data)
    if len(data) != size:
        raise InputError(f"input '{name}' has {len(data)} values, but shape {shape} "
                         f"needs {size}")
    if expected.dtype is object:
        if not all(type(v) is str for v in data):
            bad = next(v for v in data if type(v) is not str)
            raise InputError(f"input '{name}' is BYTES: every value must be a string, "
                             f"got {json_type(bad)}")
        return np.array(data, dtype=object).reshape(shape)
    kinds = set(map(type, data))
    if expected.dtype is np.bool_:
        if not kinds <= {bool}:
            raise InputError(f"input '{name}' is BOOL: every value must be true or false")
        return np.array(data, dtype=np.bool_).reshape(shape)
    dtype = np.dtype(expected.dtype)
    if dtype.kind == "f":
        if not kinds <= NUMBER_TYPES:
            bad = next(v for v in data if type(v) not in NUMBER_TYPES)
            raise InputError(f"input '{name}' is {expected.datatype}: every value must be a "
                             f"number, got {json_type(bad)}")
        limit = float(np.finfo(dtype).max)
        if data and not (-limit <= min(data) and max(data) <= limit):
            raise InputError(f"input '{name}' has values out of range for {expected.datatype}")
        return np.array(data, dtype=dtype).reshape(shape)
    if not kinds <= {int}:
        bad = next(v for v in data if type(v) is not int)
        raise InputError(f"input '{name}' is {expected.datatype}: every value must be an "
                         f"integer, got {json_type(bad)}")
    info = np.iinfo(dtype)
    if data and not (info.min <= min(data) and max(data) <= info.max):
        raise InputError(f"input '{name}' has values out of range for {expected.datatype}")
    return np.array(data, dtype=dtype).reshape(shape)


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 4  # errors reach the caller as exceptions; no C++ log lines
    # Spinning inference threads would take the core the event loop needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise StartupError(f"model file '{path.name}' cannot be loaded by onnxruntime: "
                           f"{first_line(exc)}") from None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1

