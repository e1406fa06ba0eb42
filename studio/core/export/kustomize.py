"""The kustomize layout, as plain data: a base with every object, and an overlay per environment.

    kubernetes/base/kustomization.yaml            lists the objects of kubernetes.py
    kubernetes/overlays/staging/kustomization.yaml     NAMESPACE-staging, one replica (without
                                                       an autoscaler or a canary)
    kubernetes/overlays/production/kustomization.yaml  NAMESPACE, the base as it is
    kserve/kustomization.yaml                     the ServiceAccount and the InferenceService

Overlays change only what differs between environments and keep no patch files beside them: a
patch file is a partial object that linters would read as a broken one.
"""

from __future__ import annotations

from studio.core.export.kubernetes import Manifest
from studio.core.export.options import ExportOptions

KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
BASE = "kubernetes/base"
OVERLAYS = "kubernetes/overlays"
ENVIRONMENTS = ("staging", "production")


def base(files: list[str]) -> Manifest:
    return {**KUSTOMIZATION, "resources": list(files)}


def overlay(options: ExportOptions, environment: str) -> Manifest:
    result: Manifest = {**KUSTOMIZATION, "resources": ["../../base"]}
    if environment == "staging":
        result["namespace"] = f"{options.namespace}-staging"[:63]
        if not options.autoscaling and not options.canary_image and options.replicas > 1:
            result["replicas"] = [{"name": options.name, "count": 1}]
    else:
        result["namespace"] = options.namespace
    return result


def kustomizations(options: ExportOptions, base_files: list[str]) -> dict[str, Manifest]:
    """Path in the output folder -> kustomization, for the base and each overlay."""
    result = {f"{BASE}/kustomization.yaml": base(base_files)}
    for environment in ENVIRONMENTS:
        result[f"{OVERLAYS}/{environment}/kustomization.yaml"] = overlay(options, environment)
    return result
