"""What the manifests say about the served model, read from the image when an engine has it.

An image built by `slipway build` carries the model's name, version and sha256 as OCI labels and
its serving.json at /app/serving.json (the API key's variable, the shutdown pause and drain). Those
are what the pods will run, so they win over the model file; without an engine, or when the image
is only in a registry, the model file and the serving defaults stand in, and a note says so.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from typing import Any

from studio.core.model.artifact import ModelArtifact
from studio.core.serve.bundle import SERVER_PORT, ServingOptions, served_name

CONFIG_IN_IMAGE = "/app/serving.json"
LABEL = "io.slipway.model."


@dataclass(frozen=True)
class ServedModel:
    """The model as the image serves it."""

    name: str
    version: str
    sha256: str
    api_key_env: str | None = None
    protect_metrics: bool = False
    ready_pause_s: float = ServingOptions.ready_pause_s
    drain_timeout_s: float = ServingOptions.drain_timeout_s
    port: int = SERVER_PORT
    source: str = "model file"
    """Where these facts come from: "image" or "model file"."""
    notes: tuple[str, ...] = field(default=())

    @property
    def default_name(self) -> str:
        """A DNS-1123 name for the Kubernetes objects: wine_classifier -> wine-classifier."""
        name = re.sub(r"[^a-z0-9-]+", "-", self.name.lower()).strip("-")
        name = re.sub(r"^[^a-z]+", "", name)[:40].rstrip("-")
        return name or "model"


def from_artifact(artifact: ModelArtifact, version: str = "1") -> ServedModel:
    return ServedModel(name=served_name(artifact), version=version,
                       sha256=artifact.schema.metadata.sha256)


def _config_from_image(client, reference: str) -> dict[str, Any] | None:
    """serving.json as the image holds it, read from a created (never started) container."""
    container = client.containers.create(reference, command=["true"])
    try:
        stream, _ = container.get_archive(CONFIG_IN_IMAGE)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.extractfile(archive.getmembers()[0])
            return json.loads(member.read()) if member else None
    finally:
        container.remove(force=True)


def from_image(reference: str, artifact: ModelArtifact) -> ServedModel:
    """The facts of `reference` on the local engine; the model file's, with a note, when the
    engine or the image is not there."""
    import docker
    from docker.errors import DockerException, ImageNotFound, NotFound

    fallback = from_artifact(artifact)
    try:
        client = docker.from_env(timeout=10)
        image = client.images.get(reference)
    except ImageNotFound:
        return _with_note(fallback, f"{reference} is not on the local Docker engine: name, version "
                                    "and sha256 come from the model file")
    except DockerException:
        return _with_note(fallback, "no Docker engine answers: name, version and sha256 come "
                                    "from the model file")
    labels = image.labels or {}
    if f"{LABEL}sha256" not in labels:
        return _with_note(fallback, f"{reference} was not built by slipway build (it has no "
                                    f"{LABEL}* labels): name, version and sha256 come from the "
                                    "model file")
    try:
        config = _config_from_image(client, reference) or {}
    except (DockerException, NotFound, tarfile.TarError, ValueError, IndexError):
        config = {}
    auth = config.get("auth") or {}
    shutdown = config.get("shutdown") or {}
    notes = []
    if artifact.schema.metadata.onnx is not None \
            and labels[f"{LABEL}sha256"] != artifact.schema.metadata.sha256:
        notes.append(f"{reference} serves another model than {artifact.path.name} (sha256 "
                     f"{labels[f'{LABEL}sha256'][:12]}… in the image): the manifests describe "
                     "the image")
    return ServedModel(
        name=labels.get(f"{LABEL}name") or fallback.name,
        version=labels.get(f"{LABEL}version") or fallback.version,
        sha256=labels[f"{LABEL}sha256"],
        api_key_env=auth.get("api_key_env") or None,
        protect_metrics=bool(auth.get("protect_metrics")),
        ready_pause_s=float(shutdown.get("ready_pause_s", ServingOptions.ready_pause_s)),
        drain_timeout_s=float(shutdown.get("drain_timeout_s", ServingOptions.drain_timeout_s)),
        source="image", notes=tuple(notes))


def _with_note(model: ServedModel, note: str) -> ServedModel:
    return ServedModel(**{**model.__dict__, "notes": (*model.notes, note)})
