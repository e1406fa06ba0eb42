"""The Kubernetes objects, as plain data: what `kubectl apply -k` creates for one served model.

    ServiceAccount   its own, with no API token mounted (the server never calls the API)
    Deployment       pinned image, sized requests and limits, three different probes, the
                     restricted Pod Security profile, a preStop pause before the server's own drain
    Service          ClusterIP on a named port
    HPA              autoscaling/v2 on CPU (the Deployment then has no `replicas`)
    PDB              policy/v1, one pod at a time, unhealthy pods evictable
    NetworkPolicy    ingress to the serving port only, egress to the cluster's DNS only
    Ingress          optional, TLS on the host asked for
    ServiceMonitor   optional, for the Prometheus Operator
    canary           a second Deployment behind the same Service; replicas set the share

Every pod runs the image as `slipway build` made it: user 10001, port 8000, /ready and /health.
Where a Checkov check cannot apply, the object carries Checkov's own skip annotation with the
reason (CHECKOV_SKIPS; docs/export.md lists each one).
"""

from __future__ import annotations

import math
from typing import Any

from studio.core.export.facts import ServedModel
from studio.core.export.options import ExportOptions
from studio.core.serve.bundle import STOP_MARGIN_S

Manifest = dict[str, Any]

RUN_AS = 10001
"""The user and group the image runs as (`USER 10001:10001` in its Dockerfile)."""
PORT_NAME = "http"
PRESTOP_PAUSE_S = 5
"""Seconds a terminating pod keeps serving before the server sees SIGTERM: the time kube-proxy
and ingress controllers take to drop it from their endpoints once it is marked terminating."""
READINESS_PERIOD_S = 5
LIVENESS_PERIOD_S = 10
TMP_SIZE = "64Mi"
"""The emptyDir at /tmp, the one place the server writes (the same size as Compose's tmpfs)."""
API_KEY_SECRET_KEY = "api-key"
TRACK_LABEL = "track"
CANARY_SUFFIX = "-canary"

CHECKOV_SKIPS = {
    "CKV_K8S_43": "the image is referenced by the tag slipway build gave it; its digest exists "
                  "only once it is pushed (kustomize edit set image NAME@sha256:... pins it)",
    "CKV_K8S_35": "the server reads its API key from the environment variable serving.json "
                  "names, so the Secret reaches it through env valueFrom, never a file",
}
"""Checkov checks that cannot pass for a reason outside the manifests: check id -> why."""


def labels(options: ExportOptions, model: ServedModel, track: str | None = None) -> dict[str, str]:
    """The recommended app.kubernetes.io labels, and the track of a canary pair."""
    result = {**selector_labels(options, track),
              "app.kubernetes.io/version": model.version.replace("+", "-")[:63],
              "app.kubernetes.io/component": "model-server",
              "app.kubernetes.io/part-of": options.name}
    return result


def selector_labels(options: ExportOptions, track: str | None = None) -> dict[str, str]:
    selector = {"app.kubernetes.io/name": options.name, "app.kubernetes.io/instance": options.name}
    if track:
        selector[TRACK_LABEL] = track
    return selector


def model_annotations(model: ServedModel) -> dict[str, str]:
    return {"io.slipway.model.name": model.name, "io.slipway.model.version": model.version,
            "io.slipway.model.sha256": model.sha256}


def checkov_skips(*check_ids: str) -> dict[str, str]:
    """Checkov's skip annotations for these checks, each with its one-line reason."""
    return {f"checkov.io/skip{i}": f"{check}={CHECKOV_SKIPS[check]}"
            for i, check in enumerate(check_ids, start=1)}


def metadata(options: ExportOptions, model: ServedModel, name: str | None = None,
             track: str | None = None, annotations: dict[str, str] | None = None) -> Manifest:
    result: Manifest = {"name": name or options.name, "namespace": options.namespace,
                        "labels": labels(options, model, track)}
    if annotations:
        result["annotations"] = annotations
    return result


def grace_period_s(model: ServedModel) -> int:
    """What Kubernetes waits between SIGTERM's hook and SIGKILL: the preStop pause, the server's
    own ready pause and drain (serving.json's shutdown), and a margin for the exit itself."""
    return math.ceil(PRESTOP_PAUSE_S + model.ready_pause_s + model.drain_timeout_s + STOP_MARGIN_S)


def _probe(path: str, period: int, failures: int, port: str = PORT_NAME) -> Manifest:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period,
            "timeoutSeconds": 3, "failureThreshold": failures}


def container_security() -> Manifest:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
            "allowPrivilegeEscalation": False, "privileged": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def environment(options: ExportOptions, model: ServedModel,
                extra: dict[str, str] | None = None) -> list[Manifest]:
    env = [{"name": key, "value": value} for key, value in
           sorted({**options.environment, **(extra or {})}.items())]
    key_variable = options.api_key_env or model.api_key_env
    if key_variable:
        env.append({"name": key_variable, "valueFrom": {"secretKeyRef": {
            "name": options.secret_name, "key": API_KEY_SECRET_KEY}}})
    return env


def container(options: ExportOptions, model: ServedModel, image: str, name: str = "server",
              port_name: str = PORT_NAME, extra_env: dict[str, str] | None = None) -> Manifest:
    """The serving container: the same probes, resources and hardening wherever it runs."""
    resources = {"requests": {"cpu": options.cpu, "memory": options.memory,
                              "ephemeral-storage": options.ephemeral_storage},
                 "limits": {"cpu": options.cpu_limit, "memory": options.memory_limit,
                            "ephemeral-storage": options.ephemeral_storage_limit}}
    result: Manifest = {
        "name": name, "image": image, "imagePullPolicy": "Always",
        "ports": [{"name": port_name, "containerPort": model.port, "protocol": "TCP"}],
        "resources": resources,
        # /ready answers 200 once the model is loaded and warmed up: the startup probe gives a
        # big model `startup_seconds` to get there before liveness may restart it.
        "startupProbe": _probe("/ready", READINESS_PERIOD_S,
                               math.ceil(options.startup_seconds / READINESS_PERIOD_S), port_name),
        "readinessProbe": _probe("/ready", READINESS_PERIOD_S, 2, port_name),
        "livenessProbe": _probe("/health", LIVENESS_PERIOD_S, 3, port_name),
        # The image has Python but no shell tools it does not need; this is its `sleep`.
        "lifecycle": {"preStop": {"exec": {"command": [
            "/opt/venv/bin/python", "-c", f"import time; time.sleep({PRESTOP_PAUSE_S})"]}}},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    env = environment(options, model, extra_env)
    if env:
        result["env"] = env
    return result


def pod_spec(options: ExportOptions, model: ServedModel, image: str, *, spread: bool,
             container_name: str = "server",
             port_name: str = PORT_NAME, extra_env: dict[str, str] | None = None) -> Manifest:
    spec: Manifest = {
        "serviceAccountName": options.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
                            "fsGroup": RUN_AS, "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": grace_period_s(model),
        "containers": [container(options, model, image, container_name, port_name, extra_env)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}}],
    }
    if spread:
        # Pods of the model on different nodes (and zones where the cluster has them), so one
        # node's loss takes one replica; preferred, so a small cluster still schedules them all.
        selector = {"matchLabels": selector_labels(options)}
        spec["affinity"] = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": selector,
                                                "topologyKey": "kubernetes.io/hostname"}}]}}
        spec["topologySpreadConstraints"] = [
            {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": selector}
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")]
    return spec


def deployment(options: ExportOptions, model: ServedModel, *, image: str | None = None,
               track: str | None = None, replicas: int | None = None) -> Manifest:
    name = options.name + (CANARY_SUFFIX if track == "canary" else "")
    count = replicas if replicas is not None else options.replicas
    pod_annotations = {**model_annotations(model), "prometheus.io/scrape": "true",
                       "prometheus.io/port": str(model.port), "prometheus.io/path": "/metrics"}
    spec: Manifest = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector_labels(options, track)},
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": labels(options, model, track), "annotations": pod_annotations},
            "spec": pod_spec(options, model, image or options.image,
                             spread=options.autoscaling or count >= 2 or track is not None),
        },
    }
    if not options.autoscaling:  # with an HPA, the autoscaler alone sets the count
        spec = {"replicas": count, **spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata(options, model, name, track, {
                **model_annotations(model), **checkov_skips(*_pod_skips(options, model))}),
            "spec": spec}


def _pod_skips(options: ExportOptions, model: ServedModel) -> list[str]:
    skips = ["CKV_K8S_43"]
    if options.api_key_env or model.api_key_env:
        skips.append("CKV_K8S_35")
    return skips


def service_account(options: ExportOptions, model: ServedModel) -> Manifest:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(options, model),
            "automountServiceAccountToken": False}


def service(options: ExportOptions, model: ServedModel) -> Manifest:
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(options, model),
            "spec": {"type": "ClusterIP", "selector": selector_labels(options),
                     "ports": [{"name": PORT_NAME, "port": options.port, "targetPort": PORT_NAME,
                                "protocol": "TCP"}]}}


def autoscaler(options: ExportOptions, model: ServedModel) -> Manifest:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(options, model),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": options.name},
                     "minReplicas": options.min_replicas, "maxReplicas": options.max_replicas,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": options.target_cpu}}}],
                     # Scale down slowly: a model's pods are slow to start again.
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}}}


def disruption_budget(options: ExportOptions, model: ServedModel) -> Manifest:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": metadata(options, model),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(options)},
                     "unhealthyPodEvictionPolicy": "AlwaysAllow"}}


def network_policy(options: ExportOptions, model: ServedModel) -> Manifest:
    dns = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": metadata(options, model),
            "spec": {"podSelector": {"matchLabels": selector_labels(options)},
                     "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"ports": [{"port": model.port, "protocol": "TCP"}]}],
                     "egress": [{"to": [{"namespaceSelector": {"matchLabels": {
                         "kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                         "ports": dns}]}}


def ingress(options: ExportOptions, model: ServedModel) -> Manifest:
    backend = {"service": {"name": options.name, "port": {"name": PORT_NAME}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": metadata(options, model),
            "spec": {"tls": [{"hosts": [options.ingress_host],
                              "secretName": f"{options.name}-tls"}],
                     "rules": [{"host": options.ingress_host, "http": {"paths": [
                         {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}


def service_monitor(options: ExportOptions, model: ServedModel) -> Manifest:
    endpoint: Manifest = {"port": PORT_NAME, "path": "/metrics", "interval": "30s",
                          "scrapeTimeout": "10s"}
    if model.protect_metrics:  # /metrics asks for the API key: Prometheus sends it from the Secret
        endpoint["authorization"] = {"type": "Bearer", "credentials": {
            "name": options.secret_name, "key": API_KEY_SECRET_KEY}}
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": metadata(options, model),
            "spec": {"selector": {"matchLabels": selector_labels(options)},
                     "endpoints": [endpoint]}}


def kubernetes_objects(options: ExportOptions, model: ServedModel) -> dict[str, Manifest]:
    """File name (in the kustomize base) -> object, in the order `kubectl apply` should meet them."""
    objects = {"serviceaccount.yaml": service_account(options, model)}
    if options.canary_image:
        objects["deployment.yaml"] = deployment(options, model, track="stable")
        objects["deployment-canary.yaml"] = deployment(
            options, model, image=options.canary_image, track="canary",
            replicas=options.canary_replicas)
    else:
        objects["deployment.yaml"] = deployment(options, model)
    objects["service.yaml"] = service(options, model)
    if options.autoscaling:
        objects["hpa.yaml"] = autoscaler(options, model)
    objects["pdb.yaml"] = disruption_budget(options, model)
    objects["networkpolicy.yaml"] = network_policy(options, model)
    if options.ingress_host:
        objects["ingress.yaml"] = ingress(options, model)
    if options.servicemonitor:
        objects["servicemonitor.yaml"] = service_monitor(options, model)
    return objects
