"""The shadow proxy over real HTTP: a model and its int8 quantization served for real, every
answer a client gets is A's, and B's disagreements (held against onnxruntime run here), errors and
latency are counted and exported on the proxy's /metrics. Small ASGI servers stand in for a B
that stalls, fails or is gone, so what the client sees can be checked while B has not answered."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import numpy as np
import onnxruntime as ort
import orjson
import pytest
import uvicorn
from compare_models import int8_of, wine_rows, wine_version
from prometheus_client.parser import text_string_to_metric_families
from sklearn.neural_network import MLPClassifier

from studio.core.tasks import Progress
from studio.core.versions.shadow import (
    RunningProxy,
    ShadowCounters,
    ShadowProxy,
    ShadowStarted,
    shadow,
)

WAIT_S = 60.0


def _until(condition, what: str):
    """Poll `condition` until it holds (mirrors run off the request's path, so they land later)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"waited {WAIT_S:.0f} s for {what}")


def _samples(url: str) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(url + "/metrics").text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _mirrored(url: str) -> float:
    return sum(value for (name, _), value in _samples(url).items()
               if name == "slipway_shadow_mirrored_total")


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shadowed")
    mlp = wine_version(folder, "wine_mlp",
                       MLPClassifier(hidden_layer_sizes=(8,), max_iter=200, random_state=0))
    return mlp, int8_of(mlp, folder)


def test_shadow_answers_from_a_and_counts_where_b_differs(versions):
    a, b = versions
    X, _ = wine_rows()
    rows = X.to_numpy(dtype=np.float32)
    labels = [[session.run(["label"], {"input": rows[i:i + 1]})[0][0] for i in range(len(rows))]
              for session in (ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                              for path in (a, b))]
    flipped = int((np.array(labels[0]) != np.array(labels[1])).sum())
    assert flipped > 0

    seen: list[object] = []
    progress = Progress(on_partial=seen.append)
    finished: dict[str, ShadowCounters] = {}
    worker = threading.Thread(target=lambda: finished.update(
        last=shadow(str(a), str(b), runtime="process", every_s=0.2, progress=progress)))
    worker.start()
    try:
        started = _until(lambda: next((v for v in seen if isinstance(v, ShadowStarted)), None),
                         "the proxy to start")
        bodies = [{"features": row} for row in X.to_dict(orient="records")]
        with httpx.Client(base_url=started.proxy_url, timeout=30) as client, \
                httpx.Client(base_url=started.a_url, timeout=30) as direct:
            for sent, body in enumerate(bodies, start=1):
                through = client.post("/predict", json=body)
                assert through.status_code == 200
                assert through.json() == direct.post("/predict", json=body).json()
                # One mirror at a time: B's server never batches two rows together, so each of
                # its answers is the one computed above.
                _until(lambda sent=sent: _mirrored(started.proxy_url) == sent, "the mirror")
        counters = _until(lambda: (c := [v for v in seen if isinstance(v, ShadowCounters)])
                          and c[-1].mirrored == len(bodies) and c[-1], "every mirror")
        assert counters.answered == len(bodies) and counters.a_failed == 0
        assert counters.agreed + counters.disagreed == len(bodies)
        assert counters.disagreed_by["label"] == flipped, counters.examples
        assert counters.b_errors == 0 and counters.skipped == 0
        assert sum(n for le, n in counters.latency_buckets["b"] if le == float("inf")) == \
            len(bodies)
        assert any("predictions" in e or "label" in e for e in counters.examples)

        # The proxy's own /metrics say the same, with each side's version.
        samples = _samples(started.proxy_url)
        assert samples[("slipway_shadow_disagreements_total",
                        frozenset({"kind": "label"}.items()))] == flipped
        assert samples[("slipway_shadow_mirrored_total",
                        frozenset({"outcome": "agreed"}.items()))] == counters.agreed
        assert samples[("slipway_shadow_latency_seconds_count", frozenset(
            {"side": "b", "version": started.b_version}.items()))] == len(bodies)
        assert started.a_version != started.b_version
    finally:
        progress.cancel()
        worker.join(WAIT_S)
    assert not worker.is_alive()
    assert finished["last"].mirrored >= len(bodies)
    # Both servers and the proxy were stopped with the shadowing.
    for url in (started.proxy_url, started.a_url, started.b_url):
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/metrics", timeout=5)


class _Stub:
    """A tiny ASGI server: answers `body` with `status`, and holds each answer until `release` is
    set when told to."""

    def __init__(self, body: dict, status: int = 200, hold: bool = False) -> None:
        self.body, self.status = orjson.dumps(body), status
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.received: list[tuple[str, bytes]] = []
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.socket = listener
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, args=([listener],), daemon=True)

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.received.append((scope["path"], body))
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": self.body})

    def __enter__(self) -> _Stub:
        self.thread.start()
        _until(lambda: self.server.started, "the stub server")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.should_exit = True
        self.thread.join(10)


def test_a_stalled_b_never_holds_up_the_answer(tmp_path):
    with _Stub({"label": "a"}) as a, _Stub({"label": "b"}, hold=True) as b:
        proxy = ShadowProxy(a.url, b.url, a_version="1", b_version="2", a_name="wine",
                            b_name="wine-2")
        with RunningProxy(proxy) as running:
            answer = httpx.post(running.url + "/v2/models/wine/infer", json={"inputs": []})
            assert answer.json() == {"label": "a"}
            # A's answer is in the client's hands while B still holds its mirror.
            _until(lambda: b.received, "the mirror to reach B")
            counters = proxy.counters()
            assert (counters.answered, counters.in_flight, counters.mirrored) == (1, 1, 0)
            assert b.received == [("/v2/models/wine-2/infer", b'{"inputs":[]}')]
            b.release.set()
            counters = _until(lambda: (c := proxy.counters()).mirrored == 1 and c, "the mirror")
            assert counters.disagreed_by == {"label": 1}


def test_b_failing_or_gone_is_counted_not_passed_on():
    with _Stub({"label": "a"}) as a, _Stub({"error": "broken"}, status=500) as b:
        failing = ShadowProxy(a.url, b.url)
        with RunningProxy(failing) as running:
            for _ in range(3):
                assert httpx.post(running.url + "/predict", json={}).json() == {"label": "a"}
            counters = _until(lambda: (c := failing.counters()).mirrored == 3 and c, "mirrors")
            assert counters.b_errors_by == {"HTTP 500": 3} and counters.disagreed == 0
            samples = _samples(running.url)
            assert samples[("slipway_shadow_b_errors_total",
                            frozenset({"kind": "HTTP 500"}.items()))] == 3

        gone = socket.socket()
        gone.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        try:
            missing = ShadowProxy(a.url, f"http://127.0.0.1:{gone.getsockname()[1]}")
            with RunningProxy(missing) as running:
                assert httpx.post(running.url + "/predict", json={}).status_code == 200
                counters = _until(lambda: (c := missing.counters()).mirrored == 1 and c,
                                  "the mirror")
                assert counters.b_errors_by == {"connection failed": 1}
        finally:
            gone.close()
