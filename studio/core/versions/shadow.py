"""Shadow traffic: a local proxy that answers every request from A and mirrors it to B, off the
request's path, and counts how B's answers differ, how often B fails and how fast it answers.

    ShadowProxy(a_url, b_url)           the ASGI app
    start_proxy(proxy, port) -> RunningProxy     on uvicorn, in a thread that can be stopped
    shadow(A, B, port=…)                 both versions served, the proxy started, counters handed
                                         out every second until cancelled

Unlike a mesh that mirrors traffic and throws the shadow's answers away, the proxy keeps them: each
mirrored answer is compared with A's (compare_answers.py: labels must match, numbers within the
parity tolerance). A's answer is sent to the client in full before B is even asked, so B (slow,
failing, or gone) never delays or changes what a client gets; mirrors run as tasks of the proxy's
event loop, at most MAX_MIRRORS at a time, and a request arriving while B is that far behind is
counted as skipped rather than queued without end.

Everything is counted in the proxy's own Prometheus registry and exported on its /metrics (the one
path it does not forward): requests by A's status, mirrored answers by outcome, disagreements by
kind, B's errors by kind, skipped mirrors, and both sides' latency as the proxy saw it, labelled with
each side's version. The counters the studio shows are read from the same registry, so the page,
the terminal and a scraper see the same numbers. Headers are forwarded as they came (an API key
reaches both servers), except those that describe one hop of a connection.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from studio.core.monitor.promql import histogram_quantile
from studio.core.optimize.parity import Tolerance
from studio.core.serve.bundle import ServingOptions
from studio.core.serve.deploy import DeployOptions, deploy
from studio.core.serve.runtimes.base import Deployment, DeploymentError
from studio.core.tasks import Progress, quiet
from studio.core.versions.compare_answers import compare_answers
from studio.core.versions.compare_inputs import Version, open_version
from studio.core.workspace import new_work_dir

MAX_MIRRORS = 256
"""Mirrors in flight at most; beyond, requests are answered from A and not mirrored."""
MAX_BODY_BYTES = 64 * 1024 * 1024
TIMEOUT_S = 30.0
START_TIMEOUT_S = 10.0
EXAMPLES = 20
DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5, 5.0)
"""The model server's own request buckets, so the proxy's latencies read like the servers'."""
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate",
                        b"proxy-authorization", b"te", b"trailer", b"transfer-encoding",
                        b"upgrade", b"host", b"content-length"})
ANSWER_DROPS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                          "content-encoding", "date", "server"})
"""A's answer headers not passed on: hop-by-hop ones, and those the proxy writes itself (httpx
hands over the body decoded, so its encoding and length are the proxy's)."""


@dataclass(frozen=True)
class ShadowCounters:
    """What the proxy has counted since it started."""

    elapsed_s: float
    answered: int
    """Requests answered from A (whatever A's status)."""
    a_failed: int
    """Of those, answered with a non-2xx status or not at all (502 from the proxy)."""
    mirrored: int
    """Mirrors B has answered or failed."""
    agreed: int
    disagreed: int
    disagreed_by: dict[str, int]
    b_errors: int
    b_errors_by: dict[str, int]
    skipped: int
    in_flight: int
    latency_buckets: dict[str, list[tuple[float, float]]]
    """Cumulative (le seconds, count) of each side ("a", "b") as the proxy saw it."""
    examples: list[str] = field(default_factory=list)
    """The latest disagreements, most recent last: route and where the answers differ."""

    def quantile_ms(self, side: str, q: float, since: ShadowCounters | None = None) -> float:
        """The q-quantile of a side's latency, since the start or since an earlier reading."""
        buckets = self.latency_buckets.get(side, [])
        if since is not None:
            earlier = dict(since.latency_buckets.get(side, []))
            buckets = [(le, count - earlier.get(le, 0.0)) for le, count in buckets]
        value = histogram_quantile(q, buckets)
        return value * 1000 if math.isfinite(value) else math.nan

    @property
    def disagreement_rate(self) -> float:
        compared = self.agreed + self.disagreed
        return self.disagreed / compared if compared else math.nan


@dataclass(frozen=True)
class ShadowStarted:
    """The proxy is answering: where, and in front of what."""

    proxy_url: str
    a_url: str
    b_url: str
    a_title: str
    b_title: str
    a_version: str
    b_version: str


class ShadowProxy:
    """The ASGI app: answers from A at `a_url`, mirrors to B at `b_url`.

    `a_name` and `b_name` are the served model names: a v2 request for A's model is mirrored to
    the same route of B's."""

    def __init__(self, a_url: str, b_url: str, *, a_version: str = "a", b_version: str = "b",
                 a_name: str | None = None, b_name: str | None = None,
                 tolerance: Tolerance | None = None, timeout_s: float = TIMEOUT_S,
                 max_mirrors: int = MAX_MIRRORS) -> None:
        self.a_url, self.b_url = a_url.rstrip("/"), b_url.rstrip("/")
        self.versions = {"a": a_version, "b": b_version}
        self.names = (a_name, b_name)
        self.tolerance = tolerance or Tolerance()
        self.timeout_s = timeout_s
        self.max_mirrors = max_mirrors
        self.started = time.monotonic()
        self.examples: deque[str] = deque(maxlen=EXAMPLES)
        self._mirrors: set[asyncio.Task] = set()
        self._clients: dict[str, httpx.AsyncClient] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._answered = Counter("slipway_shadow_requests", "Requests answered from A, by A's "
                                 "status (502: A did not answer).", ["status"], registry=registry)
        self._mirrored = Counter("slipway_shadow_mirrored", "Mirrored requests by outcome: "
                                 "agreed, disagreed, b_error.", ["outcome"], registry=registry)
        self._disagreements = Counter(
            "slipway_shadow_disagreements", "B's answers that differ from A's, by kind: label, "
            "value (beyond the tolerance), shape, status, unreadable.", ["kind"],
            registry=registry)
        self._b_errors = Counter("slipway_shadow_b_errors", "Mirrored requests B failed where A "
                                 "answered: HTTP status, timeout, connection failed.", ["kind"],
                                 registry=registry)
        self._skipped = Counter("slipway_shadow_skipped", "Requests not mirrored: "
                                f"{max_mirrors} mirrors were already waiting on B.",
                                registry=registry)
        self._latency = Histogram("slipway_shadow_latency_seconds", "Answer time as the proxy "
                                  "saw it, per side (a answers, b is mirrored) and version.",
                                  ["side", "version"], buckets=DURATION_BUCKETS,
                                  registry=registry)
        info = Gauge("slipway_shadow_info", "What the proxy stands in front of.",
                     ["a_url", "b_url", "a_version", "b_version"], registry=registry)
        info.labels(self.a_url, self.b_url, a_version, b_version).set(1)
        for side in ("a", "b"):
            self._latency.labels(side, self.versions[side])  # both series exist from the start

    # --- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
                for side, url in (("a", self.a_url), ("b", self.b_url)):
                    self._clients[side] = httpx.AsyncClient(base_url=url, timeout=self.timeout_s,
                                                            limits=limits)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in list(self._mirrors):
                    task.cancel()
                await asyncio.gather(*self._mirrors, return_exceptions=True)
                for client in self._clients.values():
                    await client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict, receive, send) -> None:
        if scope["path"] == "/metrics" and scope["method"] == "GET":
            await _respond(send, 200, generate_latest(self.registry),
                           [(b"content-type", CONTENT_TYPE_LATEST.encode())])
            return
        body = await _read_body(receive)
        if body is None:
            await _respond(send, 413, b'{"error": "the request body is over the shadow proxy\'s '
                                      b'limit"}', [(b"content-type", b"application/json")])
            return
        target = scope["path"] + (f"?{scope['query_string'].decode()}"
                                  if scope.get("query_string") else "")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        started = time.perf_counter()
        try:
            answer = await self._clients["a"].request(scope["method"], target, content=body,
                                                      headers=headers)
            status, content = answer.status_code, answer.content
            answer_headers = [(k.encode(), v.encode()) for k, v in answer.headers.items()
                              if k.lower() not in ANSWER_DROPS]
        except httpx.HTTPError as exc:
            status, content = 502, (f'{{"error": "A did not answer: '
                                    f'{type(exc).__name__}"}}').encode()
            answer_headers = [(b"content-type", b"application/json")]
        await _respond(send, status, content, answer_headers)
        self._latency.labels("a", self.versions["a"]).observe(time.perf_counter() - started)
        self._answered.labels(str(status)).inc()
        # Only now, with A's answer handed over in full, is B asked.
        if len(self._mirrors) >= self.max_mirrors:
            self._skipped.inc()
            return
        task = asyncio.get_running_loop().create_task(
            self._mirror(scope["method"], self._for_b(target), headers, body, status, content))
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    def _for_b(self, target: str) -> str:
        a_name, b_name = self.names
        prefix = f"/v2/models/{a_name}"
        if a_name and b_name and a_name != b_name and (target == prefix or target.startswith(
                (prefix + "/", prefix + "?"))):
            return f"/v2/models/{b_name}" + target[len(prefix):]
        return target

    async def _mirror(self, method: str, target: str, headers: list, body: bytes, a_status: int,
                      a_content: bytes) -> None:
        started = time.perf_counter()
        try:
            answer = await self._clients["b"].request(method, target, content=body,
                                                      headers=headers)
        except httpx.TimeoutException:
            self._b_failed("timeout")
            return
        except httpx.HTTPError:
            self._b_failed("connection failed")
            return
        self._latency.labels("b", self.versions["b"]).observe(time.perf_counter() - started)
        a_ok, b_ok = 200 <= a_status < 300, 200 <= answer.status_code < 300
        if a_ok and not b_ok:
            self._b_failed(f"HTTP {answer.status_code}")
            return
        judged = compare_answers(a_status, a_content, answer.status_code, answer.content,
                                 self.tolerance)
        if judged.agreed:
            self._mirrored.labels("agreed").inc()
            return
        self._mirrored.labels("disagreed").inc()
        self._disagreements.labels(judged.kind).inc()
        self.examples.append(f"{method} {target}: {judged.kind}, {judged.where}")

    def _b_failed(self, kind: str) -> None:
        self._mirrored.labels("b_error").inc()
        self._b_errors.labels(kind).inc()

    # --- reading the counters ------------------------------------------------------------------

    def counters(self) -> ShadowCounters:
        """A consistent-enough reading of the registry (each counter is read once)."""
        families = {family.name: family for family in self.registry.collect()}

        def by_label(name: str, label: str) -> dict[str, int]:
            family = families.get(name)
            return {} if family is None else {
                s.labels[label]: int(s.value) for s in family.samples
                if s.name == f"{name}_total" and s.value}

        answered = by_label("slipway_shadow_requests", "status")
        outcomes = by_label("slipway_shadow_mirrored", "outcome")
        skipped = families.get("slipway_shadow_skipped")
        buckets: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
        for sample in families["slipway_shadow_latency_seconds"].samples:
            if sample.name.endswith("_bucket"):
                buckets[sample.labels["side"]].append((float(sample.labels["le"]), sample.value))
        return ShadowCounters(
            elapsed_s=time.monotonic() - self.started,
            answered=sum(answered.values()),
            a_failed=sum(n for status, n in answered.items() if not status.startswith("2")),
            mirrored=sum(outcomes.values()), agreed=outcomes.get("agreed", 0),
            disagreed=outcomes.get("disagreed", 0),
            disagreed_by=by_label("slipway_shadow_disagreements", "kind"),
            b_errors=outcomes.get("b_error", 0),
            b_errors_by=by_label("slipway_shadow_b_errors", "kind"),
            skipped=int(next((s.value for s in skipped.samples if s.name.endswith("_total")), 0))
            if skipped else 0,
            in_flight=len(self._mirrors), latency_buckets=buckets, examples=list(self.examples))


async def _read_body(receive) -> bytes | None:
    """The whole request body, or None when it is over MAX_BODY_BYTES."""
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        parts.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def _respond(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# --- running it ------------------------------------------------------------------------------------

class RunningProxy:
    """A ShadowProxy served by uvicorn on 127.0.0.1 from a thread of this process."""

    def __init__(self, proxy: ShadowProxy, port: int | None = None) -> None:
        import uvicorn

        self.proxy = proxy
        self._socket = _bound(port)
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(proxy, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, args=([self._socket],),
                                        name="shadow-proxy", daemon=True)

    def start(self) -> RunningProxy:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise DeploymentError(f"The shadow proxy did not start on port {self.port}.",
                                      "Try another port, or leave it empty to use a free one.")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(START_TIMEOUT_S)
        self._socket.close()

    def __enter__(self) -> RunningProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bound(port: int | None) -> socket.socket:
    """A listening socket on 127.0.0.1 (bound here, so a port in use is said at once)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port or 0))
    except OSError as exc:
        listener.close()
        raise DeploymentError(f"Port {port} on 127.0.0.1 is already in use by another program.",
                              "Choose another port for the shadow proxy, or leave it empty to "
                              "use a free one.", detail=repr(exc)) from exc
    listener.listen(2048)
    return listener


def start_proxy(proxy: ShadowProxy, port: int | None = None) -> RunningProxy:
    return RunningProxy(proxy, port).start()


def shadow(a: str, b: str, *, port: int | None = None, runtime: str = "auto",
           trust: bool = False, tolerance: Tolerance | None = None, every_s: float = 1.0,
           progress: Progress | None = None) -> ShadowCounters:
    """Serve `a` and `b`, put the proxy in front on `port`, and count until cancelled.

    Hands out through `progress.partial`: the deployments' log lines (str), a `ShadowStarted` once
    the proxy answers, then `ShadowCounters` every `every_s` seconds. Returns the last counters;
    the proxy and both servers are stopped however it ends."""
    progress = progress or quiet()
    work_dir = new_work_dir("shadow")
    sides = [open_version(side, text, work_dir, trust=trust, progress=progress)
             for side, text in (("A", a), ("B", b))]
    deployments: list[Deployment] = []
    running: RunningProxy | None = None
    try:
        for side in sides:
            progress.update(None, f"Serving {side.title}")
            deployments.append(deploy(side.onnx, _deploy_options(side, runtime),
                                      progress=progress))
        served_a, served_b = deployments
        proxy = ShadowProxy(served_a.url, served_b.url, a_version=sides[0].served_version,
                            b_version=sides[1].served_version, a_name=served_a.name,
                            b_name=served_b.name, tolerance=tolerance)
        running = start_proxy(proxy, port)
        progress.partial(_started(running, sides, deployments))
        progress.update(None, f"Shadowing at {running.url}")
        while not progress.wait(every_s):
            progress.partial(proxy.counters())
        return proxy.counters()
    finally:
        if running is not None:
            running.stop()
        for deployment in deployments:
            deployment.stop()


def _deploy_options(side: Version, runtime: str) -> DeployOptions:
    return DeployOptions(runtime=runtime, serving=ServingOptions(version=side.served_version,
                                                                 ready_pause_s=0.0))


def _started(running: RunningProxy, sides: list[Version],
             deployments: list[Deployment]) -> ShadowStarted:
    return ShadowStarted(running.url, deployments[0].url, deployments[1].url, sides[0].title,
                         sides[1].title, sides[0].served_version, sides[1].served_version)


def describe(counters: ShadowCounters) -> dict[str, Any]:
    """The counters as plain figures (for JSON and the terminal)."""
    return {
        "elapsed_s": round(counters.elapsed_s, 1), "answered": counters.answered,
        "a_failed": counters.a_failed, "mirrored": counters.mirrored, "agreed": counters.agreed,
        "disagreed": counters.disagreed, "disagreed_by": counters.disagreed_by,
        "b_errors": counters.b_errors, "b_errors_by": counters.b_errors_by,
        "skipped": counters.skipped, "in_flight": counters.in_flight,
        "a_p50_ms": _finite(counters.quantile_ms("a", 0.5)),
        "a_p99_ms": _finite(counters.quantile_ms("a", 0.99)),
        "b_p50_ms": _finite(counters.quantile_ms("b", 0.5)),
        "b_p99_ms": _finite(counters.quantile_ms("b", 0.99)),
    }


def _finite(value: float) -> float | None:
    return round(value, 3) if math.isfinite(value) else None
