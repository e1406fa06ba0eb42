"""The model registry: every model the studio loads, converts or optimizes, as a numbered version
of a named model, with its lineage and reports; and aliases (`champion`, `challenger`, any name)
whose every move is kept, so "what was serving on Tuesday" has an answer.

A version is its content: the same file (same sha256) recorded twice is one version. A converted
or optimized model is the next version of the model it was made from, with the step and its
parameters as its lineage. Version numbers are never reused, even after a delete.

It lives in the user's data folder (`workspace.data_root()/registry`): `registry.db` (SQLite, see
database.py) and `objects/` (store.py). The faces record; core's load, convert and optimize never
do.
"""

from __future__ import annotations

import getpass
import json
import re
import shutil
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from studio.core.errors import ExitStatus, StudioError
from studio.core.files import copy_file, pending_file
from studio.core.tasks import Progress, quiet
from studio.core.units import human_size
from studio.core.versions.database import Database, RegistryError
from studio.core.versions.store import ObjectStore, content_of
from studio.core.versions.version import (
    CONVERTED,
    LOADED,
    OPTIMIZED,
    REMOVE,
    ROLLBACK,
    AliasMove,
    Lineage,
    Recorded,
    Version,
)
from studio.core.workspace import data_root

if TYPE_CHECKING:  # loading the model stack costs a listing half a second it does not need
    from studio.core.model.artifact import ModelArtifact

ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9_.-]+")

SET = "set"


class VersionError(StudioError):
    """A reference names no registered version, or a registry action cannot be done as asked."""

    exit_status = ExitStatus.USAGE


def model_name(text: str) -> str:
    """A registry name made from a model's own name: what a reference can spell (`name:3`)."""
    return UNSAFE_IN_NAME.sub("-", text).strip("-.") or "model"


def parse_time(text: str) -> float:
    """`2026-11-24T10:00`, `2026-11-24 10:00:30` or `2026-11-24` (local time unless it says
    otherwise) as a timestamp."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise VersionError(f"'{text}' is not a time Slipway reads.",
                           "Write it as 2026-11-24T10:00 (local time) or 2026-11-24.") from None
    return moment.astimezone().timestamp()


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return "unknown"

def step_of(report: BaseModel) -> tuple[str, dict[str, Any]]:
    """The step a report describes and the parameters it ran with, read from the report itself so
    that every face records the same: an OptimizationReport names its optimization, a
    ConversionReport its opset and converter."""
    data = report.model_dump(mode="json")
    parity = data.get("parity") or {}
    common = {"tolerance": parity.get("tolerance"), "reference": parity.get("inputs")}
    if "optimization" in data:
        return OPTIMIZED, {"optimization": data["optimization"], **common}
    return CONVERTED, {"opset": data.get("opset"), "converter": data.get("converter"), **common}


def _json_of(value: BaseModel | dict | None) -> str | None:
    if value is None:
        return None
    return value.model_dump_json() if isinstance(value, BaseModel) else json.dumps(value)


class Registry:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else data_root() / "registry"
        self.database = Database(self.root / "registry.db")
        self.objects = ObjectStore(self.root / "objects")

    # --- recording -----------------------------------------------------------------------------

    def record(self, artifact: ModelArtifact, *, parent: Version | None = None,
               step: str = LOADED, parameters: dict[str, Any] | None = None,
               parity: BaseModel | None = None, report: BaseModel | None = None,
               progress: Progress | None = None) -> Recorded:
        """Make `artifact` a version (the next of `parent`'s model, or of its own name), or find
        the version that already holds its content."""
        progress = progress or quiet()
        source = Path(artifact.path)
        progress.update(None, f"Recording {source.name}")
        known = (artifact.schema.metadata.sha256 if not source.is_dir()
                 else content_of(source, progress).sha256)
        found = self._by_sha(known)
        if found is not None and self.objects.intact(found.sha256, found.file_name, found.size):
            return Recorded(found, created=False)
        staged = self.objects.stage(source, progress)
        try:
            if staged.content.sha256 != known:
                raise VersionError(f"'{source.name}' changed after it was loaded.",
                                   "Load it again to record what it holds now.")
            with self.database.writing() as db:
                row = db.execute("SELECT name, version FROM versions WHERE sha256 = ?",
                                 (known,)).fetchone()
                if row is not None:  # recorded meanwhile, or its file went missing: put it back
                    staged.place()
                    existing = (row["name"], row["version"])
                else:
                    name = parent.name if parent is not None else model_name(artifact.name)
                    number = self._next_number(db, name)
                    staged.place()
                    db.execute(
                        "INSERT INTO versions (name, version, sha256, file_name, format, size, "
                        "created, created_by, source_path, step, parameters, parent_name, "
                        "parent_version, schema_json, parity_json, report_json) VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (name, number, known, source.name, artifact.format,
                         staged.content.size, time.time(), current_user(),
                         str(source.resolve()), step, json.dumps(parameters or {}),
                         parent.name if parent else None, parent.version if parent else None,
                         artifact.schema.to_json(indent=None), _json_of(parity),
                         _json_of(report)))
                    existing = (name, number)
        finally:
            staged.discard()
        return Recorded(self.get(*existing), created=row is None)

    @staticmethod
    def _next_number(db: sqlite3.Connection, name: str) -> int:
        db.execute("INSERT INTO models (name, last_version, created) VALUES (?, 0, ?) "
                   "ON CONFLICT (name) DO NOTHING", (name, time.time()))
        db.execute("UPDATE models SET last_version = last_version + 1 WHERE name = ?", (name,))
        return db.execute("SELECT last_version FROM models WHERE name = ?", (name,)).fetchone()[0]

    def record_step(self, source: ModelArtifact, result: ModelArtifact, report: BaseModel,
                    progress: Progress | None = None) -> Recorded:
        """Record what a conversion or optimization made (`report`: its ConversionReport or
        OptimizationReport) as the next version of its source's model, with the step and its
        parameters as lineage. The source is recorded first if it is not a version yet."""
        parent = self.record(source, progress=progress).version
        step, parameters = step_of(report)
        return self.record(result, parent=parent, step=step, parameters=parameters,
                           parity=getattr(report, "parity", None), report=report,
                           progress=progress)

    # --- reading -------------------------------------------------------------------------------

    def _version(self, row: sqlite3.Row, tags: dict[str, str],
                 aliases: tuple[str, ...]) -> Version:
        parent = (f"{row['parent_name']}:{row['parent_version']}"
                  if row["parent_name"] is not None else None)
        return Version(
            name=row["name"], version=row["version"], sha256=row["sha256"], format=row["format"],
            size=row["size"], file_name=row["file_name"], created=row["created"],
            created_by=row["created_by"], source_path=row["source_path"], step=row["step"],
            parameters=json.loads(row["parameters"]), parent=parent,
            schema_json=row["schema_json"],
            parity=json.loads(row["parity_json"]) if row["parity_json"] else None,
            report=json.loads(row["report_json"]) if row["report_json"] else None,
            notes=row["notes"], tags=tags, aliases=aliases,
            path=self.objects.path_of(row["sha256"], row["file_name"]))

    def _select(self, where: str = "", arguments: tuple = (),
                at: float | None = None) -> list[Version]:
        with self.database.reading() as db:
            rows = db.execute(f"SELECT * FROM versions {where} ORDER BY name, version DESC",
                              arguments).fetchall()
            tags: dict[int, dict[str, str]] = {}
            for tag in db.execute("SELECT version_id, key, value FROM tags ORDER BY key"):
                tags.setdefault(tag["version_id"], {})[tag["key"]] = tag["value"]
            aliases: dict[tuple[str, int], list[str]] = {}
            for name, alias, version in self._alias_rows(db, at):
                aliases.setdefault((name, version), []).append(alias)
        return [self._version(row, tags.get(row["id"], {}),
                              tuple(sorted(aliases.get((row["name"], row["version"]), []))))
                for row in rows if at is None or row["created"] <= at]

    @staticmethod
    def _alias_rows(db: sqlite3.Connection, at: float | None) -> list[tuple[str, str, int]]:
        """(name, alias, version) now, or as they stood at `at` (from the moves)."""
        if at is None:
            return [tuple(row) for row in db.execute("SELECT name, alias, version FROM aliases")]
        latest: dict[tuple[str, str], int | None] = {}
        for row in db.execute("SELECT name, alias, to_version FROM alias_moves WHERE at <= ? "
                              "ORDER BY id", (at,)):
            latest[(row["name"], row["alias"])] = row["to_version"]
        return [(name, alias, version) for (name, alias), version in latest.items()
                if version is not None]

    def _by_sha(self, sha256: str) -> Version | None:
        found = self._select("WHERE sha256 = ?", (sha256,))
        return found[0] if found else None

    def names(self) -> list[str]:
        with self.database.reading() as db:
            return [row[0] for row in db.execute(
                "SELECT DISTINCT name FROM versions ORDER BY name")]

    def versions(self, name: str | None = None, *, tag: str | None = None,
                 alias: str | None = None, search: str | None = None,
                 at: float | None = None) -> list[Version]:
        """The versions, newest first within each model, with their aliases (as they stood at
        `at`, and only the versions that existed then, when it is given).

        `tag` is `key` or `key=value`; `search` matches a name, an alias, a tag's key or value,
        a format or a reference, in any case."""
        found = self._select("WHERE name = ?" if name else "", (name,) if name else (), at)
        if tag is not None:
            key, equals, value = tag.partition("=")
            found = [v for v in found if key in v.tags and (not equals or v.tags[key] == value)]
        if alias is not None:
            found = [v for v in found if alias in v.aliases]
        if search and search.strip():
            needle = search.strip().lower()
            found = [v for v in found if any(
                needle in text.lower() for text in (
                    v.name, v.reference, v.format, *v.aliases, *v.tags, *v.tags.values()))]
        return found

    def get(self, name: str, version: int) -> Version:
        found = self._select("WHERE name = ? AND version = ?", (name, version))
        if found:
            return found[0]
        versions = [v.version for v in self._select("WHERE name = ?", (name,))]
        if not versions:
            raise self._unknown_model(name)
        raise VersionError(f"'{name}' has no version {version}.",
                           f"Its versions are {', '.join(map(str, sorted(versions)))} "
                           f"(slipway versions {name}).")

    def check_name(self, name: str) -> None:
        """Raise a VersionError naming the registered models unless `name` is one."""
        if name not in self.names():
            raise self._unknown_model(name)

    def _unknown_model(self, name: str) -> VersionError:
        names = self.names()
        return VersionError(
            f"There is no registered model '{name}'.",
            f"Registered models: {', '.join(names)}." if names else
            "Nothing is registered yet: open, convert or optimize a model to record it.")

    def by_alias(self, name: str, alias: str) -> Version:
        with self.database.reading() as db:
            row = db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?",
                             (name, alias)).fetchone()
            others = [f"{r['alias']} → {r['version']}" for r in db.execute(
                "SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,))]
        if row is not None:
            return self.get(name, row["version"])
        self.check_name(name)
        raise VersionError(
            f"'{name}' has no alias '{alias}'.",
            (f"Its aliases: {', '.join(others)}. " if others else "It has no aliases yet. ")
            + f"Set one with: slipway alias {name}@{alias} VERSION.")

    def model_path(self, version: Version, progress: Progress | None = None) -> Path:
        """Where the version's file is, once checked against its sha256."""
        problem = self.objects.verify(version.sha256, version.file_name, progress)
        if problem is None:
            return version.path
        what = ("is missing from the registry" if problem == "missing" else
                "no longer matches its sha256" if problem == "changed" else f"is {problem}")
        raise RegistryError(
            f"The file of {version.reference} ({version.file_name}) {what}: {version.path}.",
            f"Open the original ({version.source_path}) again to store it again, or remove the "
            f"version: slipway versions --delete {version.reference} --force.")

    def lineage(self, version: Version) -> Lineage:
        everything = {v.reference: v for v in self._select("WHERE name = ?", (version.name,))}
        ancestors: list[Version | str] = []
        parent = version.parent
        while parent is not None:
            found = everything.get(parent)
            ancestors.insert(0, found if found is not None else parent)
            parent = found.parent if found is not None else None
        descendants: list[tuple[int, Version]] = []

        def children_of(reference: str, depth: int) -> None:
            for child in sorted((v for v in everything.values() if v.parent == reference),
                                key=lambda v: v.version):
                descendants.append((depth, child))
                children_of(child.reference, depth + 1)

        children_of(version.reference, 1)
        return Lineage(ancestors, version, descendants)

    # --- aliases -------------------------------------------------------------------------------

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every move of `name`'s aliases (or of one), newest first."""
        query = "SELECT * FROM alias_moves WHERE name = ?" + (" AND alias = ?" if alias else "")
        with self.database.reading() as db:
            rows = db.execute(query + " ORDER BY id DESC",
                              (name, alias) if alias else (name,)).fetchall()
        return [AliasMove(row["name"], row["alias"], row["from_version"], row["to_version"],
                          row["action"], row["user"], row["at"]) for row in rows]

    @staticmethod
    def _move(db: sqlite3.Connection, name: str, alias: str, before: int | None,
              after: int | None, action: str) -> AliasMove:
        if after is None:
            db.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
        else:
            db.execute("INSERT INTO aliases (name, alias, version) VALUES (?, ?, ?) "
                       "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
                       (name, alias, after))
        move = AliasMove(name, alias, before, after, action, current_user(), time.time())
        db.execute("INSERT INTO alias_moves (name, alias, from_version, to_version, action, user, "
                   "at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (name, alias, before, after, action, move.user, move.at))
        return move

    @staticmethod
    def _pointing(db: sqlite3.Connection, name: str, alias: str) -> int | None:
        row = db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?",
                         (name, alias)).fetchone()
        return row["version"] if row else None

    def set_alias(self, name: str, alias: str, version: int) -> AliasMove:
        """Point `name@alias` at `version` (one version per alias per model)."""
        if not ALIAS.match(alias):
            raise VersionError(f"'{alias}' cannot be an alias.",
                               "Use letters, digits, '_' and '-', starting with a letter, "
                               "such as champion or challenger.")
        self.get(name, version)  # says which versions exist when this one does not
        with self.database.writing() as db:
            if db.execute("SELECT 1 FROM versions WHERE name = ? AND version = ?",
                          (name, version)).fetchone() is None:
                raise VersionError(f"{name}:{version} was deleted a moment ago.",
                                   f"Choose another version (slipway versions {name}).")
            before = self._pointing(db, name, alias)
            if before == version:
                return AliasMove(name, alias, before, version, SET, current_user(), time.time())
            return self._move(db, name, alias, before, version, SET)

    def remove_alias(self, name: str, alias: str) -> AliasMove:
        with self.database.writing() as db:
            before = self._pointing(db, name, alias)
            if before is None:
                raise VersionError(f"'{name}' has no alias '{alias}' to remove.",
                                   f"slipway versions {name} lists its aliases.")
            return self._move(db, name, alias, before, None, REMOVE)

    def rollback(self, name: str, alias: str) -> AliasMove:
        """Move `name@alias` back to where it was before its last move that was not itself
        undone: rolling back twice goes two moves back, as an undo does."""
        with self.database.writing() as db:
            undone: list[sqlite3.Row] = []
            for row in db.execute("SELECT * FROM alias_moves WHERE name = ? AND alias = ? "
                                  "ORDER BY id", (name, alias)):
                if row["action"] == ROLLBACK:
                    if undone:
                        undone.pop()
                else:
                    undone.append(row)
            if not undone:
                raise VersionError(f"'{name}@{alias}' has never been moved: there is nothing to "
                                   "roll back to.",
                                   f"Point it with: slipway alias {name}@{alias} VERSION.")
            target = undone[-1]["from_version"]
            if target is None:
                raise VersionError(
                    f"'{name}@{alias}' has nothing earlier to roll back to: it was first set to "
                    f"version {undone[-1]['to_version']}.",
                    f"Remove it (slipway alias {name}@{alias} --remove) or point it elsewhere.")
            if db.execute("SELECT 1 FROM versions WHERE name = ? AND version = ?",
                          (name, target)).fetchone() is None:
                raise VersionError(f"'{name}@{alias}' would roll back to {name}:{target}, which "
                                   "was deleted.",
                                   f"Point it at a version that exists: slipway alias "
                                   f"{name}@{alias} VERSION.")
            return self._move(db, name, alias, self._pointing(db, name, alias), target, ROLLBACK)

    # --- tags, notes, delete, export -------------------------------------------------------------

    def _id_of(self, db: sqlite3.Connection, version: Version) -> int:
        row = db.execute("SELECT id FROM versions WHERE name = ? AND version = ?",
                         (version.name, version.version)).fetchone()
        if row is None:
            raise VersionError(f"{version.reference} was deleted a moment ago.",
                               f"slipway versions {version.name} lists what remains.")
        return row["id"]

    def set_tag(self, version: Version, key: str, value: str = "") -> Version:
        if not key.strip():
            raise VersionError("A tag needs a name.", "Write it as key=value, or key alone.")
        with self.database.writing() as db:
            db.execute("INSERT INTO tags (version_id, key, value) VALUES (?, ?, ?) "
                       "ON CONFLICT (version_id, key) DO UPDATE SET value = excluded.value",
                       (self._id_of(db, version), key.strip(), value))
        return self.get(version.name, version.version)

    def remove_tag(self, version: Version, key: str) -> Version:
        with self.database.writing() as db:
            db.execute("DELETE FROM tags WHERE version_id = ? AND key = ?",
                       (self._id_of(db, version), key))
        return self.get(version.name, version.version)

    def set_notes(self, version: Version, notes: str) -> Version:
        with self.database.writing() as db:
            db.execute("UPDATE versions SET notes = ? WHERE id = ?",
                       (notes, self._id_of(db, version)))
        return self.get(version.name, version.version)

    def delete(self, version: Version, force: bool = False) -> list[AliasMove]:
        """Remove a version and its file. Refused while an alias names it, unless `force`, which
        removes those aliases too (each removal is kept in the alias history). Returns them."""
        removed: list[AliasMove] = []
        with self.database.writing() as db:
            identity = self._id_of(db, version)
            pointing = [row["alias"] for row in db.execute(
                "SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias",
                (version.name, version.version))]
            if pointing and not force:
                names = ", ".join(f"{version.name}@{alias}" for alias in pointing)
                raise VersionError(
                    f"{version.reference} is what {names} names: it is not deleted.",
                    f"Move the alias first (slipway alias {version.name}@{pointing[0]} VERSION), "
                    "or delete it anyway with --force, which removes the alias too.")
            for alias in pointing:
                removed.append(self._move(db, version.name, alias, version.version, None,
                                          REMOVE))
            db.execute("DELETE FROM versions WHERE id = ?", (identity,))
            self.objects.remove(version.sha256)  # under the lock: no writer is storing it now
        return removed

    def export(self, version: Version, destination: str | Path,
               progress: Progress | None = None) -> Path:
        """Copy a version's file (or folder) to `destination`, checked against its sha256 first."""
        source = self.model_path(version, progress)
        destination = Path(destination)
        if source.is_file():
            return copy_file(source, destination)
        with pending_file(destination) as pending:
            shutil.copytree(source, pending.path)
            return pending.commit()

    def summary(self) -> str:
        versions = self.versions()
        models = len({v.name for v in versions})
        return (f"{len(versions)} version{'s' * (len(versions) != 1)} of {models} "
                f"model{'s' * (models != 1)}, {human_size(sum(v.size for v in versions))}")


def record_loaded(artifact: ModelArtifact, progress: Progress | None = None,
                  registry: Registry | None = None) -> Recorded:
    """Record a model as it was opened (for the faces: the Model page, `slipway inspect`)."""
    return (registry or Registry()).record(artifact, progress=progress)


def record_made(source: ModelArtifact, result: ModelArtifact, report: BaseModel,
                progress: Progress | None = None, registry: Registry | None = None) -> Recorded:
    """Record a conversion's or optimization's output as the next version of its source."""
    return (registry or Registry()).record_step(source, result, report, progress=progress)
