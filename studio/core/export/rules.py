"""The default checks of kube-score and kube-linter, and the Compose hardening, as rules.

Neither linter installs from a package registry, so their default checks that matter for a model
server are written here, each under the linter's own check name, and run on every set of objects
that would be applied together (the base, each rendered overlay, the KServe folder):

    container-image-tag            no `latest`, no missing tag             kube-score, kube-linter
    container-resources            CPU and memory requests and limits      kube-score, kube-linter
    container-ephemeral-storage-request-and-limit                          kube-score
    pod-probes                     readiness and liveness, not the same    kube-score, kube-linter
    probe-port                     each probe's port is a declared port    kube-linter
    container-security-context-user-group-id   UID and GID >= 10000        kube-score
    container-security-context     non-root, read-only root, no escalation kube-score, kube-linter
    mismatching-selector           selector equals template labels         kube-linter
    hpa-replicas                   no `replicas` beside an HPA             kube-score
    no-anti-affinity               podAntiAffinity when replicas >= 2      kube-score, kube-linter
    deployment-has-poddisruptionbudget                                     kube-score
    pod-networkpolicy              a NetworkPolicy with both types          kube-score, kube-linter
    service-targets-pod            a ClusterIP Service whose selector and
                                   target port match the pods              kube-score, kube-linter
    non-existent-service-account   the pod's ServiceAccount is there       kube-linter
    pdb-max-unavailable            a PDB that lets a pod go                kube-linter
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from studio.core.export.findings import Finding

Objects = list[tuple[str, dict[str, Any]]]
"""(document, object) pairs that are applied together."""
MIN_ID = 10000
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"}


def _name(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


def _pod(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod labels, pod spec) of a workload or a Pod."""
    if obj.get("kind") == "Pod":
        return (obj.get("metadata") or {}).get("labels") or {}, obj.get("spec") or {}
    template = (obj.get("spec") or {}).get("template") or {}
    return (template.get("metadata") or {}).get("labels") or {}, template.get("spec") or {}


def _matches(selector: dict[str, Any] | None, labels: dict[str, Any]) -> bool:
    """Whether a label selector (matchLabels only, as these objects use) selects `labels`."""
    if not selector:
        return False
    wanted = selector.get("matchLabels", selector)
    return all(labels.get(k) == v for k, v in wanted.items())


class _Rules:
    def __init__(self, objects: Objects):
        self.objects = objects
        self.findings: list[Finding] = []

    def of_kind(self, *kinds: str) -> Iterator[tuple[str, dict[str, Any]]]:
        return ((doc, obj) for doc, obj in self.objects if obj.get("kind") in kinds)

    def fail(self, check: str, document: str, obj: dict[str, Any], message: str) -> None:
        self.findings.append(Finding("rules", check, message, document, _name(obj)))

    # --- containers --------------------------------------------------------------------------

    def containers(self) -> None:
        for doc, obj in self.of_kind(*POD_KINDS):
            _, spec = _pod(obj)
            pod_security = spec.get("securityContext") or {}
            for container in spec.get("containers") or []:
                self.container(doc, obj, container, pod_security)

    def container(self, doc: str, obj: dict[str, Any], container: dict[str, Any],
                  pod_security: dict[str, Any]) -> None:
        who = container.get("name", "?")
        image = str(container.get("image", ""))
        last = image.rsplit("/", 1)[-1]
        if "@" not in last and (":" not in last or last.endswith(":latest")):
            self.fail("container-image-tag", doc, obj, f"container {who}: image {image!r} is not "
                                                       "pinned (no tag, or 'latest')")
        resources = container.get("resources") or {}
        for part in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if not (resources.get(part) or {}).get(resource):
                    self.fail("container-resources", doc, obj,
                              f"container {who}: no {resource} {part[:-1]}")
            if not (resources.get(part) or {}).get("ephemeral-storage"):
                self.fail("container-ephemeral-storage-request-and-limit", doc, obj,
                          f"container {who}: no ephemeral-storage {part[:-1]}")
        self.probes(doc, obj, container)
        security = {**pod_security, **(container.get("securityContext") or {})}
        for key in ("runAsUser", "runAsGroup"):
            if not isinstance(security.get(key), int) or security[key] < MIN_ID:
                self.fail("container-security-context-user-group-id", doc, obj,
                          f"container {who}: {key} must be {MIN_ID} or more, not "
                          f"{security.get(key)!r}")
        for key, wanted in (("runAsNonRoot", True), ("readOnlyRootFilesystem", True),
                            ("allowPrivilegeEscalation", False)):
            if security.get(key) is not wanted:
                self.fail("container-security-context", doc, obj,
                          f"container {who}: securityContext.{key} must be {str(wanted).lower()}")

    def probes(self, doc: str, obj: dict[str, Any], container: dict[str, Any]) -> None:
        who = container.get("name", "?")
        readiness, liveness = container.get("readinessProbe"), container.get("livenessProbe")
        if not readiness or not liveness:
            missing = " and ".join(n for n, p in (("readiness", readiness), ("liveness", liveness))
                                   if not p)
            self.fail("pod-probes", doc, obj, f"container {who}: no {missing} probe")
        elif readiness == liveness:
            self.fail("pod-probes", doc, obj, f"container {who}: the readiness and liveness "
                                              "probes are the same, so a busy pod gets restarted")
        ports = container.get("ports") or []
        declared = {p.get("name") for p in ports} | {p.get("containerPort") for p in ports}
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            action = (container.get(kind) or {}).get("httpGet") or \
                (container.get(kind) or {}).get("tcpSocket")
            if action and action.get("port") not in declared:
                self.fail("probe-port", doc, obj, f"container {who}: {kind} uses port "
                                                  f"{action.get('port')!r}, which it does not "
                                                  "declare")

    # --- workloads and what goes with them ---------------------------------------------------

    def workloads(self) -> None:
        autoscaled = {(h.get("spec") or {}).get("scaleTargetRef", {}).get("name")
                      for _, h in self.of_kind("HorizontalPodAutoscaler")}
        for doc, obj in self.of_kind("Deployment", "StatefulSet"):
            labels, spec = _pod(obj)
            selector = (obj.get("spec") or {}).get("selector") or {}
            if selector.get("matchLabels") != {k: labels.get(k) for k in
                                               (selector.get("matchLabels") or {})} \
                    or not selector.get("matchLabels"):
                self.fail("mismatching-selector", doc, obj,
                          "the selector does not match the pod template's labels")
            name = (obj.get("metadata") or {}).get("name")
            replicas = (obj.get("spec") or {}).get("replicas")
            if name in autoscaled and replicas is not None:
                self.fail("hpa-replicas", doc, obj, "an HPA scales it, yet it sets replicas: "
                                                    "every apply would reset the count")
            if (name in autoscaled or (replicas or 1) >= 2) and \
                    not ((spec.get("affinity") or {}).get("podAntiAffinity")):
                self.fail("no-anti-affinity", doc, obj, "two or more replicas and no "
                                                        "podAntiAffinity: they may share a node")
            self.guarded(doc, obj, labels, spec)

    def guarded(self, doc: str, obj: dict[str, Any], labels: dict[str, Any],
                spec: dict[str, Any]) -> None:
        if not any(_matches((p.get("spec") or {}).get("selector"), labels)
                   for _, p in self.of_kind("PodDisruptionBudget")):
            self.fail("deployment-has-poddisruptionbudget", doc, obj,
                      "no PodDisruptionBudget selects its pods")
        policies = [p for _, p in self.of_kind("NetworkPolicy")
                    if _matches((p.get("spec") or {}).get("podSelector"), labels)]
        types = {t for p in policies for t in (p.get("spec") or {}).get("policyTypes") or []}
        if not {"Ingress", "Egress"} <= types:
            self.fail("pod-networkpolicy", doc, obj, "no NetworkPolicy selects its pods for both "
                                                     "Ingress and Egress")
        account = spec.get("serviceAccountName")
        if account and account != "default" and not any(
                (a.get("metadata") or {}).get("name") == account
                for _, a in self.of_kind("ServiceAccount")):
            self.fail("non-existent-service-account", doc, obj,
                      f"its ServiceAccount {account!r} is not among the objects")

    def services(self) -> None:
        pods = [_pod(obj) for _, obj in self.of_kind(*POD_KINDS)]
        for doc, obj in self.of_kind("Service"):
            spec = obj.get("spec") or {}
            if spec.get("type", "ClusterIP") != "ClusterIP":
                self.fail("service-type", doc, obj, f"type {spec.get('type')}: expose the model "
                                                    "through a ClusterIP Service and an Ingress")
            targets = [(labels, pod) for labels, pod in pods if _matches(spec.get("selector"),
                                                                         labels)]
            if not targets:
                self.fail("service-targets-pod", doc, obj, "its selector matches no pod")
                continue
            names = {p.get("name") for _, pod in targets for c in pod.get("containers") or []
                     for p in c.get("ports") or []}
            numbers = {p.get("containerPort") for _, pod in targets
                       for c in pod.get("containers") or [] for p in c.get("ports") or []}
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                if target not in names | numbers:
                    self.fail("invalid-target-ports", doc, obj,
                              f"targetPort {target!r} is no port of its pods")
        for doc, obj in self.of_kind("PodDisruptionBudget"):
            spec = obj.get("spec") or {}
            if spec.get("maxUnavailable") in (0, "0%") or \
                    spec.get("minAvailable") in ("100%",):
                self.fail("pdb-max-unavailable", doc, obj, "it lets no pod be evicted, so no "
                                                            "node can be drained")


def check_kubernetes(objects: Objects) -> list[Finding]:
    """The findings of every rule on objects that are applied together."""
    rules = _Rules(objects)
    rules.containers()
    rules.workloads()
    rules.services()
    return rules.findings


COMPOSE_RULES = {
    "read_only": (True, "the root filesystem is writable (read_only: true)"),
    "cap_drop": (["ALL"], "capabilities are kept (cap_drop: [ALL])"),
}


def check_compose(document: str, compose: dict[str, Any]) -> list[Finding]:
    """The hardening the studio runs containers with, on each service of a Compose file."""
    findings = []

    def fail(check: str, service: str, message: str) -> None:
        findings.append(Finding("rules", check, message, document, f"service/{service}"))

    for name, service in ((compose or {}).get("services") or {}).items():
        for key, (wanted, problem) in COMPOSE_RULES.items():
            if service.get(key) != wanted:
                fail(f"compose-{key.replace('_', '-')}", name, problem)
        if "no-new-privileges:true" not in (service.get("security_opt") or []):
            fail("compose-no-new-privileges", name, "no-new-privileges is not set")
        user = str(service.get("user", ""))
        if not user or user.split(":")[0] in ("0", "root"):
            fail("compose-non-root", name, "no non-root user (user: 10001:10001)")
        if not service.get("healthcheck") or (service["healthcheck"] or {}).get("disable"):
            fail("compose-healthcheck", name, "no healthcheck")
        limits = (((service.get("deploy") or {}).get("resources") or {}).get("limits") or {})
        if not limits.get("cpus") or not limits.get("memory"):
            fail("compose-resources", name, "no CPU and memory limits (deploy.resources.limits)")
    return findings
