"""The KServe InferenceService, as plain data: Slipway's own image as a custom predictor.

The model is baked into the image, so the predictor has no storageUri and KServe adds no storage
initializer: that init container runs as root and breaks the restricted Pod Security profile
(kserve#5373). What is left is the same pod as the Deployment's (probes, resources, hardening),
in KServe's RawDeployment mode (a Deployment, a Service and an HPA, no Knative), speaking the
Open Inference Protocol (v2), which the server answers at /v2/models/NAME/infer.
"""

from __future__ import annotations

from studio.core.export.facts import ServedModel
from studio.core.export.kubernetes import (
    Manifest,
    checkov_skips,
    labels,
    model_annotations,
    pod_spec,
)
from studio.core.export.options import ExportOptions

KSERVE_CONTAINER = "kserve-container"
"""The name KServe looks for in a custom predictor."""
KSERVE_PORT_NAME = "http1"
"""KServe (and Knative) accept a container port named http1 or h2c."""


def inference_service(options: ExportOptions, model: ServedModel) -> Manifest:
    spread = options.autoscaling or options.replicas >= 2
    predictor: Manifest = {
        "minReplicas": options.min_replicas if options.autoscaling else options.replicas,
        "maxReplicas": options.max_replicas if options.autoscaling else options.replicas,
        **pod_spec(options, model, options.image, spread=spread, container_name=KSERVE_CONTAINER,
                   port_name=KSERVE_PORT_NAME, extra_env={"PROTOCOL": "v2"}),
    }
    if options.autoscaling:
        predictor.update({"scaleMetric": "cpu", "scaleTarget": options.target_cpu})
    skips = ["CKV_K8S_43"] + (["CKV_K8S_35"] if options.api_key_env or model.api_key_env else [])
    return {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": options.name, "namespace": options.namespace,
                     "labels": labels(options, model),
                     "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment",
                                     "serving.kserve.io/autoscalerClass": "hpa",
                                     **model_annotations(model), **checkov_skips(*skips)}},
        "spec": {"predictor": predictor},
    }


PREDICTOR_ONLY_FIELDS = ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget",
                         "containerConcurrency", "timeout", "canaryTrafficPercent", "logger",
                         "batcher")


def predictor_as_pod(service: Manifest) -> Manifest:
    """The predictor's pod spec as a core/v1 Pod, for the schema checks KServe's CRD lacks here:
    the predictor is a PodSpec plus KServe's own scaling fields."""
    spec = {key: value for key, value in ((service.get("spec") or {}).get("predictor") or {}).items()
            if key not in PREDICTOR_ONLY_FIELDS}
    metadata = service.get("metadata") or {}
    skips = {key: value for key, value in (metadata.get("annotations") or {}).items()
             if key.startswith("checkov.io/")}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace"),
                         "labels": metadata.get("labels") or {}, "annotations": skips},
            "spec": spec}
