"""Helpers for the serving tests: a served model with its serving.json, an in-process server with
an httpx client over ASGI, and a Prometheus text parser."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from collections.abc import AsyncIterator
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
