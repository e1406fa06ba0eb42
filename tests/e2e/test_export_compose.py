"""The exported compose.yaml on the real Docker engine: an image built by `slipway build`, brought
up by Docker Compose with the hardening in force, answering a prediction once healthy, a second
version beside it, and everything taken down."""

import json
import os
import subprocess
import time
import uuid

import numpy as np
import pytest
from serving_checks import iris_row

from studio.core.export.documents import build_export
from studio.core.export.facts import from_image
from studio.core.export.options import export_options
from studio.core.export.tools import find_compose
from studio.core.export.write import check_export, write_export
from studio.core.serve.bundle import ImageOptions, ServingOptions
from studio.core.serve.client import ModelClient
from studio.core.serve.deploy import DeployOptions, build_image
from studio.core.serve.runtimes.base import free_port

pytestmark = [pytest.mark.docker, pytest.mark.needs_base_image]

KEY_VARIABLE = "SLIPWAY_EXPORT_TEST_KEY"
HEALTHY_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def built(iris_artifact, base_image):
    """The iris model as `slipway build` makes it, asking for an API key, and a second tag."""
    image = build_image(iris_artifact, DeployOptions(
        tag="slipway-test/export-iris:1", image=ImageOptions(base_image=base_image),
        serving=ServingOptions(api_key_env=KEY_VARIABLE)))
    subprocess.run(["docker", "tag", image.tag, "slipway-test/export-iris:2"], check=True)
    yield image
    subprocess.run(["docker", "rmi", "slipway-test/export-iris:2"], capture_output=True)


@pytest.fixture
def compose_command():
    tool = find_compose()
    if not tool.command:
        pytest.fail(f"the Docker tests need Compose: {tool.detail}")
    return list(tool.command)


def wait_healthy(container: str) -> None:
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}", container],
                               capture_output=True, text=True).stdout.strip()
        if state == "healthy":
            return
        time.sleep(1)
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
    raise AssertionError(f"{container} is {state!r}, not healthy:\n{logs.stdout}{logs.stderr}")


def test_the_exported_compose_file_serves_hardened_beside_a_second_version(
        built, iris_artifact, sklearn_models, tmp_path, compose_command):
    model = from_image(built.tag, iris_artifact)
    assert model.source == "image" and model.api_key_env == KEY_VARIABLE
    assert model.sha256 == built.bundle.sha256
    port = free_port()
    options = export_options(image=built.tag, name="iris", namespace="models", port=port,
                             canary_image="slipway-test/export-iris:2", startup_seconds=60)
    export = build_export(options, model)
    report = check_export(export)
    assert report.passed, [f.line() for f in report.findings]
    write_export(export, tmp_path, report)
    assert "SLIPWAY_EXPORT" not in json.dumps(
        [o for o in (tmp_path / "compose.yaml").read_text().splitlines() if "=" in o])

    key = f"export-key-{uuid.uuid4().hex}"
    project = f"slipway-export-{uuid.uuid4().hex[:8]}"
    compose = [*compose_command, "-p", project, "-f", str(tmp_path / "compose.yaml")]
    without_key = {k: v for k, v in os.environ.items() if k != KEY_VARIABLE}
    refused = subprocess.run([*compose, "up", "-d"], capture_output=True, text=True,
                             env=without_key)
    assert refused.returncode != 0 and KEY_VARIABLE in refused.stderr  # no key, no server
    with_key = {**without_key, KEY_VARIABLE: key}  # Compose reads the file anew for every command
    try:
        started = subprocess.run([*compose, "up", "-d"], capture_output=True, text=True,
                                 env=with_key, timeout=300)
        assert started.returncode == 0, started.stderr
        containers = subprocess.run([*compose, "ps", "-q"], capture_output=True, text=True,
                                    env=with_key, check=True).stdout.split()
        assert len(containers) == 2
        features, _ = iris_row(sklearn_models["logreg_iris"])
        for container in containers:
            wait_healthy(container)
            attrs = json.loads(subprocess.run(["docker", "inspect", container],
                                              capture_output=True, text=True,
                                              check=True).stdout)[0]
            host = attrs["HostConfig"]
            assert host["ReadonlyRootfs"] is True
            assert "/tmp" in host["Tmpfs"]
            assert host["CapDrop"] == ["ALL"]
            assert "no-new-privileges:true" in host["SecurityOpt"]
            assert host["PidsLimit"] == 256
            assert host["Memory"] == 512 * 2**20
            assert attrs["Config"]["User"] == "10001:10001"
            binding = next(iter(host["PortBindings"].values()))[0]
            assert binding["HostIp"] == "127.0.0.1"
            url = f"http://127.0.0.1:{binding['HostPort']}"
            with ModelClient(url, api_key=key) as client:
                reply = client.predict({"features": features})
                assert reply.status == 200, reply.body
                assert np.isclose(sum(reply.body["probabilities"].values()), 1.0)
            with ModelClient(url) as anonymous:
                assert anonymous.predict({"features": features}).status == 401
        images = {json.loads(subprocess.run(["docker", "inspect", c], capture_output=True,
                                            text=True).stdout)[0]["Config"]["Image"]
                  for c in containers}
        assert images == {"slipway-test/export-iris:1", "slipway-test/export-iris:2"}
    finally:
        down = subprocess.run([*compose, "down", "--volumes", "--timeout", "5"],
                              capture_output=True, text=True, env=with_key)
    assert down.returncode == 0, down.stderr
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project="
                           f"{project}"], capture_output=True, text=True).stdout.split()
    assert left == []
