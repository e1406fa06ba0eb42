"""Option sets the export tests build from: the shapes an export takes."""

from __future__ import annotations

from studio.core.export.options import export_options

SHA = "5d41402abc4b2a76b9719d911017c592" * 2


def options(**values):

    return export_options(**{"image": "registry.example.com/ml/wine:3", "name": "wine",
                             "namespace": "models", **values})


VARIANTS = {
    "plain": {},
    "one replica": {"replicas": 1},
    "autoscaled, everything on": {"min_replicas": 2, "max_replicas": 6, "target_cpu": 70,
                                  "kserve": True, "servicemonitor": True,
                                  "ingress_host": "wine.example.com"},
    "canary": {"replicas": 4, "canary_image": "registry.example.com/ml/wine:4",
               "canary_percent": 20, "environment": {"LOG_LEVEL": "info"}},
}
"""Option sets every check runs on: the shapes an export takes."""
