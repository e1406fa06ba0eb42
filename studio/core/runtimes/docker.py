"""The Docker runtime, through the docker SDK."""

from __future__ import annotations

import os
from dataclasses import dataclass

ENGINE_PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class EngineStatus:
    available: bool
    version: str | None
    reason: str
    """One sentence: which engine answered, or why none did."""


def engine_status(timeout: float = ENGINE_PROBE_TIMEOUT_S) -> EngineStatus:
    """Ask the engine named by DOCKER_HOST (or the default socket) for its version."""
    import docker
    from docker.errors import DockerException

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=timeout)
        try:
            version = client.version().get("Version", "unknown")
        finally:
            client.close()
    except DockerException as exc:
        text = str(exc)
        if "FileNotFoundError" in text or "No such file" in text:
            reason = f"no Docker engine is running ({where} does not exist)"
        elif "Permission denied" in text or "PermissionError" in text:
            reason = f"this user may not use the Docker engine at {where} (add it to the docker group)"
        elif "Connection refused" in text or "ConnectionRefused" in text:
            reason = f"the Docker engine at {where} refuses connections (is dockerd running?)"
        else:
            reason = f"the Docker engine at {where} did not answer: {text.splitlines()[0][:160]}"
        return EngineStatus(available=False, version=None, reason=reason)
    return EngineStatus(available=True, version=version, reason=f"Docker {version} answers at {where}")
