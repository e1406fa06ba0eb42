"""Reading a request's body: within the body limit and the body deadline, its JSON parsed by
orjson, with every problem an HTTPError that names it. A v2 inference request may carry binary
tensor data after its JSON; the Inference-Header-Content-Length header then says where the JSON
ends (`split_binary`).

The deadline itself is kept by the connection (connections.GuardedHttpToolsProtocol): when a body
is still incomplete `body_timeout_s` after its head, the connection marks the request's scope with
BODY_DEADLINE_PASSED and wakes the reader, which answers 408 and closes the connection. Bodies that
arrive with their head, nearly all of them, never arm a timer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .errors import json_type

BODY_DEADLINE_PASSED = "slipway.body_deadline_passed"
"""Scope key the connection sets when the body did not arrive in time (its value: the seconds)."""
CLOSE = [(b"connection", b"close")]
INFERENCE_HEADER = b"inference-header-content-length"
NO_HEADER_HINT = (" (a body that carries binary tensor data after its JSON needs the "
                  "Inference-Header-Content-Length header, giving the JSON's length in bytes)")


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class ClientGone(Exception):
    """The client disconnected before sending its whole body."""


def _json_problem(body: bytes, exc: orjson.JSONDecodeError) -> str:
    if not body.strip():
        return "the request body is empty: send a JSON object"
    text = str(exc)
    if "infinity" in text:
        return f"malformed JSON: a number is too large ({text})"
    position = getattr(exc, "pos", None)
    if position is not None:
        rest = body[position:position + 9].lstrip(b"-")
        if rest.startswith((b"NaN", b"Infinity", b"nan", b"inf")):
            return (f"malformed JSON: NaN and Infinity are not JSON numbers (at character "
                    f"{position})")
    return f"malformed JSON: {text}"


def _declared_length(scope: dict, limit: int) -> None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise HTTPError(400, "the Content-Length header is not a number") from None
            if declared > limit:
                raise HTTPError(413, f"the request body is {declared} bytes, over the limit of "
                                     f"{limit} bytes")
            return


async def read_json(scope: dict, receive: Callable, limit: int) -> dict[str, Any]:
    """The body as a JSON object; HTTPError (400, 408, 413) or ClientGone otherwise."""
    return parse_json(await read_body(scope, receive, limit))


async def read_body(scope: dict, receive: Callable, limit: int) -> bytes:
    """The whole body, at most `limit` bytes; HTTPError (400, 408, 413) or ClientGone."""
    _declared_length(scope, limit)
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body = message.get("body", b"")
    if message.get("more_body", False):
        chunks = [body]
        size = len(body)
        while True:
            deadline = scope.get(BODY_DEADLINE_PASSED)
            if deadline is not None:
                raise HTTPError(408, f"the request body did not arrive within {deadline:g} s",
                                CLOSE)
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, f"the request body is over the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
    if len(body) > limit:
        raise HTTPError(413, f"the request body is over the limit of {limit} bytes")
    return body


def parse_json(body: bytes, binary_hint: bool = False) -> dict[str, Any]:
    """`body` as a JSON object; HTTPError 400 naming the problem. With `binary_hint`, a body that
    looks like JSON followed by raw bytes is told about Inference-Header-Content-Length."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        problem = _json_problem(body, exc)
        if binary_hint and ("UTF-8" in problem or "after document" in problem):
            problem += NO_HEADER_HINT
        raise HTTPError(400, problem) from None
    if type(document) is not dict:
        raise HTTPError(400, f"the request body must be a JSON object, got {json_type(document)}")
    return document


def split_binary(scope: dict, body: bytes) -> tuple[dict[str, Any], memoryview | None]:
    """A v2 inference body as its JSON object and the binary tensor data after it (None when the
    request has no Inference-Header-Content-Length header: the whole body is JSON then).

    The header's value is checked against the body it describes, so a lying length is a 400."""
    declared = None
    for name, value in scope["headers"]:
        if name == INFERENCE_HEADER:
            declared = value
            break
    if declared is None:
        return parse_json(body, binary_hint=True), None
    # Digits only: int() would also take signs, spaces and underscores.
    if not declared.isdigit() or len(declared) > 19:
        raise HTTPError(400, "the Inference-Header-Content-Length header must be the JSON's "
                             f"length in bytes, got {declared[:40].decode('latin-1')!r}")
    length = int(declared)
    if not 0 < length <= len(body):
        raise HTTPError(400, f"the Inference-Header-Content-Length header says the JSON is "
                             f"{length} bytes, but the body has {len(body)}: it must be between "
                             f"1 and the body's length")
    if length == len(body):
        return parse_json(body), None
    return parse_json(body[:length]), memoryview(body)[length:]
