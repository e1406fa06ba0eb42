"""The reference profile: the baseline drift is measured against, built, validated and read here.

A profile holds, per tabular feature, either numeric bins or category counts, and the same for the
model's predictions on those rows (label counts for a classifier, bins of the value for a
regressor). Numeric `edges` are the upper bounds of every bin but the last, which is open-ended,
exactly as Prometheus histogram buckets are `le` bounds, so the serving app counts live values
into the same bins and drift is a comparison of two count vectors.

Where a profile comes from, marked in `source`:

- "dataset": the rows the user attached when bundling (`model_profile(artifact, frame)`);
- "schema": no dataset, so rows sampled around the schema's examples give the server bins to count
  into; their counts are no baseline (the Monitor takes live traffic instead);
- "live": the first N requests a server counted (`baseline_from_counts`);
- a file the user gives (`read_profile`), which is what a served model answers at GET /reference.

The JSON form (`to_json_dict`) is what serving.json carries and the server serves; the server
reads it as plain JSON (it imports nothing from the studio).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    Field,
    NonNegativeInt,
    ValidationError,
    field_validator,
    model_validator,
)

from studio.core.errors import ExitStatus, StudioError
from studio.core.model.artifact import ModelArtifact
from studio.core.model.datasets import onnx_feeds, sample_frame
from studio.core.model.schema import FeatureSpec
from studio.core.model.session import onnx_session

DEFAULT_BINS = 10
SCHEMA_ROWS = 2000
"""Rows sampled from the schema for a profile without a dataset: enough for stable decile edges."""
FILE_HINT = "Use the JSON a served model answers at GET /reference."


class ProfileError(StudioError):
    """A file or an answer is not a reference profile."""

    exit_status = ExitStatus.USAGE


class NumericBins(BaseModel):
    """Counts of a numeric value over bins: `counts[i]` values fell at or below `edges[i]` (and
    above the edge before); the last count is everything above the last edge."""

    kind: Literal["numeric"] = "numeric"
    edges: list[float]
    counts: list[NonNegativeInt]

    @model_validator(mode="after")
    def _one_more_count_than_edges(self) -> NumericBins:
        if len(self.counts) != len(self.edges) + 1:
            raise ValueError(f"{len(self.edges)} edges need {len(self.edges) + 1} counts, "
                             f"not {len(self.counts)}")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:])):
            raise ValueError("the edges must increase")
        return self


class CategoryCounts(BaseModel):
    """Counts of each category seen; live values outside them are counted apart (drift.OTHER)."""

    kind: Literal["categorical"] = "categorical"
    categories: list[str]
    counts: list[NonNegativeInt]

    @field_validator("categories", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        # The server counts categories by their text: 1 and "1" are one category.
        return [str(c) for c in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _one_count_per_category(self) -> CategoryCounts:
        if len(self.counts) != len(self.categories):
            raise ValueError(f"{len(self.categories)} categories need as many counts, "
                             f"not {len(self.counts)}")
        return self


Bins = Annotated[NumericBins | CategoryCounts, Field(discriminator="kind")]


class ReferenceProfile(BaseModel):
    rows: NonNegativeInt = 0
    features: dict[str, Bins]
    predictions: Bins | None = None
    source: Literal["dataset", "schema", "live"] | None = None
    """None for a profile from elsewhere (a file written by another tool)."""

    @property
    def is_baseline(self) -> bool:
        """Whether its counts describe real traffic: bins from the schema only give the server
        bins to count into, so drift against them would measure the sampling, not the traffic."""
        return self.source != "schema"

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_json_dict(cls, document: Any, where: str) -> ReferenceProfile:
        """Validate a parsed JSON document; ProfileError names what is wrong and where."""
        if not isinstance(document, dict) or not isinstance(document.get("features"), dict):
            raise ProfileError(f"{where} is not a reference profile: it has no 'features' object.",
                               FILE_HINT)
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            problem = exc.errors()[0]
            at = ".".join(str(part) for part in problem["loc"] if part not in ("numeric",
                                                                               "categorical"))
            raise ProfileError(f"{where} is not a reference profile: {at}: {problem['msg']}.",
                               FILE_HINT, detail=str(exc)) from exc


def read_profile(path: str | Path) -> ReferenceProfile:
    """A reference profile from a JSON file (what a served model answers at GET /reference)."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProfileError(f"'{path.name}' cannot be read as a reference profile: {exc}",
                           FILE_HINT) from exc
    return ReferenceProfile.from_json_dict(document, f"'{path.name}'")


# --- built from rows --------------------------------------------------------------------------

def numeric_profile(values: np.ndarray, bins: int = DEFAULT_BINS) -> NumericBins:
    finite = values[np.isfinite(values)]
    quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]) if finite.size else []
    edges = sorted({round(float(q), 6) for q in quantiles})
    counts = np.bincount(np.searchsorted(edges, finite, side="left"), minlength=len(edges) + 1)
    return NumericBins(edges=edges, counts=counts.tolist())


def categorical_profile(values: pd.Series) -> CategoryCounts:
    counts = values.astype(str).value_counts()
    return CategoryCounts(categories=counts.index.tolist(), counts=counts.astype(int).tolist())


def build_profile(frame: pd.DataFrame, features: list[FeatureSpec],
                  bins: int = DEFAULT_BINS) -> ReferenceProfile:
    profiles: dict[str, NumericBins | CategoryCounts] = {}
    for feature in features:
        column = frame[feature.name]
        if feature.kind == "categorical" or feature.dtype == "string":
            profiles[feature.name] = categorical_profile(column)
        else:
            profiles[feature.name] = numeric_profile(column.to_numpy(dtype=np.float64), bins)
    return ReferenceProfile(rows=len(frame), features=profiles)


def predictions_profile(artifact: ModelArtifact, frame: pd.DataFrame,
                        bins: int = DEFAULT_BINS) -> NumericBins | CategoryCounts | None:
    """What the ONNX model predicts for the rows, labelled as the server labels its answers."""
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
                  bins: int = DEFAULT_BINS) -> ReferenceProfile | None:
    """The profile a served ONNX model is bundled with: of `frame` when the user attached a
    dataset, else provisional bins from the schema. None for tensor models (nothing tabular)."""
    features = artifact.schema.features
    if not features:
        return None
    source = "dataset" if frame is not None else "schema"
    if frame is None:
        frame = sample_frame(features, SCHEMA_ROWS, seed=0)
    profile = build_profile(frame, features, bins)
    profile.source = source
    profile.predictions = predictions_profile(artifact, frame, bins)
    return profile


SERVER_OTHER = "__other__"
"""The category a Slipway server counts values outside its reference categories under."""


def profile_on_bins(frame: pd.DataFrame, numeric_edges: Mapping[str, Sequence[float]],
                    categories: Mapping[str, Sequence[str]],
                    dtypes: Mapping[str, str] | None = None) -> ReferenceProfile:
    """A profile of `frame` (source "dataset") on a running server's own bins, so it compares
    bin for bin with what the server counts: `numeric_edges` maps a feature to the `le` bounds it
    is counted on, `categories` a feature to the categories it is counted by (a value outside them
    is counted as the server counts it, under SERVER_OTHER). Columns the server does not count are
    left out; so are the predictions, which a table of inputs does not give. `dtypes` (feature
    -> the model's dtype) makes values meet the edges in the precision the server compares them
    in, as it does (a float32 value at an edge lands where the server puts it)."""
    profiles: dict[str, NumericBins | CategoryCounts] = {}
    for name, edges in numeric_edges.items():
        dtype = (dtypes or {}).get(name, "float64")
        dtype = np.dtype(dtype if dtype in ("float16", "float32") else "float64")
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)].astype(dtype)
        counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=dtype), values,
                                             side="left"), minlength=len(edges) + 1)
        profiles[name] = NumericBins(edges=[float(e) for e in edges], counts=counts.tolist())
    for name, known in categories.items():
        counted = frame[name].astype(str).where(frame[name].astype(str).isin(set(known)),
                                                SERVER_OTHER).value_counts()
        profiles[name] = CategoryCounts(categories=counted.index.tolist(),
                                        counts=counted.astype(int).tolist())
    return ReferenceProfile(rows=len(frame), features=profiles, source="dataset")


# --- built from live counts -------------------------------------------------------------------

def baseline_from_counts(numeric: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                         categorical: Mapping[str, Mapping[str, float]] | None = None,
                         predictions: tuple[Sequence[float], Sequence[float]]
                         | Mapping[str, float] | None = None,
                         rows: int | None = None) -> ReferenceProfile:
    """A profile from live counts (source "live"), so that when no dataset was attached the first
    N requests become the baseline.

    `numeric` maps a feature to (edges, per-bin counts) on the server's own bins (what
    `live_counts` returns), so later live counts compare with it bin for bin; `categorical` maps a
    feature to category -> count; `predictions` is either shape. `rows` defaults to the largest
    feature total.

    The server counts feature values only when it was deployed with a reference profile; without
    one /metrics has no feature or prediction counts at all and this returns a profile with no
    features. The caller must then say that drift needs a reference (attach a dataset when
    bundling, or redeploy with a profile whose edges suit the traffic) rather than show a table.
    """
    categorical = categorical or {}

    def numeric_entry(edges: Sequence[float], counts: Sequence[float]) -> NumericBins:
        if len(counts) != len(edges) + 1:
            raise ValueError(f"{len(edges)} edges need {len(edges) + 1} counts, not {len(counts)}")
        return NumericBins(edges=[float(e) for e in edges], counts=[round(c) for c in counts])

    def categorical_entry(counts: Mapping[str, float]) -> CategoryCounts:
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return CategoryCounts(categories=[c for c, _ in ordered],
                              counts=[round(n) for _, n in ordered])

    features: dict[str, NumericBins | CategoryCounts] = {
        name: numeric_entry(*bins) for name, bins in numeric.items()}
    features.update({name: categorical_entry(counts) for name, counts in categorical.items()})
    totals = [sum(entry.counts) for entry in features.values()]
    return ReferenceProfile(
        rows=rows if rows is not None else max(totals, default=0), features=features,
        predictions=None if predictions is None else (
            categorical_entry(predictions) if isinstance(predictions, Mapping)
            else numeric_entry(*predictions)),
        source="live")
