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


def test_predict_takes_the_url_with_or_without_the_route(served_demo):
    url, _, _ = served_demo
    single = slipway("predict", f"{url}/predict", "--data", json.dumps(BODY))
    assert single.returncode == 0, single.stderr
    assert set(json.loads(single.stdout)["probabilities"]) == {"class_0", "class_1", "class_2"}
    batch = slipway("predict", f"{url}/predict/batch/",
                    "--data", json.dumps({"instances": [BODY["features"]] * 2}))
    assert batch.returncode == 0, batch.stderr
    assert len(json.loads(batch.stdout)["predictions"]) == 2
    both = slipway("predict", f"{url}/predict", "--route", "/predict/batch", "--data", "{}")
    assert both.returncode == 2
    assert "names the route /predict and --route says /predict/batch" in both.stderr


def test_predict_without_data_sends_the_models_sample_body(served_demo):
    url, _, _ = served_demo
    result = slipway("predict", url)
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["probabilities"]) == {"class_0", "class_1", "class_2"}
    assert "Sending the model's sample body for /predict" in result.stderr
    v2 = slipway("predict", f"{url}/v2/models/wine_classifier/infer")
    assert v2.returncode == 0, v2.stderr
    assert {o["name"] for o in json.loads(v2.stdout)["outputs"]} >= {"label"}


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


def test_ctrl_c_stops_a_server_a_script_started_in_the_background():
    """A script's `slipway serve … &` starts with SIGINT ignored (a shell without job control sets
    that for background commands), and the packaging check stops its server with SIGINT."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "studio.cli", "serve", str(DEMO_MODEL), "--runtime", "process",
         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        ready_line = server.stdout.readline()
        assert "is ready at" in ready_line, server.stderr.read() if server.poll() is not None \
            else ready_line
        server.send_signal(signal.SIGINT)
        status = server.wait(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
    assert status == 0, server.stderr.read()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the child server is gone too


def test_serve_with_docker_and_no_engine_says_what_to_do(tmp_path):
    result = slipway("serve", DEMO_MODEL, "--runtime", "docker",
                     env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert result.returncode == 1
    assert "The Docker runtime was chosen, but no Docker engine is running" in result.stderr
    assert "process runtime" in result.stderr


def test_a_version_that_is_not_a_plain_word_is_refused_and_nothing_is_built(tmp_path):
    # A newline here once became a RUN line of its own in the Dockerfile.
    result = slipway("build", DEMO_MODEL, "--model-version", "1\nRUN touch /pwned",
                     env={"XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "cannot be the model's version: a version is 1 to 64 letters, digits, '.', '_', '-' " \
        "and '+'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "slipway-studio" / "work").exists()


def test_serve_refuses_an_api_key_variable_that_is_not_set(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k != "SLIPWAY_TEST_CLI_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "studio.cli", "serve", str(DEMO_MODEL), "--runtime", "process",
         "--api-key-env", "SLIPWAY_TEST_CLI_KEY"], capture_output=True, text=True, timeout=120,
        env={**environment, "XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "SLIPWAY_TEST_CLI_KEY is not set" in result.stderr
    assert "export SLIPWAY_TEST_CLI_KEY=" in result.stderr
    assert not (tmp_path / "slipway-studio" / "work").exists()


def test_protect_metrics_puts_metrics_behind_the_api_key():
    import httpx

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "studio.cli", "serve", str(DEMO_MODEL), "--runtime", "process",
         "--port", str(port), "--api-key-env", "SLIPWAY_TEST_CLI_KEY", "--protect-metrics"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SLIPWAY_TEST_CLI_KEY": "metrics-key"})
    try:
        assert "is ready at" in server.stdout.readline(), server.stderr.read()
        metrics = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(metrics).status_code == 401
        keyed = httpx.get(metrics, headers={"Authorization": "Bearer metrics-key"})
        assert keyed.status_code == 200 and "slipway_requests_total" in keyed.text
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


def test_protect_metrics_without_a_key_is_refused():
    result = slipway("serve", DEMO_MODEL, "--runtime", "process", "--protect-metrics")
    assert result.returncode == 1
    assert "Protecting /metrics needs an API key" in result.stderr


@pytest.fixture(scope="module")
def built_demo(base_image):
    """`slipway build` of the demo model, as a person runs it."""
    tag = "slipway-test/cli-build:1"
    result = slipway("build", DEMO_MODEL, "--tag", tag, "--base-image", base_image, timeout=600)
    return tag, result


@pytest.mark.docker
@pytest.mark.needs_base_image
def test_build_makes_a_tagged_image(built_demo):
    import docker

    tag, result = built_demo
    assert result.returncode == 0, result.stderr[-2000:]
    printed_tag, image_id = result.stdout.split()
    assert printed_tag == tag
    assert "Successfully built" in result.stderr
    image = docker.from_env().images.get(tag)
    assert image.id == image_id
    assert image.labels["io.slipway.model.name"] == "wine_classifier"


@pytest.mark.docker
@pytest.mark.needs_base_image
def test_containers_lists_and_cleans_up_only_what_this_installation_started(
        built_demo, tmp_path, monkeypatch):
    import docker

    from studio.core.serve.runtimes.docker import DockerRuntime

    tag, result = built_demo
    assert result.returncode == 0, result.stderr[-2000:]
    # A fresh installation of the studio: its own data folder, so its own id.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    installation = {"XDG_DATA_HOME": str(tmp_path / "data")}
    client = docker.from_env()
    by_hand = subprocess.run(["docker", "run", "-d", "--name", "slipway-by-hand-test", tag],
                             capture_output=True, text=True, check=True).stdout.strip()
    started = DockerRuntime().run(tag, "listed", ready_timeout=120)
    try:
        listed = slipway("containers", env=installation)
        assert listed.returncode == 0, listed.stderr
        assert started.container.name in listed.stdout and "listed" in listed.stdout
        assert "slipway-by-hand-test" not in listed.stdout
        cleaned = slipway("containers", "--clean", env=installation)
        assert cleaned.returncode == 0 and "Removed 1 container(s)." in cleaned.stdout
        remaining = [c.id for c in client.containers.list(all=True)]
        assert started.container.id not in remaining
        assert by_hand in remaining, "a container started by hand survives the clean-up"
    finally:
        started.stop(timeout=2)
        client.containers.get(by_hand).remove(force=True)


@pytest.mark.docker
def test_containers_says_so_when_the_installation_id_cannot_be_kept(tmp_path):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data folder should be")
    result = slipway("containers", env={"XDG_DATA_HOME": str(not_a_folder)})
    assert result.returncode == 1
    assert "The studio cannot keep its installation id in" in result.stderr
    assert "XDG_DATA_HOME" in result.stderr and "Traceback" not in result.stderr
