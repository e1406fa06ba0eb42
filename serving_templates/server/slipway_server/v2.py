"""The Open Inference Protocol v2 on the model's side: the model's metadata, an inference
request's tensors decoded into validated feeds, and output tensors encoded for the response.

Each request tensor is checked against the ONNX input it feeds (datatype, shape, value types and
ranges), so a wrong tensor is named before onnxruntime sees it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .codec import NUMBER_TYPES
from .errors import InputError, json_type

if TYPE_CHECKING:
    from .model import Model, TensorInfo

def model_metadata(model: Model) -> dict[str, Any]:
    """The model metadata response: name, version, input and output tensors."""
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": t.name, "datatype": t.datatype, "shape": t.v2_shape}
                   for t in model.inputs],
        "outputs": [{"name": t.name, "datatype": t.datatype, "shape": t.v2_shape}
                    for t in model.outputs if t.kind != "unsupported"],
    }


def decode_request(model: Model, body: dict[str, Any]
                   ) -> tuple[dict[str, np.ndarray], int, list[int]]:
    """Feeds from an inference request; the batch size; indices of the outputs to return."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("'inputs' must be a non-empty list of tensors")
    feeds: dict[str, np.ndarray] = {}
    for position, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise InputError(f"inputs[{position}] must be an object with name, shape, "
                             f"datatype and data, got {json_type(tensor)}")
        name = tensor.get("name")
        expected = model.input_by_name.get(name) if isinstance(name, str) else None
        if expected is None:
            raise InputError(f"unknown input {name!r} (the model takes: "
                             f"{', '.join(model.input_names)})")
        if name in feeds:
            raise InputError(f"input '{name}' is given twice")
        feeds[name] = _decode_tensor(tensor, expected)
    missing = [n for n in model.input_names if n not in feeds]
    if missing:
        raise InputError(f"input '{missing[0]}' is missing (the model takes: "
                         f"{', '.join(model.input_names)})")
    rows = 1
    if model.batchable:
        sizes = {array.shape[0] for array in feeds.values()}
        if len(sizes) > 1:
            raise InputError("the inputs disagree on the batch size (first dimension): "
                             + ", ".join(f"{k}={v.shape[0]}" for k, v in feeds.items()))
        rows = sizes.pop()
        if rows == 0:
            raise InputError("the inputs hold no rows (first dimension is 0)")
    return feeds, rows, _wanted_outputs(model, body.get("outputs"))


def _wanted_outputs(model: Model, wanted: Any) -> list[int]:
    """Indices of the outputs a request's 'outputs' asks for (all the model can give: None)."""
    if wanted is None:
        return [i for i, t in enumerate(model.outputs) if t.kind != "unsupported"]
    if not isinstance(wanted, list) or not wanted:
        raise InputError("'outputs' must be a non-empty list of {\"name\": ...}, "
                         f"got {json_type(wanted)}")
    indices = []
    for position, request in enumerate(wanted):
        if not isinstance(request, dict):
            raise InputError(f"outputs[{position}] must be an object with a 'name', "
                             f"got {json_type(request)}")
        name = request.get("name")
        if not isinstance(name, str):
            raise InputError(f"outputs[{position}]: 'name' must be the name of an output, "
                             f"got {json_type(name)} (the model gives: "
                             f"{', '.join(model.output_names)})")
        index = model.output_index.get(name)
        if index is None:
            raise InputError(f"unknown output {name!r} (the model gives: "
                             f"{', '.join(model.output_names)})")
        if model.outputs[index].kind == "unsupported":
            raise InputError(f"output '{name}' has type {model.outputs[index].datatype}, which "
                             "this server cannot return")
        if index in indices:
            raise InputError(f"output '{name}' is asked for twice")
        indices.append(index)
    return indices


def encode_outputs(model: Model, outputs: list[Any], indices: list[int]) -> list[dict[str, Any]]:
    """The response tensors of the outputs at `indices`, data flattened row-major."""
    answer = []
    for index in indices:
        info = model.outputs[index]
        value = outputs[index]
        if info.kind == "seqmap":
            keys = list(value[0].keys()) if len(value) else []
            array = np.array([[row[k] for k in keys] for row in value], dtype=np.float32)
            array = array.reshape(len(value), len(keys))
        else:
            array = np.asarray(value)
        if array.dtype == object or array.dtype.kind in "US":
            data: Any = [v.decode() if isinstance(v, bytes) else v
                         for v in array.reshape(-1).tolist()]
        elif array.dtype.kind == "f" and array.dtype.itemsize == 2:
            data = array.reshape(-1).tolist()
        else:
            data = np.ascontiguousarray(array).reshape(-1)
        answer.append({"name": info.name, "datatype": info.datatype,
                       "shape": list(array.shape), "data": data})
    return answer


def _decode_tensor(tensor: dict[str, Any], expected: TensorInfo) -> np.ndarray:
    """One request tensor as the array that feeds `expected`; InputError naming what is wrong."""
    name = expected.name
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InputError(f"input '{name}': 'shape' must be a list of non-negative integers, "
                         f"got {shape!r}")
    datatype = tensor.get("datatype")
    if datatype != expected.datatype:
        raise InputError(f"input '{name}' has datatype {datatype!r}, the model takes "
                         f"{expected.datatype}")
    want = expected.shape
    if len(shape) != len(want) or any(w is not None and w != d for w, d in zip(want, shape)):
        raise InputError(f"input '{name}' has shape {shape}, the model takes "
                         f"{expected.v2_shape} (-1: any size)")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise InputError(f"input '{name}': 'data' must be a list of values, "
                         f"got {json_type(data)}")
    size = math.prod(shape)
    if data and type(data[0]) is list:
        data = _flatten(data)
    if len(data) != size:
        raise InputError(f"input '{name}' has {len(data)} values, but shape {shape} "
                         f"needs {size}")
    if expected.dtype is object:
        if not all(type(v) is str for v in data):
            bad = next(v for v in data if type(v) is not str)
            raise InputError(f"input '{name}' is BYTES: every value must be a string, "
                             f"got {json_type(bad)}")
        return np.array(data, dtype=object).reshape(shape)
    kinds = set(map(type, data))
    if expected.dtype is np.bool_:
        if not kinds <= {bool}:
            raise InputError(f"input '{name}' is BOOL: every value must be true or false")
        return np.array(data, dtype=np.bool_).reshape(shape)
    dtype = np.dtype(expected.dtype)
    if dtype.kind == "f":
        if not kinds <= NUMBER_TYPES:
            bad = next(v for v in data if type(v) not in NUMBER_TYPES)
            raise InputError(f"input '{name}' is {expected.datatype}: every value must be a "
                             f"number, got {json_type(bad)}")
        limit = float(np.finfo(dtype).max)
        if data and not (-limit <= min(data) and max(data) <= limit):
            raise InputError(f"input '{name}' has values out of range for {expected.datatype}")
        return np.array(data, dtype=dtype).reshape(shape)
    if not kinds <= {int}:
        bad = next(v for v in data if type(v) is not int)
        raise InputError(f"input '{name}' is {expected.datatype}: every value must be an "
                         f"integer, got {json_type(bad)}")
    info = np.iinfo(dtype)
    if data and not (info.min <= min(data) and max(data) <= info.max):
        raise InputError(f"input '{name}' has values out of range for {expected.datatype}")
    return np.array(data, dtype=dtype).reshape(shape)


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if type(item) is list:
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat
