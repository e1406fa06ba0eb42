"""Checks shared by the end-to-end tests: what ONNX Runtime answers in this process."""

import numpy as np
import onnxruntime as ort


def onnx_answer(model_file, feeds):
    """What ONNX Runtime answers in this process, output name -> array."""
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def iris_row(model):
    row = model.X.iloc[[7]]
    return {name: float(value) for name, value in row.iloc[0].items()}, \
        row.to_numpy(dtype=np.float32)
