"""Model references: what a command or page means by MODEL.

A MODEL is a file or folder (used as it is), `name:3` (version 3 of the registered model `name`)
or `name@champion` (the version the alias `champion` of `name` names now). A path that exists
always wins, so a file called `churn:3` is still that file. A version's file is checked against
its sha256 before it is handed out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from studio.core.tasks import Progress
from studio.core.versions.registry import Registry, VersionError
from studio.core.versions.version import Version

REFERENCE = re.compile(r"^(?P<name>[^:@/\\]+)(?::(?P<version>\d+)|@(?P<alias>[^:@/\\]+))$")


@dataclass(frozen=True)
class ResolvedModel:
    """Where a reference leads: the model's path, and which registered version it is (if any)."""

    path: Path
    name: str | None = None
    version: int | None = None
    alias: str | None = None

    @property
    def reference(self) -> str | None:
        """`name:N` for a registered version, None for a plain path."""
        return None if self.name is None else f"{self.name}:{self.version}"


def is_reference(text: str) -> bool:
    return REFERENCE.match(text.strip()) is not None


def parse(text: str) -> tuple[str, int | None, str | None]:
    """(name, version, alias) of `name:N` or `name@alias`; a VersionError for anything else."""
    match = REFERENCE.match(text.strip())
    if match is None:
        raise VersionError(f"'{text}' is not a version reference.",
                           "Write it as NAME:VERSION (churn:3) or NAME@ALIAS (churn@champion).")
    version = match["version"]
    return match["name"], int(version) if version is not None else None, match["alias"]


def version_of(text: str, registry: Registry | None = None) -> Version:
    """The registered version `name:N` or `name@alias` names."""
    registry = registry or Registry()
    name, number, alias = parse(text)
    return registry.get(name, number) if number is not None else registry.by_alias(name, alias)


def resolve(text: str, registry: Registry | None = None,
            progress: Progress | None = None) -> ResolvedModel:
    """A path is returned as it is; `name:N` and `name@alias` are looked up in the registry and
    their file checked. A reference that names nothing raises VersionError saying what exists."""
    path = Path(text).expanduser()
    if not is_reference(text) or path.exists():
        return ResolvedModel(path=path)
    registry = registry or Registry()
    version = version_of(text, registry)
    return ResolvedModel(path=registry.model_path(version, progress), name=version.name,
                         version=version.version, alias=parse(text)[2])
