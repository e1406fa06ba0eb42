"""Checks shared by the end-to-end tests: what ONNX Runtime answers in this process, and what a
served image model answers over the Open Inference Protocol v2."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from studio.core.serve.client import ModelClient, Reply

SQUEEZENET = Path(onnx.__file__).parent / "backend/test/data/light/light_squeezenet.onnx"


def onnx_answer(model_file, feeds):
    """What ONNX Runtime answers in this process, output name -> array."""
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def iris_row(model):
    row = model.X.iloc[[7]]
    return {name: float(value) for name, value in row.iloc[0].items()}, \
        row.to_numpy(dtype=np.float32)


def squeezenet_answers(url: str, seed: int) -> tuple[Reply, np.ndarray]:
    """A random image sent to the served SqueezeNet through v2, and what ONNX Runtime answers for
    the same image in this process."""
    data = np.random.default_rng(seed).standard_normal((1, 3, 224, 224)).astype(np.float32)
    expected = onnx_answer(SQUEEZENET, {"data_0": data})["softmaxout_1"]
    with ModelClient(url, timeout=30) as client:
        reply = client.predict({"inputs": [{"name": "data_0", "shape": [1, 3, 224, 224],
                                            "datatype": "FP32", "data": data.ravel().tolist()}]},
                               route="/v2/models/light_squeezenet/infer")
    return reply, expected
