"""Rebuild the demo model and its reference data: python resources/demo/make_demo.py

The demo is a wine-cultivar classifier (scikit-learn's bundled wine dataset, 13 numeric features,
3 classes): a StandardScaler and a LogisticRegression, converted to ONNX with skl2onnx. The ONNX file
carries the feature names, example values and class names as metadata, so the studio shows a real
tabular schema. `wine_reference.csv` is the training data, for drift and parity checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from skl2onnx import to_onnx
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent


def main() -> None:
    frame = load_wine(as_frame=True)
    X, y = frame.data.astype("float32"), frame.target
    names = [n.replace("/", "_") for n in X.columns]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    model.fit(X.to_numpy(), y)
    onx = to_onnx(model, X.to_numpy()[:1], options={"zipmap": False}, target_opset=17)
    onx.graph.input[0].name = "input"
    for node in onx.graph.node:
        node.input[:] = ["input" if i == "X" else i for i in node.input]
    scaler = model.named_steps["standardscaler"]
    features = [{"name": n, "kind": "numeric", "dtype": "float32", "example": round(float(m), 3),
                 "spread": round(float(sd), 3), "tensor": "input"}
                for n, m, sd in zip(names, scaler.mean_, scaler.scale_)]
    onnx.helper.set_model_props(onx, {
        "slipway.features": json.dumps(features),
        "slipway.class_names": json.dumps([str(c) for c in frame.target_names]),
    })
    onx.doc_string = "Wine cultivar classifier (scikit-learn wine dataset), Slipway Studio demo."
    onnx.checker.check_model(onx, full_check=True)
    onnx.save(onx, HERE / "wine_classifier.onnx")
    reference = X.copy()
    reference.columns = names
    reference["target"] = y
    reference.to_csv(HERE / "wine_reference.csv", index=False)


if __name__ == "__main__":
    main()
