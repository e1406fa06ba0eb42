"""Real model versions for the comparison tests: scikit-learn estimators trained on the demo's wine
rows (and on scikit-learn's diabetes data), converted to ONNX the way resources/demo/make_demo.py
converts the demo (input "input", feature and class names as metadata), so every version takes the
demo's rows and its served requests.

- `wine_version(folder, name, estimator, drop=())`: a wine classifier; `drop` leaves features out,
  so its input is narrower and the feature list lacks them (an input changed between versions).
- `int8_of(path, folder)`: the dynamic int8 quantization the Optimize stage makes.
- `diabetes_version(folder, name, estimator)` and `diabetes_csv(folder)`: regressors and their rows
  with the target column.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd

DEMO_FOLDER = Path(__file__).resolve().parents[1] / "resources" / "demo"
WINE_CSV = DEMO_FOLDER / "wine_reference.csv"
DEMO_MODEL = DEMO_FOLDER / "wine_classifier.onnx"


def wine_rows() -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_csv(WINE_CSV)
    return frame.drop(columns=["target"]), frame["target"].to_numpy()


def _save(model, folder: Path, name: str, features: list[dict], classes: list[str] | None) -> Path:
    model.graph.input[0].name = "input"
    for node in model.graph.node:
        node.input[:] = ["input" if i == "X" else i for i in node.input]
    props = {"slipway.features": json.dumps(features)}
    if classes is not None:
        props["slipway.class_names"] = json.dumps(classes)
    onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    path = folder / f"{name}.onnx"
    onnx.save(model, path)
    return path


def _features(X: pd.DataFrame) -> list[dict]:
    return [{"name": column, "kind": "numeric", "dtype": "float32",
             "example": round(float(X[column].mean()), 3),
             "spread": round(float(X[column].std()), 3), "tensor": "input"}
            for column in X.columns]


def wine_version(folder: Path, name: str, estimator, drop: tuple[str, ...] = ()) -> Path:
    """`estimator` fitted on the wine rows (without `drop`), as ONNX with the demo's metadata."""
    from skl2onnx import to_onnx

    X, y = wine_rows()
    X = X.drop(columns=list(drop)).astype("float32")
    estimator.fit(X.to_numpy(), y)
    model = to_onnx(estimator, X.to_numpy()[:1], options={"zipmap": False}, target_opset=17)
    return _save(model, folder, name, _features(X), ["class_0", "class_1", "class_2"])


def int8_of(path: Path, folder: Path) -> Path:
    """The model's dynamic int8 quantization, written by the Optimize stage."""
    from studio.core.model.artifact import load
    from studio.core.optimize.optimize import optimize

    optimized = optimize(load(path), "int8", folder / f"{path.stem}.int8.onnx")
    assert optimized.artifact is not None, optimized.report.note
    return optimized.artifact.model_file


def diabetes_data() -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y.to_numpy()


def diabetes_csv(folder: Path) -> Path:
    X, y = diabetes_data()
    path = folder / "diabetes.csv"
    X.assign(progression=y).to_csv(path, index=False)
    return path


def diabetes_version(folder: Path, name: str, estimator) -> Path:
    from skl2onnx import to_onnx

    X, y = diabetes_data()
    X = X.astype("float32")
    estimator.fit(X.to_numpy(), y)
    model = to_onnx(estimator, X.to_numpy()[:1], target_opset=17)
    return _save(model, folder, name, _features(X), None)
