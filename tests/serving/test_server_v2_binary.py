"""The binary tensor data extension on the wire, against the real server process over real HTTP:
the body's layout, the headers of an answer with binary outputs, and every size a client can lie
about (the JSON's length, an input's byte count, a BYTES element's length) refused with a 400
that names it, never a 5xx or a read past the body. The server is checked to be serving, with no
traceback in its log, after each module's refusals."""

from __future__ import annotations

import json
import math
import struct

import httpx
import numpy as np
import pytest
from server_helpers import read_until_closed

IRIS_INFER = "/v2/models/iris/infer"
ZOO_INFER = "/v2/models/every_datatype/infer"
TWO_ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
IHCL = "Inference-Header-Content-Length"


def _binary(header: dict, *chunks: bytes, length: int | str | None = None
            ) -> tuple[bytes, dict[str, str]]:
    """A body of the JSON `header` then `chunks`, with its Inference-Header-Content-Length
    (the JSON's true length unless `length` says otherwise)."""
    head = json.dumps(header).encode()
    return head + b"".join(chunks), {IHCL: str(len(head) if length is None else length)}


def _input(name: str, shape: list[int], datatype: str, size: int) -> dict:
    return {"name": name, "shape": shape, "datatype": datatype,
            "parameters": {"binary_data_size": size}}


def _strings(*values: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


@pytest.fixture(scope="module")
def iris_server(tmp_path_factory, iris_logreg):
    with iris_logreg.running(tmp_path_factory.mktemp("iris")) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield server, client
        assert server.process.poll() is None, "the server died"
        assert "Traceback" not in server.stop()


@pytest.fixture(scope="module")
def zoo_server(tmp_path_factory, every_datatype):
    with every_datatype.running(tmp_path_factory.mktemp("zoo")) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield server, client
        assert server.process.poll() is None, "the server died"
        assert "Traceback" not in server.stop()


def test_binary_inputs_with_a_json_answer(iris_server, iris_logreg):
    _server, client = iris_server
    body, headers = _binary({"inputs": [_input("input", [2, 4], "FP32", 32)],
                             "outputs": [{"name": "label"}]}, TWO_ROWS.tobytes())
    response = client.post(IRIS_INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert IHCL.lower() not in response.headers
    assert response.json()["outputs"] == [{"name": "label", "datatype": "BYTES", "shape": [2],
                                           "data": ["setosa", "virginica"]}]


def test_an_answer_with_binary_outputs(iris_server, iris_logreg):
    """The JSON, then each binary output's bytes in the order the outputs are listed; the JSON's
    length in Inference-Header-Content-Length, the whole in Content-Length."""
    _server, client = iris_server
    expected = iris_logreg.ort({"input": TWO_ROWS})
    body, headers = _binary({"id": "b-1", "inputs": [_input("input", [2, 4], "FP32", 32)],
                             "outputs": [{"name": "probabilities",
                                          "parameters": {"binary_data": True}},
                                         {"name": "label", "parameters": {"binary_data": True}}]},
                            TWO_ROWS.tobytes())
    response = client.post(IRIS_INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[IHCL])
    assert int(response.headers["content-length"]) == len(response.content)
    head = json.loads(response.content[:length])
    assert head == {"model_name": "iris", "model_version": "1", "id": "b-1", "outputs": [
        {"name": "probabilities", "datatype": "FP32", "shape": [2, 3],
         "parameters": {"binary_data_size": 24}},
        {"name": "label", "datatype": "BYTES", "shape": [2],
         "parameters": {"binary_data_size": 4 + 6 + 4 + 9}}]}
    rest = response.content[length:]
    probabilities = np.frombuffer(rest[:24], dtype="<f4").reshape(2, 3)
    np.testing.assert_array_equal(probabilities, expected["probabilities"])
    assert rest[24:] == _strings(b"setosa", b"virginica")


def test_binary_data_output_is_the_default_an_output_can_override(iris_server):
    _server, client = iris_server
    body, headers = _binary({"inputs": [_input("input", [2, 4], "FP32", 32)],
                             "parameters": {"binary_data_output": True},
                             "outputs": [{"name": "label", "parameters": {"binary_data": False}},
                                         {"name": "probabilities"}]}, TWO_ROWS.tobytes())
    response = client.post(IRIS_INFER, content=body, headers=headers)
    head = json.loads(response.content[:int(response.headers[IHCL])])
    assert head["outputs"][0]["data"] == ["setosa", "virginica"]
    assert head["outputs"][1]["parameters"] == {"binary_data_size": 24}
    assert len(response.content) == int(response.headers[IHCL]) + 24
    # No outputs named: all of them, as binary_data_output says.
    body, headers = _binary({"inputs": [_input("input", [2, 4], "FP32", 32)],
                             "parameters": {"binary_data_output": True}}, TWO_ROWS.tobytes())
    response = client.post(IRIS_INFER, content=body, headers=headers)
    head = json.loads(response.content[:int(response.headers[IHCL])])
    assert [o["parameters"]["binary_data_size"] for o in head["outputs"]] == [23, 24]


def test_json_inputs_can_ask_for_binary_outputs(iris_server):
    """No binary data in the request, so no Inference-Header-Content-Length is needed."""
    _server, client = iris_server
    response = client.post(IRIS_INFER, json={
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                    "data": TWO_ROWS.reshape(-1).tolist()}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert len(response.content) == int(response.headers[IHCL]) + 24


def test_the_json_length_may_be_the_whole_body(iris_server):
    """Inference-Header-Content-Length equal to the body: all JSON, no binary data."""
    _server, client = iris_server
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                   "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
    response = client.post(IRIS_INFER, content=body, headers={IHCL: str(len(body))})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == ["setosa"]


ROW = TWO_ROWS[:1].tobytes()
NAN_ROW = np.array([[5.1, np.nan, 1.4, 0.2]], dtype=np.float32).tobytes()
INF_ROW = np.array([[5.1, 3.5, np.inf, 0.2]], dtype=np.float32).tobytes()
ONE_ROW = [_input("input", [1, 4], "FP32", 16)]
# name -> (JSON header, binary data, Inference-Header-Content-Length or None for the true one,
#          exact error message)
IRIS_CASES = {
    "a size past the end of the body": (
        {"inputs": [_input("input", [1, 4], "FP32", 64)]}, ROW, None,
        "input 'input': 'binary_data_size' is 64 bytes, but only 16 bytes of binary tensor data "
        "are left in the body"),
    "a huge size": (
        {"inputs": [_input("input", [1, 4], "FP32", 2 ** 62)]}, ROW, None,
        "input 'input': 'binary_data_size' is 4611686018427387904 bytes, but only 16 bytes of "
        "binary tensor data are left in the body"),
    "a size the shape does not need": (
        {"inputs": [_input("input", [2, 4], "FP32", 16)]}, ROW, None,
        "input 'input': 'binary_data_size' is 16 bytes, but shape [2, 4] of FP32 needs 32 "
        "(8 values of 4 bytes)"),
    "a shape the bytes do not fill": (
        {"inputs": [_input("input", [10 ** 12, 4], "FP32", 16)]}, ROW, None,
        "input 'input': 'binary_data_size' is 16 bytes, but shape [1000000000000, 4] of FP32 "
        "needs 16000000000000 (4000000000000 values of 4 bytes)"),
    "bytes no input claims": (
        {"inputs": ONE_ROW}, ROW + b"\0\0\0\0", None,
        "the body has 4 bytes of binary tensor data after the JSON that no input's "
        "binary_data_size accounts for"),
    "a negative size": (
        {"inputs": [_input("input", [1, 4], "FP32", -16)]}, ROW, None,
        "input 'input': parameter 'binary_data_size' must be a non-negative integer (bytes), "
        "got -16"),
    "a fractional size": (
        {"inputs": [_input("input", [1, 4], "FP32", 16.0)]}, ROW, None,
        "input 'input': parameter 'binary_data_size' must be a non-negative integer (bytes), "
        "got 16.0"),
    "a size as text": (
        {"inputs": [_input("input", [1, 4], "FP32", "16")]}, ROW, None,
        "input 'input': parameter 'binary_data_size' must be a non-negative integer (bytes), "
        "got '16'"),
    "a boolean size": (
        {"inputs": [_input("input", [1, 4], "FP32", True)]}, ROW, None,
        "input 'input': parameter 'binary_data_size' must be a non-negative integer (bytes), "
        "got True"),
    "data and a size": (
        {"inputs": [{**ONE_ROW[0], "data": [5.1, 3.5, 1.4, 0.2]}]}, ROW, None,
        "input 'input' has both 'data' and 'binary_data_size': send its values one way"),
    "parameters that are not an object": (
        {"inputs": [{**ONE_ROW[0], "parameters": [16]}]}, ROW, None,
        "input 'input': 'parameters' must be an object, got array"),
    "a JSON length past the body": (
        {"inputs": ONE_ROW}, ROW, 10 ** 6,
        "the Inference-Header-Content-Length header says the JSON is 1000000 bytes, but the body "
        "has {size}: it must be between 1 and the body's length"),
    "a JSON length of zero": (
        {"inputs": ONE_ROW}, ROW, 0,
        "the Inference-Header-Content-Length header says the JSON is 0 bytes, but the body has "
        "{size}: it must be between 1 and the body's length"),
    "a negative JSON length": (
        {"inputs": ONE_ROW}, ROW, -5,
        "the Inference-Header-Content-Length header must be the JSON's length in bytes, "
        "got '-5'"),
    "a JSON length that is not a number": (
        {"inputs": ONE_ROW}, ROW, "sixty",
        "the Inference-Header-Content-Length header must be the JSON's length in bytes, "
        "got 'sixty'"),
    "a JSON length with a sign": (
        {"inputs": ONE_ROW}, ROW, "+60",
        "the Inference-Header-Content-Length header must be the JSON's length in bytes, "
        "got '+60'"),
    "a JSON length of 30 digits": (
        {"inputs": ONE_ROW}, ROW, "9" * 30,
        "the Inference-Header-Content-Length header must be the JSON's length in bytes, "
        f"got '{'9' * 30}'"),
    "a JSON length short of the JSON": (
        {"inputs": ONE_ROW}, ROW, 20,
        "malformed JSON: unexpected end of data: line 1 column 21 (char 20)"),
    "NaN": ({"inputs": ONE_ROW}, NAN_ROW, None,
            "input 'input' holds NaN or infinity, which this server does not take (as in JSON)"),
    "infinity": ({"inputs": ONE_ROW}, INF_ROW, None,
                 "input 'input' holds NaN or infinity, which this server does not take "
                 "(as in JSON)"),
    "the wrong datatype": (
        {"inputs": [_input("input", [1, 4], "FP64", 32)]}, ROW * 2, None,
        "input 'input' has datatype 'FP64', the model takes FP32"),
    "an output's binary_data as text": (
        {"inputs": ONE_ROW, "outputs": [{"name": "label", "parameters": {"binary_data": "yes"}}]},
        ROW, None, "output 'label': parameter 'binary_data' must be true or false, got string"),
    "binary_data_output as a number": (
        {"inputs": ONE_ROW, "parameters": {"binary_data_output": 1}}, ROW, None,
        "the request: parameter 'binary_data_output' must be true or false, got number"),
    "shared memory for an input": (
        {"inputs": [{**ONE_ROW[0], "parameters": {"shared_memory_region": "r",
                                                  "shared_memory_byte_size": 16}}]}, b"", None,
        "input 'input': the shared-memory extension is not supported here: send the data in "
        "'data' or as binary tensor data"),
    "shared memory for an output": (
        {"inputs": ONE_ROW, "outputs": [{"name": "label", "parameters": {
            "shared_memory_region": "r", "shared_memory_byte_size": 64}}]}, ROW, None,
        "output 'label': the shared-memory extension is not supported here: send the data in "
        "'data' or as binary tensor data"),
    "classification": (
        {"inputs": ONE_ROW, "outputs": [{"name": "probabilities",
                                         "parameters": {"classification": 2}}]}, ROW, None,
        "output 'probabilities': the classification extension is not supported here: ask for "
        "the output itself"),
}


@pytest.mark.parametrize("case", list(IRIS_CASES))
def test_lying_and_wrong_binary_requests(iris_server, case):
    _server, client = iris_server
    header, data, length, message = IRIS_CASES[case]
    body, headers = _binary(header, data, length=length)
    response = client.post(IRIS_INFER, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": message.replace("{size}", str(len(body)))}


def test_binary_data_without_the_header(iris_server):
    """Raw bytes after the JSON with no Inference-Header-Content-Length: the answer says what is
    missing, whether the JSON announces binary data or not."""
    _server, client = iris_server
    body, _ = _binary({"inputs": ONE_ROW}, ROW)
    response = client.post(IRIS_INFER, content=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON: ")
    assert response.json()["error"].endswith(
        " (a body that carries binary tensor data after its JSON needs the "
        "Inference-Header-Content-Length header, giving the JSON's length in bytes)")
    body = json.dumps({"inputs": ONE_ROW}).encode()
    response = client.post(IRIS_INFER, content=body)
    assert response.status_code == 400
    assert response.json() == {"error": "input 'input' says its 16 bytes of binary data follow "
                                        "the JSON, but the request has no "
                                        "Inference-Header-Content-Length header to say where "
                                        "the JSON ends"}


def _raw_infer(server, head: bytes, content_length: int, json_length: int, sent: bytes):
    """A socket on which a binary v2 request's head and the first `sent` bytes of its body went
    out: the head declares `content_length` bytes of body, `json_length` of them JSON."""
    sock = server.connect()
    sock.sendall(b"POST " + IRIS_INFER.encode() + b" HTTP/1.1\r\nHost: test\r\n"
                 b"Content-Type: application/octet-stream\r\n"
                 b"Content-Length: " + str(content_length).encode() + b"\r\n"
                 + IHCL.encode() + b": " + str(json_length).encode() + b"\r\n\r\n" + sent)
    return sock


def _status_and_error(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_the_body_limit_and_the_row_limit_hold_for_binary_data(iris_server):
    """A binary body over the limit is refused from its head, before its bytes arrive."""
    server, client = iris_server
    rows = 70_000  # 1,120,000 bytes of FP32: over the 1 MiB body limit
    head = json.dumps({"inputs": [_input("input", [rows, 4], "FP32", rows * 16)]}).encode()
    size = len(head) + rows * 16
    with _raw_infer(server, head, size, len(head), head) as sock:
        answer = read_until_closed(sock)
    assert _status_and_error(answer) == (413, {"error": f"the request body is {size} bytes, "
                                                        "over the limit of 1048576 bytes"})
    body, headers = _binary({"inputs": [_input("input", [2000, 4], "FP32", 32_000)]},
                            np.zeros((2000, 4), dtype=np.float32).tobytes())
    response = client.post(IRIS_INFER, content=body, headers=headers)
    assert response.status_code == 413
    assert response.json() == {"error": "the request has 2000 rows, over the limit of 1024"}


def test_a_binary_body_that_stops_is_answered_408(tmp_path, iris_logreg):
    """The JSON arrives and the binary data behind it stalls: the body deadline still holds, and
    the server goes on answering everyone else."""
    with iris_logreg.running(tmp_path, limits={"body_timeout_s": 1}) as server:
        head = json.dumps({"inputs": [_input("input", [2, 4], "FP32", 32)]}).encode()
        with _raw_infer(server, head, len(head) + 32, len(head), head + ROW[:5]) as sock:
            answer = read_until_closed(sock)
        assert _status_and_error(answer) == (
            408, {"error": "the request body did not arrive within 1 s"})
        body, headers = _binary({"inputs": ONE_ROW}, ROW)
        response = httpx.post(server.url + IRIS_INFER, content=body, headers=headers)
        assert response.status_code == 200, response.text


def test_inputs_take_their_bytes_in_the_order_listed(zoo_server):
    """Every input in reverse order, every other one as JSON: each binary input's bytes follow
    the previous binary input's, and each output is its input."""
    _server, client = zoo_server
    rng = np.random.default_rng(5)
    arrays = {name: rng.integers(-100, 100, (2, 2)).astype(dtype)
              for name, dtype in (("uint8", "u1"), ("int8", "i1"), ("int16", "<i2"),
                                  ("int32", "<i4"), ("int64", "<i8"), ("uint16", "<u2"),
                                  ("uint32", "<u4"), ("uint64", "<u8"), ("fp16", "<f2"),
                                  ("fp32", "<f4"), ("fp64", "<f8"))}
    arrays["bool"] = np.array([[True, False], [True, True]])
    datatypes = {name: "BOOL" if name == "bool" else name.upper() for name in arrays}
    inputs, chunks = [], []
    for position, name in enumerate(reversed(arrays)):
        array = arrays[name]
        if position % 2:
            inputs.append({"name": name, "shape": [2, 2], "datatype": datatypes[name],
                           "data": array.reshape(-1).tolist()})
        else:
            inputs.append(_input(name, [2, 2], datatypes[name], array.nbytes))
            chunks.append(array.tobytes())
    inputs.append({"name": "bytes", "shape": [2, 2], "datatype": "BYTES",
                   "data": ["a", "b", "c", "d"]})
    body, headers = _binary({"inputs": inputs}, *chunks)
    response = client.post(ZOO_INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    for output in response.json()["outputs"]:
        name = output["name"].removesuffix("_out")
        if name == "bytes":
            assert output["data"] == ["a", "b", "c", "d"]
        else:
            assert output["data"] == arrays[name].reshape(-1).tolist(), name


def _zoo_request(overrides: dict[str, tuple[dict, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A request for every input of the datatype model, two rows of zeros (empty strings) each,
    all binary; `overrides` replaces inputs by name with (tensor, bytes)."""
    datatypes = {"bool": ("BOOL", 1), "uint8": ("UINT8", 1), "int8": ("INT8", 1),
                 "int16": ("INT16", 2), "int32": ("INT32", 4), "int64": ("INT64", 8),
                 "uint16": ("UINT16", 2), "uint32": ("UINT32", 4), "uint64": ("UINT64", 8),
                 "fp16": ("FP16", 2), "fp32": ("FP32", 4), "fp64": ("FP64", 8)}
    inputs, chunks = [], []
    for name, (datatype, width) in datatypes.items():
        tensor, data = overrides.get(name, (_input(name, [2, 2], datatype, 4 * width),
                                            bytes(4 * width)))
        inputs.append(tensor)
        chunks.append(data)
    strings = _strings(b"", b"", b"", b"")
    tensor, data = overrides.get("bytes", (_input("bytes", [2, 2], "BYTES", len(strings)),
                                           strings))
    inputs.append(tensor)
    chunks.append(data)
    return _binary({"inputs": inputs, "parameters": {"binary_data_output": True}}, *chunks)


def test_every_datatype_as_bytes_on_the_wire(zoo_server):
    """Known bytes in, the same bytes out: little-endian, BOOL as 0 and 1, BYTES with lengths."""
    _server, client = zoo_server
    int64 = struct.pack("<4q", -(2 ** 63), 2 ** 63 - 1, 1, -1)
    fp16 = struct.pack("<4e", 65504.0, -0.0, 6.1e-05, 0.5)
    strings = _strings("é".encode(), b"", b"a\x00b", b"zzz")
    body, headers = _zoo_request({
        "bool": (_input("bool", [2, 2], "BOOL", 4), b"\x01\x00\x00\x01"),
        "int64": (_input("int64", [2, 2], "INT64", 32), int64),
        "fp16": (_input("fp16", [2, 2], "FP16", 8), fp16),
        "bytes": (_input("bytes", [2, 2], "BYTES", len(strings)), strings)})
    response = client.post(ZOO_INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[IHCL])
    head = json.loads(response.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert math.fsum(sizes) == len(response.content) - length
    data, offset = {}, length
    for output, size in zip(head["outputs"], sizes):
        data[output["name"]] = response.content[offset:offset + size]
        offset += size
    assert data["bool_out"] == b"\x01\x00\x00\x01"
    assert data["int64_out"] == int64
    assert data["fp16_out"] == fp16
    assert data["bytes_out"] == strings
    assert data["uint64_out"] == bytes(32)


BYTES_CASES = {
    "an element longer than what is left": (
        _strings(b"ab") + struct.pack("<I", 1000) + b"xyz",
        "input 'bytes': element 1 says it is 1000 bytes, but only 3 bytes of the input's binary "
        "data are left"),
    "a length cut short": (
        _strings(b"a", b"b", b"c") + b"\x01\x00",
        "input 'bytes': its binary data ends before element 3 of 4 (a BYTES element is a 4-byte "
        "length, then its bytes)"),
    "fewer elements than the shape": (
        _strings(b"a", b"b"),
        "input 'bytes': its binary data ends before element 2 of 4 (a BYTES element is a 4-byte "
        "length, then its bytes)"),
    "more bytes than the elements": (
        _strings(b"a", b"b", b"c", b"d") + b"\0\0\0\0",
        "input 'bytes': 'binary_data_size' is 24 bytes, but its 4 elements take 20"),
    "not UTF-8": (
        _strings(b"\xff\xfe", b"", b"", b""),
        "input 'bytes': element 0 is not UTF-8 text"),
    "a length of 4 GiB": (
        struct.pack("<I", 2 ** 32 - 1) + b"abc",
        "input 'bytes': element 0 says it is 4294967295 bytes, but only 3 bytes of the input's "
        "binary data are left"),
}


@pytest.mark.parametrize("case", list(BYTES_CASES))
def test_lying_bytes_elements(zoo_server, case):
    _server, client = zoo_server
    data, message = BYTES_CASES[case]
    body, headers = _zoo_request({"bytes": (_input("bytes", [2, 2], "BYTES", len(data)), data)})
    response = client.post(ZOO_INFER, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": message}


def test_bool_bytes_are_zero_or_one(zoo_server):
    _server, client = zoo_server
    body, headers = _zoo_request({"bool": (_input("bool", [2, 2], "BOOL", 4),
                                           b"\x01\x02\x00\x00")})
    response = client.post(ZOO_INFER, content=body, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"error": "input 'bool' is BOOL: each byte must be 0 (false) or 1 "
                                        "(true)"}


def test_fp16_infinity_is_refused(zoo_server):
    _server, client = zoo_server
    body, headers = _zoo_request({"fp16": (_input("fp16", [2, 2], "FP16", 8),
                                           struct.pack("<4e", 1.0, float("inf"), 0.0, 0.0))})
    response = client.post(ZOO_INFER, content=body, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"error": "input 'fp16' holds NaN or infinity, which this server "
                                        "does not take (as in JSON)"}
