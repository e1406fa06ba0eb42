"""The manifests against the default checks of kube-score and kube-linter (not installable here),
each asserted on the objects themselves, and the facts of the served image they must match."""

import math
import sys
from pathlib import Path

import pytest
import yaml
from export_cases import VARIANTS, options

from studio.core.export.documents import build_export
from studio.core.export.kserve import inference_service
from studio.core.export.kubernetes import PRESTOP_PAUSE_S, kubernetes_objects
from studio.core.serve.bundle import SERVER_PORT, STOP_MARGIN_S, ServingOptions

SERVER = Path(__file__).resolve().parents[3] / "serving_templates" / "server"


def pods(objects):
    """(object, pod labels, pod spec) of every Deployment."""
    return [(o, o["spec"]["template"]["metadata"]["labels"], o["spec"]["template"]["spec"])
            for o in objects.values() if o["kind"] == "Deployment"]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.fixture(params=list(VARIANTS), ids=list(VARIANTS))
def objects(request, served):
    return kubernetes_objects(options(**VARIANTS[request.param]), served)


def test_every_container_is_pinned_sized_probed_and_locked_down(objects):
    for _, _, spec in pods(objects):
        for container in spec["containers"]:
            assert not container["image"].endswith(":latest") and ":" in container["image"]
            assert container["imagePullPolicy"]
            resources = container["resources"]
            for part in ("requests", "limits"):
                assert {"cpu", "memory", "ephemeral-storage"} <= set(resources[part])
            readiness, liveness = container["readinessProbe"], container["livenessProbe"]
            assert readiness != liveness
            assert (readiness["httpGet"]["path"], liveness["httpGet"]["path"]) == ("/ready",
                                                                                   "/health")
            assert container["startupProbe"]["httpGet"]["path"] == "/ready"
            declared = {p["name"] for p in container["ports"]}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["port"] in declared
            assert container["ports"][0]["containerPort"] == SERVER_PORT
            security = container["securityContext"]
            assert security["runAsUser"] >= 10000 and security["runAsGroup"] >= 10000
            assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        assert {v["name"]: v for v in spec["volumes"]}["tmp"]["emptyDir"]


def test_workloads_select_their_own_pods_and_are_guarded(objects):
    autoscaled = "hpa.yaml" in objects
    for deployment, labels, spec in pods(objects):
        assert deployment["spec"]["selector"]["matchLabels"] == {
            k: labels[k] for k in deployment["spec"]["selector"]["matchLabels"]}
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        if autoscaled:
            assert "replicas" not in deployment["spec"]
            assert objects["hpa.yaml"]["spec"]["minReplicas"] >= 2
        replicas = deployment["spec"].get("replicas", 2)
        stable_pods = sum(d["spec"].get("replicas", 2) for d, _, _ in pods(objects))
        if replicas >= 2 or stable_pods >= 2:
            terms = spec["affinity"]["podAntiAffinity"][
                "preferredDuringSchedulingIgnoredDuringExecution"]
            assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
            assert spec["topologySpreadConstraints"]
        assert selects(objects["pdb.yaml"]["spec"]["selector"]["matchLabels"], labels)
        assert objects["pdb.yaml"]["spec"]["maxUnavailable"] == 1
        assert objects["pdb.yaml"]["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        policy = objects["networkpolicy.yaml"]["spec"]
        assert selects(policy["podSelector"]["matchLabels"], labels)
        assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
        service = objects["service.yaml"]["spec"]
        assert service["type"] == "ClusterIP" and selects(service["selector"], labels)
        assert spec["serviceAccountName"] == objects["serviceaccount.yaml"]["metadata"]["name"]
        assert objects["serviceaccount.yaml"]["automountServiceAccountToken"] is False
        assert {"app.kubernetes.io/name", "app.kubernetes.io/instance",
                "app.kubernetes.io/version"} <= set(deployment["metadata"]["labels"])


def test_the_network_policy_lets_in_the_serving_port_only_and_out_dns_only(served):
    policy = kubernetes_objects(options(), served)["networkpolicy.yaml"]["spec"]
    assert policy["ingress"] == [{"ports": [{"port": SERVER_PORT, "protocol": "TCP"}]}]
    assert [p["port"] for rule in policy["egress"] for p in rule["ports"]] == [53, 53]


def test_a_single_replica_is_not_spread_and_a_pair_is(served):
    single = kubernetes_objects(options(replicas=1), served)["deployment.yaml"]
    assert "affinity" not in single["spec"]["template"]["spec"]
    pair = kubernetes_objects(options(replicas=2), served)["deployment.yaml"]
    assert "podAntiAffinity" in pair["spec"]["template"]["spec"]["affinity"]


def test_the_grace_period_covers_the_prestop_pause_and_the_servers_own_drain(served):
    pod = kubernetes_objects(options(), served)["deployment.yaml"]["spec"]["template"]["spec"]
    pause = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[-1] == f"import time; time.sleep({PRESTOP_PAUSE_S})"
    assert pod["terminationGracePeriodSeconds"] == math.ceil(
        PRESTOP_PAUSE_S + served.ready_pause_s + served.drain_timeout_s + STOP_MARGIN_S)


def test_the_defaults_the_studio_assumes_are_the_servers_own():
    sys.path.insert(0, str(SERVER))
    try:
        from slipway_server.settings import Shutdown
    finally:
        sys.path.remove(str(SERVER))
    assert (Shutdown.ready_pause_s, Shutdown.drain_timeout_s) == (
        ServingOptions.ready_pause_s, ServingOptions.drain_timeout_s)


def test_the_api_key_comes_from_a_secret_and_is_written_nowhere(served):
    export = build_export(options(), served)
    container = export.document("kubernetes/base/deployment.yaml").content[
        "spec"]["template"]["spec"]["containers"][0]
    assert {"name": "MODEL_API_KEY", "valueFrom": {"secretKeyRef": {
        "name": "wine-api-key", "key": "api-key"}}} in container["env"]
    compose = export.document("compose.yaml").content["services"]["wine"]
    assert compose["environment"]["MODEL_API_KEY"].startswith("${MODEL_API_KEY:?")
    assert not any(d.kind == "Secret" for d in export.documents)


def test_the_canary_shares_the_service_and_takes_its_share_by_replicas(served):
    made = options(replicas=4, canary_image="registry.example.com/ml/wine:4", canary_percent=20)
    objects = kubernetes_objects(made, served)
    stable, canary = objects["deployment.yaml"], objects["deployment-canary.yaml"]
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":4")
    assert (stable["spec"]["replicas"], canary["spec"]["replicas"]) == (4, 1)
    selector = objects["service.yaml"]["spec"]["selector"]
    for deployment in (stable, canary):
        assert selects(selector, deployment["spec"]["template"]["metadata"]["labels"])
    assert stable["spec"]["selector"] != canary["spec"]["selector"]  # no Deployment adopts both
    compose = build_export(made, served).document("compose.yaml").content["services"]
    assert compose["wine-canary"]["image"].endswith(":4")
    assert compose["wine-canary"]["ports"] == ["127.0.0.1:8001:8000"]


def test_the_model_is_named_on_every_workload(served):
    for document in build_export(options(kserve=True), served).documents:
        if document.kind in ("Deployment", "InferenceService"):
            annotations = document.content["metadata"]["annotations"]
            assert annotations["io.slipway.model.sha256"] == served.sha256
            assert annotations["io.slipway.model.version"] == "3"


def test_the_inference_service_bakes_the_model_in_and_speaks_v2(served):
    service = inference_service(options(kserve=True), served)
    predictor = service["spec"]["predictor"]
    assert "storageUri" not in yaml.safe_dump(service)
    container = predictor["containers"][0]
    assert container["name"] == "kserve-container"
    assert {"name": "PROTOCOL", "value": "v2"} in container["env"]
    assert container["ports"][0]["name"] == "http1"
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"]["port"] == "http1"
    assert predictor["automountServiceAccountToken"] is False


def test_yaml_is_written_plain_with_no_anchors(served):
    for document in build_export(options(replicas=3), served).documents:
        text = document.text()
        assert "&id" not in text and "*id" not in text
        assert yaml.safe_load(text) == document.content
