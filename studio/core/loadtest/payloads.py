"""Request bodies for load tests: the model's fixed sample, random valid rows from its schema, rows
like the server's reference data (drawn from the bins of its reference profile), rows of a
reference dataset, and any of these with drift injected into chosen features.

Rows like the reference are the default when the server has one from real data: a load test is
not drift, and random rows from the schema would show on the Monitor as drift on every feature.

Bodies are rendered once, before the test, into a pool the load tester cycles through: turning rows
into JSON while the test runs would cost the tester the CPU it needs to keep up with the server.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from studio.core.errors import ExitStatus, StudioError
from studio.core.model.datasets import read_table, sample_frame, tensor_feeds
from studio.core.model.schema import FeatureSpec, ModelSchema, v2_datatype
from studio.core.monitor.reference import CategoryCounts, NumericBins, ReferenceProfile
from studio.core.serve.client import ModelClient

RANDOM_ROWS = 1024
"""Distinct bodies sampled from the schema: enough that no cache sees the same row twice in a row."""
MAX_REFERENCE_ROWS = 10_000
RANDOM_LABEL = "random valid rows from the schema"
PROFILE_LABEL = "rows like the server's reference data"


class PayloadError(StudioError):
    """The request bodies for a load test cannot be made."""

    exit_status = ExitStatus.USAGE


@dataclass(frozen=True)
class Drift:
    """Move one feature's values: `value * scale + shift + shift_sd * sd(feature)`."""

    feature: str
    shift: float = 0.0
    shift_sd: float = 0.0
    scale: float = 1.0

    def describe(self) -> str:
        parts = []
        if self.scale != 1.0:
            parts.append(f"×{self.scale:g}")
        if self.shift_sd:
            parts.append(f"{self.shift_sd:+g} sd")
        if self.shift:
            parts.append(f"{self.shift:+g}")
        return f"{self.feature} {' '.join(parts) or 'unchanged'}"


DRIFT_FORMAT = re.compile(r"^(?P<feature>.+?)=(?P<op>[+\-*x])(?P<amount>[0-9.eE+\-]+)(?P<sd>sd)?$")


def parse_drift(text: str) -> Drift:
    """`petal_length=+2sd` (shift by two standard deviations), `age=-5` (shift by 5),
    `income=*1.5` or `income=x1.5` (scale by 1.5)."""
    match = DRIFT_FORMAT.match(text.strip())
    if match is None:
        raise PayloadError(f"'{text}' is not a drift.",
                           "Write FEATURE=+2sd, FEATURE=-0.5, or FEATURE=*1.5.")
    op, sd = match["op"], bool(match["sd"])
    try:
        amount = float(match["amount"])
    except ValueError:
        raise PayloadError(f"'{text}': '{match['amount']}' is not a number.") from None
    if op in "*x":
        if sd:
            raise PayloadError(f"'{text}': a scale is a plain factor, not in standard deviations.")
        return Drift(match["feature"], scale=amount)
    signed = amount if op == "+" else -amount
    return Drift(match["feature"], shift_sd=signed) if sd else Drift(match["feature"], shift=signed)


def apply_drift(frame: pd.DataFrame, drifts: list[Drift], schema: ModelSchema) -> pd.DataFrame:
    """A copy of `frame` with each drift applied; the standard deviation is the column's own."""
    if not drifts:
        return frame
    features = {f.name: f for f in schema.features}
    drifted = frame.copy()
    for drift in drifts:
        feature = features.get(drift.feature)
        if feature is None:
            known = ", ".join(list(features)[:10])
            raise PayloadError(f"The model has no feature '{drift.feature}'.",
                               f"Its features are: {known}.")
        if feature.kind == "categorical" or feature.dtype == "string":
            raise PayloadError(f"'{drift.feature}' is categorical: it cannot be shifted or scaled.")
        values = drifted[drift.feature].to_numpy(dtype=np.float64)
        sd = float(np.nanstd(values)) or float(feature.spread or 0.0) or 1.0
        moved = values * drift.scale + drift.shift + drift.shift_sd * sd
        if feature.dtype.startswith(("int", "uint")):
            moved = np.round(moved)
        drifted[drift.feature] = moved
    return drifted


def rows_from_schema(schema: ModelSchema, count: int = RANDOM_ROWS, seed: int = 0) -> pd.DataFrame:
    if not schema.features:
        raise PayloadError(f"'{schema.name}' takes tensors, not rows of features.",
                           "Use its fixed sample, or a payload file.")
    return sample_frame(schema.features, count, seed)


def rows_like_profile(profile: ReferenceProfile, schema: ModelSchema, count: int = RANDOM_ROWS,
                      seed: int = 0) -> pd.DataFrame:
    """Rows drawn from the reference profile's bins, feature by feature: a bin chosen by its count,
    a value uniform within it (a whole number for an integer feature); a category by its count.
    Each feature's values then fall into the server's bins as the reference data's did, so the
    Monitor sees no drift. (The profile keeps each feature apart, so the rows are not the
    reference's rows: the features are drawn independently.) Features the profile lacks are
    drawn from the schema, as random rows are."""
    if not schema.features:
        raise PayloadError(f"'{schema.name}' takes tensors, not rows of features.",
                           "Use its fixed sample, or a payload file.")
    rng = np.random.default_rng(seed)
    fallback = rows_from_schema(schema, count, seed)
    columns = {}
    for feature in schema.features:
        bins = profile.features.get(feature.name)
        if isinstance(bins, CategoryCounts) and sum(bins.counts):
            picks = rng.choice(len(bins.counts), size=count, p=_shares(bins.counts))
            values = [_category(feature, bins.categories[i]) for i in picks]
            columns[feature.name] = np.array(values, dtype=object)
        elif isinstance(bins, NumericBins) and bins.edges and sum(bins.counts):
            columns[feature.name] = _values_in_bins(bins, count, rng, _whole(feature))
        else:
            columns[feature.name] = fallback[feature.name].to_numpy()
    return pd.DataFrame(columns)


def _shares(counts: list[int]) -> np.ndarray:
    weights = np.asarray(counts, dtype=np.float64)
    return weights / weights.sum()


def _whole(feature: FeatureSpec) -> bool:
    return feature.dtype.startswith(("int", "uint")) or feature.dtype == "bool"


def _category(feature: FeatureSpec, text: str) -> Any:
    """The category as the model takes it: the profile counts categories by their text."""
    for known in feature.categories or []:
        if str(known) == text:
            return known
    if feature.dtype == "string":
        return text
    try:
        return int(text) if _whole(feature) else float(text)
    except ValueError:
        return text


def bin_bounds(edges: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Each bin's (low, high]: bin i holds values above edges[i-1] up to edges[i]. The open-ended
    first and last bins are given the width of their neighbour (of the first edge's size, when
    there is no neighbour), and a feature whose edges are all non-negative stays non-negative."""
    upper = np.asarray(edges, dtype=np.float64)
    if len(upper) > 1:
        first_width, last_width = upper[1] - upper[0], upper[-1] - upper[-2]
    else:
        first_width = last_width = max(abs(upper[0]) * 0.1, 1e-3)
    floor = upper[0] - first_width
    if upper[0] >= 0:
        floor = max(floor, 0.0)
    lows = np.concatenate(([floor], upper))
    highs = np.concatenate((upper, [upper[-1] + last_width]))
    return lows, highs


def _values_in_bins(bins: NumericBins, count: int, rng: np.random.Generator,
                    whole: bool) -> np.ndarray:
    lows, highs = bin_bounds(bins.edges)
    chosen = rng.choice(len(bins.counts), size=count, p=_shares(bins.counts))
    low, high = lows[chosen], highs[chosen]
    if not whole:
        return low + (high - low) * (1.0 - rng.random(count))  # in (low, high], as the bins are
    first, last = np.floor(low) + 1, np.floor(high)  # the whole numbers in (low, high]
    empty = last < first  # no whole number inside: no integer data can have fallen there
    span = np.where(empty, 0, last - first + 1)
    return np.where(empty, np.round(high), first + np.floor(rng.random(count) * span))


def rows_from_reference(path: str | Path, schema: ModelSchema) -> pd.DataFrame:
    frame = read_table(path, schema.features)
    return frame.iloc[:MAX_REFERENCE_ROWS]


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise PayloadError("A row holds NaN or infinity, which JSON cannot carry.",
                           "Drop or fill the missing values in the dataset.")
    return value


def _json_caster(dtype: str):
    """How a feature's values are written: integers as integers (a v2 INT64 input refuses 44.0)."""
    if dtype.startswith(("int", "uint")):
        return lambda value: int(_json_value(value))
    if dtype == "bool":
        return lambda value: bool(_json_value(value))
    return _json_value


def row_bodies(frame: pd.DataFrame, schema: ModelSchema, route: str) -> list[bytes]:
    """One JSON body per row, in the form `route` takes."""
    names = [f.name for f in schema.features]
    casts = [_json_caster(f.dtype) for f in schema.features]
    rows = [[cast(v) for cast, v in zip(casts, row)]
            for row in frame[names].itertuples(index=False)]
    if route == "/predict":
        return [orjson.dumps({"features": dict(zip(names, row))}) for row in rows]
    if route == "/predict/batch":
        return [orjson.dumps({"instances": [row]}) for row in rows]
    if route.startswith("/v2/models/") and route.endswith("/infer"):
        return [orjson.dumps({"inputs": _v2_inputs(schema, dict(zip(names, row)))})
                for row in rows]
    raise PayloadError(f"Slipway does not know what body {route} takes.",
                       "Use /predict, /predict/batch or /v2/models/NAME/infer, or a payload file.")


def _v2_inputs(schema: ModelSchema, row: dict[str, Any]) -> list[dict[str, Any]]:
    inputs = []
    for tensor in schema.inputs:
        data = [row[f.name] for f in schema.features if f.tensor == tensor.name]
        shape = [1, len(data)] if len(tensor.shape) == 2 else [len(data)]
        inputs.append({"name": tensor.name, "shape": shape,
                       "datatype": v2_datatype(tensor.dtype), "data": data})
    return inputs


def tensor_bodies(schema: ModelSchema, count: int = 64, seed: int = 0) -> list[bytes]:
    """Random v2 bodies for tensor models (images, embeddings)."""
    bodies = []
    for i in range(count):
        feeds = tensor_feeds(schema.inputs, rows=1, seed=seed + i)
        bodies.append(orjson.dumps({"inputs": [
            {"name": name, "shape": list(array.shape), "datatype": v2_datatype(str(array.dtype)),
             "data": array.ravel().tolist()} for name, array in feeds.items()]}))
    return bodies


def fixed_body(path: str | Path) -> list[bytes]:
    """A payload file: one JSON body, or a JSON Lines file of bodies sent in turn. The bytes go
    out as they are in the file (checked to be JSON, never re-encoded)."""
    path = Path(path)
    try:
        text = path.read_bytes().removeprefix(b"\xef\xbb\xbf").strip()  # a BOM is no JSON
    except OSError as exc:
        raise PayloadError(f"Cannot read the payload file '{path}': "
                           f"{exc.strerror or exc}.") from exc
    if not text:
        raise PayloadError(f"'{path.name}' is empty.", "Put the request body in it, as JSON.")
    try:
        orjson.loads(text)
        return [text]
    except orjson.JSONDecodeError:
        pass
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for number, line in enumerate(lines, 1):
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(f"'{path.name}' is neither JSON nor JSON Lines (line {number}: "
                               f"{exc}).") from exc
    return lines


def fetch_schema(url: str, api_key: str | None = None) -> ModelSchema:
    """The ModelSchema a Slipway server serves at /schema."""
    with ModelClient(url, api_key=api_key, timeout=5.0) as client:
        reply = client.request("GET", "/schema")
    if reply.status != 200 or not reply.is_json:
        raise PayloadError(f"{url} does not describe its model (GET /schema answered "
                           f"{reply.status}).",
                           "Give the request body with --payload FILE.")
    try:
        return ModelSchema.model_validate(reply.body)
    except ValueError as exc:
        raise PayloadError(f"{url}/schema is not a Slipway model schema.",
                           "Give the request body with --payload FILE.", detail=str(exc)) from exc


def fetch_reference(url: str, api_key: str | None = None) -> ReferenceProfile | None:
    """The reference profile the server at `url` was bundled with, when it was built from real
    data (GET /reference, source "dataset"); None when it has none, has only provisional bins from
    the schema, or does not answer (the test then reports the server's failures itself). The
    plan's label says which rows were sent."""
    try:
        with ModelClient(url, api_key=api_key, timeout=5.0) as client:
            reply = client.request("GET", "/reference")
        if reply.status != 200 or not reply.is_json:
            return None
        profile = ReferenceProfile.from_json_dict(reply.body, f"{url}/reference")
    except StudioError:
        return None
    return profile if profile.source == "dataset" else None


def bodies_for(schema: ModelSchema, route: str, source: str = "random",
               reference: str | Path | None = None, drifts: list[Drift] | None = None,
               seed: int = 0, profile: ReferenceProfile | None = None) -> tuple[list[bytes], str]:
    """The body pool for a test and a one-line description of where it came from.

    `source` is "sample" (the model's fixed sample), "random" (valid rows drawn from the schema),
    "profile" (rows drawn from the bins of `profile`, the server's reference) or "reference" (rows
    of the dataset at `reference`).
    """
    drifts = drifts or []
    if source == "reference":
        if reference is None:
            raise PayloadError("Reference rows need a dataset.", "Choose a CSV, Parquet or .npy file.")
        frame, label = rows_from_reference(reference, schema), f"rows of {Path(reference).name}"
    elif source == "profile":
        if profile is None:
            raise PayloadError("Rows like the server's reference data need its reference profile.")
        frame, label = rows_like_profile(profile, schema, seed=seed), PROFILE_LABEL
    elif source == "random" and schema.features:
        frame, label = rows_from_schema(schema, seed=seed), RANDOM_LABEL
    elif source in ("random", "sample") and not schema.features:
        if drifts:
            raise PayloadError("Drift applies to tabular features; this model takes tensors.")
        if not route.startswith("/v2/"):
            raise PayloadError(f"'{schema.name}' takes tensors: load "
                               f"/v2/models/{schema.name}/infer instead of {route}.")
        if source == "random":
            return tensor_bodies(schema, seed=seed), "random tensors of the input shapes"
        return [orjson.dumps(schema.with_samples().samples.v2)], "the model's sample request"
    elif source == "sample":
        frame = pd.DataFrame([{f.name: f.example for f in schema.features}])
        label = "the model's sample request"
    else:
        raise PayloadError(f"'{source}' is not a payload source.",
                           "Use sample, random, profile or reference.")
    frame = apply_drift(frame, drifts, schema)
    if drifts:
        label += ", drifted: " + "; ".join(d.describe() for d in drifts)
    return row_bodies(frame, schema, route), label
