"""A reference profile of a dataset: per-feature bins and counts, the baseline drift is measured
against.

Numeric features get up to `bins` quantile bins (the `edges` are the upper bounds of every bin but
the last, which is open-ended, exactly as Prometheus histogram buckets are `le` bounds); categorical
features get their category counts; the model's predictions on the rows get the same treatment
(label counts for a classifier, bins of the value for a regressor). The serving app counts live
values into the same bins.

Without a dataset, `model_profile` still gives the server bins to count into, from rows sampled
around the schema's examples, and marks the profile `"source": "schema"`: its counts are no
baseline, so the Monitor takes the first live requests as the baseline instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from studio.core.artifacts import ModelArtifact
from studio.core.datasets import onnx_feeds, sample_frame
from studio.core.schema import FeatureSpec

DEFAULT_BINS = 10
SCHEMA_ROWS = 2000
"""Rows sampled from the schema for a profile without a dataset: enough for stable decile edges."""


def numeric_profile(values: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]) if finite.size else []
    edges = sorted({round(float(q), 6) for q in quantiles})
    counts = np.bincount(np.searchsorted(edges, finite, side="left"), minlength=len(edges) + 1)
    return {"kind": "numeric", "edges": edges, "counts": counts.tolist()}


def categorical_profile(values: pd.Series) -> dict[str, Any]:
    counts = values.astype(str).value_counts()
    return {"kind": "categorical", "categories": counts.index.tolist(),
            "counts": counts.astype(int).tolist()}


def build_profile(frame: pd.DataFrame, features: list[FeatureSpec],
                  bins: int = DEFAULT_BINS) -> dict[str, Any]:
    profile: dict[str, Any] = {"rows": len(frame), "features": {}}
    for feature in features:
        column = frame[feature.name]
        if feature.kind == "categorical" or feature.dtype == "string":
            profile["features"][feature.name] = categorical_profile(column)
        else:
            profile["features"][feature.name] = numeric_profile(
                column.to_numpy(dtype=np.float64), bins)
    return profile


def predictions_profile(artifact: ModelArtifact, frame: pd.DataFrame,
                        bins: int = DEFAULT_BINS) -> dict[str, Any] | None:
    """What the ONNX model predicts for the rows, labelled as the server labels its answers."""
    from studio.core.timing import onnx_session

    schema = artifact.schema
    roles = [o.role for o in schema.outputs]
    if schema.task == "classification" and "label" in roles:
        index, kind = roles.index("label"), "categorical"
    elif schema.task == "regression" and "value" in roles:
        index, kind = roles.index("value"), "numeric"
    else:
        return None
    session = onnx_session(artifact.model_file)
    output = session.run([session.get_outputs()[index].name],
                         onnx_feeds(schema.inputs, schema.features, frame))[0]
    values = np.asarray(output).reshape(-1)
    if kind == "numeric":
        return numeric_profile(values.astype(np.float64), bins)
    labels = values.tolist()
    names = schema.class_names
    if names and all(isinstance(n, str) for n in names) \
            and all(isinstance(v, int) and 0 <= v < len(names) for v in labels):
        labels = [names[v] for v in labels]
    return categorical_profile(pd.Series(labels))


def model_profile(artifact: ModelArtifact, frame: pd.DataFrame | None = None,
                  bins: int = DEFAULT_BINS) -> dict[str, Any] | None:
    """The profile a served ONNX model is bundled with: of `frame` when the user attached a
    dataset, else provisional bins from the schema. None for tensor models (nothing tabular)."""
    features = artifact.schema.features
    if not features:
        return None
    source = "dataset" if frame is not None else "schema"
    if frame is None:
        frame = sample_frame(features, SCHEMA_ROWS, seed=0)
    profile = build_profile(frame, features, bins)
    profile["source"] = source
    predictions = predictions_profile(artifact, frame, bins)
    if predictions is not None:
        profile["predictions"] = predictions
    return profile
