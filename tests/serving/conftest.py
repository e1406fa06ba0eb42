"""Real models served by the real server, in process (httpx over ASGI) and as a child process.

The server package lives in serving_templates/server (it is copied into images by path, not
installed), so this folder puts it on sys.path. The models are scikit-learn estimators converted by
skl2onnx the way the studio converts them (zipmap=False; one [N, 1] input per column for a
ColumnTransformer pipeline), and the real squeezenet that ships in the onnx wheel. Each comes with a
serving.json written in the bundler's format.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Puts serving_templates/server on sys.path, so `import slipway_server` works in every test here.
from server_helpers import IRIS_CLASSES, IRIS_FEATURES, ServedModel, bundler_config, sha256

WINE_MODEL = Path(__file__).resolve().parents[2] / "resources" / "demo" / "wine_classifier.onnx"
SQUEEZENET = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / \
    "light_squeezenet.onnx"


def _metadata(path: Path) -> dict[str, Any]:
    return {"format": "onnx", "path": str(path), "file_size": path.stat().st_size,
            "sha256": sha256(path)}


def _classifier_outputs(label_dtype: str, classes: int) -> list[dict[str, Any]]:
    return [{"name": "label", "role": "label", "dtype": label_dtype, "shape": ["N"]},
            {"name": "probabilities", "role": "probabilities", "dtype": "float32",
             "shape": ["N", classes]}]


def _iris_schema(path: Path, X: np.ndarray, name: str) -> dict[str, Any]:
    return {
        "name": name, "task": "classification",
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["N", 4]}],
        "features": [{"name": f, "kind": "numeric", "dtype": "float32", "categories": None,
                      "example": round(float(X[:, i].mean()), 2), "tensor": "input"}
                     for i, f in enumerate(IRIS_FEATURES)],
        "outputs": _classifier_outputs("string", 3),
        "class_names": IRIS_CLASSES,
        "metadata": _metadata(path),
    }


@pytest.fixture(scope="session")
def iris_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return X.astype(np.float32), np.array(IRIS_CLASSES)[y]


def _save_iris(folder: Path, estimator: Any, X: np.ndarray, name: str) -> ServedModel:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = to_onnx(estimator, initial_types=[("input", FloatTensorType([None, 4]))],
                    options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    path = folder / f"{name}.onnx"
    onnx.save_model(model, path)
    return ServedModel(name, path, bundler_config(path, _iris_schema(path, X, name), name), X)


@pytest.fixture(scope="session")
def iris_logreg(tmp_path_factory, iris_data) -> ServedModel:
    from sklearn.linear_model import LogisticRegression

    X, y = iris_data
    estimator = LogisticRegression(max_iter=1000).fit(X, y)
    return _save_iris(tmp_path_factory.mktemp("iris-logreg"), estimator, X, "iris")


@pytest.fixture(scope="session")
def iris_forest(tmp_path_factory, iris_data) -> ServedModel:
    from sklearn.ensemble import RandomForestClassifier

    X, y = iris_data
    estimator = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    return _save_iris(tmp_path_factory.mktemp("iris-forest"), estimator, X, "iris_forest")


@pytest.fixture(scope="session")
def mixed_model(tmp_path_factory) -> ServedModel:
    """A ColumnTransformer pipeline over strings and numbers: one [N, 1] input per column.

    The one-hot encoder refuses unknown categories (handle_unknown="error"), so an unseen plan is
    a value onnxruntime rejects after validation passed."""
    import pandas as pd
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(7)
    n = 300
    X = pd.DataFrame({
        "plan": rng.choice(["basic", "plus", "pro"], n),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "age": rng.integers(18, 80, n).astype(np.float32),
        "monthly_spend": rng.gamma(2.0, 30.0, n).astype(np.float32),
    })
    score = X["monthly_spend"] / 30 + (X["plan"] == "basic") * 1.5 - (X["age"] - 50) / 40
    y = np.where(score + rng.normal(0, 0.5, n) > 2.5, "churn", "stay")
    prep = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="error"), ["plan", "region"]),
        ("numbers", StandardScaler(), ["age", "monthly_spend"]),
    ])
    pipeline = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=1000))])
    pipeline.fit(X, y)
    types = [("plan", StringTensorType([None, 1])), ("region", StringTensorType([None, 1])),
             ("age", FloatTensorType([None, 1])), ("monthly_spend", FloatTensorType([None, 1]))]
    model = convert_sklearn(pipeline, initial_types=types,
                            options={id(pipeline.steps[-1][1]): {"zipmap": False}},
                            target_opset={"": 17, "ai.onnx.ml": 3})
    path = tmp_path_factory.mktemp("mixed") / "churn.onnx"
    onnx.save_model(model, path)
    features = [
        {"name": "plan", "kind": "categorical", "dtype": "string",
         "categories": ["basic", "plus", "pro"], "example": "plus", "tensor": "plan"},
        {"name": "region", "kind": "categorical", "dtype": "string",
         "categories": ["east", "north", "south", "west"], "example": "north", "tensor": "region"},
        {"name": "age", "kind": "numeric", "dtype": "float32", "example": 42.0, "tensor": "age"},
        {"name": "monthly_spend", "kind": "numeric", "dtype": "float32", "example": 55.5,
         "tensor": "monthly_spend"},
    ]
    schema = {
        "name": "churn", "task": "classification",
        "inputs": [{"name": f["name"], "dtype": f["dtype"], "shape": ["N", 1]} for f in features],
        "features": features, "outputs": _classifier_outputs("string", 2),
        "class_names": ["churn", "stay"], "metadata": _metadata(path),
    }
    return ServedModel("churn", path, bundler_config(path, schema, "churn"), X)


@pytest.fixture(scope="session")
def regressor(tmp_path_factory) -> ServedModel:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    y = X @ np.array([2.0, -1.0, 0.5]) + 3.0
    model = to_onnx(Ridge().fit(X, y), initial_types=[("input", FloatTensorType([None, 3]))],
                    target_opset={"": 17, "ai.onnx.ml": 3})
    path = tmp_path_factory.mktemp("ridge") / "ridge.onnx"
    onnx.save_model(model, path)
    schema = {
        "name": "ridge", "task": "regression",
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["N", 3]}],
        "features": [{"name": n, "kind": "numeric", "dtype": "float32", "tensor": "input"}
                     for n in ("a", "b", "c")],
        "outputs": [{"name": "variable", "role": "value", "dtype": "float32",
                     "shape": ["N", 1]}],
        "metadata": _metadata(path),
    }
    return ServedModel("ridge", path, bundler_config(path, schema, "ridge"), X)


@pytest.fixture(scope="session")
def squeezenet(tmp_path_factory) -> ServedModel:
    """The real image model: one fixed [1, 3, 224, 224] input, no tabular features."""
    assert SQUEEZENET.is_file(), f"the onnx wheel has no test model at {SQUEEZENET}"
    schema = {
        "name": "light_squeezenet", "task": "other",
        "inputs": [{"name": "data_0", "dtype": "float32", "shape": [1, 3, 224, 224]}],
        "features": [],
        "outputs": [{"name": "softmaxout_1", "role": "tensor", "dtype": "float32",
                     "shape": [1, 1000, 1, 1]}],
        "class_names": None, "metadata": _metadata(SQUEEZENET),
    }
    # An image as JSON is about 10 bytes per value: 1.5 MB for one 224x224 RGB image.
    config = bundler_config(SQUEEZENET, schema, "light_squeezenet",
                            limits={"max_body_bytes": 8 * 1024 * 1024, "max_batch_rows": 1024,
                                    "max_concurrency": 512})
    config["model_file"] = str(SQUEEZENET)
    return ServedModel("light_squeezenet", SQUEEZENET, config, None)


@pytest.fixture(scope="session")
def wine_demo() -> ServedModel:
    """The studio's demo model as shipped: 13 FP32 features in, an INT64 label and FP32
    probabilities out; its features and class names come from the model's own metadata."""
    assert WINE_MODEL.is_file(), f"{WINE_MODEL} is missing"
    import pandas as pd

    rows = pd.read_csv(WINE_MODEL.parent / "wine_reference.csv").drop(columns="target")
    config = {"model_file": str(WINE_MODEL), "name": "wine", "version": "1",
              "sha256": sha256(WINE_MODEL)}
    return ServedModel("wine", WINE_MODEL, config, rows.to_numpy(dtype=np.float32))


@pytest.fixture(scope="session")
def every_datatype(tmp_path_factory) -> ServedModel:
    """A model that hands back what it is given, one input of each datatype the server can feed
    (BOOL, UINT8, INT8, INT16, INT32, INT64, UINT16, UINT32, UINT64, FP16, FP32, FP64, BYTES),
    each [N, 2]: every value's way in and out, byte for byte."""
    from onnx import TensorProto, helper

    types = {"bool": TensorProto.BOOL, "uint8": TensorProto.UINT8, "int8": TensorProto.INT8,
             "int16": TensorProto.INT16, "int32": TensorProto.INT32, "int64": TensorProto.INT64,
             "uint16": TensorProto.UINT16, "uint32": TensorProto.UINT32,
             "uint64": TensorProto.UINT64, "fp16": TensorProto.FLOAT16,
             "fp32": TensorProto.FLOAT, "fp64": TensorProto.DOUBLE, "bytes": TensorProto.STRING}
    graph = helper.make_graph(
        [helper.make_node("Identity", [name], [f"{name}_out"]) for name in types],
        "every_datatype",
        [helper.make_tensor_value_info(name, kind, ["N", 2]) for name, kind in types.items()],
        [helper.make_tensor_value_info(f"{name}_out", kind, ["N", 2])
         for name, kind in types.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path_factory.mktemp("every-datatype") / "every_datatype.onnx"
    onnx.save_model(model, path)
    config = {"model_file": path.name, "name": "every_datatype", "version": "1",
              "sha256": sha256(path)}
    return ServedModel("every_datatype", path, config, None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Gate:
    """Holds every onnxruntime call until opened: a slow model on demand."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.calls = 0

    def install(self, app: Any) -> None:
        real = app.model.session
        gate = self

        class HeldSession:
            def run(self, *args: Any, **kwargs: Any) -> Any:
                gate.calls += 1
                gate.event.wait(10)
                return real.run(*args, **kwargs)

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

        app.model.session = HeldSession()
        if getattr(app, "batcher", None) is not None:
            app.batcher.inline_below_s = 0.0  # a held model is a slow one: never on the loop

    async def wait_for_inflight(self, app: Any, count: int, timeout: float = 5.0) -> None:
        import anyio

        deadline = time.monotonic() + timeout
        while app.metrics.inflight < count:
            assert time.monotonic() < deadline, f"{app.metrics.inflight} in flight, not {count}"
            await anyio.sleep(0.002)

    async def wait_for_inferences(self, app: Any, count: int, timeout: float = 5.0) -> None:
        """Until `count` requests hold an inference slot (queued for the model or in it)."""
        import anyio

        deadline = time.monotonic() + timeout
        while app.inferring < count:
            assert time.monotonic() < deadline, f"{app.inferring} inferring, not {count}"
            await anyio.sleep(0.002)

    async def wait_for_calls(self, count: int, timeout: float = 5.0) -> None:
        import anyio

        deadline = time.monotonic() + timeout
        while self.calls < count:
            assert time.monotonic() < deadline, f"{self.calls} onnxruntime calls, not {count}"
            await anyio.sleep(0.002)

    def open(self) -> None:
        self.event.set()


@pytest.fixture
def gate():
    held = Gate()
    yield held
    held.open()  # never leave an inference thread waiting
