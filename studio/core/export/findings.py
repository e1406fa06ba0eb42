"""What a check says about a folder of manifests: findings, the tools that ran, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    """One failed check: which tool and check, on which file and object, and why."""

    tool: str
    """kubernetes-validate, rules, checkov, kustomize or compose."""
    check: str
    """The check's own name: CKV_K8S_21, pod-probes, schema, render..."""
    message: str
    document: str
    """The file, relative to the folder; a rendered overlay is its folder plus " (rendered)"."""
    resource: str = ""
    """Kind/name of the object, when the finding is about one."""

    def line(self) -> str:
        where = f"{self.document}" + (f" {self.resource}" if self.resource else "")
        return f"{where}: [{self.tool} {self.check}] {self.message}"


@dataclass(frozen=True)
class Skip:
    """A Checkov check a manifest skips with Checkov's own annotation, and the reason it gives."""

    check: str
    reason: str
    document: str
    resource: str = ""


@dataclass(frozen=True)
class ToolRun:
    """A tool the check used, or could not: `ran` False says why in `detail`."""

    tool: str
    ran: bool
    detail: str


@dataclass
class Report:
    documents: list[str]
    findings: list[Finding] = field(default_factory=list)
    tools: list[ToolRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What a person should know that is no failure: a custom resource with no schema here, the
    image's facts taken from the model file."""
    skips: list[Skip] = field(default_factory=list)

    def skip_summary(self) -> list[str]:
        """One line per skipped Checkov check: how many objects skip it, and why."""
        counts: dict[tuple[str, str], int] = {}
        for skip in self.skips:
            counts[(skip.check, skip.reason)] = counts.get((skip.check, skip.reason), 0) + 1
        return [f"Checkov {check} skipped on {count} object{'s' if count != 1 else ''}: {reason}"
                for (check, reason), count in sorted(counts.items())]

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def missing_tools(self) -> list[ToolRun]:
        return [run for run in self.tools if not run.ran]

    def for_document(self, path: str) -> list[Finding]:
        return [f for f in self.findings
                if f.document == path or f.document.startswith(path.rstrip("/") + " ")]

    def to_json(self) -> dict:
        return {"passed": self.passed, "documents": self.documents,
                "findings": [f.__dict__ for f in self.findings],
                "tools": [t.__dict__ for t in self.tools], "notes": self.notes,
                "skipped_checks": [s.__dict__ for s in self.skips]}
