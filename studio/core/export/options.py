"""What an export is made from: the options a person chooses, validated before anything is built.

`ExportOptions` is a pydantic model, so every rule sits on its field; `export_options(**values)`
turns pydantic's errors into one `ExportOptionsError` that names the field (the page marks that
field, the command line names its flag). Quantities are Kubernetes quantities ("500m", "512Mi")
compared as numbers, so a limit below its request is refused whatever units the two are in.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from studio.core.errors import ExitStatus, StudioError

# A Service's name is a DNS-1035 label (a letter first) and every other name here derives from it
# with a suffix of at most len("-canary") characters, which must still fit in 63.
NAME_PATTERN = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
NAME_MAX = 63 - len("-canary")
NAMESPACE_PATTERN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# An image reference: [registry[:port]/]path[:tag][@digest], as the distribution spec spells it.
IMAGE_PATTERN = re.compile(
    r"(?P<repository>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?")
QUANTITY_PATTERN = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>m|k|M|G|T|Ki|Mi|Gi|Ti)?")
SUFFIXES = {None: 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
OLDEST_KUBERNETES = (1, 27)
"""The PodDisruptionBudget's unhealthyPodEvictionPolicy is on by default from 1.27 (beta)."""
DEFAULT_STARTUP_SECONDS = 300
"""How long a pod may take to load its model before the startup probe gives up on it."""


class ExportOptionsError(StudioError):
    """An option an export cannot be made with; `field` is the option's name in ExportOptions."""

    exit_status = ExitStatus.USAGE

    def __init__(self, message: str, hint: str | None = None, field: str = ""):
        super().__init__(message, hint)
        self.field = field


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity as a number: "500m" -> 0.5, "1Gi" -> 1073741824."""
    match = QUANTITY_PATTERN.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity such as 500m, 1, 512Mi or 2Gi")
    try:
        return Decimal(match["number"]) * SUFFIXES[match["suffix"]]
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None


@cache
def kubernetes_versions() -> tuple[str, ...]:
    """The Kubernetes minor versions the manifests are made for: those kubernetes-validate has
    schemas for, from OLDEST_KUBERNETES on, oldest first."""
    from kubernetes_validate.utils import all_versions, major_minor

    seen: list[str] = []
    for version in all_versions():
        minor = major_minor(version)
        if minor not in seen and tuple(int(p) for p in minor.split(".")) >= OLDEST_KUBERNETES:
            seen.append(minor)
    return tuple(seen)


def default_kubernetes_version() -> str:
    """The oldest of the three newest minor versions: the oldest one upstream still supports, so
    the manifests work on every cluster that gets fixes."""
    versions = kubernetes_versions()
    return versions[-3] if len(versions) >= 3 else versions[0]


def image_parts(reference: str) -> dict[str, str | None]:
    """repository, tag and digest of an image reference; ValueError when it is not one."""
    match = IMAGE_PATTERN.fullmatch(reference.strip())
    if not match:
        raise ValueError(f"{reference!r} is not an image reference such as "
                         "registry.example.com/team/model:1.0")
    return match.groupdict()


def _pinned_image(reference: str) -> str:
    parts = image_parts(reference)
    if not parts["tag"] and not parts["digest"]:
        raise ValueError(f"{reference!r} has no tag: it would mean 'latest', which changes under "
                         "a running deployment")
    if parts["tag"] == "latest" and not parts["digest"]:
        raise ValueError(f"{reference!r} is tagged 'latest', which changes under a running "
                         "deployment")
    return reference.strip()


class ExportOptions(BaseModel):
    """Everything an export is made from but the model and its image facts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str
    """The image `slipway build` made, pinned by tag or digest (never 'latest')."""
    name: str = Field(min_length=1, max_length=NAME_MAX)
    namespace: str = Field(min_length=1, max_length=63)
    replicas: int = Field(default=2, ge=1, le=1000)
    cpu: str = "500m"
    cpu_limit: str = "1"
    memory: str = "512Mi"
    memory_limit: str = "512Mi"
    ephemeral_storage: str = "128Mi"
    ephemeral_storage_limit: str = "256Mi"
    port: int = Field(default=8000, ge=1, le=65535)
    """The Service's port in Kubernetes, and the port published on the host by Compose."""
    host_ip: str = "127.0.0.1"
    """Where Compose publishes the port: loopback unless the person opens it on purpose."""
    environment: dict[str, str] = Field(default_factory=dict)
    api_key_env: str | None = None
    """The variable the server reads its API key from (serving.json's auth.api_key_env)."""
    api_key_secret: str | None = None
    """The Secret holding the key in Kubernetes; default NAME-api-key."""
    min_replicas: int | None = Field(default=None, ge=2, le=1000)
    max_replicas: int | None = Field(default=None, ge=2, le=1000)
    target_cpu: int | None = Field(default=None, ge=1, le=100)
    canary_image: str | None = None
    canary_percent: int = Field(default=10, ge=1, le=50)
    kubernetes_version: str = Field(default_factory=default_kubernetes_version)
    kserve: bool = False
    servicemonitor: bool = False
    ingress_host: str | None = None
    startup_seconds: int = Field(default=DEFAULT_STARTUP_SECONDS, ge=10, le=3600)

    @field_validator("image", "canary_image")
    @classmethod
    def _image_is_pinned(cls, value: str | None) -> str | None:
        return None if value is None else _pinned_image(value)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a DNS-1123 label starting with a letter: lower-case "
                             "letters, digits and '-', starting with a letter and ending with a "
                             "letter or digit")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not NAMESPACE_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a DNS-1123 label: lower-case letters, digits and "
                             "'-', starting and ending with a letter or digit")
        if value == "default":
            raise ValueError("'default' is shared by everything in a cluster: give the model a "
                             "namespace of its own")
        return value

    @field_validator("cpu", "cpu_limit", "memory", "memory_limit", "ephemeral_storage",
                     "ephemeral_storage_limit")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if parse_quantity(value) <= 0:
            raise ValueError(f"{value!r} must be more than zero")
        return value.strip()

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not ENV_NAME_PATTERN.fullmatch(key):
                raise ValueError(f"{key!r} is not an environment variable name")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _api_key_env(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @field_validator("api_key_secret", "ingress_host")
    @classmethod
    def _subdomain(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(
                r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", value):
            raise ValueError(f"{value!r} is not a DNS-1123 subdomain: lower-case letters, digits, "
                             "'-' and '.'")
        return value

    @field_validator("kubernetes_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        value = value.strip().removeprefix("v")
        minor = ".".join(value.split(".")[:2])
        known = kubernetes_versions()
        if minor not in known:
            raise ValueError(f"{value!r} is not a Kubernetes version the validator knows "
                             f"({known[0]} to {known[-1]})")
        return minor

    @model_validator(mode="after")
    def _consistent(self) -> ExportOptions:
        for request, limit in (("cpu", "cpu_limit"), ("memory", "memory_limit"),
                               ("ephemeral_storage", "ephemeral_storage_limit")):
            if parse_quantity(getattr(self, limit)) < parse_quantity(getattr(self, request)):
                raise _FieldProblem(limit, f"the limit {getattr(self, limit)} is below its request "
                                           f"{getattr(self, request)}")
        autoscaling = (self.min_replicas, self.max_replicas, self.target_cpu)
        if any(v is not None for v in autoscaling) and any(v is None for v in autoscaling):
            missing = [n for n, v in zip(("min_replicas", "max_replicas", "target_cpu"),
                                         autoscaling) if v is None][0]
            raise _FieldProblem(missing, "autoscaling needs a minimum, a maximum and a target CPU "
                                         "together")
        if self.autoscaling and self.max_replicas < self.min_replicas:
            raise _FieldProblem("max_replicas", f"the maximum {self.max_replicas} is below the "
                                                f"minimum {self.min_replicas}")
        if self.autoscaling and self.canary_image:
            raise _FieldProblem("canary_image", "a canary's traffic share is set by replica "
                                                "counts, which an autoscaler would change")
        if self.canary_image and self.port == 65535:
            raise _FieldProblem("port", "Compose publishes the canary on the next port, and "
                                        "65535 is the last one")
        if self.canary_image and self.canary_image == self.image:
            raise _FieldProblem("canary_image", "the canary is the same image as the stable one")
        if self.api_key_env and self.api_key_env in self.environment:
            raise _FieldProblem("environment", f"{self.api_key_env} holds the API key: it comes "
                                               "from a Secret, never from a value in a file")
        return self

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None

    @property
    def secret_name(self) -> str:
        return self.api_key_secret or f"{self.name}-api-key"

    @property
    def canary_replicas(self) -> int:
        """Canary pods for the asked share beside `replicas` stable ones (at least one)."""
        return max(1, round(self.replicas * self.canary_percent / (100 - self.canary_percent)))

    @property
    def canary_share(self) -> float:
        """The share of requests the canary gets: its pods among all behind the Service."""
        return self.canary_replicas / (self.replicas + self.canary_replicas)


class _FieldProblem(ValueError):
    """A rule across fields, naming the field a person should change."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


FIELD_HINTS = {
    "image": "Give the tag `slipway build` printed, e.g. registry.example.com/team/model:1.",
    "canary_image": "Give the canary's own tag, or leave out the canary.",
    "name": "Use lower-case letters, digits and '-', such as wine-classifier.",
    "namespace": "Use lower-case letters, digits and '-', such as models.",
    "kubernetes_version": "Choose one of the versions named.",
}


def export_options(**values: Any) -> ExportOptions:
    """ExportOptions from keyword values; ExportOptionsError naming the first field at fault."""
    values = {key: value for key, value in values.items() if value is not None}
    try:
        return ExportOptions(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        cause = (error.get("ctx") or {}).get("error")
        field = getattr(cause, "field", None) or ".".join(str(p) for p in error["loc"]) or "options"
        message = str(cause) if cause is not None else error["msg"]
        raise ExportOptionsError(f"{field}: {message}.",
                                 FIELD_HINTS.get(field, "Change it and export again."),
                                 field=field) from None
