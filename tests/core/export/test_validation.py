"""The checks, with the real tools: kubernetes-validate (strict), the rules, kubectl kustomize,
docker-compose config and Checkov pass every shape of export, and fail edited manifests by name."""

import copy
import re
from pathlib import Path

import pytest
import yaml
from export_cases import VARIANTS, options

from studio.core.export.documents import build_export
from studio.core.export.findings import Finding, Report
from studio.core.export.kubernetes import CHECKOV_SKIPS
from studio.core.export.options import kubernetes_versions
from studio.core.export.rules import check_compose, check_kubernetes
from studio.core.export.tools import render
from studio.core.export.validate import check_folder, schema_findings
from studio.core.export.write import ExportCheckFailed, check_export, write_export

DOCS = Path(__file__).resolve().parents[3] / "docs" / "export.md"


@pytest.mark.parametrize("version", kubernetes_versions()[-3:])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_object_validates_strictly_on_the_newest_versions(served, variant, version):
    export = build_export(options(kubernetes_version=version, **VARIANTS[variant]), served)
    objects = [d for d in export.documents if d.is_kubernetes_object]
    assert objects
    findings = [f for d in objects for f in schema_findings(d.path, d.content, version)[0]]
    assert findings == []


def test_strict_validation_refuses_a_field_kubernetes_does_not_have(served):
    deployment = copy.deepcopy(build_export(options(), served)
                               .document("kubernetes/base/deployment.yaml").content)
    deployment["spec"]["template"]["spec"]["containers"][0]["cpuLimit"] = "1"
    findings, _ = schema_findings("deployment.yaml", deployment, kubernetes_versions()[-1])
    assert [f.check for f in findings] == ["schema"]
    assert "cpuLimit" in findings[0].message


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_shape_passes_every_check_with_every_tool(served, variant, kustomize_tool,
                                                       compose_tool, checkov_tool):
    report = check_export(build_export(options(**VARIANTS[variant]), served))
    assert [f.line() for f in report.findings] == []
    assert {run.tool for run in report.tools if run.ran} == {
        "kubernetes-validate", "kustomize", "compose", "checkov"}
    assert {skip.check for skip in report.skips} <= set(CHECKOV_SKIPS)
    assert report.skips, "the image digest check is skipped, with its reason, on every workload"


def test_every_checkov_skip_is_listed_in_the_docs_with_its_reason():
    text = DOCS.read_text(encoding="utf-8")
    for check, reason in CHECKOV_SKIPS.items():
        row = next((line for line in text.splitlines() if f"`{check}`" in line), "")
        assert row, f"docs/export.md does not list {check}"
        assert reason.split(";")[0].split(",")[0][:40] in row


def test_the_overlays_render_into_their_namespaces(served, kustomize_tool, tmp_path):
    export = build_export(options(replicas=3), served)
    report = check_export(export)
    write_export(export, tmp_path, report)
    for overlay, namespace, replicas in (("staging", "models-staging", 1),
                                         ("production", "models", 3)):
        result = render(kustomize_tool, tmp_path / "kubernetes" / "overlays" / overlay)
        assert result.returncode == 0, result.stderr
        rendered = [o for o in yaml.safe_load_all(result.stdout) if o]
        assert {o["metadata"]["namespace"] for o in rendered} == {namespace}
        deployment = next(o for o in rendered if o["kind"] == "Deployment")
        assert deployment["spec"]["replicas"] == replicas
    assert render(kustomize_tool, tmp_path / "kubernetes" / "base").returncode == 0


def written(served, tmp_path, **values) -> Path:
    export = build_export(options(**values), served)
    write_export(export, tmp_path, check_export(export))
    return tmp_path


def edit(path: Path, change) -> None:
    content = yaml.safe_load(path.read_text())
    change(content)
    path.write_text(yaml.safe_dump(content, sort_keys=False))


def test_an_edited_folder_fails_by_name(served, tmp_path, kustomize_tool, compose_tool,
                                        checkov_tool):
    folder = written(served, tmp_path)
    deployment = folder / "kubernetes/base/deployment.yaml"

    def unpin_and_unskip(content):
        content["metadata"]["annotations"] = {
            k: v for k, v in content["metadata"]["annotations"].items()
            if not k.startswith("checkov.io/")}
        content["spec"]["template"]["spec"]["containers"][0]["image"] = "example/wine:latest"

    edit(deployment, unpin_and_unskip)
    edit(folder / "compose.yaml", lambda c: c["services"]["wine"].pop("read_only"))
    (folder / "kubernetes/overlays/staging/kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../../nowhere]\n")
    report = check_folder(folder, kubernetes_versions()[-1])
    named = {(f.tool, f.check, f.document) for f in report.findings}
    assert ("checkov", "CKV_K8S_14", "kubernetes/base/deployment.yaml") in named  # latest tag
    assert ("checkov", "CKV_K8S_43", "kubernetes/base/deployment.yaml") in named  # no skip now
    assert ("rules", "container-image-tag", "kubernetes/base/deployment.yaml") in named
    assert ("rules", "compose-read-only", "compose.yaml") in named
    assert ("kustomize", "render", "kubernetes/overlays/staging/kustomization.yaml") in named
    assert not report.passed


def test_compose_itself_refuses_a_broken_file(served, tmp_path, compose_tool):
    folder = written(served, tmp_path)
    edit(folder / "compose.yaml", lambda c: c["services"]["wine"].update(ports="not-a-list"))
    report = check_folder(folder, kubernetes_versions()[-1])
    assert ("compose", "config") in {(f.tool, f.check) for f in report.findings}


def test_nothing_is_written_when_a_check_failed(served, tmp_path):
    export = build_export(options(), served)
    failing = Report(export.paths, [Finding("rules", "pod-probes", "no readiness probe",
                                            "kubernetes/base/deployment.yaml")])
    with pytest.raises(ExportCheckFailed) as refused:
        write_export(export, tmp_path / "out", failing)
    assert "pod-probes" in refused.value.message
    assert refused.value.exit_status == 5
    assert not (tmp_path / "out").exists()


# --- the rules on their own: each one fails what it is for ----------------------------------

def base_objects(served, **values):
    export = build_export(options(**values), served)
    return [(d.path, copy.deepcopy(d.content)) for d in export.documents
            if d.path.startswith("kubernetes/base/") and d.is_kubernetes_object]


def container_of(objects):
    return next(o for _, o in objects if o["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]


def deployment_of(objects):
    return next(o for _, o in objects if o["kind"] == "Deployment")


MUTATIONS = {
    "container-image-tag": lambda objs: container_of(objs).update(image="example/wine:latest"),
    "container-resources": lambda objs: container_of(objs)["resources"]["limits"].pop("memory"),
    "container-ephemeral-storage-request-and-limit":
        lambda objs: container_of(objs)["resources"]["requests"].pop("ephemeral-storage"),
    "pod-probes": lambda objs: container_of(objs).update(
        livenessProbe=container_of(objs)["readinessProbe"]),
    "probe-port": lambda objs: container_of(objs)["livenessProbe"]["httpGet"].update(port="admin"),
    "container-security-context-user-group-id":
        lambda objs: container_of(objs)["securityContext"].update(runAsUser=1000),
    "container-security-context":
        lambda objs: container_of(objs)["securityContext"].update(readOnlyRootFilesystem=False),
    "mismatching-selector": lambda objs: deployment_of(objs)["spec"]["selector"][
        "matchLabels"].update({"app.kubernetes.io/name": "other"}),
    "hpa-replicas": lambda objs: deployment_of(objs)["spec"].update(replicas=3),
    "no-anti-affinity": lambda objs: deployment_of(objs)["spec"]["template"]["spec"].pop(
        "affinity"),
    "deployment-has-poddisruptionbudget": lambda objs: objs.remove(
        next(x for x in objs if x[1]["kind"] == "PodDisruptionBudget")),
    "pod-networkpolicy": lambda objs: next(
        o for _, o in objs if o["kind"] == "NetworkPolicy")["spec"].update(
        policyTypes=["Ingress"]),
    "service-targets-pod": lambda objs: next(
        o for _, o in objs if o["kind"] == "Service")["spec"].update(selector={"app": "other"}),
    "service-type": lambda objs: next(
        o for _, o in objs if o["kind"] == "Service")["spec"].update(type="NodePort"),
    "invalid-target-ports": lambda objs: next(
        o for _, o in objs if o["kind"] == "Service")["spec"]["ports"][0].update(
        targetPort="web"),
    "non-existent-service-account": lambda objs: objs.remove(
        next(x for x in objs if x[1]["kind"] == "ServiceAccount")),
    "pdb-max-unavailable": lambda objs: next(
        o for _, o in objs if o["kind"] == "PodDisruptionBudget")["spec"].update(
        maxUnavailable=0),
}


def test_the_rules_pass_the_export(served):
    for variant in VARIANTS.values():
        assert check_kubernetes(base_objects(served, **variant)) == []


@pytest.mark.parametrize("check", list(MUTATIONS))
def test_each_rule_fails_what_it_is_for(served, check):
    objects = base_objects(served, min_replicas=2, max_replicas=4, target_cpu=60)
    MUTATIONS[check](objects)
    assert check in {f.check for f in check_kubernetes(objects)}


@pytest.mark.parametrize(("key", "value", "check"), [
    ("read_only", False, "compose-read-only"), ("cap_drop", [], "compose-cap-drop"),
    ("security_opt", [], "compose-no-new-privileges"), ("user", "0", "compose-non-root"),
    ("healthcheck", {"disable": True}, "compose-healthcheck"),
    ("deploy", {}, "compose-resources")])
def test_the_compose_rules_fail_a_softened_service(served, key, value, check):
    compose = build_export(options(), served).document("compose.yaml").content
    assert check_compose("compose.yaml", compose) == []
    compose["services"]["wine"][key] = value
    assert [f.check for f in check_compose("compose.yaml", compose)] == [check]


def test_the_docs_name_every_rule():
    text = DOCS.read_text(encoding="utf-8")
    for check in MUTATIONS:
        assert re.search(rf"`{re.escape(check)}`", text), check


def test_missing_tools_are_named_and_the_other_checks_still_decide(served, tmp_path, monkeypatch):
    folder = written(served, tmp_path / "out")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no kubectl, no docker-compose, no checkov
    monkeypatch.setattr("sys.executable", str(empty / "python"))
    report = check_folder(folder, kubernetes_versions()[-1])
    missing = {run.tool: run.detail for run in report.missing_tools}
    assert set(missing) == {"kustomize", "compose", "checkov"}
    assert "slipway-studio[export-checks]" in missing["checkov"]
    assert "kubectl" in missing["kustomize"]
    assert report.passed  # the schema and the rules still ran, and passed
    deployment = folder / "kubernetes/base/deployment.yaml"
    edit(deployment, lambda c: c["spec"]["template"]["spec"]["containers"][0].pop(
        "readinessProbe"))
    assert "pod-probes" in {f.check for f in check_folder(folder, "1.33").findings}
