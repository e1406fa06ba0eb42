"""The outside tools the checks run, found where they are and run as real commands.

    kubectl kustomize DIR          renders a kustomization (a standalone kustomize if no kubectl)
    docker-compose config          or `docker compose config`: what Compose itself makes of a file
    checkov                        its command line, beside the studio's Python or on PATH

Each tool is looked up once per check; a missing or too old one is a `ToolRun` that says so, and
the checks go on without it. Commands run in a child process the caller can cancel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from studio.core.export.findings import ToolRun
from studio.core.tasks import Progress, quiet

TOOL_TIMEOUT_S = 300
OLDEST_KUSTOMIZE = (4, 0)
"""kubectl 1.20 and older embed kustomize 2, which cannot read `resources: [../../base]`."""
COMPOSE_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Tool:
    """A command line ready to run, or why there is none (`command` empty)."""

    name: str
    command: tuple[str, ...]
    detail: str

    @property
    def run(self) -> ToolRun:
        return ToolRun(self.name, bool(self.command), self.detail)


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_command(command: list[str], *, progress: Progress | None = None,
                env: dict[str, str] | None = None, timeout: float = TOOL_TIMEOUT_S,
                cwd: Path | None = None) -> Result:
    """Run a command to its end; a cancel or the timeout kills it."""
    progress = progress or quiet()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, cwd=cwd, stdin=subprocess.DEVNULL) as child:
        waited = 0.0
        while True:
            try:
                stdout, stderr = child.communicate(timeout=0.2)
                return Result(child.returncode, stdout, stderr)
            except subprocess.TimeoutExpired:
                waited += 0.2
                if progress.cancelled or waited > timeout:
                    child.kill()
                    child.communicate()
                    progress.check()
                    return Result(-9, "", f"{command[0]} did not finish in {timeout:.0f} s")


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def find_kustomize() -> Tool:
    kubectl = shutil.which("kubectl")
    if kubectl:
        result = run_command([kubectl, "version", "--client", "-o", "json"], timeout=30)
        try:
            version = json.loads(result.stdout).get("kustomizeVersion", "")
        except json.JSONDecodeError:
            version = ""
        if version and _version_tuple(version) >= OLDEST_KUSTOMIZE:
            return Tool("kustomize", (kubectl, "kustomize"), f"kubectl kustomize {version}")
    standalone = shutil.which("kustomize")
    if standalone:
        return Tool("kustomize", (standalone, "build"), "kustomize build")
    if kubectl:
        return Tool("kustomize", (), "kubectl's built-in kustomize is too old to render these "
                                     "overlays: install kubectl 1.21 or newer")
    return Tool("kustomize", (), "kubectl is not installed, so the base and overlays were not "
                                 "rendered: install kubectl (1.21 or newer)")


def find_compose() -> Tool:
    standalone = shutil.which("docker-compose")
    if standalone:
        return Tool("compose", (standalone,), "docker-compose config")
    docker = shutil.which("docker")
    if docker and run_command([docker, "compose", "version"], timeout=30).returncode == 0:
        return Tool("compose", (docker, "compose"), "docker compose config")
    return Tool("compose", (), "neither docker-compose nor the docker compose plugin is "
                               "installed, so compose.yaml was not checked by Compose")


def find_checkov() -> Tool:
    beside = Path(sys.executable).parent / "checkov"
    found = str(beside) if beside.exists() else shutil.which("checkov")
    if found:
        return Tool("checkov", (found,), "checkov")
    return Tool("checkov", (), "Checkov is not installed, so its checks did not run: "
                               "pip install 'slipway-studio[export-checks]'")


def render(tool: Tool, folder: Path, progress: Progress | None = None) -> Result:
    """What `kubectl kustomize folder` prints."""
    return run_command([*tool.command, str(folder)], progress=progress)


def compose_config(tool: Tool, compose_file: Path, progress: Progress | None = None) -> Result:
    """`docker-compose config -q` on the file. The variables it requires (the API key) are given
    a stand-in value for the check only: Compose refuses an unset `${VAR:?}` by design."""
    text = compose_file.read_text(encoding="utf-8")
    env = dict(os.environ)
    for variable in COMPOSE_VARIABLE.findall(text):
        env.setdefault(variable, "stand-in-for-the-check")
    return run_command([*tool.command, "-f", str(compose_file), "--project-directory",
                        str(compose_file.parent), "config", "-q"], progress=progress, env=env)
