"""The process runtime end to end: a real server process, real HTTP, answers equal ONNX Runtime."""

import socket

import numpy as np
import pytest
from serving_checks import SQUEEZENET, iris_row, onnx_answer, squeezenet_answers

from studio.core.model.artifact import load
from studio.core.serve.client import ModelClient
from studio.core.serve.deploy import DeployOptions, choose_runtime, deploy
from studio.core.serve.runtimes.base import DeploymentError, DeploymentState


@pytest.fixture(scope="module")
def iris_deployment(iris_artifact):
    deployment = deploy(iris_artifact, DeployOptions(runtime="process"))
    yield deployment
    deployment.stop()


def test_a_scikit_learn_model_is_served_from_its_onnx_conversion(iris_deployment, sklearn_models):
    model = sklearn_models["logreg_iris"]
    assert iris_deployment.state == DeploymentState.READY
    assert iris_deployment.runtime == "process"
    assert iris_deployment.url.startswith("http://127.0.0.1:")
    features, matrix = iris_row(model)
    served_file = iris_deployment.bundle_path / "model.onnx"
    expected = onnx_answer(served_file, {"input": matrix})
    with ModelClient(iris_deployment.url) as client:
        reply = client.predict({"features": features})
        assert reply.status == 200, reply.body
        probabilities = reply.body["probabilities"]
        assert np.allclose(list(probabilities.values()), expected["probabilities"][0], atol=1e-6)
        assert str(reply.body["label"]) == str(expected["label"][0])
        assert str(reply.body["label"]) == str(model.estimator.predict(model.X.iloc[[7]])[0])
        v2 = client.predict({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                         "data": matrix.ravel().tolist()}]},
                            route=f"/v2/models/{iris_deployment.name}/infer")
        assert v2.status == 200, v2.body
        outputs = {o["name"]: o for o in v2.body["outputs"]}
        assert np.allclose(outputs["probabilities"]["data"], expected["probabilities"].ravel(),
                           atol=1e-6)
        assert client.request("POST", "/predict", {"features": {"nope": 1}}).status == 400


def test_an_image_model_is_served_through_v2(tmp_path):
    artifact = load(SQUEEZENET)
    deployment = deploy(artifact, DeployOptions(runtime="process"))
    try:
        assert deployment.name == "light_squeezenet"
        reply, expected = squeezenet_answers(deployment.url, seed=0)
        assert reply.status == 200, reply.body
        output = reply.body["outputs"][0]
        assert output["shape"] == list(expected.shape)
        assert np.allclose(output["data"], expected.ravel(), atol=1e-5)
    finally:
        deployment.stop()
    assert deployment.process.poll() is not None  # the child is gone


def test_a_port_in_use_is_a_clear_error(iris_artifact):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DeploymentError) as caught:
            deploy(iris_artifact, DeployOptions(runtime="process", port=port))
    assert f"Port {port} on 127.0.0.1 is already in use" in caught.value.message


def test_a_server_that_exits_at_start_is_reported_with_its_log(iris_artifact, tmp_path):
    from studio.core.serve.bundle import write_bundle
    from studio.core.serve.runtimes.process import ProcessRuntime

    bundle = write_bundle(iris_artifact_onnx(iris_artifact, tmp_path), tmp_path / "bundle",
                          with_wheels=False)
    (bundle.path / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(DeploymentError) as caught:
        ProcessRuntime().run(bundle, ready_timeout=30)
    assert "exited with status" in caught.value.message
    assert caught.value.detail  # the server's own last words


def iris_artifact_onnx(artifact, folder):
    from studio.core.optimize.convert import convert

    return convert(artifact, folder / "iris.onnx").artifact


def test_without_an_engine_auto_chooses_the_process_runtime_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    choice = choose_runtime("auto")
    assert choice.name == "process"
    assert "no Docker engine is running" in choice.reason
    with pytest.raises(DeploymentError) as caught:
        choose_runtime("docker")
    assert "The Docker runtime was chosen, but no Docker engine is running" in caught.value.message
