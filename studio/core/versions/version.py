"""What the registry hands out: a Version (a model's numbered content, with its lineage and
reports, and how a person reads it), an alias's moves, a recording's outcome and a lineage.

Plain values, read from the database by registry.py; nothing here touches the database or the
store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.core.units import human_size

if TYPE_CHECKING:  # loading the model stack costs a listing half a second it does not need
    from studio.core.model.schema import ModelSchema

LOADED, CONVERTED, OPTIMIZED = "loaded", "converted", "optimized"
ROLLBACK, REMOVE = "rollback", "remove"


def when_text(timestamp: float) -> str:
    """A moment as people read it: local time to the second."""
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Version:
    name: str
    version: int
    sha256: str
    format: str
    size: int
    file_name: str
    created: float
    created_by: str
    source_path: str
    """Where it was loaded or written when it was recorded."""
    step: str
    """loaded, converted or optimized."""
    parameters: dict[str, Any]
    """The step's parameters: opset, optimization, tolerance, reference data."""
    parent: str | None
    """The reference of the version it was made from (`name:N`), for converted and optimized."""
    schema_json: str = field(repr=False)
    parity: dict[str, Any] | None
    report: dict[str, Any] | None
    """The ConversionReport or OptimizationReport, as JSON data."""
    notes: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    path: Path = Path()
    """Where the store keeps it."""

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def schema(self) -> ModelSchema:
        from studio.core.model.schema import ModelSchema

        return ModelSchema.from_json(self.schema_json)

    @property
    def parity_verdict(self) -> str:
        """pass, FAIL, or - when nothing was compared (a model as it was loaded)."""
        if self.parity is None:
            return "-"
        return "pass" if self.parity.get("passed") else "FAIL"

    @property
    def origin(self) -> str:
        """How it came to be, in a few words: `loaded`, `converted from churn:1 (opset 17)`,
        `int8 of churn:2`."""
        if self.step == CONVERTED:
            opset = self.parameters.get("opset")
            return f"converted from {self.parent}" + (f" (opset {opset})" if opset else "")
        if self.step == OPTIMIZED:
            return f"{self.parameters.get('optimization', 'optimized')} of {self.parent}"
        return "loaded"

    def facts(self) -> list[tuple[str, str]]:
        """What a person reads about the version, as (label, text) rows: the CLI prints them, the
        Versions page lists them."""
        rows = [("format", f"{self.format}, {human_size(self.size)}"), ("schema", self._shape()),
                ("sha256", self.sha256),
                ("created", f"{when_text(self.created)} by {self.created_by}"),
                ("from", self.origin), ("source", self.source_path), ("stored", str(self.path))]
        for key, value in self.parameters.items():
            if key == "tolerance" and isinstance(value, dict):
                value = (f"atol {value['atol']:g}, rtol {value['rtol']:g}, labels kept ≥ "
                         f"{value['min_label_agreement']:.0%}")
            if value is not None:
                rows.append((key, str(value)))
        if self.parity is not None:
            rows.append(("parity", self._parity_text()))
        rows += self._report_rows()
        if self.tags:
            rows.append(("tags", ", ".join(f"{k}={v}" if v else k for k, v in self.tags.items())))
        if self.notes:
            rows.append(("notes", self.notes))
        return rows

    def _shape(self) -> str:
        """The schema in a line, read from its JSON (no model library is loaded for it)."""
        schema = json.loads(self.schema_json)
        features = schema.get("features") or []
        inputs = (f"{len(features)} feature{'s' * (len(features) != 1)}" if features else
                  f"{len(schema.get('inputs', []))} input tensor"
                  f"{'s' * (len(schema.get('inputs', [])) != 1)}")
        outputs = ", ".join(o.get("name", "?") for o in schema.get("outputs", [])) or "-"
        return f"{schema.get('task', '?')}: {inputs} → {outputs}"

    def _parity_text(self) -> str:
        parity = self.parity or {}
        figures = []
        for output in parity.get("outputs", []):
            if output.get("label_agreement") is not None:
                figures.append(f"{output['name']} {output['label_agreement']:.2%} agree")
            elif output.get("max_abs_diff") is not None:
                figures.append(f"{output['name']} within {output['max_abs_diff']:.2e}")
        rows = f" on {parity['rows']} rows" if parity.get("rows") else ""
        return f"{self.parity_verdict}{rows}" + (f" ({'; '.join(figures)})" if figures else "")

    def _report_rows(self) -> list[tuple[str, str]]:
        """The size and speed the conversion or optimization report measured, before → after."""
        report = self.report or {}
        rows = []
        before, after = report.get("size_before"), report.get("size_after")
        if before and after:
            rows.append(("size", (f"{human_size(before)} → {human_size(after)} "
                                  f"({after / before:.0%})")))
        timed = report.get("latency_before"), report.get("latency_after")
        if all(timed):
            first, then = timed
            rows.append(("latency", (f"one row {first['single_row_ms']:.3g} → "
                                     f"{then['single_row_ms']:.3g} ms, {then['batch_rows']} "
                                     f"rows {first['batch_ms']:.3g} → {then['batch_ms']:.3g} ms")))
        return rows

    def to_json(self, schema: bool = True) -> dict[str, Any]:
        """Everything about the version as JSON data (its schema too, unless `schema` is False:
        a listing of many versions leaves it out)."""
        data = {"name": self.name, "version": self.version, "reference": self.reference,
                "aliases": list(self.aliases), "format": self.format, "size": self.size,
                "sha256": self.sha256, "file_name": self.file_name, "path": str(self.path),
                "created": datetime.fromtimestamp(self.created).astimezone().isoformat(),
                "created_by": self.created_by, "source_path": self.source_path,
                "step": self.step, "parent": self.parent, "parameters": self.parameters,
                "parity": self.parity, "report": self.report, "tags": self.tags,
                "notes": self.notes}
        if schema:
            data["schema"] = json.loads(self.schema_json)
        return data


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias: `from_version` None when it was first set, `to_version` None when it
    was removed."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    action: str
    user: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "alias": self.alias, "from_version": self.from_version,
                "to_version": self.to_version, "action": self.action, "user": self.user,
                "at": datetime.fromtimestamp(self.at).astimezone().isoformat()}

    def text(self) -> str:
        before = "-" if self.from_version is None else str(self.from_version)
        after = "-" if self.to_version is None else str(self.to_version)
        if self.from_version == self.to_version:
            return f"{self.name}@{self.alias} already names {after}"
        verb = {ROLLBACK: "rolled back", REMOVE: "removed"}.get(self.action, "moved")
        return f"{self.name}@{self.alias} {verb}: {before} → {after}"


@dataclass(frozen=True)
class Recorded:
    version: Version
    created: bool
    """False when the same content was already a version."""


@dataclass(frozen=True)
class Lineage:
    """Where a version comes from (oldest first) and what was made from it (depth 1 = made from
    it directly). A deleted ancestor is its reference alone."""

    ancestors: list[Version | str]
    version: Version
    descendants: list[tuple[int, Version]]
