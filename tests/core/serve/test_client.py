"""The model client against a real server process, and curl commands that really work."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from studio.core.model.artifact import load
from studio.core.serve.client import ModelClient, ServerUnreachable, curl_command
from studio.core.serve.deploy import DeployOptions, deploy
from studio.core.serve.runtimes.base import free_port

DEMO_MODEL = Path(__file__).resolve().parents[3] / "resources" / "demo" / "wine_classifier.onnx"


@pytest.fixture(scope="module")
def demo_server():
    deployment = deploy(load(DEMO_MODEL), DeployOptions(runtime="process"))
    yield deployment
    deployment.stop()


def test_replies_carry_status_body_and_latency(demo_server):
    body = load(DEMO_MODEL).schema.samples.rest
    with ModelClient(demo_server.url) as client:
        ok = client.predict(body)
        assert ok.ok and ok.is_json and ok.latency_ms > 0
        assert set(ok.body["probabilities"]) == {"class_0", "class_1", "class_2"}
        bad = client.predict({"features": {"alcohol": "x"}})
        assert bad.status == 400 and "alcohol" in bad.body["error"]
        metrics = client.request("GET", "/metrics")
        assert not metrics.is_json and "slipway_requests_total" in metrics.body


def test_nothing_listening_is_a_clear_error():
    with ModelClient(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(ServerUnreachable) as caught:
            client.predict({"features": [1]})
        assert not client.ready()
    assert caught.value.message.startswith("Nothing answers at http://127.0.0.1:")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_command_sends_the_same_request(demo_server):
    body = {"features": {"alcohol": 13.0, "malic_acid": "not a number"}}
    command = curl_command(demo_server.url, "POST", "/predict", body)
    assert command.startswith("curl -sS -X POST ")
    answer = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
    assert json.loads(answer.stdout) == {"error": ModelClient(demo_server.url).predict(body).body[
        "error"]}
