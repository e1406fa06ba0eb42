"""An export as documents: every file of the output folder, built as data, written as YAML.

`build_export(options, model)` lays the pieces of compose.py, kubernetes.py, kustomize.py and
kserve.py out as the folder a person gets; nothing touches the disk until `write.py` does, after
validation. YAML is written by PyYAML from the data (no text templates), under a comment line
naming the model it serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from studio.core.export.compose import compose_file
from studio.core.export.facts import ServedModel
from studio.core.export.kserve import inference_service
from studio.core.export.kubernetes import kubernetes_objects, service_account
from studio.core.export.kustomize import BASE, KUSTOMIZATION, kustomizations
from studio.core.export.options import ExportOptions

COMPOSE_FILE = "compose.yaml"
KSERVE = "kserve"


@dataclass(frozen=True)
class Document:
    """One file of the export: its path in the output folder and the object it holds."""

    path: str
    content: dict[str, Any]
    header: str = ""

    @property
    def kind(self) -> str:
        """compose, kustomization or the Kubernetes kind (Deployment, Service...)."""
        if self.path == COMPOSE_FILE:
            return "compose"
        return str(self.content.get("kind", ""))

    @property
    def is_kubernetes_object(self) -> bool:
        return self.kind not in ("compose", "Kustomization")

    def text(self) -> str:
        return (f"# {self.header}\n" if self.header else "") + to_yaml(self.content)


class _PlainDumper(yaml.SafeDumper):
    """Writes a value shared by two places twice, never as an anchor and alias: people read and
    patch these files, and some tools treat aliases as a risk."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(content: dict[str, Any]) -> str:
    return yaml.dump(content, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False,
                     width=4096, allow_unicode=True)


@dataclass(frozen=True)
class Export:
    options: ExportOptions
    model: ServedModel
    documents: tuple[Document, ...]

    def document(self, path: str) -> Document:
        return next(d for d in self.documents if d.path == path)

    @property
    def paths(self) -> list[str]:
        return [d.path for d in self.documents]


def build_export(options: ExportOptions, model: ServedModel) -> Export:
    header = (f"{model.name} {model.version} (sha256 {model.sha256[:12]}), made by Slipway Studio "
              f"for Kubernetes {options.kubernetes_version}")
    documents = [Document(COMPOSE_FILE, compose_file(options, model), header)]
    objects = kubernetes_objects(options, model)
    documents += [Document(f"{BASE}/{name}", content, header) for name, content in objects.items()]
    documents += [Document(path, content, header)
                  for path, content in kustomizations(options, list(objects)).items()]
    if options.kserve:
        documents += [
            Document(f"{KSERVE}/serviceaccount.yaml", service_account(options, model), header),
            Document(f"{KSERVE}/inferenceservice.yaml", inference_service(options, model), header),
            Document(f"{KSERVE}/kustomization.yaml", {
                **KUSTOMIZATION, "resources": ["serviceaccount.yaml", "inferenceservice.yaml"]},
                header)]
    return Export(options, model, tuple(documents))
