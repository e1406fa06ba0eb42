"""Small real ONNX models that differ by one number, for the registry's tests (and the writer
processes of its concurrency test, which cannot use fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_onnx(path: Path, offset: float) -> Path:
    """y = x + offset on four float32 features: a real ONNX model whose bytes depend on `offset`."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "offset"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(np.full([4], offset, dtype=np.float32), "offset")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, path)
    return path
