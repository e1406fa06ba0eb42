"""The Open Inference Protocol v2 on the model's side: the model's metadata, an inference
request's tensors decoded into validated feeds, and output tensors encoded for the response.

Each request tensor is checked against the ONNX input it feeds (datatype, shape, value types and
ranges), so a wrong tensor is named before onnxruntime sees it.

Tensors travel as JSON or, with the binary tensor data extension (KServe's and Triton's; what
tritonclient uses by default), as raw bytes after the JSON: little-endian, row-major, no padding;
a BOOL is one byte, 0 or 1; a BYTES element is a 4-byte little-endian length and its bytes. An
input says `"parameters": {"binary_data_size": N}` instead of giving `data`, and the inputs' bytes
follow one another in the order the inputs are listed. An output is sent as bytes when asked with
`"parameters": {"binary_data": true}`, or when the request says `"binary_data_output": true` and
the output does not say otherwise. Every size is checked against the bytes that are there and
against what the tensor's shape and datatype need, so a size that lies is a 400, never a read past
the body.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

import numpy as np

from .codec import NUMBER_TYPES
from .errors import InputError, json_type

if TYPE_CHECKING:
    from .model import Model, TensorInfo

EXTENSIONS = ["binary_tensor_data"]
"""The protocol extensions this server implements, as GET /v2 lists them."""
BINARY_SIZE = "binary_data_size"
LENGTH = struct.Struct("<I")
# Extensions a request may ask for that this server does not implement: refused by name, so a
# client never mistakes an answer for what it asked.
UNSUPPORTED_PARAMETERS = {
    "shared_memory_region": "the shared-memory extension is not supported here: send the data "
                            "in 'data' or as binary tensor data",
    "classification": "the classification extension is not supported here: ask for the output "
                      "itself",
}


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


def decode_request(model: Model, body: dict[str, Any], binary: memoryview | None = None
                   ) -> tuple[dict[str, np.ndarray], int, list[tuple[int, bool]]]:
    """Feeds from an inference request whose binary tensor data (the bytes after its JSON) is
    `binary`; the batch size; the outputs to return, as (index, in binary)."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("'inputs' must be a non-empty list of tensors")
    feeds: dict[str, np.ndarray] = {}
    offset = 0
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
        size = _binary_size(tensor, name)
        if size is None:
            feeds[name] = _decode_tensor(tensor, expected)
            continue
        available = 0 if binary is None else len(binary) - offset
        if size > available:
            raise InputError(_missing_bytes(name, size, available, binary is None))
        feeds[name] = _decode_binary(tensor, expected, binary[offset:offset + size])
        offset += size
    if binary is not None and offset != len(binary):
        raise InputError(f"the body has {len(binary) - offset} bytes of binary tensor data after "
                         f"the JSON that no input's binary_data_size accounts for")
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
    return feeds, rows, _wanted_outputs(model, body.get("outputs"), _binary_default(body))


def _parameters(holder: dict[str, Any], where: str) -> dict[str, Any] | None:
    """A tensor's or request's 'parameters' object (None when absent), refusing extensions this
    server does not implement."""
    parameters = holder.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise InputError(f"{where}: 'parameters' must be an object, got {json_type(parameters)}")
    for key, problem in UNSUPPORTED_PARAMETERS.items():
        if key in parameters:
            raise InputError(f"{where}: {problem}")
    return parameters


def _flag(parameters: dict[str, Any] | None, key: str, where: str, default: bool) -> bool:
    value = default if parameters is None else parameters.get(key, default)
    if type(value) is not bool:
        raise InputError(f"{where}: parameter '{key}' must be true or false, "
                         f"got {json_type(value)}")
    return value


def _binary_default(body: dict[str, Any]) -> bool:
    """The request's binary_data_output: whether outputs that say nothing come as bytes."""
    return _flag(_parameters(body, "the request"), "binary_data_output", "the request", False)


def _binary_size(tensor: dict[str, Any], name: str) -> int | None:
    """The input's binary_data_size (None: its values are in 'data')."""
    parameters = _parameters(tensor, f"input '{name}'")
    if parameters is None or BINARY_SIZE not in parameters:
        return None
    size = parameters[BINARY_SIZE]
    if type(size) is not int or size < 0:
        raise InputError(f"input '{name}': parameter '{BINARY_SIZE}' must be a non-negative "
                         f"integer (bytes), got {size!r}")
    if "data" in tensor:
        raise InputError(f"input '{name}' has both 'data' and '{BINARY_SIZE}': send its values "
                         "one way")
    return size


def _missing_bytes(name: str, size: int, available: int, no_header: bool) -> str:
    if no_header:
        return (f"input '{name}' says its {size} bytes of binary data follow the JSON, but the "
                "request has no Inference-Header-Content-Length header to say where the JSON "
                "ends")
    return (f"input '{name}': '{BINARY_SIZE}' is {size} bytes, but only {available} bytes of "
            "binary tensor data are left in the body")


def _wanted_outputs(model: Model, wanted: Any, binary: bool) -> list[tuple[int, bool]]:
    """The outputs a request's 'outputs' asks for (None: all the model can give), each with
    whether it goes back as binary data."""
    if wanted is None:
        return [(i, binary) for i, t in enumerate(model.outputs) if t.kind != "unsupported"]
    if not isinstance(wanted, list) or not wanted:
        raise InputError("'outputs' must be a non-empty list of {\"name\": ...}, "
                         f"got {json_type(wanted)}")
    chosen: list[tuple[int, bool]] = []
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
        if any(index == i for i, _ in chosen):
            raise InputError(f"output '{name}' is asked for twice")
        where = f"output '{name}'"
        chosen.append((index, _flag(_parameters(request, where), "binary_data", where, binary)))
    return chosen


def encode_outputs(model: Model, outputs: list[Any], wanted: list[tuple[int, bool]]
                   ) -> tuple[list[dict[str, Any]], list[bytes] | None]:
    """The response tensors of the `wanted` outputs, data flattened row-major; and the binary
    data of those asked for in binary, in order (None when none was)."""
    answer = []
    chunks: list[bytes] | None = None
    for index, binary in wanted:
        info = model.outputs[index]
        value = outputs[index]
        if info.kind == "seqmap":
            keys = list(value[0].keys()) if len(value) else []
            array = np.array([[row[k] for k in keys] for row in value], dtype=np.float32)
            array = array.reshape(len(value), len(keys))
        else:
            array = np.asarray(value)
        tensor: dict[str, Any] = {"name": info.name, "datatype": info.datatype,
                                  "shape": list(array.shape)}
        if binary:
            raw = _raw_bytes(array)
            tensor["parameters"] = {BINARY_SIZE: len(raw)}
            if chunks is None:
                chunks = []
            chunks.append(raw)
        elif array.dtype == object or array.dtype.kind in "US":
            tensor["data"] = [v.decode() if isinstance(v, bytes) else v
                              for v in array.reshape(-1).tolist()]
        elif array.dtype.kind == "f" and array.dtype.itemsize == 2:
            tensor["data"] = array.reshape(-1).tolist()
        else:
            tensor["data"] = np.ascontiguousarray(array).reshape(-1)
        answer.append(tensor)
    return answer, chunks


def _raw_bytes(array: np.ndarray) -> bytes:
    """A tensor's binary data: little-endian, row-major; BYTES elements length-prefixed."""
    if array.dtype == object or array.dtype.kind in "US":
        parts = []
        for value in array.reshape(-1).tolist():
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _checked_shape(tensor: dict[str, Any], expected: TensorInfo) -> list[int]:
    """The request tensor's shape, once it and its datatype match what `expected` takes."""
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
    return shape


def _decode_binary(tensor: dict[str, Any], expected: TensorInfo, raw: memoryview) -> np.ndarray:
    """One input's binary data as the array that feeds `expected`; InputError naming what is
    wrong. `raw` is exactly the input's binary_data_size bytes."""
    name = expected.name
    shape = _checked_shape(tensor, expected)
    count = math.prod(shape)
    if expected.dtype is object:
        return np.array(_byte_elements(raw, count, name), dtype=object).reshape(shape)
    dtype = np.dtype(expected.dtype).newbyteorder("<")
    need = count * dtype.itemsize
    if len(raw) != need:
        raise InputError(f"input '{name}': '{BINARY_SIZE}' is {len(raw)} bytes, but shape "
                         f"{shape} of {expected.datatype} needs {need} ({count} values of "
                         f"{dtype.itemsize} bytes)")
    if count == 0:
        return np.empty(shape, dtype=expected.dtype)
    array = np.frombuffer(raw, dtype=dtype)
    if dtype.kind == "b":
        if array.view(np.uint8).max() > 1:
            raise InputError(f"input '{name}' is BOOL: each byte must be 0 (false) or 1 (true)")
    elif dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(f"input '{name}' holds NaN or infinity, which this server does not "
                         "take (as in JSON)")
    if not array.flags.aligned or not dtype.isnative:
        # The bytes start wherever the JSON before them ended: onnxruntime gets a copy that is
        # aligned for its type, in the machine's byte order.
        array = array.astype(dtype.newbyteorder("="))
    return array.reshape(shape)


def _byte_elements(raw: memoryview, count: int, name: str) -> list[str]:
    """`count` BYTES elements, each a 4-byte little-endian length and that many bytes of UTF-8
    text (string inputs take text, as in JSON), filling `raw` exactly."""
    values = []
    offset = 0
    end = len(raw)
    for element in range(count):
        if end - offset < 4:
            raise InputError(f"input '{name}': its binary data ends before element {element} "
                             f"of {count} (a BYTES element is a 4-byte length, then its bytes)")
        (length,) = LENGTH.unpack_from(raw, offset)
        offset += 4
        if length > end - offset:
            raise InputError(f"input '{name}': element {element} says it is {length} bytes, but "
                             f"only {end - offset} bytes of the input's binary data are left")
        try:
            values.append(str(raw[offset:offset + length], "utf-8"))
        except UnicodeDecodeError:
            raise InputError(f"input '{name}': element {element} is not UTF-8 text") from None
        offset += length
    if offset != end:
        raise InputError(f"input '{name}': '{BINARY_SIZE}' is {end} bytes, but its {count} "
                         f"elements take {offset}")
    return values


def _decode_tensor(tensor: dict[str, Any], expected: TensorInfo) -> np.ndarray:
    """One request tensor's JSON data as the array that feeds `expected`; InputError naming what
    is wrong."""
    name = expected.name
    shape = _checked_shape(tensor, expected)
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
