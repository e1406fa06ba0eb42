"""Options an export cannot be made with are refused, naming the field, before anything is built."""

import pytest
from export_cases import options

from studio.core.errors import ExitStatus
from studio.core.export.options import (
    ExportOptionsError,
    default_kubernetes_version,
    kubernetes_versions,
    parse_quantity,
)


@pytest.mark.parametrize(("values", "field", "words"), [
    ({"replicas": 0}, "replicas", "greater than or equal to 1"),
    ({"memory": "1Gi", "memory_limit": "512Mi"}, "memory_limit", "below its request"),
    ({"cpu": "2", "cpu_limit": "1500m"}, "cpu_limit", "below its request"),
    ({"ephemeral_storage": "1Gi", "ephemeral_storage_limit": "100Mi"},
     "ephemeral_storage_limit", "below its request"),
    ({"name": "Wine_Model"}, "name", "DNS-1123"),
    ({"name": "9lives"}, "name", "starting with a letter"),
    ({"namespace": "Models!"}, "namespace", "DNS-1123"),
    ({"namespace": "default"}, "namespace", "namespace of its own"),
    ({"kubernetes_version": "1.99"}, "kubernetes_version", "not a Kubernetes version"),
    ({"kubernetes_version": "1.20"}, "kubernetes_version", "not a Kubernetes version"),
    ({"image": "registry.example.com/ml/wine:latest"}, "image", "latest"),
    ({"image": "registry.example.com/ml/wine"}, "image", "no tag"),
    ({"cpu": "lots"}, "cpu", "not a Kubernetes quantity"),
    ({"min_replicas": 2, "target_cpu": 70}, "max_replicas", "together"),
    ({"min_replicas": 1, "max_replicas": 3, "target_cpu": 70}, "min_replicas", "2"),
    ({"min_replicas": 4, "max_replicas": 3, "target_cpu": 70}, "max_replicas", "below"),
    ({"min_replicas": 2, "max_replicas": 3, "target_cpu": 70,
      "canary_image": "registry.example.com/ml/wine:4"}, "canary_image", "autoscaler"),
    ({"environment": {"bad name": "x"}}, "environment", "not an environment variable"),
    ({"api_key_env": "MODEL_API_KEY", "environment": {"MODEL_API_KEY": "secret"}},
     "environment", "never from a value in a file"),
])
def test_bad_options_are_refused_naming_the_field(values, field, words):
    with pytest.raises(ExportOptionsError) as refused:
        options(**values)
    assert refused.value.field == field
    assert refused.value.message.startswith(f"{field}: ")
    assert words in refused.value.message
    assert refused.value.hint
    assert refused.value.exit_status == ExitStatus.USAGE


def test_the_defaults_make_valid_options():
    made = options()
    assert made.replicas == 2 and made.kubernetes_version == default_kubernetes_version()
    assert parse_quantity(made.memory_limit) >= parse_quantity(made.memory)


def test_the_versions_are_the_validators_own_and_the_default_is_the_oldest_of_the_newest_three():
    versions = kubernetes_versions()
    assert len(versions) >= 3 and versions[0] == "1.27"
    assert default_kubernetes_version() == versions[-3]
    assert options(kubernetes_version=f"v{versions[-1]}.4").kubernetes_version == versions[-1]


@pytest.mark.parametrize(("text", "value"), [("500m", 0.5), ("1", 1), ("1.5", 1.5),
                                             ("512Mi", 512 * 2**20), ("2G", 2 * 10**9)])
def test_quantities_compare_as_numbers(text, value):
    assert parse_quantity(text) == pytest.approx(value)


def test_the_canary_share_follows_the_replica_counts():
    canary = options(replicas=9, canary_image="registry.example.com/ml/wine:4", canary_percent=10)
    assert (canary.canary_replicas, canary.canary_share) == (1, 0.1)
    small = options(replicas=2, canary_image="registry.example.com/ml/wine:4", canary_percent=10)
    assert small.canary_replicas == 1  # never none: a canary of zero pods is no canary
