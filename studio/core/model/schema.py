"""What a model takes and gives: the ModelSchema every later stage reads.

A schema is plain data (pydantic models) that round-trips through JSON, so the GUI, the command line,
a child process and the serving bundle all pass the same object. It describes the model as it will
be served: the tensors of its ONNX form (`inputs`), the tabular features behind them (`features`),
what comes out (`outputs`), and sample request bodies filled with valid values.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

Dim = int | str | None
"""One dimension of a shape: a fixed size, a symbolic name such as "batch", or unknown."""

Task = Literal["classification", "regression", "other"]
Scalar = str | int | float | bool

# Element types are named as numpy names them ("float32"), with "string" for text.
V2_DATATYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "bfloat16": "BF16",
    "string": "BYTES",
}


def v2_datatype(dtype: str) -> str:
    """The Open Inference Protocol v2 name of an element type."""
    return V2_DATATYPES.get(dtype, dtype.upper())


def shape_text(shape: list[Dim]) -> str:
    """[N, 3, 224, 224], with ? for an unknown dimension."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


class TensorSpec(BaseModel):
    name: str
    dtype: str
    shape: list[Dim]


class FeatureSpec(BaseModel):
    """One column of a tabular model's input."""

    name: str
    kind: Literal["numeric", "categorical"]
    dtype: str
    categories: list[Scalar] | None = None
    example: Scalar | None = None
    """A valid value for this feature, used in sample requests (a category, a mean, a real row)."""
    spread: float | None = None
    """A typical deviation from `example` (a scaler's learned scale), for sampling valid rows."""
    tensor: str | None = None
    """The model input that carries this feature."""


class OutputSpec(BaseModel):
    name: str
    role: Literal["label", "probabilities", "value", "tensor"]
    dtype: str
    shape: list[Dim]


class PipelineStep(BaseModel):
    """A step of a scikit-learn pipeline (or a ColumnTransformer branch), nested as in the model."""

    name: str
    type: str
    columns: list[str] | None = None
    steps: list[PipelineStep] = Field(default_factory=list)


class OnnxInfo(BaseModel):
    ir_version: int
    opsets: dict[str, int]
    producer: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int = 0
    doc_string: str = ""
    node_count: int
    operators: dict[str, int]
    """Operator type -> count over the whole graph, subgraphs included; most used first."""
    parameter_count: int = 0
    properties: dict[str, str] = Field(default_factory=dict)


class ModelMetadata(BaseModel):
    format: str
    """onnx, sklearn-joblib, sklearn-pickle, skops, mlflow, xgboost, lightgbm."""
    path: str
    file_size: int
    sha256: str
    onnx: OnnxInfo | None = None
    estimator: str | None = None
    """Qualified class name of the estimator, e.g. sklearn.pipeline.Pipeline."""
    library_versions: dict[str, str] = Field(default_factory=dict)
    steps: list[PipelineStep] = Field(default_factory=list)
    properties: dict[str, str] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


class SampleBodies(BaseModel):
    """Request bodies that the model's server accepts, filled with valid values."""

    rest: dict[str, Any] | None = None
    """`POST /predict`; None for models without tabular features (images, raw tensors)."""
    rest_batch: dict[str, Any] | None = None
    """`POST /predict/batch`."""
    v2: dict[str, Any]
    """`POST /v2/models/{name}/infer`, the Open Inference Protocol form."""


class ModelSchema(BaseModel):
    name: str
    """The name the model is served under: the file's stem unless the model says otherwise."""
    task: Task
    inputs: list[TensorSpec]
    features: list[FeatureSpec] = Field(default_factory=list)
    outputs: list[OutputSpec]
    class_names: list[Scalar] | None = None
    metadata: ModelMetadata
    samples: SampleBodies | None = None

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSchema:
        return cls.model_validate_json(text)

    def with_samples(self) -> ModelSchema:
        return self.model_copy(update={"samples": sample_bodies(self)})


def numeric_feature(name: str, dtype: str = "float32", example: float | None = None,
                    tensor: str | None = None, spread: float | None = None) -> FeatureSpec:
    return FeatureSpec(name=name, kind="numeric", dtype=dtype, example=example, tensor=tensor,
                       spread=spread)


def tabular_inputs(features: list[FeatureSpec], per_column: bool = False) -> list[TensorSpec]:
    """The ONNX inputs a tabular model has once converted.

    All-numeric features travel together as one float32 matrix named "input"; a mixed-type table,
    or any model that selects columns by name (a ColumnTransformer over a DataFrame, `per_column`),
    gets one [N, 1] input per column with its own element type, which is how skl2onnx converts
    such pipelines.
    """
    if not per_column and all(f.kind == "numeric" for f in features):
        for feature in features:
            feature.tensor = "input"
        return [TensorSpec(name="input", dtype="float32", shape=["N", len(features)])]
    inputs = []
    for feature in features:
        feature.tensor = feature.name
        inputs.append(TensorSpec(name=feature.name, dtype=feature.dtype, shape=["N", 1]))
    return inputs


# --- sample request bodies ---------------------------------------------------------------------

def example_value(feature: FeatureSpec) -> Scalar:
    if feature.example is not None:
        return feature.example
    if feature.categories:
        return feature.categories[0]
    if feature.dtype == "string":
        return ""
    if feature.dtype == "bool":
        return False
    if feature.dtype.startswith(("int", "uint")):
        return 0
    return 0.0


def _fill_value(dtype: str) -> Scalar:
    if dtype == "string":
        return ""
    if dtype == "bool":
        return False
    if dtype.startswith(("int", "uint")):
        return 0
    return 0.0


def _concrete_shape(shape: list[Dim]) -> list[int]:
    """A symbolic or unknown dimension becomes 1: one row, one image."""
    return [d if isinstance(d, int) and d > 0 else 1 for d in shape]


def _v2_input(tensor: TensorSpec, data: list[Scalar], shape: list[int]) -> dict[str, Any]:
    return {"name": tensor.name, "shape": shape, "datatype": v2_datatype(tensor.dtype), "data": data}


def sample_bodies(schema: ModelSchema) -> SampleBodies:
    features = schema.features
    if features:
        row = {f.name: example_value(f) for f in features}
        rest: dict[str, Any] | None = {"features": row}
        rest_batch: dict[str, Any] | None = {"instances": [list(row.values())]}
    else:
        rest = rest_batch = None

    v2_inputs = []
    for tensor in schema.inputs:
        carried = [f for f in features if f.tensor == tensor.name]
        if carried:
            data = [example_value(f) for f in carried]
            shape = [1, len(carried)] if len(tensor.shape) == 2 else [len(carried)]
        else:
            shape = _concrete_shape(tensor.shape)
            data = [_fill_value(tensor.dtype)] * math.prod(shape)
        v2_inputs.append(_v2_input(tensor, data, shape))
    return SampleBodies(rest=rest, rest_batch=rest_batch, v2={"inputs": v2_inputs})
