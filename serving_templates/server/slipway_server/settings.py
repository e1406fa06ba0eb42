"""serving.json: what the server serves and how, read once at startup.

The studio's bundler writes this file; every key has a default so a hand-written config can be as
short as {"model_file": "model.onnx"}. Unknown keys are ignored (a newer studio may write more).

    {
      "model_file": "model.onnx", "name": "iris", "version": "1", "sha256": "...",
      "schema": {...}, "reference": {...}, "threads": 1,
      "batching": {"enabled": true, "max_batch_size": 32, "max_wait_ms": 2.0},
      "limits": {"max_body_bytes": 1048576, "max_batch_rows": 1024, "max_concurrency": 512,
                 "max_connections": 2048, "max_header_bytes": 65536, "header_timeout_s": 10,
                 "body_timeout_s": 20, "keep_alive_timeout_s": 5},
      "auth": {"api_key_env": "MODEL_API_KEY", "protect_metrics": false},
      "shutdown": {"ready_pause_s": 0.5, "drain_timeout_s": 30}
    }

Each key of `limits`, `auth` and `shutdown` is described where its dataclass field is declared.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


class StartupError(Exception):
    """The server cannot start: a bad config, a missing or invalid model. One line for a person."""


@dataclass(frozen=True)
class Batching:
    enabled: bool = True
    max_batch_size: int = 32
    max_wait_ms: float = 2.0


@dataclass(frozen=True)
class Limits:
    """What one client may cost the server. The connection guards (connections, head, body and
    idle deadlines) are enforced by `connections.GuardedHttpToolsProtocol` on real sockets."""

    max_body_bytes: int = 1024 * 1024
    max_batch_rows: int = 1024
    max_concurrency: int = 512
    """Requests waiting for or in inference at once; more are answered 503 with Retry-After.
    A request takes its slot only once its whole body has arrived, so slow senders hold none."""
    max_connections: int = 2048
    """Open connections at once (kept under the process's descriptor limit); a connection over it
    is answered 503 and closed as soon as it is accepted, so it costs no descriptor for long."""
    max_header_bytes: int = 64 * 1024
    """Bytes of one request's head (request line and headers); a longer head is answered 431 and
    its connection closed, so the server never buffers more than this and one read."""
    header_timeout_s: float = 10.0
    """Seconds from a connection's opening (or a request's first byte) to the end of the request's
    head; a slower client (slowloris) or a silent new connection is closed (408 if it began)."""
    body_timeout_s: float = 20.0
    """Seconds from the end of a request's head to the end of its body; a slower body is answered
    408 and its connection closed."""
    keep_alive_timeout_s: float = 5.0
    """Seconds an idle keep-alive connection stays open between requests (uvicorn's option)."""


@dataclass(frozen=True)
class Shutdown:
    """What SIGTERM (or SIGINT) does: readiness turns 503 at once while everything is still served
    and accepted for `ready_pause_s` (a load balancer or Kubernetes endpoint sees the 503 and stops
    sending: set it to the readiness probe's period plus a margin, with a preStop hook if you
    like); then the listener closes, taking in the connections still queued on it, and accepted
    requests get `drain_timeout_s` to finish before they are cancelled. A second signal during the
    pause ends the pause."""

    ready_pause_s: float = 0.5
    drain_timeout_s: float = 30.0


@dataclass(frozen=True)
class Settings:
    model_path: Path
    """The model file, resolved against the config file's folder."""
    name: str
    version: str = "1"
    sha256: str = ""
    schema: dict[str, Any] | None = None
    batching: Batching = field(default_factory=Batching)
    limits: Limits = field(default_factory=Limits)
    api_key_env: str | None = None
    """auth.api_key_env: the environment variable holding the API key. When set, the server
    refuses to start if that variable is unset or empty (it never serves without the key it was
    told to require). The key guards every route but the probes (/health, /ready, /v2/health/*)
    and, unless protect_metrics, /metrics."""
    protect_metrics: bool = False
    """auth.protect_metrics: /metrics asks for the API key too. Off by default so Prometheus can
    scrape without one; /metrics then shows the request counts, feature histograms, predicted
    labels and the model's sha256 to whoever reaches the port. Needs api_key_env."""
    shutdown: Shutdown = field(default_factory=Shutdown)
    threads: int = 1
    reference: dict[str, Any] | None = None

    @property
    def api_key(self) -> str | None:
        """The API key, when auth.api_key_env names a variable that is set and not empty."""
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or None


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StartupError(f"serving.json: '{key}' must be an object, got {type(value).__name__}")
    return value


def _int(section: dict[str, Any], key: str, default: int, where: str, minimum: int = 1) -> int:
    value = section.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StartupError(f"serving.json: '{where}{key}' must be an integer >= {minimum}, "
                           f"got {value!r}")
    return value


def _number(section: dict[str, Any], key: str, default: float, where: str,
            positive: bool = False) -> float:
    value = section.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0):
        raise StartupError(f"serving.json: '{where}{key}' must be a number "
                           f"{'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _limits(limits: dict[str, Any]) -> Limits:
    default = Limits()
    integers = {key: _int(limits, key, getattr(default, key), "limits.")
                for key in ("max_body_bytes", "max_batch_rows", "max_concurrency",
                            "max_connections")}
    # A head has to hold a request line and a few headers.
    integers["max_header_bytes"] = _int(limits, "max_header_bytes", default.max_header_bytes,
                                        "limits.", minimum=1024)
    timeouts = {key: _number(limits, key, getattr(default, key), "limits.", positive=True)
                for key in ("header_timeout_s", "body_timeout_s", "keep_alive_timeout_s")}
    return Limits(**integers, **timeouts)


def _auth(auth: dict[str, Any]) -> tuple[str | None, bool]:
    api_key_env = auth.get("api_key_env")
    if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
        raise StartupError("serving.json: 'auth.api_key_env' must be the name of an environment "
                           f"variable or null, got {api_key_env!r}")
    if api_key_env is not None and not os.environ.get(api_key_env):
        state = "is empty" if api_key_env in os.environ else "is not set"
        raise StartupError(f"serving.json: 'auth.api_key_env' names {api_key_env}, which "
                           f"{state}: set it to the API key, or make 'auth.api_key_env' null to "
                           "serve without one")
    protect_metrics = auth.get("protect_metrics", False)
    if protect_metrics is None:
        protect_metrics = False
    if not isinstance(protect_metrics, bool):
        raise StartupError("serving.json: 'auth.protect_metrics' must be true or false, "
                           f"got {protect_metrics!r}")
    if protect_metrics and api_key_env is None:
        raise StartupError("serving.json: 'auth.protect_metrics' needs 'auth.api_key_env': "
                           "/metrics can only be protected by the API key")
    return api_key_env, protect_metrics


def _string(data: dict[str, Any], key: str, default: str | None) -> str | None:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise StartupError(f"serving.json: '{key}' must be a string, got {value!r}")
    return value


def settings_from_dict(data: Any, base_dir: Path | str = ".") -> Settings:
    """Settings from the parsed config; relative paths are taken from `base_dir`."""
    if not isinstance(data, dict):
        raise StartupError(f"serving.json must hold a JSON object, got {type(data).__name__}")
    model_file = _string(data, "model_file", "model.onnx") or "model.onnx"
    model_path = (Path(base_dir) / model_file).resolve()
    name = _string(data, "name", None) or model_path.stem
    if "/" in name or not name.strip():
        raise StartupError("serving.json: 'name' must be a non-empty name without '/', "
                           f"got {name!r}")
    batching = _section(data, "batching")
    enabled = batching.get("enabled", True)
    if not isinstance(enabled, bool):
        raise StartupError("serving.json: 'batching.enabled' must be true or false, "
                           f"got {enabled!r}")
    api_key_env, protect_metrics = _auth(_section(data, "auth"))
    shutdown = _section(data, "shutdown")
    schema = data.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise StartupError(f"serving.json: 'schema' must be an object, got {type(schema).__name__}")
    reference = data.get("reference")
    if reference is not None and not isinstance(reference, dict):
        raise StartupError("serving.json: 'reference' must be an object or null, "
                           f"got {type(reference).__name__}")
    return Settings(
        model_path=model_path,
        name=name,
        version=_string(data, "version", "1") or "1",
        sha256=(_string(data, "sha256", "") or "").lower(),
        schema=schema,
        batching=Batching(
            enabled=enabled,
            max_batch_size=_int(batching, "max_batch_size", 32, "batching."),
            max_wait_ms=_number(batching, "max_wait_ms", 2.0, "batching."),
        ),
        limits=_limits(_section(data, "limits")),
        api_key_env=api_key_env,
        protect_metrics=protect_metrics,
        shutdown=Shutdown(
            ready_pause_s=_number(shutdown, "ready_pause_s", Shutdown.ready_pause_s, "shutdown."),
            drain_timeout_s=_number(shutdown, "drain_timeout_s", Shutdown.drain_timeout_s,
                                    "shutdown."),
        ),
        threads=_int(data, "threads", 1, ""),
        reference=reference,
    )


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read serving.json; StartupError with one line when it is missing or malformed."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise StartupError(f"config file '{path}' does not exist") from None
    except OSError as exc:
        raise StartupError(f"config file '{path}' cannot be read: {exc.strerror}") from None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise StartupError(f"config file '{path}' is not valid JSON: {exc}") from None
    return settings_from_dict(data, path.resolve().parent)
