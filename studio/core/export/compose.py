"""compose.yaml, as plain data: the served image on one machine, hardened as the studio runs it.

The container runs as the image's non-root user with a read-only root, a tmpfs at /tmp, every
capability dropped, no privilege escalation and a bounded process count (the same settings as
`studio/core/serve/runtimes/docker.py`), publishes its port on 127.0.0.1 unless told otherwise, and
takes its API key from the environment of whoever runs `docker compose up`: the file names the
variable and refuses to start without it, and never holds the key. With a canary image, a second
service runs the other version beside the first, on the next port.
"""

from __future__ import annotations

from typing import Any

from studio.core.export.facts import ServedModel
from studio.core.export.kubernetes import (
    CANARY_SUFFIX,
    PRESTOP_PAUSE_S,
    grace_period_s,
    model_annotations,
)
from studio.core.export.options import ExportOptions, parse_quantity

HEALTHCHECK_SCRIPT = ("import sys, urllib.request; sys.exit(0 if urllib.request.urlopen("
                      "'http://127.0.0.1:{port}/ready', timeout=2).status == 200 else 1)")
TMPFS = "/tmp:rw,nosuid,nodev,noexec,size=64m,mode=1777"
PIDS_LIMIT = 256


def compose_cpus(quantity: str) -> str:
    """A Kubernetes CPU quantity ("500m") as Compose writes CPUs ("0.5")."""
    return format(parse_quantity(quantity).normalize(), "f")


def compose_bytes(quantity: str) -> str:
    """A Kubernetes memory quantity ("512Mi") as Compose writes sizes ("512m", binary units)."""
    count = int(parse_quantity(quantity))
    for suffix, size in (("g", 2**30), ("m", 2**20), ("k", 2**10)):
        if count % size == 0:
            return f"{count // size}{suffix}"
    return f"{count}b"


def service(options: ExportOptions, model: ServedModel, image: str, host_port: int,
            version_label: str) -> dict[str, Any]:
    environment: dict[str, str] = dict(sorted(options.environment.items()))
    key_variable = options.api_key_env or model.api_key_env
    if key_variable:
        environment[key_variable] = (f"${{{key_variable}:?set {key_variable} to the model's API "
                                     "key before docker compose up}")
    result: dict[str, Any] = {
        "image": image,
        "user": "10001:10001",
        "read_only": True,
        "tmpfs": [TMPFS],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "pids_limit": PIDS_LIMIT,
        "ports": [f"{options.host_ip}:{host_port}:{model.port}"],
        "healthcheck": {
            "test": ["CMD", "/opt/venv/bin/python", "-c",
                     HEALTHCHECK_SCRIPT.format(port=model.port)],
            "interval": "10s", "timeout": "3s", "retries": 3,
            "start_period": f"{options.startup_seconds}s"},
        "restart": "unless-stopped",
        "stop_signal": "SIGTERM",
        # Compose has no preStop hook: the grace covers the server's own pause and drain.
        "stop_grace_period": f"{grace_period_s(model) - PRESTOP_PAUSE_S}s",
        "deploy": {"resources": {
            "limits": {"cpus": compose_cpus(options.cpu_limit),
                       "memory": compose_bytes(options.memory_limit)},
            "reservations": {"cpus": compose_cpus(options.cpu),
                             "memory": compose_bytes(options.memory)}}},
        "labels": {**model_annotations(model), "io.slipway.track": version_label},
    }
    if environment:
        result["environment"] = environment
    return result


def compose_file(options: ExportOptions, model: ServedModel) -> dict[str, Any]:
    """The Compose document: one service, and the canary beside it when there is one."""
    services = {options.name: service(options, model, options.image, options.port, "stable")}
    if options.canary_image:
        services[options.name + CANARY_SUFFIX] = service(
            options, model, options.canary_image, options.port + 1, "canary")
    return {"services": services}
