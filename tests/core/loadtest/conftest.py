"""The served models the load test's tests share: one of each for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from served_models import DEMO_MODEL, WINE_REFERENCE, Served, onnx_metadata, serve_in_process

from studio.core.model.artifact import load
from studio.core.model.schema import ModelSchema


@pytest.fixture(scope="session")
def wine_server() -> Iterator[Served]:
    """The demo model, bundled and run by the studio's process runtime."""
    from studio.core.serve.deploy import DeployOptions, deploy

    artifact = load(DEMO_MODEL)
    deployment = deploy(artifact, DeployOptions(runtime="process"))
    try:
        yield Served(deployment.url, artifact.schema)
    finally:
        deployment.stop()


@pytest.fixture(scope="session")
def wine_server_with_reference() -> Iterator[Served]:
    """The demo model bundled with its reference data, as the Serve page bundles it when the user
    gives a dataset: the server profiles its inputs on that data's bins (GET /reference)."""
    from studio.core.serve.bundle import ServingOptions
    from studio.core.serve.deploy import DeployOptions, deploy

    artifact = load(DEMO_MODEL)
    deployment = deploy(artifact, DeployOptions(
        runtime="process", serving=ServingOptions(reference_data=WINE_REFERENCE)))
    try:
        yield Served(deployment.url, artifact.schema)
    finally:
        deployment.stop()


@pytest.fixture(scope="session")
def churn_server(tmp_path_factory) -> Iterator[Served]:
    """plan (string category), age (int64) and monthly_spend (float32), each its own [N, 1] input,
    through a ColumnTransformer pipeline converted by skl2onnx."""
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(7)
    n = 300
    X = pd.DataFrame({"plan": rng.choice(["basic", "plus", "pro"], n),
                      "age": rng.integers(18, 80, n),
                      "monthly_spend": rng.gamma(2.0, 30.0, n).astype(np.float32)})
    y = np.where(X["monthly_spend"] / 30 + (X["plan"] == "basic") - (X["age"] - 50) / 40 > 2.0,
                 "churn", "stay")
    prep = ColumnTransformer([("categories", OneHotEncoder(handle_unknown="error"), ["plan"]),
                              ("numbers", StandardScaler(), ["age", "monthly_spend"])])
    pipeline = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=1000))]).fit(X, y)
    types = [("plan", StringTensorType([None, 1])), ("age", Int64TensorType([None, 1])),
             ("monthly_spend", FloatTensorType([None, 1]))]
    model = convert_sklearn(pipeline, initial_types=types,
                            options={id(pipeline.steps[-1][1]): {"zipmap": False}},
                            target_opset={"": 17, "ai.onnx.ml": 3})
    path = tmp_path_factory.mktemp("churn") / "churn.onnx"
    onnx.save_model(model, path)
    features = [
        {"name": "plan", "kind": "categorical", "dtype": "string",
         "categories": ["basic", "plus", "pro"], "example": "plus", "tensor": "plan"},
        {"name": "age", "kind": "numeric", "dtype": "int64", "example": 42, "spread": 15.0,
         "tensor": "age"},
        {"name": "monthly_spend", "kind": "numeric", "dtype": "float32", "example": 55.5,
         "spread": 40.0, "tensor": "monthly_spend"},
    ]
    schema = {
        "name": "churn", "task": "classification",
        "inputs": [{"name": f["name"], "dtype": f["dtype"], "shape": ["N", 1]} for f in features],
        "features": features,
        "outputs": [{"name": "label", "role": "label", "dtype": "string", "shape": ["N"]},
                    {"name": "probabilities", "role": "probabilities", "dtype": "float32",
                     "shape": ["N", 2]}],
        "class_names": ["churn", "stay"], "metadata": onnx_metadata(path),
    }
    with serve_in_process(path, schema) as server:
        yield Served(server.url, ModelSchema.model_validate(schema))


@pytest.fixture(scope="session")
def relu_server(tmp_path_factory) -> Iterator[Served]:
    """A tensor model without tabular features: Relu over an [N, 3, 4, 4] float tensor."""
    import onnx
    from onnx import TensorProto, helper

    shape = ["N", 3, 4, 4]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("relu") / "relu.onnx"
    onnx.save_model(model, path)
    schema = {"name": "relu", "task": "other",
              "inputs": [{"name": "x", "dtype": "float32", "shape": shape}], "features": [],
              "outputs": [{"name": "y", "role": "tensor", "dtype": "float32", "shape": shape}],
              "class_names": None, "metadata": onnx_metadata(path)}
    with serve_in_process(path, schema) as server:
        yield Served(server.url, ModelSchema.model_validate(schema))
