"""Every check on a folder of manifests, the studio's own export or one a person has edited.

    YAML            every file parses
    schema          kubernetes-validate, strict, for the chosen Kubernetes version; KServe's
                    predictor as the Pod it becomes (its CRD has no schema there)
    rules           kube-score's and kube-linter's default checks, and the Compose hardening
                    (rules.py), on each set of objects applied together
    kustomize       `kubectl kustomize` renders every kustomization; a rendered overlay is then
                    checked like the base (schema, rules, Checkov)
    compose         `docker-compose config` accepts each Compose file
    checkov         its Kubernetes checks, run once over the whole folder (checkov.py)

`check_folder` answers a `Report`; a missing tool is listed there and the other checks go on.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from studio.core.export.checkov import CheckovFailed, run_checkov
from studio.core.export.findings import Finding, Report, Skip, ToolRun
from studio.core.export.kserve import predictor_as_pod
from studio.core.export.rules import Objects, check_compose, check_kubernetes
from studio.core.export.tools import (
    compose_config,
    find_checkov,
    find_compose,
    find_kustomize,
    render,
)
from studio.core.tasks import Progress, quiet

COMPOSE_NAMES = {"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"}
KUSTOMIZATION_NAMES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}
RENDERED = " (rendered)"
PREDICTOR = " (predictor pod)"


def schema_findings(document: str, obj: dict[str, Any], version: str) -> tuple[list[Finding],
                                                                                list[str]]:
    """kubernetes-validate in strict mode: (findings, notes for objects it has no schema for)."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '?')}"
    if obj.get("kind") == "InferenceService" and obj.get("apiVersion", "").startswith(
            "serving.kserve.io/"):
        return schema_findings(document + PREDICTOR, predictor_as_pod(obj), version)
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "(top)"
        return [Finding("kubernetes-validate", "schema", f"{where}: {exc.message}", document,
                        name)], []
    except SchemaNotFoundError:
        return [], [f"kubernetes-validate has no schema for {obj.get('apiVersion')} "
                    f"{obj.get('kind')} (a custom resource): {name} is checked by the rules and "
                    "Checkov only"]
    return [], []


def _load(path: Path, document: str, findings: list[Finding]) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        findings.append(Finding("yaml", "parse", str(exc).splitlines()[0], document))
        return []


class _FolderCheck:
    def __init__(self, folder: Path, version: str, progress: Progress):
        self.folder = folder
        self.version = version
        self.progress = progress
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.skips: list[Skip] = []
        self.tools: list[ToolRun] = []
        self.objects: dict[str, Objects] = {}
        """Directory -> the objects its files hold (a set applied together)."""
        self.compose: dict[str, Any] = {}
        self.kustomizations: list[str] = []
        self.documents: list[str] = []
        self.workspace_files: dict[str, str] = {}
        """Checkov's path -> text, for the folder Checkov scans."""

    def read(self) -> None:
        for path in sorted(p for p in self.folder.rglob("*") if p.suffix in (".yaml", ".yml")
                           and not any(part.startswith(".") for part in
                                       p.relative_to(self.folder).parts)):
            document = path.relative_to(self.folder).as_posix()
            self.documents.append(document)
            contents = _load(path, document, self.findings)
            if path.name in COMPOSE_NAMES:
                self.compose[document] = contents[0] if contents else {}
                continue
            if path.name in KUSTOMIZATION_NAMES or any(c.get("kind") == "Kustomization"
                                                       for c in contents):
                self.kustomizations.append(document)
                continue
            objects = [c for c in contents if isinstance(c, dict) and c.get("kind")]
            if objects:
                directory = path.parent.relative_to(self.folder).as_posix()
                self.objects.setdefault(directory, []).extend((document, o) for o in objects)
                self.workspace_files[document] = path.read_text(encoding="utf-8")

    def check_set(self, objects: Objects) -> None:
        for document, obj in objects:
            findings, notes = schema_findings(document, obj, self.version)
            self.findings += findings
            self.notes += notes
            if obj.get("kind") == "InferenceService":
                self.workspace_files[document + PREDICTOR] = yaml.safe_dump(predictor_as_pod(obj))
        self.findings += check_kubernetes(
            [(d + PREDICTOR if o.get("kind") == "InferenceService" else d,
              predictor_as_pod(o) if o.get("kind") == "InferenceService" else o)
             for d, o in objects])

    def render_kustomizations(self) -> None:
        tool = find_kustomize()
        self.tools.append(tool.run)
        if not tool.command:
            return
        for document in self.kustomizations:
            directory = Path(document).parent
            result = render(tool, self.folder / directory, self.progress)
            if result.returncode != 0:
                self.findings.append(Finding("kustomize", "render", result.stderr.strip()
                                             .splitlines()[-1] if result.stderr.strip()
                                             else "kustomize failed", document))
                continue
            if directory.as_posix() in self.objects:
                continue  # a base: its own files are checked as they are
            rendered = [o for o in yaml.safe_load_all(result.stdout) if o]
            self.check_set([(document + RENDERED, o) for o in rendered])
            self.workspace_files[document + RENDERED] = result.stdout

    def check_compose(self) -> None:
        if not self.compose:
            return
        tool = find_compose()
        self.tools.append(tool.run)
        for document, content in self.compose.items():
            self.findings += check_compose(document, content)
            if tool.command:
                result = compose_config(tool, self.folder / document, self.progress)
                if result.returncode != 0:
                    message = (result.stderr or result.stdout).strip() or "Compose refused it"
                    self.findings.append(Finding("compose", "config", message, document))

    def run_checkov(self) -> None:
        tool = find_checkov()
        self.tools.append(tool.run)
        if not tool.command or not self.workspace_files:
            return
        with tempfile.TemporaryDirectory(prefix="slipway-checkov-") as scratch:
            names = {}
            for index, (document, text) in enumerate(sorted(self.workspace_files.items())):
                # Flat, plain names: Checkov reads only .yaml files, and a name with spaces or
                # brackets would have to be mapped back anyway.
                name = f"/{index:03d}.yaml"
                names[name] = document
                (Path(scratch) / name.lstrip("/")).write_text(text, encoding="utf-8")
            try:
                findings, skips = run_checkov(tool, Path(scratch), lambda p: names.get(p, p),
                                              self.progress)
            except CheckovFailed as exc:
                self.findings.append(Finding("checkov", "run", f"Checkov gave no answer: {exc}",
                                             "."))
                return
        self.findings += findings
        self.skips += skips


def check_folder(folder: str | Path, kubernetes_version: str,
                 progress: Progress | None = None) -> Report:
    """Every check on the manifests under `folder` (see the module's docstring)."""
    progress = progress or quiet()
    check = _FolderCheck(Path(folder), kubernetes_version, progress)
    progress.update(0.05, "Reading the manifests")
    check.read()
    progress.update(0.1, f"Validating against Kubernetes {kubernetes_version}")
    check.tools.append(ToolRun("kubernetes-validate", True,
                               f"strict schemas of Kubernetes {kubernetes_version}"))
    for objects in check.objects.values():
        check.check_set(objects)
    progress.update(0.25, "Rendering the kustomizations")
    check.render_kustomizations()
    progress.update(0.4, "Checking compose.yaml with Compose")
    check.check_compose()
    progress.update(0.5, "Running Checkov")
    check.run_checkov()
    progress.update(1.0, "Checked")
    return Report(check.documents, check.findings, check.tools, list(dict.fromkeys(check.notes)),
                  check.skips)


def check_documents(files: dict[str, str], kubernetes_version: str,
                    progress: Progress | None = None) -> Report:
    """The same checks on files not yet written anywhere (path -> text): they are laid out in a
    scratch folder that is gone afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="slipway-export-"))
    try:
        for path, text in files.items():
            (scratch / path).parent.mkdir(parents=True, exist_ok=True)
            (scratch / path).write_text(text, encoding="utf-8")
        return check_folder(scratch, kubernetes_version, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
