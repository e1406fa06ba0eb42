"""Real servers for the Monitor's tests, all on 127.0.0.1.

- `wine_csv`: the wine dataset from scikit-learn as a CSV, columns named as the demo model names its
  features (the model writes `od280/od315_of_diluted_wines` as `od280_od315_of_diluted_wines`).
- `serve_demo(reference_data)`: the demo wine model deployed with the process runtime, bundled with
  that dataset as its reference (or without one: provisional bins from the schema).
- `PrometheusApp`: a plain prometheus_client app (process metrics, a counter, a `*_seconds`
  histogram) that can be stopped and started again on the same port.
- `TextServer`: answers every GET with a fixed body and content type (a page that is not metrics).

Each test module makes its own module-scoped fixtures from these (`running_demo` is a context
manager), so every module has its own servers, stopped when the module ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import httpx
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    ProcessCollector,
    start_http_server,
)

from studio.core.loadtest.engine import run
from studio.core.loadtest.payloads import Drift, bodies_for, fetch_schema
from studio.core.loadtest.plan import LoadPlan
from studio.core.loadtest.results import LoadReport
from studio.core.model.artifact import load
from studio.core.serve.bundle import ServingOptions
from studio.core.serve.deploy import DeployOptions, deploy
from studio.core.serve.runtimes.base import Deployment, free_port

DEMO_MODEL = Path(__file__).resolve().parents[1] / "resources" / "demo" / "wine_classifier.onnx"
"""studio.ui.app.DEMO_MODEL, named here without importing Qt into the core tests."""
WINE_FEATURES = 13
WINE_ROWS = 178
"""The load tester sends the rows in turn: at this rate each second is one pass over the dataset,
so the served values have the dataset's own distribution (a part of it would not: the rows are
ordered by class)."""


def serve_demo(reference_data: Path | None = None, port: int | None = None) -> Deployment:
    """The demo model served by the process runtime, with `reference_data` attached when bundling
    (None: no dataset, the profile's bins come from the schema)."""
    return deploy(load(DEMO_MODEL), DeployOptions(
        runtime="process", port=port, serving=ServingOptions(reference_data=reference_data)))


@contextmanager
def running_demo(reference_data: Path | None = None) -> Iterator[Deployment]:
    deployment = serve_demo(reference_data)
    try:
        yield deployment
    finally:
        deployment.stop()


def wine_bodies(url: str, csv: Path | None, drifts: list[Drift] | None = None) -> list[bytes]:
    """/predict bodies for the server at `url`: rows of `csv`, or random rows of its schema."""
    schema = fetch_schema(url)
    source = "reference" if csv is not None else "random"
    bodies, _ = bodies_for(schema, "/predict", source, csv, drifts)
    return bodies


def send(url: str, bodies: list[bytes], seconds: float = 2.0, rate: float = WINE_ROWS,
         requests: int | None = None) -> LoadReport:
    """An open-loop load at a modest rate (or, with `requests`, exactly that many requests)."""
    if requests is not None:
        plan = LoadPlan(url, payloads=bodies, mode="closed", connections=2, duration_s=None,
                        requests=requests)
    else:
        plan = LoadPlan(url, payloads=bodies, mode="open", rate=rate, connections=4,
                        duration_s=seconds)
    report = run(plan)
    # Every answer must be a success. A send an open-loop plan could not make on time (a loaded
    # test machine starves the load generator) is no answer, and changes no figure watched here.
    answered_badly = {kind: n for kind, n in report.errors_by_kind.items()
                      if kind != "not sent in time"}
    assert not answered_badly, report.errors_by_kind
    return report


def server_reference(url: str) -> dict:
    """The reference profile the server at `url` answers with."""
    answer = httpx.get(f"{url}/reference", timeout=5)
    assert answer.status_code == 200
    return answer.json()


def rows_by_feature(picture) -> dict:
    """A DriftPicture's rows by feature name."""
    return {row.feature: row for row in picture.rows}


class Background:
    """`with Background(send, url, bodies, seconds=...) as load:` runs a load on a thread;
    `load.report` is set once it has finished (the block's end waits for it)."""

    def __init__(self, function, *args, **kwargs) -> None:
        self.report = None
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function, args, kwargs),
                                        name="monitor-test-load", daemon=True)

    def _run(self, function, args, kwargs) -> None:
        try:
            self.report = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - raised again in the test by join()
            self.failure = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> Self:
        self._thread.start()
        return self

    def join(self, timeout: float = 30.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the background load did not finish"
        if self.failure is not None:
            raise self.failure

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.join()


class PrometheusApp:
    """A plain prometheus_client app on a fixed port: `jobs_total` counts jobs and
    `job_duration_seconds` times them; `stop()` closes the port, `start()` opens it again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.jobs = Counter("jobs", "Jobs done", registry=self.registry)
        self.durations = Histogram("job_duration_seconds", "Time per job",
                                   registry=self.registry)
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def work(self, jobs: int = 20) -> None:
        for i in range(jobs):
            self.jobs.inc()
            self.durations.observe(0.002 * (i % 10 + 1))

    def start(self) -> Self:
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TextServer:
    """Answers every GET with `body` as `content_type`, after `delay_s` seconds."""

    def __init__(self, body: bytes, content_type: str, delay_s: float = 0.0) -> None:
        answer = (body, content_type)
        self.paths: list[str] = []
        """The path of every GET received, in order."""
        received = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                received.append(self.path)
                payload, kind = answer
                if delay_s:
                    time.sleep(delay_s)
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
