"""Where a served model lives from one run to the next: its work folder and its port.

A model version (its file's sha256) has one work folder, whoever made it: the Optimize stage
writes its ONNX conversion there and the Serve stage builds its bundle there, so serving after
optimizing reuses the verified conversion instead of making another, and serving ten times leaves
one folder, not ten. The folder sits beside the run folders (core/workspace.py) and is pruned with
them when unused for long.

A model keeps the port it was last served on, when that port is still free, so a URL a user
copied into a client still answers after a restart. The ports are kept per model file in one
small JSON file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from studio.core.files import write_text
from studio.core.model.artifact import ModelArtifact
from studio.core.serve.runtimes.base import port_in_use
from studio.core.workspace import cache_root, data_root

PORTS_FILE = "ports.json"
SHA_SHOWN = 12


def version_work_dir(artifact: ModelArtifact) -> Path:
    """The work folder of this version of the model, made when first asked for."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", artifact.name).strip("-") or "model"
    sha = artifact.schema.metadata.sha256[:SHA_SHOWN] or "unhashed"
    folder = cache_root() / "work" / f"{safe}-{sha}"
    folder.mkdir(parents=True, exist_ok=True)
    os.utime(folder)  # in use again: the pruning of old run folders keeps it
    return folder


def _ports_path() -> Path:
    return data_root() / PORTS_FILE


def _model_key(artifact: ModelArtifact) -> str:
    return str(artifact.path.resolve())


def _read_ports() -> dict[str, int]:
    try:
        ports = json.loads(_ports_path().read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in ports.items() if isinstance(v, int)} if isinstance(ports, dict) else {}


def remembered_port(artifact: ModelArtifact) -> int | None:
    """The port this model was last served on, if it is free now."""
    port = _read_ports().get(_model_key(artifact))
    return port if port is not None and port_in_use(port) is None else None


def remember_port(artifact: ModelArtifact, port: int) -> None:
    ports = _read_ports()
    if ports.get(_model_key(artifact)) == port:
        return
    ports[_model_key(artifact)] = port
    _ports_path().parent.mkdir(parents=True, exist_ok=True)
    write_text(_ports_path(), json.dumps(ports, indent=1))
