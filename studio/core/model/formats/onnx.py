"""ONNX models: validated, bounded in memory, and inspected without running them.

Parsing an ONNX file runs no code from it, so this happens in the calling process. Three things are
checked before anything else touches the model: tensors stored as external data must live inside the
model's own folder (a model must not read /etc/passwd into a tensor), the whole model must fit in
the memory this machine has free, and `onnx.checker` must accept it with its full check.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import onnx
from google.protobuf.message import DecodeError
from onnx import GraphProto, ModelProto, TensorProto, ValueInfoProto

from studio.core.errors import ModelLoadError, first_line
from studio.core.model.schema import (
    FeatureSpec,
    ModelMetadata,
    ModelSchema,
    OnnxInfo,
    OutputSpec,
    Task,
    TensorSpec,
)
from studio.core.units import human_size

T = TypeVar("T")

PROTOBUF_LIMIT = 2 * 1024**3
# An inference session holds the weights about twice over while it optimizes the graph.
LOAD_MEMORY_FACTOR = 2.0
FEATURES_PROPERTY = "slipway.features"
CLASS_NAMES_PROPERTY = "slipway.class_names"

CLASSIFIER_OPS = {"TreeEnsembleClassifier", "LinearClassifier", "SVMClassifier", "ZipMap"}
REGRESSOR_OPS = {"TreeEnsembleRegressor", "LinearRegressor", "SVMRegressor"}
LABEL_OUTPUTS = {"label", "output_label"}
PROBABILITY_OUTPUTS = {"probabilities", "output_probability", "probability"}


def available_memory() -> int:
    """Bytes this process can still allocate without swapping (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def element_type_name(elem_type: int) -> str:
    """ONNX element type as a numpy-style name: FLOAT -> float32, STRING -> string."""
    if elem_type == TensorProto.STRING:
        return "string"
    if elem_type == TensorProto.BFLOAT16:
        return "bfloat16"
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        return TensorProto.DataType.Name(elem_type).lower()


def _type_text(value: ValueInfoProto) -> str:
    kind = value.type.WhichOneof("value")
    if kind == "tensor_type":
        return element_type_name(value.type.tensor_type.elem_type)
    if kind == "sequence_type":
        inner = value.type.sequence_type.elem_type
        if inner.WhichOneof("value") == "map_type":
            key = element_type_name(inner.map_type.key_type)
            val = element_type_name(inner.map_type.value_type.tensor_type.elem_type)
            return f"seq(map({key}, {val}))"
        return "sequence"
    return kind or "unknown"


def _shape(value: ValueInfoProto) -> list[int | str | None]:
    if value.type.WhichOneof("value") != "tensor_type":
        return []
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return []
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(dim.dim_value)
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


def _subgraphs(node: onnx.NodeProto) -> Iterator[GraphProto]:
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            yield from attribute.graphs


def _nodes(graph: GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for subgraph in _subgraphs(node):
            yield from _nodes(subgraph)


def _tensors(graph: GraphProto) -> Iterator[TensorProto]:
    """Every stored tensor: initializers and tensor attributes, in subgraphs too."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                yield attribute.t
            elif attribute.type == onnx.AttributeProto.TENSORS:
                yield from attribute.tensors
        for subgraph in _subgraphs(node):
            yield from _tensors(subgraph)


def _external_data_bytes(model: ModelProto, model_path: Path) -> int:
    """Check every external tensor file lies inside the model's folder; return their total size."""
    folder = model_path.parent.resolve()
    files: set[Path] = set()
    for tensor in _tensors(model.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location", "")
        target = (folder / location).resolve()
        if not location or os.path.isabs(location) or not target.is_relative_to(folder):
            raise ModelLoadError(
                f"Tensor '{tensor.name}' reads its data from '{location}', outside the model's folder.",
                "Keep external data files next to the .onnx file (onnx.save_model with "
                "save_as_external_data=True and a relative location), then load it again.",
            )
        if not target.is_file():
            raise ModelLoadError(
                f"Tensor '{tensor.name}' stores its data in '{location}', which does not exist.",
                "Copy the external data file into the model's folder next to the .onnx file.",
            )
        files.add(target)
    return sum(f.stat().st_size for f in files)


def _check_memory(total_bytes: int, memory_limit: int | None) -> None:
    budget = memory_limit if memory_limit is not None else available_memory()
    needed = int(total_bytes * LOAD_MEMORY_FACTOR)
    if needed > budget:
        raise ModelLoadError(
            f"This model needs about {human_size(needed)} of memory to load, and only {human_size(budget)} "
            "is available.",
            "Close other programs or use a machine with more memory; an int8-quantized copy of "
            "the model needs about a quarter as much.",
        )


# The first field of a serialized ModelProto, as (field number, wire type): ONNX writers start
# with ir_version, but protobuf allows any order, so every top-level field of onnx.proto counts.
MODEL_FIELDS = {(1, 0), (2, 2), (3, 2), (4, 2), (5, 0), (6, 2), (7, 2), (8, 2), (14, 2), (20, 2),
                (25, 2), (26, 2)}


def _check_head(path: Path) -> None:
    """Refuse a file whose first bytes cannot start an ONNX model before parsing reads all of it
    (a 2 GiB file of zeros would otherwise be read whole into memory to fail)."""
    with open(path, "rb") as handle:
        head = handle.read(10)
    key, shift = 0, 0
    for byte in head:  # the field key is a varint
        key |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    else:
        key = 0
    if (key >> 3, key & 7) not in MODEL_FIELDS:
        raise _unreadable(path, f"the first bytes {head.hex()} start no field of a ModelProto")


def _unreadable(path: Path, detail: str) -> ModelLoadError:
    return ModelLoadError(
        f"'{path.name}' is not a readable ONNX model: the file is damaged, truncated or not "
        "ONNX at all.",
        "Export the model again, or check the copy finished.", detail=detail)


def _parse(path: Path) -> ModelProto:
    try:
        return onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError,
            onnx.onnx_cpp2py_export.checker.ValidationError) as exc:
        raise _unreadable(path, str(exc)) from exc


def _check(path: Path) -> None:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ModelLoadError(
            f"'{path.name}' is not a valid ONNX model: {first_line(exc)}",
            "Export the model again with a current exporter; onnx.checker must accept it.",
            detail=str(exc),
        ) from exc


def _slipway_property(props: dict[str, str], key: str, read: Callable[[Any], T],
                      warnings: list[str]) -> T | None:
    """What the studio's converter stored under `key`, or None with a warning when it is not
    readable: the property is a hint (names, classes), so a damaged one is set aside, not fatal."""
    if key not in props:
        return None
    try:
        return read(json.loads(props[key]))
    except (ValueError, TypeError, KeyError) as exc:  # JSON, pydantic and shape errors
        warnings.append(f"The model's '{key}' metadata is not readable and was ignored "
                        f"({first_line(exc)[:120]}).")
        return None


def _class_names(value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise ValueError("expected a list of class names")
    return value


def _feature_list(value: Any) -> list[FeatureSpec]:
    if not isinstance(value, list):
        raise ValueError("expected a list of features")
    return [FeatureSpec.model_validate(f) for f in value]


def _task_and_classes(model: ModelProto, props: dict[str, str], operators: Counter[str],
                      outputs: list[ValueInfoProto], warnings: list[str]) -> tuple[Task, list | None]:
    classes = _slipway_property(props, CLASS_NAMES_PROPERTY, _class_names, warnings)
    for node in _nodes(model.graph):
        if node.op_type in CLASSIFIER_OPS and classes is None:
            for attribute in node.attribute:
                if attribute.name in ("classlabels_strings", "classlabels_int64s"):
                    values = onnx.helper.get_attribute_value(attribute)
                    classes = [v.decode() if isinstance(v, bytes) else int(v) for v in values]
                    break
    names = {o.name for o in outputs}
    if operators.keys() & CLASSIFIER_OPS or (names & LABEL_OUTPUTS and names & PROBABILITY_OUTPUTS):
        return "classification", classes
    if operators.keys() & REGRESSOR_OPS or names == {"variable"}:
        return "regression", None
    return "other", classes


def _output_role(name: str, task: Task) -> str:
    if name in LABEL_OUTPUTS:
        return "label"
    if name in PROBABILITY_OUTPUTS:
        return "probabilities"
    if task == "regression":
        return "value"
    return "tensor"


def _features(props: dict[str, str], inputs: list[TensorSpec],
              warnings: list[str]) -> list[FeatureSpec]:
    stored = _slipway_property(props, FEATURES_PROPERTY, _feature_list, warnings)
    if stored is not None:
        return stored
    if inputs and all(t.shape[1:] == [1] for t in inputs):
        return [
            FeatureSpec(
                name=t.name,
                kind="categorical" if t.dtype == "string" else "numeric",
                dtype=t.dtype,
                tensor=t.name,
            )
            for t in inputs
        ]
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and isinstance(inputs[0].shape[1], int):
        tensor = inputs[0]
        return [
            FeatureSpec(name=f"x{i}", kind="numeric", dtype=tensor.dtype, tensor=tensor.name)
            for i in range(tensor.shape[1])
        ]
    return []


def _parameter_count(model: ModelProto) -> int:
    return sum(math.prod(t.dims) for t in model.graph.initializer)


def inspect_onnx(path: Path, *, memory_limit: int | None = None) -> tuple[ModelSchema, ModelProto]:
    """Validate an ONNX file and describe it. Returns the schema and the parsed graph (weights
    stored externally are not read)."""
    size = path.stat().st_size
    if size >= PROTOBUF_LIMIT:
        raise ModelLoadError(
            f"'{path.name}' is {human_size(size)}; a single ONNX file cannot exceed 2 GiB.",
            "Save the weights as external data next to the model (onnx.save_model with "
            "save_as_external_data=True).",
        )
    _check_memory(size, memory_limit)
    _check_head(path)
    model = _parse(path)
    if not model.graph.node and not model.graph.output:
        raise ModelLoadError(
            f"'{path.name}' holds no ONNX graph: it is not an ONNX model.",
            "Choose the .onnx file the exporter wrote.",
        )
    external = _external_data_bytes(model, path)
    _check_memory(size + external, memory_limit)
    _check(path)

    initializer_names = {t.name for t in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initializer_names]
    inputs = [TensorSpec(name=i.name, dtype=_type_text(i), shape=_shape(i)) for i in graph_inputs]
    operators = Counter(node.op_type for node in _nodes(model.graph))
    props = {p.key: p.value for p in model.metadata_props}
    warnings: list[str] = []
    task, classes = _task_and_classes(model, props, operators, list(model.graph.output), warnings)
    outputs = [
        OutputSpec(name=o.name, role=_output_role(o.name, task), dtype=_type_text(o), shape=_shape(o))
        for o in model.graph.output
    ]
    info = OnnxInfo(
        ir_version=model.ir_version,
        opsets={(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        producer=model.producer_name,
        producer_version=model.producer_version,
        domain=model.domain,
        model_version=model.model_version,
        doc_string=model.doc_string,
        node_count=sum(operators.values()),
        operators=dict(operators.most_common()),
        parameter_count=_parameter_count(model),
        properties={k: v for k, v in props.items() if not k.startswith("slipway.")},
    )
    schema = ModelSchema(
        name=path.stem,
        task=task,
        inputs=inputs,
        features=_features(props, inputs, warnings),
        outputs=outputs,
        class_names=classes,
        metadata=ModelMetadata(
            format="onnx",
            path=str(path),
            file_size=size + external,
            sha256="",
            onnx=info,
            library_versions={"onnx": onnx.__version__},
            warnings=warnings,
        ),
    )
    return schema, model
