"""Slipway's model server: one ONNX model behind REST, the Open Inference Protocol v2 and
Prometheus metrics, configured by serving.json.

    PYTHONPATH=serving_templates/server python -m slipway_server --config serving.json

It runs inside every image the studio builds and as the studio's process runtime, so it depends
only on onnxruntime, numpy, starlette, uvicorn (with httptools, whose HTTP protocol it guards, and
uvloop where available), orjson and prometheus-client, and never on `studio`.
Names are imported lazily so that `python -m slipway_server` can report a missing package in one
line instead of a traceback.
"""

from typing import Any

__version__ = "1.0.0"

_EXPORTS = {
    "Settings": "settings", "StartupError": "settings", "load_settings": "settings",
    "settings_from_dict": "settings", "SlipwayApp": "app", "create_app": "app",
}
__all__ = ["Settings", "SlipwayApp", "StartupError", "__version__", "create_app", "load_settings",
           "settings_from_dict"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'slipway_server' has no attribute {name!r}")
