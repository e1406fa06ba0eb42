"""The Docker runtime with the real engine: build, run, answer, stop, clean up, fail clearly."""

import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from serving_checks import SQUEEZENET, iris_row, onnx_answer, squeezenet_answers

from studio.core.model.artifact import load
from studio.core.optimize.convert import convert
from studio.core.serve.bundle import ImageOptions, ServingOptions, write_bundle
from studio.core.serve.client import ModelClient
from studio.core.serve.deploy import DeployOptions, deploy
from studio.core.serve.runtimes.base import DeploymentError
from studio.core.serve.runtimes.docker import INSTALLATION_LABEL, MANAGED_LABEL, DockerRuntime
from studio.core.tasks import Progress
from studio.core.workspace import installation_id

pytestmark = [pytest.mark.docker, pytest.mark.needs_base_image]


@pytest.fixture(scope="module")
def iris_container(iris_artifact, base_image):
    log = []
    deployment = deploy(iris_artifact, DeployOptions(
        runtime="docker", tag="slipway-test/iris:1", image=ImageOptions(base_image=base_image)),
        progress=Progress(on_partial=log.append))
    yield deployment, log
    deployment.stop()


def test_the_iris_model_builds_runs_and_answers_like_onnx_runtime(iris_container, sklearn_models):
    deployment, log = iris_container
    assert deployment.runtime == "docker"
    assert any(line.startswith("Step 1/") for line in log), "the build log streamed"
    features, matrix = iris_row(sklearn_models["logreg_iris"])
    image = deployment.container.image
    model_file = iris_container_model(deployment)
    expected = onnx_answer(model_file, {"input": matrix})
    with ModelClient(deployment.url) as client:
        reply = client.predict({"features": features})
        assert reply.status == 200, reply.body
        assert np.allclose(list(reply.body["probabilities"].values()),
                           expected["probabilities"][0], atol=1e-6)
        assert client.request("GET", "/metrics").body.count("slipway_requests_total") > 0
    labels = image.labels
    assert labels["org.opencontainers.image.title"] == "logreg_iris"
    assert labels["io.slipway.model.sha256"] == deployment_sha(deployment)
    config = image.attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert deployment.container.labels[MANAGED_LABEL] == "true"


def iris_container_model(deployment):
    """The model file the container serves, from the build context it was made from."""
    return deployment.bundle_path / "model.onnx"


def deployment_sha(deployment):
    import json

    return json.loads((deployment.bundle_path / "serving.json").read_text())["sha256"]


def test_the_studio_lists_and_cleans_up_its_containers(iris_container):
    deployment, _ = iris_container
    runtime = DockerRuntime()
    assert deployment.container.id in [c.id for c in runtime.managed()]
    assert deployment.container.labels[INSTALLATION_LABEL] == installation_id()


def test_the_container_runs_hardened_and_still_answers(iris_container):
    deployment, _ = iris_container
    deployment.container.reload()
    host = deployment.container.attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert "/tmp" in host["Tmpfs"]
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["PidsLimit"] > 0
    assert deployment.container.attrs["Config"]["User"] == "10001:10001"
    assert [b["HostIp"] for b in host["PortBindings"]["8000/tcp"]] == ["127.0.0.1"]
    with ModelClient(deployment.url) as client:
        assert client.ready()
        assert client.request("GET", "/metrics").status == 200
    # Nothing in the server's start complains of the read-only root (ONNX Runtime's state file).
    assert "Failed to persist" not in deployment.logs()


KEY_VARIABLE = "SLIPWAY_TEST_CONTAINER_KEY"


def image_holds(tag: str, secret: str) -> list[str]:
    """Where in the image (its config, history or any layer's files) the secret appears."""
    found = []
    for command in (["docker", "image", "inspect", tag], ["docker", "history", "--no-trunc", tag]):
        if secret in subprocess.run(command, capture_output=True, text=True, check=True).stdout:
            found.append(" ".join(command[:2]))
    needle, tail = secret.encode(), b""
    with subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE) as save:
        for chunk in iter(lambda: save.stdout.read(1 << 20), b""):
            if needle in tail + chunk:
                found.append("docker save")
                break
            tail = chunk[-len(needle):]
    return found


def test_the_api_key_reaches_the_container_and_never_the_image(iris_artifact, sklearn_models,
                                                               base_image, monkeypatch):
    key = f"container-key-{uuid.uuid4().hex}"
    monkeypatch.setenv(KEY_VARIABLE, key)
    deployment = deploy(iris_artifact, DeployOptions(
        runtime="docker", tag="slipway-test/iris-keyed:1", image=ImageOptions(base_image=base_image),
        serving=ServingOptions(api_key_env=KEY_VARIABLE)))
    try:
        features, _ = iris_row(sklearn_models["logreg_iris"])
        with ModelClient(deployment.url) as anonymous:
            assert anonymous.predict({"features": features}).status == 401
        with ModelClient(deployment.url, api_key=key) as keyed:
            reply = keyed.predict({"features": features})
            assert reply.status == 200, reply.body
        assert not [f for f in deployment.bundle_path.rglob("*")
                    if f.is_file() and key.encode() in f.read_bytes()], "in the build context"
        assert image_holds("slipway-test/iris-keyed:1", key) == []
    finally:
        deployment.stop()


def test_an_image_model_serves_v2_in_a_container(base_image):
    deployment = deploy(load(SQUEEZENET), DeployOptions(
        runtime="docker", tag="slipway-test/squeezenet:1",
        image=ImageOptions(base_image=base_image)))
    try:
        reply, expected = squeezenet_answers(deployment.url, seed=1)
        assert reply.status == 200, reply.body
        assert np.allclose(reply.body["outputs"][0]["data"], expected.ravel(), atol=1e-5)
    finally:
        deployment.stop()
    assert deployment.container.id not in [c.id for c in DockerRuntime().managed()]


def test_a_missing_base_image_fails_the_build_with_the_step_and_the_fix(iris_artifact, tmp_path):
    onnx_model = convert(iris_artifact, tmp_path / "iris.onnx").artifact
    bundle = write_bundle(onnx_model, tmp_path / "bundle",
                          image=ImageOptions(base_image="slipway-test/no-such-base:0"))
    with pytest.raises(DeploymentError) as caught:
        DockerRuntime().build(bundle, "slipway-test/broken:1",
                              base_image="slipway-test/no-such-base:0")
    assert caught.value.message.startswith("The image build failed at step 2/")  # FROM
    assert "slipway-test/no-such-base:0" in caught.value.hint
    assert "docker images" in caught.value.hint


def test_a_failing_build_step_names_the_step_and_keeps_its_output(iris_artifact, tmp_path,
                                                                  base_image):
    onnx_model = convert(iris_artifact, tmp_path / "iris.onnx").artifact
    bundle = write_bundle(onnx_model, tmp_path / "bundle", image=ImageOptions(base_image=base_image))
    (bundle.path / "wheels" / "requirements.txt").write_text("no-such-package-anywhere==1.0\n")
    with pytest.raises(DeploymentError) as caught:
        DockerRuntime().build(bundle, "slipway-test/broken:2", base_image=base_image)
    assert "The image build failed at step 4/" in caught.value.message  # the pip install
    assert "no-such-package-anywhere" in caught.value.detail


def test_a_container_that_exits_at_start_is_reported_with_its_log(iris_artifact, tmp_path,
                                                                  base_image):
    onnx_model = convert(iris_artifact, tmp_path / "iris.onnx").artifact
    bundle = write_bundle(onnx_model, tmp_path / "bundle", image=ImageOptions(base_image=base_image))
    # A model file that is not the one serving.json vouches for: the server refuses to start.
    (bundle.path / "model.onnx").write_bytes(b"not the model")
    runtime = DockerRuntime()
    runtime.build(bundle, "slipway-test/exits:1", base_image=base_image)
    with pytest.raises(DeploymentError) as caught:
        runtime.run("slipway-test/exits:1", "exits", ready_timeout=60)
    assert "exited with status" in caught.value.message
    assert "sha256" in caught.value.detail
    assert not [c for c in runtime.managed() if c.labels.get("io.slipway.model.name") == "exits"]


def test_stopping_a_container_waits_for_the_servers_pause_and_drain(iris_artifact, base_image):
    # The pause outlasts the 10 s a stop used to allow: killed, the container would exit 137.
    deployment = deploy(iris_artifact, DeployOptions(
        runtime="docker", tag="slipway-test/iris-pause:1", image=ImageOptions(base_image=base_image),
        serving=ServingOptions(ready_pause_s=12.0)))
    with ThreadPoolExecutor(1) as pool:
        exited = pool.submit(deployment.container.wait)
        deployment.stop()
        assert exited.result(timeout=120)["StatusCode"] == 0
