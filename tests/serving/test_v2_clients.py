"""Real Open Inference Protocol v2 clients against the real server process, over real HTTP.

NVIDIA's tritonclient is what most people reach for to call a v2 server from Python. Its defaults
use the binary tensor data extension both ways: `set_data_from_numpy` sends each input's raw bytes
after the JSON header (Inference-Header-Content-Length), `InferRequestedOutput` asks for binary
outputs, and a request naming no outputs sets `binary_data_output`. Each model here is called in
every mode (JSON or binary inputs, JSON or binary outputs), through the blocking client and the
asyncio one, and every answer must be what onnxruntime gives in this process.

KServe's own Python client (`kserve.InferenceRESTClient`) pins pandas below 3 and protobuf below
7, so installing it beside the studio would downgrade both: it runs from an environment of its own,
named by SLIPWAY_KSERVE_PYTHON (`python -m venv /tmp/kserve && /tmp/kserve/bin/pip install
kserve`), and its test is skipped when that is not set.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

MODES = [pytest.param(False, False, id="json"),
         pytest.param(True, False, id="binary-inputs"),
         pytest.param(False, True, id="binary-outputs"),
         pytest.param(True, True, id="binary")]


def _served(request, tmp_path_factory, fixture: str):
    model = request.getfixturevalue(fixture)
    with model.running(tmp_path_factory.mktemp(model.name)) as server:
        client = triton.InferenceServerClient(f"127.0.0.1:{server.port}", network_timeout=60)
        try:
            yield model, server, client
        finally:
            client.close()


@pytest.fixture(scope="module")
def iris(request, tmp_path_factory):
    yield from _served(request, tmp_path_factory, "iris_logreg")


@pytest.fixture(scope="module")
def wine(request, tmp_path_factory):
    yield from _served(request, tmp_path_factory, "wine_demo")


@pytest.fixture(scope="module")
def churn(request, tmp_path_factory):
    yield from _served(request, tmp_path_factory, "mixed_model")


@pytest.fixture(scope="module")
def squeezenet_served(request, tmp_path_factory):
    yield from _served(request, tmp_path_factory, "squeezenet")


@pytest.fixture(scope="module")
def datatypes(request, tmp_path_factory):
    yield from _served(request, tmp_path_factory, "every_datatype")


def _inputs(arrays: dict[str, np.ndarray], binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name, array in arrays.items():
        tensor = triton.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def _infer(client, model: str, arrays: dict[str, np.ndarray], binary_inputs: bool,
           outputs: list[str], binary_outputs: bool) -> triton.InferResult:
    requested = [triton.InferRequestedOutput(name, binary_data=binary_outputs)
                 for name in outputs]
    return client.infer(model, _inputs(arrays, binary_inputs), outputs=requested)


def _text(array: np.ndarray) -> list[str]:
    """A BYTES tensor as text: binary outputs come back as bytes, JSON ones as str."""
    return [v.decode() if isinstance(v, bytes) else v for v in array.reshape(-1).tolist()]


def _check_transport(result: triton.InferResult, binary_outputs: bool) -> None:
    """Each output came the way it was asked for: raw bytes sized in its parameters, or JSON."""
    for output in result.get_response()["outputs"]:
        if binary_outputs:
            assert "data" not in output
            assert output["parameters"]["binary_data_size"] > 0
        else:
            assert "parameters" not in output and "data" in output


def test_server_metadata_advertises_binary_tensor_data(iris):
    _model, _server, client = iris
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata("iris")
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]


@pytest.mark.parametrize(("binary_inputs", "binary_outputs"), MODES)
def test_iris_fp32_in_bytes_and_fp32_out(iris, binary_inputs, binary_outputs):
    model, _server, client = iris
    rows = model.X[[0, 60, 120]]
    expected = model.ort({"input": rows})
    result = _infer(client, "iris", {"input": rows}, binary_inputs,
                    ["label", "probabilities"], binary_outputs)
    _check_transport(result, binary_outputs)
    assert _text(result.as_numpy("label")) == expected["label"].tolist()
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected["probabilities"])
    assert result.get_response()["model_name"] == "iris"


def test_the_clients_defaults_are_binary_both_ways(iris):
    """No options at all: binary inputs, and no outputs named, so binary_data_output."""
    model, _server, client = iris
    rows = model.X[[5, 100]]
    expected = model.ort({"input": rows})
    tensor = triton.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    result = client.infer("iris", [tensor], request_id="r-7", model_version="1")
    response = result.get_response()
    assert response["id"] == "r-7" and response["model_version"] == "1"
    assert [o["name"] for o in response["outputs"]] == ["label", "probabilities"]
    _check_transport(result, True)
    assert _text(result.as_numpy("label")) == expected["label"].tolist()
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected["probabilities"])


def test_outputs_can_mix_binary_and_json(iris):
    model, _server, client = iris
    rows = model.X[[2]]
    expected = model.ort({"input": rows})
    result = client.infer("iris", _inputs({"input": rows}, True), outputs=[
        triton.InferRequestedOutput("probabilities", binary_data=True),
        triton.InferRequestedOutput("label", binary_data=False)])
    probabilities, label = result.get_response()["outputs"]  # in the order asked for
    assert label["name"] == "label" and label["data"] == expected["label"].tolist()
    assert probabilities["parameters"] == {"binary_data_size": 12}
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected["probabilities"])


@pytest.mark.parametrize(("binary_inputs", "binary_outputs"), MODES)
def test_wine_demo_int64_label(wine, binary_inputs, binary_outputs):
    model, _server, client = wine
    rows = model.X[::20]
    expected = model.ort({"input": rows})
    result = _infer(client, "wine", {"input": rows}, binary_inputs, ["label", "probabilities"],
                    binary_outputs)
    _check_transport(result, binary_outputs)
    label = result.as_numpy("label")
    assert label.dtype == np.int64
    np.testing.assert_array_equal(label, expected["label"])
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected["probabilities"])


@pytest.mark.parametrize(("binary_inputs", "binary_outputs"), MODES)
def test_churn_bytes_inputs(churn, binary_inputs, binary_outputs):
    model, _server, client = churn
    frame = model.X.iloc[:5]
    arrays = {c: frame[[c]].to_numpy(dtype=object if c in ("plan", "region") else np.float32)
              for c in frame.columns}
    expected = model.ort(arrays)
    result = _infer(client, "churn", arrays, binary_inputs, ["label", "probabilities"],
                    binary_outputs)
    _check_transport(result, binary_outputs)
    assert _text(result.as_numpy("label")) == expected["label"].tolist()
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected["probabilities"])


@pytest.mark.parametrize(("binary_inputs", "binary_outputs"), MODES)
def test_squeezenet_image(squeezenet_served, binary_inputs, binary_outputs):
    model, _server, client = squeezenet_served
    image = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
    expected = model.ort({"data_0": image})["softmaxout_1"]
    result = _infer(client, "light_squeezenet", {"data_0": image}, binary_inputs,
                    ["softmaxout_1"], binary_outputs)
    _check_transport(result, binary_outputs)
    np.testing.assert_array_equal(result.as_numpy("softmaxout_1"), expected)


def test_squeezenet_through_the_asyncio_client(squeezenet_served):
    model, server, _client = squeezenet_served
    images = [np.random.default_rng(seed).random((1, 3, 224, 224), dtype=np.float32)
              for seed in (2, 3, 4)]

    async def call_all() -> list[np.ndarray]:
        client = triton_aio.InferenceServerClient(f"127.0.0.1:{server.port}")
        try:
            assert "binary_tensor_data" in (await client.get_server_metadata())["extensions"]
            results = []
            for image in images:
                tensor = triton_aio.InferInput("data_0", [1, 3, 224, 224], "FP32")
                tensor.set_data_from_numpy(image)
                result = await client.infer("light_squeezenet", [tensor])
                results.append(result.as_numpy("softmaxout_1"))
            return results
        finally:
            await client.close()

    for image, answer in zip(images, asyncio.run(call_all())):
        np.testing.assert_array_equal(answer, model.ort({"data_0": image})["softmaxout_1"])


def _every_datatype_rows() -> dict[str, np.ndarray]:
    """Two rows of each type, with the values at its edges."""
    rows = {name: np.array([[info.min, info.max], [0, 1]], dtype=dtype)
            for name, dtype in (("uint8", np.uint8), ("int8", np.int8), ("int16", np.int16),
                                ("int32", np.int32), ("int64", np.int64),
                                ("uint16", np.uint16), ("uint32", np.uint32),
                                ("uint64", np.uint64))
            for info in [np.iinfo(dtype)]}
    rows["bool"] = np.array([[True, False], [False, True]])
    rows["fp16"] = np.array([[np.finfo(np.float16).max, -0.0], [6.1e-05, 0.333]],
                            dtype=np.float16)
    rows["fp32"] = np.array([[np.finfo(np.float32).max, np.finfo(np.float32).tiny],
                             [-1.5, 1e-45]], dtype=np.float32)
    rows["fp64"] = np.array([[np.finfo(np.float64).max, -np.finfo(np.float64).tiny],
                             [0.1, 2.5]], dtype=np.float64)
    rows["bytes"] = np.array([["", "héllo wörld"], ["nul\x00inside", "x" * 300]], dtype=object)
    return rows


@pytest.mark.parametrize(("binary_inputs", "binary_outputs"), MODES)
def test_every_datatype_round_trips_exactly(datatypes, binary_inputs, binary_outputs):
    _model, _server, client = datatypes
    rows = _every_datatype_rows()
    result = _infer(client, "every_datatype", rows, binary_inputs,
                    [f"{name}_out" for name in rows], binary_outputs)
    _check_transport(result, binary_outputs)
    for name, sent in rows.items():
        answer = result.as_numpy(f"{name}_out")
        if name == "bytes":
            assert _text(answer) == sent.reshape(-1).tolist()
            continue
        assert answer.dtype == sent.dtype, name
        np.testing.assert_array_equal(answer, sent, err_msg=name)
        assert answer.tobytes() == sent.tobytes(), name  # -0.0 stays -0.0


def test_a_refusal_reaches_the_client_as_its_message(iris):
    """A 400 is read by the client as the server's sentence, in either mode."""
    _model, _server, client = iris
    for binary in (False, True):
        wrong = triton.InferInput("input", [1, 3], "FP32")
        wrong.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32), binary_data=binary)
        with pytest.raises(InferenceServerException) as caught:
            client.infer("iris", [wrong])
        assert caught.value.status() == "400"
        assert caught.value.message() == ("input 'input' has shape [1, 3], the model takes "
                                          "[-1, 4] (-1: any size)")


KSERVE_PYTHON = os.environ.get("SLIPWAY_KSERVE_PYTHON")


@pytest.mark.skipif(not KSERVE_PYTHON, reason="SLIPWAY_KSERVE_PYTHON names no Python with kserve "
                                              "(kserve pins pandas<3 and protobuf<7)")
def test_kserve_rest_client_in_json_binary_and_default_modes(wine, tmp_path):
    model, server, _client = wine
    rows = model.X[::30]
    np.save(tmp_path / "rows.npy", rows)
    expected = model.ort({"input": rows})
    script = Path(__file__).with_name("kserve_client.py")
    run = subprocess.run([KSERVE_PYTHON, str(script), server.url, "wine", "input",
                          str(tmp_path / "rows.npy"), "label", "probabilities"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    answers = json.loads(run.stdout)
    assert {mode: answer["content_type"] for mode, answer in answers.items()} == {
        "json": "application/json", "binary": "application/octet-stream",
        # Its defaults: binary inputs, outputs in JSON unless asked for.
        "defaults": "application/json"}
    for mode, answer in answers.items():
        assert answer["id"] == mode
        assert answer["outputs"]["label"] == expected["label"].tolist(), mode
        np.testing.assert_array_equal(np.array(answer["outputs"]["probabilities"],
                                               dtype=np.float32),
                                      expected["probabilities"], err_msg=mode)
