"""The ASGI app: a Starlette application whose HTTP requests go through one lean dispatcher.

Every route is a raw ASGI handler (no Request objects, no middleware stack on the way to /predict):
the dispatcher looks the path up in a dict, checks the API key, runs the handler, sends its JSON,
and counts the request. A request takes one of `limits.max_concurrency` inference slots only once
its body is read and checked, so clients that send slowly hold no slot. Handlers raise HTTPError
for anything wrong with a request, and let the model's InputError, ModelRunError and OutputError
through: ERROR_STATUSES turns those into a 400 or a 422, so every refusal is a 4xx with
{"error": "..."}. Anything else is a bug: it is logged with its traceback and answered 500 with a
generic sentence, never the exception's text. Starlette provides the lifespan (startup warm-up,
shutdown) and handles any route added to the app later.

Routes and the API key: the probes (/health, /ready, /v2/health/live, /v2/health/ready) never ask
for it. /metrics does not either, so Prometheus can scrape it, unless serving.json sets
auth.protect_metrics: it then asks like every other route (it shows feature histograms, label
counts and the model's sha256).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette

from . import __version__, v2
from .batching import MicroBatcher
from .errors import InputError, ModelRunError, OutputError, json_type
from .metrics import CONTENT_TYPE_LATEST
from .model import Model, cpu_count
from .openapi import build_openapi
from .reference_page import CONTENT_SECURITY_POLICY, reference_page
from .request_body import ClientGone, HTTPError, read_body, read_json, split_binary
from .settings import Settings, StartupError, load_settings

logger = logging.getLogger("slipway")

JSON_TYPE = b"application/json"
BINARY_TYPE = b"application/octet-stream"
HTML_TYPE = b"text/html; charset=utf-8"
METRICS_TYPE = CONTENT_TYPE_LATEST.encode()
DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
RETRY_AFTER_S = b"1"
UNMATCHED = "unmatched"
V2_MODEL = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?$")
MAX_INFERENCE_THREADS = 4

# A handler answers (status, body, content type). The content type may instead be a pair
# (content type, extra headers) for the rare answer that needs headers of its own (a v2 answer
# with binary tensor data), so every other answer pays nothing for them.
Handler = Callable[[dict, Callable, Any], Awaitable[tuple[int, bytes, Any]]]
HTML_HEADERS = ((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),)


def _error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


# Exceptions handlers let through -> (status, prefix of the error message): the one place they
# become HTTP answers.
ERROR_STATUSES: dict[type[Exception], tuple[int, str]] = {
    InputError: (400, ""),
    ModelRunError: (422, "the model could not run on this input: "),
    OutputError: (422, ""),
}
MAPPED_ERRORS = tuple(ERROR_STATUSES)

UNAUTHORIZED_BODY = _error_body("missing or wrong API key: send 'Authorization: Bearer <key>' or "
                                "'X-API-Key: <key>'")
UNAUTHORIZED_HEADERS = ((b"www-authenticate", b"Bearer"),)
INTERNAL_ERROR_BODY = _error_body("internal error: the server could not answer this request; its "
                                  "log says why")


def _mapped_error(exc: Exception) -> tuple[int, bytes]:
    """The status and body of an exception in ERROR_STATUSES."""
    status, prefix = next(mapped for kind, mapped in ERROR_STATUSES.items()
                          if isinstance(exc, kind))
    return status, _error_body(prefix + str(exc))


async def _send_response(send: Callable, status: int, body: bytes, content_type: bytes = JSON_TYPE,
                         headers: Iterable[tuple[bytes, bytes]] | None = None,
                         head: bool = False) -> None:
    """One whole response; `head` sends the headers a GET would get, without the body."""
    response_headers = [(b"content-type", content_type),
                        (b"content-length", str(len(body)).encode())]
    if headers:
        response_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class SlipwayApp(Starlette):
    """One served model. Create with `create_app(settings)`."""

    def __init__(self, settings: Settings, model: Model) -> None:
        super().__init__(lifespan=self._lifespan)
        self.router.default = self._not_found_asgi
        self.settings = settings
        self.model = model
        self.metrics = model.metrics
        self.api_key = settings.api_key.encode() if settings.api_key else None
        self.max_body = settings.limits.max_body_bytes
        self.max_batch_rows = settings.limits.max_batch_rows
        self.max_concurrency = settings.limits.max_concurrency
        self.inferring = 0
        """Requests holding an inference slot: queued for the model or in it."""
        self.ready = False
        self.draining = False
        self.warm_up_error: str | None = None
        self._ready_event = asyncio.Event()
        self.executor: ThreadPoolExecutor | None = None
        self.batcher: MicroBatcher | None = None
        self.threads = max(1, min(MAX_INFERENCE_THREADS, cpu_count() // max(1, settings.threads)))
        self.openapi = build_openapi(model, settings, auth=self.api_key is not None)
        self._static = {
            "health": orjson.dumps({"status": "alive"}),
            "openapi": orjson.dumps(self.openapi),
            "docs": reference_page(self.openapi).encode(),
            "v2": orjson.dumps({"name": "slipway", "version": __version__,
                                "extensions": v2.EXTENSIONS}),
            "v2_live": orjson.dumps({"live": True}),
            "metadata": orjson.dumps(v2.model_metadata(model)),
            "schema": orjson.dumps(settings.schema) if settings.schema is not None else None,
            "reference": (orjson.dumps(settings.reference) if settings.reference is not None
                          else None),
        }
        self._model_tag = {"model": model.name, "version": model.version}
        # path -> (route label, methods, handler, needs the API key, counted in flight). Routes
        # not counted are the probes and /metrics: they cannot fail and must answer under load.
        self.routes_table: dict[str, tuple[str, tuple[str, ...], Handler, bool, bool]] = {
            "/health": ("/health", ("GET", "HEAD"), self._health, False, False),
            "/ready": ("/ready", ("GET", "HEAD"), self._ready, False, False),
            "/metrics": ("/metrics", ("GET",), self._metrics, settings.protect_metrics, False),
            "/v2/health/live": ("/v2/health/live", ("GET", "HEAD"), self._v2_live, False, False),
            "/v2/health/ready": ("/v2/health/ready", ("GET", "HEAD"), self._v2_ready, False,
                                 False),
            "/predict": ("/predict", ("POST",), self._predict, True, True),
            "/predict/batch": ("/predict/batch", ("POST",), self._predict_batch, True, True),
            "/v2": ("/v2", ("GET",), self._v2_server, True, True),
            "/schema": ("/schema", ("GET",), self._schema, True, True),
            "/reference": ("/reference", ("GET",), self._reference, True, True),
            "/openapi.json": ("/openapi.json", ("GET",), self._openapi, True, True),
            "/docs": ("/docs", ("GET",), self._docs, True, True),
        }
        self._v2_routes = {
            None: ("/v2/models/{name}", ("GET",), self._v2_metadata, True, True),
            "/ready": ("/v2/models/{name}/ready", ("GET",), self._v2_model_ready, True, True),
            "/infer": ("/v2/models/{name}/infer", ("POST",), self._v2_infer, True, True),
        }

    # --- lifecycle -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix="slipway-inference")
        batching = self.settings.batching
        if batching.enabled:
            self.batcher = MicroBatcher(self.model.run_items, self.executor,
                                        max_batch_size=batching.max_batch_size,
                                        max_wait_s=batching.max_wait_ms / 1000.0,
                                        parallel=self.threads)
        warm_up = asyncio.create_task(self._warm_up())
        try:
            yield
        finally:
            self.draining = True
            if not warm_up.done():
                warm_up.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await warm_up
            self.executor.shutdown(wait=True)

    async def _warm_up(self) -> None:
        loop = asyncio.get_running_loop()
        rows = self.settings.batching.max_batch_size if self.batcher else 1
        error = await loop.run_in_executor(self.executor, self.model.warm_up, rows)
        if error:
            self.warm_up_error = error
            logger.warning("warm-up inference failed (%s); serving anyway", error)
        self.ready = True
        self._ready_event.set()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until warm-up is done (tests and embedding code)."""
        await asyncio.wait_for(self._ready_event.wait(), timeout)

    def begin_drain(self) -> None:
        """Readiness goes false; in-flight requests still finish (called on SIGTERM)."""
        self.draining = True

    # --- dispatch --------------------------------------------------------------------------------

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        entry = self.routes_table.get(path)
        params = None
        if entry is None and path.startswith("/v2/models/"):
            match = V2_MODEL.match(path)
            if match is not None:
                entry = self._v2_routes[match.group(3)]
                params = (match.group(1), match.group(2))
        if entry is None:
            await self._fallback(scope, receive, send, started)
            return
        route, methods, handler, needs_key, counted = entry
        metrics = self.metrics
        headers = None
        if scope["method"] not in methods:
            status, body, content_type = 405, _error_body(
                f"{scope['method']} is not allowed on {path}; use {methods[0]}"), JSON_TYPE
            headers = [(b"allow", ", ".join(methods).encode())]
        elif needs_key and self.api_key is not None and not self._authorized(scope["headers"]):
            status, body, content_type = 401, UNAUTHORIZED_BODY, JSON_TYPE
            headers = UNAUTHORIZED_HEADERS
        elif not counted:
            status, body, content_type = await handler(scope, receive, params)
        else:
            metrics.inflight += 1
            try:
                status, body, content_type = await handler(scope, receive, params)
            except HTTPError as exc:
                status, body, content_type = exc.status, _error_body(exc.message), JSON_TYPE
                headers = exc.headers
            except MAPPED_ERRORS as exc:
                status, body = _mapped_error(exc)
                content_type = JSON_TYPE
            except ClientGone:
                metrics.request_done(route, 499, time.perf_counter() - started)
                return
            except Exception:
                # A bug, not the client's doing: the traceback goes to the log, and the answer
                # says nothing of the server's insides.
                logger.exception("error serving %s %s", scope["method"], path)
                status, body, content_type = 500, INTERNAL_ERROR_BODY, JSON_TYPE
            finally:
                metrics.inflight -= 1
        if content_type is HTML_TYPE:
            headers = HTML_HEADERS
        elif type(content_type) is tuple:
            content_type, headers = content_type
        await _send_response(send, status, body, content_type, headers,
                             head=scope["method"] == "HEAD")
        metrics.request_done(route, status, time.perf_counter() - started)

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        key = self.api_key
        for name, value in headers:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key):
                    return True
            elif name == b"x-api-key" and hmac.compare_digest(value.strip(), key):
                return True
        return False

    async def _fallback(self, scope: dict, receive: Callable, send: Callable,
                        started: float) -> None:
        """Paths this app does not serve itself: Starlette's router (routes added later), else
        a JSON 404. The API key applies here too, so unknown paths do not reveal anything."""
        if self.api_key is not None and not self._authorized(scope["headers"]):
            await _send_response(send, 401, UNAUTHORIZED_BODY, headers=UNAUTHORIZED_HEADERS)
            self.metrics.request_done(UNMATCHED, 401, time.perf_counter() - started)
            return
        status = 500

        async def tracking_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await super().__call__(scope, receive, tracking_send)
        finally:
            self.metrics.request_done(UNMATCHED, status, time.perf_counter() - started)

    async def _not_found_asgi(self, scope: dict, receive: Callable, send: Callable) -> None:
        await _send_response(send, 404, _error_body(
            f"no route {scope['path']}: see /docs for this server's API"))

    # --- request helpers -------------------------------------------------------------------------

    async def _infer(self, feeds: dict[str, Any], rows: int, batch: bool) -> list[Any]:
        if self.executor is None:
            raise HTTPError(503, "the server is starting; retry shortly",
                            [(b"retry-after", RETRY_AFTER_S)])
        if self.inferring >= self.max_concurrency:
            raise HTTPError(503, f"the server is at its limit of {self.max_concurrency} "
                                 "concurrent requests; retry shortly",
                            [(b"retry-after", RETRY_AFTER_S)])
        self.inferring += 1
        try:
            if batch and self.batcher is not None:
                result = await self.batcher.submit(feeds, rows)
            else:
                loop = asyncio.get_running_loop()
                result = (await loop.run_in_executor(self.executor, self.model.run_items,
                                                     [(feeds, rows)]))[0]
        finally:
            self.inferring -= 1
        if isinstance(result, BaseException):
            raise result  # ModelRunError, OutputError: a 422 (ERROR_STATUSES)
        return result

    def _tabular(self) -> Any:
        codec = self.model.codec
        if codec is None:
            raise HTTPError(404, f"'{self.model.name}' takes tensors, not features: use POST "
                                 f"/v2/models/{self.model.name}/infer")
        return codec

    # --- handlers --------------------------------------------------------------------------------

    async def _health(self, scope: dict, receive: Callable, params: Any) -> tuple:
        return 200, self._static["health"], JSON_TYPE

    def _readiness(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self.ready:
            return False, "warming up"
        return True, "ready"

    async def _ready(self, scope: dict, receive: Callable, params: Any) -> tuple:
        ready, status = self._readiness()
        return (200 if ready else 503), orjson.dumps({"status": status}), JSON_TYPE

    async def _metrics(self, scope: dict, receive: Callable, params: Any) -> tuple:
        return 200, self.metrics.exposition(), METRICS_TYPE

    async def _openapi(self, scope: dict, receive: Callable, params: Any) -> tuple:
        return 200, self._static["openapi"], JSON_TYPE

    async def _schema(self, scope: dict, receive: Callable, params: Any) -> tuple:
        """The studio's ModelSchema of the served model: load tests build valid rows from it."""
        if self._static["schema"] is None:
            return 404, _error_body("this server was started without a model schema"), JSON_TYPE
        return 200, self._static["schema"], JSON_TYPE

    async def _reference(self, scope: dict, receive: Callable, params: Any) -> tuple:
        """The reference profile the feature histograms in /metrics are binned on."""
        if self._static["reference"] is None:
            return 404, _error_body("this server was built without a reference profile; "
                                    "attach a dataset when bundling"), JSON_TYPE
        return 200, self._static["reference"], JSON_TYPE

    async def _docs(self, scope: dict, receive: Callable, params: Any) -> tuple:
        return 200, self._static["docs"], HTML_TYPE

    async def _predict(self, scope: dict, receive: Callable, params: Any) -> tuple:
        codec = self._tabular()
        document = await read_json(scope, receive, self.max_body)
        features = document.get("features")
        if features is None:
            raise HTTPError(400, "the body must have a 'features' field: a list of values in "
                                 "feature order or an object of feature name to value")
        row = codec.row(features)
        model = self.model
        outputs = await self._infer(codec.feeds([row]), 1, True)
        answer = model.predictions(outputs, 1)[0]
        answer.update(self._model_tag)
        return 200, orjson.dumps(answer, option=DUMPS_OPTIONS), JSON_TYPE

    async def _predict_batch(self, scope: dict, receive: Callable, params: Any) -> tuple:
        codec = self._tabular()
        document = await read_json(scope, receive, self.max_body)
        instances = document.get("instances")
        if instances is None:
            raise HTTPError(400, "the body must have an 'instances' field: a list of rows")
        if type(instances) is not list:
            raise HTTPError(400, f"'instances' must be a list of rows, got {json_type(instances)}")
        if not instances:
            raise HTTPError(400, "'instances' is empty: send at least one row")
        if len(instances) > self.max_batch_rows:
            raise HTTPError(413, f"the batch has {len(instances)} instances, over the limit of "
                                 f"{self.max_batch_rows}")
        rows = [codec.row(instance, f"instance {i}: ") for i, instance in enumerate(instances)]
        outputs = await self._infer(codec.feeds(rows), len(rows), True)
        answer = {"model": self.model.name, "version": self.model.version,
                  "predictions": self.model.predictions(outputs, len(rows))}
        return 200, orjson.dumps(answer, option=DUMPS_OPTIONS), JSON_TYPE

    # --- Open Inference Protocol v2 --------------------------------------------------------------

    def _check_model(self, params: tuple[str, str | None]) -> None:
        name, version = params
        if name != self.model.name:
            raise HTTPError(404, f"model '{name}' is not served here (this server serves "
                                 f"'{self.model.name}')")
        if version is not None and version != self.model.version:
            raise HTTPError(404, f"model '{name}' has no version '{version}' here (this server "
                                 f"serves version '{self.model.version}')")

    async def _v2_server(self, scope: dict, receive: Callable, params: Any) -> tuple:
        return 200, self._static["v2"], JSON_TYPE

    async def _v2_live(self, scope: dict, receive: Callable, params: Any) -> tuple:
        return 200, self._static["v2_live"], JSON_TYPE

    async def _v2_ready(self, scope: dict, receive: Callable, params: Any) -> tuple:
        ready, _ = self._readiness()
        return (200 if ready else 503), orjson.dumps({"ready": ready}), JSON_TYPE

    async def _v2_metadata(self, scope: dict, receive: Callable, params: Any) -> tuple:
        self._check_model(params)
        return 200, self._static["metadata"], JSON_TYPE

    async def _v2_model_ready(self, scope: dict, receive: Callable, params: Any) -> tuple:
        self._check_model(params)
        ready, _ = self._readiness()
        return (200 if ready else 503), orjson.dumps(
            {"name": self.model.name, "ready": ready}), JSON_TYPE

    async def _v2_infer(self, scope: dict, receive: Callable, params: Any) -> tuple:
        self._check_model(params)
        document, binary = split_binary(scope, await read_body(scope, receive, self.max_body))
        model = self.model
        feeds, rows, wanted = v2.decode_request(model, document, binary)
        if rows > self.max_batch_rows and model.codec is not None:
            raise HTTPError(413, f"the request has {rows} rows, over the limit of "
                                 f"{self.max_batch_rows}")
        outputs = await self._infer(feeds, rows, model.batchable)
        answer: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
        request_id = document.get("id")
        if isinstance(request_id, str):
            answer["id"] = request_id
        answer["outputs"], chunks = v2.encode_outputs(model, outputs, wanted)
        header = orjson.dumps(answer, option=DUMPS_OPTIONS)
        if chunks is None:
            return 200, header, JSON_TYPE
        # Binary tensor data: the JSON, then each binary output's bytes in the order listed.
        return 200, b"".join([header, *chunks]), (BINARY_TYPE, [
            (b"inference-header-content-length", str(len(header)).encode())])


def create_app(settings: Settings | str | Path) -> SlipwayApp:
    """The ASGI app serving the model `settings` describe (a Settings, or a serving.json path).

    Loads and checks the model now, so a bad config or model raises StartupError before any port
    is bound."""
    if not isinstance(settings, Settings):
        settings = load_settings(settings)
    model = Model(settings)
    return SlipwayApp(settings, model)


__all__ = ["HTTPError", "SlipwayApp", "StartupError", "create_app"]
