"""serving.json: what the server serves and how, read once at startup.

The studio's bundler writes this file; every key has a default so a hand-written config can be as
short as {"model_file": "model.onnx"}. Unknown keys are ignored (a newer studio may write more).
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
    max_body_bytes: int = 1024 * 1024
    max_batch_rows: int = 1024
    max_concurrency: int = 512


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


def _number(section: dict[str, Any], key: str, default: float, where: str) -> float:
    value = section.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0:
        raise StartupError(f"serving.json: '{where}{key}' must be a number >= 0, got {value!r}")
    return float(value)


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
    limits = _section(data, "limits")
    auth = _section(data, "auth")
    api_key_env = auth.get("api_key_env")
    if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
        raise StartupError("serving.json: 'auth.api_key_env' must be the name of an environment "
                           f"variable or null, got {api_key_env!r}")
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
        limits=Limits(
            max_body_bytes=_int(limits, "max_body_bytes", 1024 * 1024, "limits."),
            max_batch_rows=_int(limits, "max_batch_rows", 1024, "limits."),
            max_concurrency=_int(limits, "max_concurrency", 512, "limits."),
        ),
        api_key_env=api_key_env,
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
