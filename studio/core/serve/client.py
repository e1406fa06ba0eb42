"""The one way the studio talks to a served model: health, readiness, metadata, predictions."""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from studio.core.errors import ExitStatus, StudioError

DEFAULT_TIMEOUT_S = 10.0
PREDICTION_ROUTE = re.compile(r"(/predict/batch|/predict|/v2/models/[^/]+(/versions/[^/]+)?/infer)$")


class ServerUnreachable(StudioError):
    """Nothing answers at the URL, or it stopped answering."""

    exit_status = ExitStatus.FAILED


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    """Parsed JSON, or the raw text when the server did not answer JSON."""
    latency_ms: float
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def is_json(self) -> bool:
        return not isinstance(self.body, str)


def split_route(url: str) -> tuple[str, str | None]:
    """The server's base URL and the prediction route the URL ends with, if it names one: a URL
    copied from the API docs (`.../predict`) and the bare base URL both reach the server."""
    parts = urlsplit(url.strip().rstrip("/"))
    found = PREDICTION_ROUTE.search(parts.path)
    if found is None:
        return urlunsplit(parts), None
    return urlunsplit(parts._replace(path=parts.path[:found.start()])), found.group(1)


def sample_body(schema: dict[str, Any], route: str) -> Any | None:
    """The model's sample request for a prediction route, made from the schema its server gives
    at /schema, as the Model page shows it (None when the route takes no such body, or the
    schema cannot be read)."""
    from pydantic import ValidationError

    from studio.core.model.schema import ModelSchema, sample_bodies

    try:
        samples = sample_bodies(ModelSchema.model_validate(schema))
    except ValidationError:
        return None
    if route.endswith("/infer"):
        return samples.v2
    return {"/predict": samples.rest, "/predict/batch": samples.rest_batch}.get(route)


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The header a Slipway server checks for its API key (none without a key)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class ModelClient:
    def __init__(self, base_url: str, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout,
                                  headers=auth_headers(api_key))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, body: Any = None) -> Reply:
        started = time.perf_counter()
        try:
            response = self._http.request(method, path, json=body) if body is not None \
                else self._http.request(method, path)
        except httpx.ConnectError as exc:
            raise ServerUnreachable(f"Nothing answers at {self.base_url}.",
                                    "Check the URL and that the model is running (Serve page or "
                                    "slipway serve).", detail=repr(exc)) from exc
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(f"{self.base_url} did not answer within "
                                    f"{self._http.timeout.read:g} s.",
                                    "The server may be overloaded or stuck; see its log.",
                                    detail=repr(exc)) from exc
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"The request to {self.base_url}{path} failed: {exc}",
                                    "Check the URL.", detail=repr(exc)) from exc
        latency = (time.perf_counter() - started) * 1000
        try:
            parsed: Any = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            parsed = response.text
        return Reply(response.status_code, parsed, latency, dict(response.headers))

    def ready(self) -> bool:
        try:
            return self.request("GET", "/ready").ok
        except ServerUnreachable:
            return False

    def health(self) -> Reply:
        return self.request("GET", "/health")

    def metadata(self, model: str) -> Reply:
        return self.request("GET", f"/v2/models/{model}")

    def predict(self, body: Any, route: str = "/predict") -> Reply:
        return self.request("POST", route, body)


def curl_command(base_url: str, method: str, route: str, body: Any = None,
                 api_key: str | None = None) -> str:
    """The same request as a curl command line a person can paste into a terminal."""
    parts = ["curl", "-sS", "-X", method, shlex.quote(base_url.rstrip("/") + route)]
    parts += [part for name, value in auth_headers(api_key).items()
              for part in ("-H", shlex.quote(f"{name}: {value}"))]
    if body is not None:
        parts += ["-H", shlex.quote("Content-Type: application/json"),
                  "-d", shlex.quote(json.dumps(body, separators=(",", ":")))]
    return " ".join(parts)
