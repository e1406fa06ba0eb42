"""Checkov's Kubernetes checks on a folder, run once: it takes seconds just to start.

Checkov runs as its own command (`checkov -d FOLDER --framework kubernetes --skip-download -o
json`), offline, and its JSON answer becomes findings (failed checks) and notes (checks a manifest
skips with Checkov's annotation, and the reason it gives).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from studio.core.export.findings import Finding, Skip
from studio.core.export.tools import Tool, run_command
from studio.core.tasks import Progress


class CheckovFailed(Exception):
    """Checkov ran but gave no answer to read; the message says what it printed."""


def run_checkov(tool: Tool, folder: Path, document_of: Callable[[str], str],
                progress: Progress | None = None) -> tuple[list[Finding], list[Skip]]:
    """(failed checks, checks the manifests skip) for every Kubernetes file under `folder`.
    `document_of` turns Checkov's path (relative to the folder, with a leading '/') into the
    document a person knows."""
    env = {**os.environ, "LOG_LEVEL": "ERROR", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = run_command([*tool.command, "-d", str(folder), "--framework", "kubernetes",
                          "--skip-download", "-o", "json", "--compact"], progress=progress,
                         env=env)
    try:
        answer = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise CheckovFailed((result.stderr or result.stdout).strip()[-2000:]
                            or f"checkov exited with status {result.returncode}") from None
    reports = answer if isinstance(answer, list) else [answer]
    findings, skips = [], []
    for report in reports:
        results = report.get("results") or {}
        for check in results.get("failed_checks") or []:
            findings.append(Finding("checkov", check["check_id"], check["check_name"],
                                    document_of(check["file_path"]),
                                    _resource(check.get("resource", ""))))
        for check in results.get("skipped_checks") or []:
            reason = (check.get("check_result") or {}).get("suppress_comment") or ""
            skips.append(Skip(check["check_id"], reason, document_of(check["file_path"]),
                              _resource(check.get("resource", ""))))
    return findings, skips


def _resource(checkov_resource: str) -> str:
    """Checkov's "Deployment.models.wine" as "Deployment/wine"."""
    parts = checkov_resource.split(".")
    return f"{parts[0]}/{parts[-1]}" if len(parts) >= 2 else checkov_resource
