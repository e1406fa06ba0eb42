"""A reference profile of a dataset: per-feature bins and counts, the baseline drift is measured
against.

Numeric features get up to `bins` quantile bins (the `edges` are the upper bounds of every bin but
the last, which is open-ended, exactly as Prometheus histogram buckets are `le` bounds); categorical
features get their category counts. The serving app counts live values into the same bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from studio.core.schema import FeatureSpec

DEFAULT_BINS = 10


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
    profile: dict[str, Any] = {"rows": int(len(frame)), "features": {}}
    for feature in features:
        column = frame[feature.name]
        if feature.kind == "categorical" or feature.dtype == "string":
            profile["features"][feature.name] = categorical_profile(column)
        else:
            profile["features"][feature.name] = numeric_profile(
                column.to_numpy(dtype=np.float64), bins)
    return profile
