"""What can go wrong with a request once it reaches the model, and how errors read in answers.

The codec and the v2 decoder raise InputError; running the model gives ModelRunError, or
OutputError when its answer holds NaN or infinity. Handlers let them propagate: the app's table of
exceptions turns them into a 400 or a 422.
"""

from __future__ import annotations

from typing import Any


class InputError(Exception):
    """The request's content is wrong (shape, type, missing or unknown feature): a 400."""


class ModelRunError(Exception):
    """onnxruntime refused input that passed validation: a 422 with its message."""


class OutputError(Exception):
    """The model ran but answered NaN or infinity (inputs far outside what it was trained on
    overflow it), which JSON cannot carry: a 422 naming the output and the row."""


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    # onnxruntime prefixes "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : "; keep what follows.
    if line.startswith("[ONNXRuntimeError]"):
        line = line.split(" : ", 3)[-1]
    return line
