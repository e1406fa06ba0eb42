"""What two versions are compared on: each version opened (its reference resolved, the model
loaded, in the ONNX form that is run and served) and the rows both are given.

Offline, live and shadow comparisons all start here, so "A" and "B" mean the same models, run the
same way, in all three. A scikit-learn or booster model is compared through its ONNX conversion, as
the Serve stage serves it; a conversion that fails its parity check is refused, since comparing it
would compare the conversion rather than the model.

Both versions get the same rows. Where their features differ (one was added, one removed), each row
carries every feature either version takes, and each version reads the columns it knows: a removed
feature does not stop a comparison, and the schema difference names it. Where a feature changed
kind (numbers to text), no value fits both and predictions cannot be compared; `SharedRows.note`
says so and names the feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from studio.core.errors import ExitStatus, StudioError
from studio.core.model.artifact import ModelArtifact, load
from studio.core.model.datasets import (
    DatasetError,
    onnx_feeds,
    read_table,
    sample_frame,
    tensor_feeds,
)
from studio.core.model.schema import FeatureSpec, ModelSchema, Scalar
from studio.core.optimize import convert as convert_module
from studio.core.tasks import Progress, quiet
from studio.core.versions.references import ResolvedModel, resolve

SAMPLED_ROWS = 500
"""Rows drawn from the schema when no reference data is given."""
MAX_ROWS = 10_000
"""Rows of a reference dataset compared at most (its first ones)."""
TENSOR_ROWS = 16


class CompareError(StudioError):
    """Two versions cannot be compared as asked: a target column that is not there, inputs that no
    request fits both of, a conversion that failed its parity check."""

    exit_status = ExitStatus.USAGE


@dataclass(frozen=True)
class Version:
    """One side of a comparison."""

    side: str
    """"A" or "B"."""
    text: str
    """What the person gave: a path, `name:3` or `name@alias`."""
    resolved: ResolvedModel
    artifact: ModelArtifact
    """The model as loaded."""
    onnx: ModelArtifact
    """What is run and served: the artifact itself, or its verified ONNX conversion."""

    @property
    def schema(self) -> ModelSchema:
        return self.onnx.schema

    @property
    def registered(self) -> str | None:
        """`name:3` when the model is a registered version."""
        if self.resolved.name and self.resolved.version is not None:
            return f"{self.resolved.name}:{self.resolved.version}"
        return None

    @property
    def title(self) -> str:
        """How the side is named to a person: "A: wine:3" or "A: wine_classifier.onnx"."""
        return f"{self.side}: {self.registered or self.artifact.path.name}"

    @property
    def served_version(self) -> str:
        """The version a server of this side reports (and labels its metrics with): the registered
        version number, else the start of the ONNX file's sha256, so that two unregistered files
        never share a label."""
        if self.resolved.version is not None:
            return str(self.resolved.version)
        return self.onnx.schema.metadata.sha256[:12]


def open_version(side: str, text: str, work_dir: Path, *, trust: bool = False,
                 reference: str | Path | None = None,
                 progress: Progress | None = None) -> Version:
    """Resolve `text`, load the model and bring it to ONNX (in `work_dir`) when it is not."""
    progress = progress or quiet()
    resolved = resolve(text)
    progress.update(None, f"Loading {side}: {text}")
    artifact = load(resolved.path, trust=trust, progress=progress)
    if artifact.schema.metadata.onnx is not None:
        return Version(side, text, resolved, artifact, artifact)
    progress.update(None, f"Converting {side} ({artifact.name}) to ONNX")
    conversion = convert_module.convert(artifact, work_dir / f"{side}-{artifact.name}.onnx",
                                        reference=reference, progress=progress)
    if not conversion.passed:
        raise CompareError(
            f"The ONNX conversion of {side} ('{artifact.path.name}') failed its parity check: "
            f"{conversion.report.parity.summary()}",
            "Comparing it would compare the conversion, not the model: look at the differences "
            "on the Optimize page (slipway convert), or compare ONNX files.")
    return Version(side, text, resolved, artifact, conversion.artifact)


@dataclass
class SharedRows:
    """The rows both versions are given, in each version's input form."""

    described: str
    """Where the rows came from, for the reader."""
    count: int
    frame: pd.DataFrame | None
    """One column per feature either version takes (None for tensor models)."""
    feeds_a: dict[str, np.ndarray] | None
    feeds_b: dict[str, np.ndarray] | None
    target: np.ndarray | None = None
    note: str | None = None
    """Why the versions cannot be given the same rows (then the feeds are None)."""


def _kind(feature: FeatureSpec) -> str:
    return "text" if feature.dtype == "string" else "numbers"


def feature_union(a: ModelSchema, b: ModelSchema) -> tuple[list[FeatureSpec], str | None]:
    """Every feature either version takes (A's description where both do), and why no row can
    feed both, when a feature is numbers in one and text in the other."""
    features = list(a.features)
    known = {f.name: f for f in a.features}
    for feature in b.features:
        theirs = known.get(feature.name)
        if theirs is None:
            features.append(feature)
        elif _kind(theirs) != _kind(feature):
            return features, (f"Feature '{feature.name}' takes {_kind(theirs)} in A and "
                              f"{_kind(feature)} in B: no row fits both, so predictions are not "
                              "compared.")
    return features, None


def shared_rows(a: ModelSchema, b: ModelSchema, *, reference: str | Path | None = None,
                target: str | None = None, rows: int = SAMPLED_ROWS,
                seed: int = 0) -> SharedRows:
    """The same rows for A and B: the reference dataset's (its first MAX_ROWS), or rows sampled
    from the features with `seed`; with the `target` column's values when one is named."""
    if target and not reference:
        raise CompareError(f"A target column ('{target}') needs reference data that holds it.",
                           "Give the dataset with --reference DATA.")
    if not a.features or not b.features:
        return _tensor_rows(a, b, rows, seed)
    features, note = feature_union(a, b)
    if note:
        return SharedRows(described="", count=0, frame=None, feeds_a=None, feeds_b=None,
                          note=note)
    labels = None
    if reference:
        frame = _reference_frame(reference, a, features)
        if target:
            labels = _target_column(reference, target, len(frame))
        described = f"{Path(reference).name}, {len(frame)} rows"
    else:
        frame = sample_frame(features, rows, seed)
        described = f"{rows} rows sampled from the schema (seed {seed})"
    return SharedRows(described=described, count=len(frame), frame=frame,
                      feeds_a=onnx_feeds(a.inputs, a.features, frame),
                      feeds_b=onnx_feeds(b.inputs, b.features, frame), target=labels)


def _reference_frame(reference: str | Path, a: ModelSchema,
                     features: list[FeatureSpec]) -> pd.DataFrame:
    # A's columns first: a dataset that does not fit A is an error in the dataset, said as such.
    read_table(reference, a.features)
    try:
        frame = read_table(reference, features)
    except DatasetError as exc:
        raise CompareError(f"The reference data cannot feed B: {exc.message}",
                           "Use a dataset with a column for every feature of both versions.",
                           detail=exc.detail) from exc
    return frame.iloc[:MAX_ROWS].reset_index(drop=True)


def _target_column(reference: str | Path, target: str, rows: int) -> np.ndarray:
    if Path(reference).suffix.lower() == ".npy":
        raise CompareError("A .npy file has no column names, so it cannot name a target column.",
                           "Save the rows with their target as CSV or Parquet.")
    column = FeatureSpec(name=target, kind="categorical", dtype="object")
    try:
        values = read_table(reference, [column])[target]
    except DatasetError as exc:
        raise CompareError(f"The target column '{target}' is not in "
                           f"'{Path(reference).name}'.",
                           "Name the column that holds the true answers (--target COLUMN).",
                           detail=exc.message) from exc
    values = values.iloc[:rows]
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise CompareError(f"The target column '{target}' is empty in data row {row + 1}.",
                           "Fill or drop the rows without a true answer.")
    return values.to_numpy()


def _tensor_rows(a: ModelSchema, b: ModelSchema, rows: int, seed: int) -> SharedRows:
    same = [(t.name, t.dtype, t.shape) for t in a.inputs] == \
        [(t.name, t.dtype, t.shape) for t in b.inputs]
    if not same:
        return SharedRows(described="", count=0, frame=None, feeds_a=None, feeds_b=None,
                          note="A and B take different input tensors: no input fits both, so "
                               "predictions are not compared.")
    dynamic = all(t.shape and not isinstance(t.shape[0], int) for t in a.inputs)
    count = min(rows, TENSOR_ROWS) if dynamic else 1
    feeds = tensor_feeds(a.inputs, rows=count, seed=seed)
    return SharedRows(described=f"{count} random tensor{'s' if count > 1 else ''} of the input "
                                f"shape (seed {seed})", count=count, frame=None,
                      feeds_a=feeds, feeds_b=feeds)


def class_texts(values: np.ndarray, class_names: list[Scalar] | None) -> np.ndarray:
    """Labels as text, the way a server answers them: a model trained on class indices with
    display names (0 -> "class_0") answers with the name; integral numbers lose a ".0" (a target
    column read as floats names the same class as an int64 label)."""
    flat = np.asarray(values).reshape(len(values), -1)[:, 0] if len(values) else np.asarray([])
    names = class_names if class_names and all(isinstance(n, str) for n in class_names) else None
    texts = []
    for value in flat.tolist():
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if names is not None and isinstance(value, int) and not isinstance(value, bool) \
                and 0 <= value < len(names):
            value = names[value]
        texts.append(str(value))
    return np.array(texts, dtype=object)
