"""Real Slipway servers the load test's payload and preparation tests send to: the demo wine model
deployed with the process runtime (its schema as the studio writes it), and models served in this
process by uvicorn from serving.json as the bundler writes it. The fixtures are in conftest.py."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from load_servers import AsgiServer

from studio.core.loadtest.engine import run
from studio.core.loadtest.plan import LoadPlan
from studio.core.model.schema import ModelSchema

DEMO_DIR = Path(__file__).resolve().parents[3] / "resources" / "demo"
DEMO_MODEL = DEMO_DIR / "wine_classifier.onnx"
WINE_REFERENCE = DEMO_DIR / "wine_reference.csv"
SERVING_TESTS = Path(__file__).resolve().parents[2] / "serving"


def server_helpers():
    """tests/serving/server_helpers: serving.json as the bundler writes it (and the server package
    on sys.path)."""
    if str(SERVING_TESTS) not in sys.path:
        sys.path.insert(0, str(SERVING_TESTS))
    import server_helpers

    return server_helpers


@dataclass(frozen=True)
class Served:
    url: str
    schema: ModelSchema
    """The schema the server was configured with."""

    @property
    def v2_route(self) -> str:
        return f"/v2/models/{self.schema.name}/infer"


def serve_in_process(path: Path, schema: dict) -> AsgiServer:
    helpers = server_helpers()
    from slipway_server import create_app, settings_from_dict

    config = helpers.bundler_config(path, schema, schema["name"])
    app = create_app(settings_from_dict(config, path.parent))
    return AsgiServer(app, app.wait_ready)


def onnx_metadata(path: Path) -> dict:
    return {"format": "onnx", "path": str(path), "file_size": path.stat().st_size,
            "sha256": server_helpers().sha256(path)}


def assert_all_accepted(url: str, route: str, bodies: list[bytes]) -> None:
    """The load tester sends every body once; the server answers each with 200."""
    report = run(LoadPlan(url, route=route, payloads=bodies, connections=2,
                          requests=len(bodies), timeout_s=10))
    assert report.errors_by_kind == {}, report.error_samples
    assert report.completed == len(bodies)
