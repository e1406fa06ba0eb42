"""`slipway serve`, `slipway predict` and `slipway build` as real processes."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from studio.ui.app import DEMO_MODEL

BODY = {"features": [13.0, 2.3, 2.4, 19.5, 99.7, 2.3, 2.0, 0.36, 1.6, 5.1, 0.96, 2.6, 747.0]}


def slipway(*args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "studio.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served_demo():
    """`slipway serve` in the foreground, as a person runs it; stopped with Ctrl-C."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "studio.cli", "serve", str(DEMO_MODEL), "--runtime", "process",
         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready_line = server.stdout.readline()
    assert "is ready at" in ready_line, server.stderr.read() if server.poll() is not None else ""
    yield f"http://127.0.0.1:{port}", ready_line, server
    if server.poll() is None:
        server.kill()


def test_serve_says_where_it_is_ready(served_demo):
    url, ready_line, _ = served_demo
    assert ready_line.strip() == (f"wine_classifier is ready at {url} (process runtime). "
                                  "Ctrl-C stops it.")


def test_predict_prints_the_answer(served_demo, tmp_path):
    url, _, _ = served_demo
    result = slipway("predict", url, "--data", json.dumps(BODY))
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert set(answer["probabilities"]) == {"class_0", "class_1", "class_2"}
    assert result.stderr.startswith("HTTP 200 in ")
    body_file = tmp_path / "body.json"
    body_file.write_text(json.dumps({"instances": [BODY["features"]] * 3}))
    batch = slipway("predict", url, "--data", f"@{body_file}", "--route", "/predict/batch")
    assert batch.returncode == 0, batch.stderr
    assert len(json.loads(batch.stdout)["predictions"]) == 3


def test_predict_reports_a_bad_request_with_the_servers_reason(served_demo):
    url, _, _ = served_demo
    result = slipway("predict", url, "--data", '{"features": {"alcohol": "strong"}}')
    assert result.returncode == 1
    assert result.stderr.startswith("slipway: error: HTTP 400: ")
    assert "alcohol" in result.stderr


def test_predict_with_invalid_json_or_no_server_fails_clearly():
    bad = slipway("predict", "http://127.0.0.1:9", "--data", "{nope")
    assert bad.returncode == 2 and "--data is not valid JSON" in bad.stderr
    gone = slipway("predict", f"http://127.0.0.1:{free_port()}", "--data", json.dumps(BODY))
    assert gone.returncode == 1
    assert "Nothing answers at http://127.0.0.1:" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_ctrl_c_stops_the_server_and_cleans_up(served_demo):
    url, _, server = served_demo
    server.send_signal(signal.SIGINT)
    assert server.wait(timeout=20) == 0
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the port is free again: the child server is gone


def test_serve_with_docker_and_no_engine_says_what_to_do(tmp_path):
    result = slipway("serve", DEMO_MODEL, "--runtime", "docker",
                     env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert result.returncode == 1
    assert "The Docker runtime was chosen, but no Docker engine is running" in result.stderr
    assert "process runtime" in result.stderr


@pytest.mark.docker
@pytest.mark.needs_base_image
def test_build_makes_a_tagged_image(base_image):
    import docker

    result = slipway("build", DEMO_MODEL, "--tag", "slipway-test/cli-build:1", "--base-image",
                     base_image, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    tag, image_id = result.stdout.split()
    assert tag == "slipway-test/cli-build:1"
    assert "Successfully built" in result.stderr
    image = docker.from_env().images.get(tag)
    assert image.id == image_id
    assert image.labels["io.slipway.model.name"] == "wine_classifier"


@pytest.mark.docker
def test_containers_lists_and_cleans_up_what_the_studio_started():
    import docker

    client = docker.from_env()
    image = client.images.list(filters={"label": "io.slipway.managed=true"})
    if not image:
        pytest.skip("no studio-built image on this engine yet")
    container = client.containers.create(image[0].id, labels={
        "io.slipway.managed": "true", "io.slipway.model.name": "listed"},
        name="slipway-listed-test")
    try:
        listed = slipway("containers")
        assert listed.returncode == 0, listed.stderr
        assert "slipway-listed-test" in listed.stdout and "listed" in listed.stdout
        cleaned = slipway("containers", "--clean")
        assert cleaned.returncode == 0 and "Removed" in cleaned.stdout
        assert "slipway-listed-test" not in [c.name for c in client.containers.list(all=True)]
    finally:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
