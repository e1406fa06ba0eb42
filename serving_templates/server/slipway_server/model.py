"""The served model: an onnxruntime session, the roles of its outputs, running requests' feeds
(alone or batched), the answers /predict gives, and warm-up.

How JSON becomes input tensors is the codec's (tabular features) and v2's (tensors) business; this
module runs what they produce.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .codec import TabularCodec, schema_features
from .errors import ModelRunError, OutputError, first_line
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
logger = logging.getLogger("slipway")

LABEL_OUTPUTS = {"label", "output_label"}
PROBABILITY_OUTPUTS = {"probabilities", "output_probability", "probability"}
WARM_UP_RUNS = 3


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
        self.features = schema_features(schema.get("features"), self.inputs)
        self.codec = TabularCodec(self.features, self.inputs) if self.features else None
        self._roles(schema)
        self.batchable = all(t.dynamic_batch for t in self.inputs) and all(
            t.dynamic_batch for t in self.outputs if t.kind != "unsupported")
        # The outputs that can hold NaN or infinity, which JSON cannot carry.
        self._float_outputs = [i for i, t in enumerate(self.outputs) if t.kind == "seqmap" or (
            t.kind == "tensor" and np.dtype(t.dtype).kind == "f")]
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
        offending request gets the error. Outputs holding NaN or infinity become an OutputError
        for the requests they belong to; the check is one vectorised pass over the batch.
        """
        if len(items) == 1:
            feeds, rows = items[0]
            return [self._checked(self._run(feeds, rows), rows)]
        rows = sum(n for _, n in items)
        try:
            feeds = {name: np.concatenate([f[name] for f, _ in items])
                     for name in self.input_names}
        except ValueError:  # dynamic dimensions besides the batch one that differ: run alone
            return [self._checked(self._run(f, n), n) for f, n in items]
        result = self._run(feeds, rows)
        if isinstance(result, Exception) or not self._splittable(result, rows):
            return [self._checked(self._run(f, n), n) for f, n in items]
        finite = self._non_finite(result, rows) is None
        answers = []
        start = 0
        for _, n in items:
            end = start + n
            answer = [output[start:end] for output in result]
            answers.append(answer if finite else self._checked(answer, n))
            start = end
        return answers

    def _checked(self, outputs: Any, rows: int) -> Any:
        """The outputs, or the OutputError naming where they are not finite."""
        if isinstance(outputs, Exception):
            return outputs
        problem = self._non_finite(outputs, rows)
        return outputs if problem is None else OutputError(problem)

    def _non_finite(self, outputs: list[Any], rows: int) -> str | None:
        """Which output (and row) holds NaN or infinity; None when every value is finite."""
        for index in self._float_outputs:
            value = outputs[index]
            if self.outputs[index].kind == "seqmap":
                value = [list(row.values()) for row in value]
            finite = np.isfinite(np.asarray(value, dtype=np.float64)
                                 if not isinstance(value, np.ndarray) else value)
            if finite.all():
                continue
            where = "for this input"
            if rows > 1 and finite.ndim and len(finite) == rows:
                row = int(np.argmin(finite.reshape(rows, -1).all(axis=1)))
                where = f"for row {row} (counting from 0)"
            return (f"the model's output '{self.outputs[index].name}' is NaN or infinite {where}, "
                    "which JSON cannot carry: the input is probably far outside the values the "
                    "model was trained on")
        return None

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

