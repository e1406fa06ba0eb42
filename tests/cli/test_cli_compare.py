"""`slipway compare` and `slipway shadow` as a person runs them: separate processes, registered
versions named by `name:N` and `name@alias`, real servers and real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from compare_models import WINE_CSV, int8_of, wine_rows, wine_version
from sklearn.neural_network import MLPClassifier

from studio.core.model.artifact import load
from studio.core.serve.runtimes.base import free_port
from studio.core.versions.registry import Registry


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def registered(data_home, tmp_path_factory):
    """wine:1 (a small MLP) with the alias champion, and wine:2 (its int8 quantization)."""
    folder = tmp_path_factory.mktemp("models")
    mlp = wine_version(folder, "wine",
                       MLPClassifier(hidden_layer_sizes=(8,), max_iter=200, random_state=0))
    int8 = int8_of(mlp, folder)
    registry = Registry(data_home / "slipway-studio" / "registry")
    first = registry.record(load(mlp)).version
    registry.record(load(int8), parent=first)
    registry.set_alias("wine", "champion", 1)
    return mlp, int8


def slipway(data_home, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "studio.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "XDG_DATA_HOME": str(data_home)})


def _labels(path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rows = wine_rows()[0].to_numpy(dtype=np.float32)
    return np.array([session.run(["label"], {"input": rows[i:i + 1]})[0][0]
                     for i in range(len(rows))])


def test_compare_registered_versions_as_json(data_home, registered):
    mlp, int8 = registered
    result = slipway(data_home, "compare", "wine@champion", "wine:2", "--reference", WINE_CSV,
                     "--target", "target", "--resamples", "200", "--json")
    assert result.returncode == 0, result.stderr
    offline = json.loads(result.stdout)["offline"]
    assert (offline["a"]["title"], offline["b"]["title"]) == ("A: wine:1", "B: wine:2")
    assert offline["b"]["file_size"] == int8.stat().st_size
    assert offline["labels"]["agreed"] == int((_labels(mlp) == _labels(int8)).sum())
    metrics = {m["metric"]: m for m in offline["quality"]["metrics"]}
    assert metrics["accuracy"]["low"] <= metrics["accuracy"]["difference"] <= \
        metrics["accuracy"]["high"]
    assert offline["quality"]["mcnemar"]["method"] == "exact binomial"


def test_compare_live_prints_both_sides_and_the_verdict(data_home, registered):
    result = slipway(data_home, "compare", "wine:1", "wine:2", "--live", "--runtime", "process",
                     "--rounds", "2", "--round-time", "0.5s", "--connections", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Schemas: the same inputs, outputs, features and classes." in out
    assert "labels agree on" in out and "A \\ B" in out
    assert "2 rounds of A then B" in out and "B / A per round" in out
    # Each server reports the registered version it serves.
    assert any(line.split()[:2] == ["A", "1"] for line in out.splitlines())
    assert any(line.split()[:2] == ["B", "2"] for line in out.splitlines())
    assert "faster" in out and "sampled requests" in out
    assert "round 2 of 2, B" in result.stderr


def test_a_reference_that_names_nothing_is_one_line(data_home, registered):
    result = slipway(data_home, "compare", "wine:1", "wine:9")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "wine" in result.stderr and "9" in result.stderr


def test_shadow_runs_until_stopped_and_counts_as_json(data_home, registered):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "studio.cli", "shadow", "wine:1", "wine:2", "--port", str(port),
         "--runtime", "process", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "XDG_DATA_HOME": str(data_home)})
    proxy = f"http://127.0.0.1:{port}"
    try:
        started = process.stdout.readline()
        assert started.startswith(f"Shadowing at {proxy}:"), process.stderr.read()
        rows = wine_rows()[0].to_dict(orient="records")[:20]
        for row in rows:
            assert httpx.post(proxy + "/predict", json={"features": row}).status_code == 200
        deadline = time.monotonic() + 60
        while True:
            counters = json.loads(process.stdout.readline())
            if counters["mirrored"] == len(rows) or time.monotonic() > deadline:
                break
        assert counters["answered"] == len(rows) and counters["mirrored"] == len(rows)
        assert counters["b_errors"] == 0
        assert 'slipway_shadow_info{a_url=' in httpx.get(proxy + "/metrics").text
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Stopped: the proxy and both servers." in err
    assert json.loads(out.strip().splitlines()[-1])["answered"] == len(rows)
