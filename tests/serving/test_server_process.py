"""`python -m slipway_server` as a real process: it binds, warms up, serves, and exits 0 on
SIGTERM; a startup problem is one line on stderr and a non-zero status."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

import httpx
from server_helpers import free_port, start_server, wait_ready


def test_serves_and_drains_on_sigterm(tmp_path, iris_logreg):
    config = tmp_path / "serving.json"
    config.write_text(json.dumps(iris_logreg.with_config(model_file=str(iris_logreg.path))))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(config, port)
    try:
        wait_ready(process, url)
        with httpx.Client(base_url=url) as client:
            response = client.post("/predict", json={"features": [5.1, 3.5, 1.4, 0.2]})
            assert response.status_code == 200
            assert response.json()["label"] == "setosa"
            assert client.get("/metrics").status_code == 200
        process.send_signal(signal.SIGTERM)
        _stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "serving iris 1 (classification, 4 features" in stderr
    assert "Application shutdown complete" in stderr
    assert "POST /predict" not in stderr  # no access log by default
    assert "Traceback" not in stderr


def test_sigterm_lets_an_in_flight_request_finish(tmp_path, iris_logreg):
    """The request is in flight (its body half sent) when SIGTERM arrives: the server stops
    listening, answers it, then exits 0."""
    config = tmp_path / "serving.json"
    config.write_text(json.dumps(iris_logreg.with_config(model_file=str(iris_logreg.path))))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(config, port)
    release = threading.Event()
    answers: list[httpx.Response] = []

    def body():
        yield b'{"features": [5.1, 3.5,'
        release.wait(10)
        yield b' 1.4, 0.2]}'

    def send() -> None:
        answers.append(httpx.post(f"{url}/predict", content=body(), timeout=30))

    sender = threading.Thread(target=send)
    try:
        wait_ready(process, url)
        sender.start()
        deadline = time.monotonic() + 10
        while "slipway_inflight_requests 1.0" not in httpx.get(f"{url}/metrics").text:
            assert time.monotonic() < deadline, "the request never got in flight"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        while True:  # draining: the listening socket closes first
            assert time.monotonic() < deadline, "the server kept listening after SIGTERM"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) != 0:
                    break
            time.sleep(0.01)
        assert process.poll() is None, "the server exited with a request in flight"
        release.set()
        sender.join(10)
        _stdout, stderr = process.communicate(timeout=30)
    finally:
        release.set()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert [a.status_code for a in answers] == [200]
    assert answers[0].json()["label"] == "setosa"
    assert process.returncode == 0, stderr


def test_missing_model_is_one_line_on_stderr(tmp_path):
    config = tmp_path / "serving.json"
    config.write_text(json.dumps({"model_file": "model.onnx", "name": "gone"}))
    process = start_server(config, free_port())
    _stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert stderr == f"slipway-server: model file '{tmp_path / 'model.onnx'}' does not exist\n"


def test_port_in_use_is_one_line_on_stderr(tmp_path, iris_logreg):
    config = tmp_path / "serving.json"
    config.write_text(json.dumps(iris_logreg.with_config(model_file=str(iris_logreg.path))))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start_server(config, port)
        _stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 3
    assert stderr == f"slipway-server: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_an_api_key_variable_that_is_not_set_is_one_line_on_stderr(tmp_path, iris_logreg):
    """Told to require a key from a variable that is unset or empty, the server does not start
    (it used to warn and serve without a key)."""
    config = tmp_path / "serving.json"
    config.write_text(json.dumps(iris_logreg.with_config(
        model_file=str(iris_logreg.path), auth={"api_key_env": "SLIPWAY_TEST_ABSENT_KEY"})))
    for env, state in (({}, "is not set"), ({"SLIPWAY_TEST_ABSENT_KEY": ""}, "is empty")):
        process = start_server(config, free_port(), env)
        _stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 2
        assert stderr == (f"slipway-server: serving.json: 'auth.api_key_env' names "
                          f"SLIPWAY_TEST_ABSENT_KEY, which {state}: set it to the API key, or make "
                          "'auth.api_key_env' null to serve without one\n")
