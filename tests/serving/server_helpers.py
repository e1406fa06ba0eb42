"""Helpers for the serving tests: a served model with its serving.json, an in-process server with
an httpx client over ASGI, the server as a real process, and a Prometheus text parser."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

SERVER_DIR = Path(__file__).resolve().parents[2] / "serving_templates" / "server"
if str(SERVER_DIR) not in sys.path:
    sys.path.insert(0, str(SERVER_DIR))

import httpx
from asgi_lifespan import LifespanManager
from slipway_server import create_app, settings_from_dict

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]


@dataclass(frozen=True)
class ServedModel:
    """A model file with its serving.json (as a dict) and the rows it was trained on."""

    name: str
    path: Path
    config: dict[str, Any]
    X: Any

    def with_config(self, **changes: Any) -> dict[str, Any]:
        """The config with top-level keys replaced; nested dicts are merged one level deep."""
        config = json.loads(json.dumps(self.config))
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        return config

    def serve(self, config: dict[str, Any] | None = None, ready: bool = True, **changes: Any):
        """The in-process server for this model (see `serve`), with config changes."""
        return serve(config or self.with_config(**changes), self.path.parent, ready)

    def running(self, folder: Path, **changes: Any) -> contextlib.AbstractContextManager:
        """This model served by a real server process (see `running_server`), config changed."""
        return running_server(folder, self.with_config(model_file=str(self.path), **changes))

    def ort(self, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        """What onnxruntime answers in this process, output name -> value."""
        session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(None, feeds)))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bundler_config(path: Path, schema: dict[str, Any], name: str,
                   **extra: Any) -> dict[str, Any]:
    """serving.json as studio/core/bundle.py writes it (model path relative to the config)."""
    return {
        "model_file": path.name,
        "name": name,
        "version": "1",
        "sha256": sha256(path),
        "schema": schema,
        "batching": {"enabled": True, "max_batch_size": 32, "max_wait_ms": 2.0},
        "limits": {"max_body_bytes": 1048576, "max_batch_rows": 1024, "max_concurrency": 512},
        "auth": {"api_key_env": None},
        "threads": 1,
        "reference": None,
        **extra,
    }


@contextlib.asynccontextmanager
async def serve(config: dict[str, Any], base_dir: Path | str = ".",
                ready: bool = True) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """The app for `config`, started (lifespan run, warmed up), with a client talking ASGI to it."""
    app = create_app(settings_from_dict(config, base_dir))
    async with LifespanManager(app) as manager:
        if ready:
            await app.wait_ready(30)
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                     timeout=30) as client:
            yield app, client


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus text -> {(sample name, labels): value}, with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


# --- the server as a real process ------------------------------------------------------------------

PATIENCE_S = 30.0
"""How long tests wait for the server to act: far above the deadlines they configure, so a busy
machine only makes them slower, never wrong."""
PREDICT_BODY = json.dumps({"features": [5.1, 3.5, 1.4, 0.2]}).encode()
"""An iris row for /predict (setosa)."""


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(config: Path, port: int, env: dict[str, str] | None = None,
                 preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
    """`python -m slipway_server` on 127.0.0.1:port, its stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "slipway_server", "--config", str(config), "--host", "127.0.0.1",
         "--port", str(port)],
        env={**os.environ, **(env or {}), "PYTHONPATH": str(SERVER_DIR)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)


def wait_ready(process: subprocess.Popen, url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server did not become ready")


@dataclass
class RunningServer:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self, timeout: float = 30.0) -> socket.socket:
        """A raw TCP connection to the server, for clients no HTTP library would be."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        return parse_metrics(httpx.get(f"{self.url}/metrics", timeout=10).text)

    def inflight(self) -> float:
        return self.metrics()[("slipway_inflight_requests", frozenset())]

    def slow_body(self, declared: int = 100) -> socket.socket:
        """A /predict whose head is whole and whose body stops after one byte of `declared`."""
        sock = self.connect()
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(declared).encode() + b"\r\n\r\n{")
        return sock

    def stop(self, timeout: float = 30.0) -> str:
        """SIGTERM, then the exit; stderr. The process must exit 0."""
        self.process.terminate()
        _stdout, stderr = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, stderr
        return stderr


@contextlib.contextmanager
def running_server(folder: Path, config: dict[str, Any], env: dict[str, str] | None = None,
                   preexec_fn: Callable[[], None] | None = None) -> Iterator[RunningServer]:
    """The server for `config` as a ready child process; killed at the end if still running."""
    path = folder / "serving.json"
    path.write_text(json.dumps(config))
    port = free_port()
    process = start_server(path, port, env, preexec_fn)
    try:
        wait_ready(process, f"http://127.0.0.1:{port}")
        yield RunningServer(process, port)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset ends it too)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received
