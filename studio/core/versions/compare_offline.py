"""Two versions compared offline, on the same rows: what differs in their schemas and files, how
often their answers agree and by how much they move, and, given the true answers, which is better
and how sure that is.

    compare_offline(A, B, reference=…, target=…) -> OfflineComparison

Both versions run in this process through onnxruntime (one thread each, as every in-process figure
of the studio is measured), on rows from the reference dataset or sampled from the schema with a
seed, each row asked alone as a served model is asked it (`run_rows`). Nothing here judges: the comparison says what differs, and the person decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel
from sklearn.metrics import confusion_matrix

from studio.core.model.schema import ModelSchema
from studio.core.model.session import onnx_session
from studio.core.optimize.optimize import GoldenInputs, Latency, measure, run_model
from studio.core.optimize.parity import Tolerance, compare_numbers
from studio.core.tasks import Progress, quiet
from studio.core.versions.compare_inputs import (
    SAMPLED_ROWS,
    SharedRows,
    Version,
    class_texts,
    open_version,
    shared_rows,
)
from studio.core.versions.compare_schema import (
    SchemaChange,
    VersionFacts,
    facts,
    operators_side_by_side,
    schema_diff,
)
from studio.core.versions.compare_stats import (
    RESAMPLES,
    Quality,
    classification_quality,
    regression_quality,
)
from studio.core.workspace import new_work_dir

TOP_ROWS = 20
"""Rows listed as disagreeing most."""
TIMING_BATCH_ROWS = 256


class OutputDifference(BaseModel):
    """How far B's numbers are from A's for one output (or one pair of outputs of the same role)."""

    name: str
    role: str
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    note: str | None = None


class LabelAgreement(BaseModel):
    rows: int
    agreed: int
    agreement: float
    classes: list[str]
    confusion: list[list[int]]
    """confusion[i][j]: rows A labels classes[i] and B labels classes[j]."""


class DisagreeingRow(BaseModel):
    row: int
    """The row's position in the data (0 is the first data row)."""
    a: Any
    b: Any
    labels_differ: bool
    difference: float | None
    """The largest |B − A| over the row's probabilities or values."""
    features: dict[str, Any]


class OfflineComparison(BaseModel):
    a: VersionFacts
    b: VersionFacts
    schema_changes: list[SchemaChange]
    operators: list[tuple[str, int, int]]
    rows: int
    rows_from: str
    predictions_note: str | None = None
    """Why predictions were not compared (then the figures below are empty)."""
    labels: LabelAgreement | None = None
    outputs: list[OutputDifference] = []
    disagreeing: list[DisagreeingRow] = []
    quality: Quality | None = None
    quality_note: str | None = None
    latency_a: Latency | None = None
    latency_b: Latency | None = None

    @property
    def same_schema(self) -> bool:
        return not self.schema_changes


class _Answers:
    """One version's answers to the rows, by role."""

    def __init__(self, schema: ModelSchema, outputs: dict[str, np.ndarray], rows: int):
        self.outputs = outputs
        roles = {o.role: o.name for o in reversed(schema.outputs) if o.name in outputs}
        self.names = roles
        self.probabilities = self.keys = self.labels = self.values = None
        if "probabilities" in roles:
            matrix = np.asarray(outputs[roles["probabilities"]], dtype=np.float64)
            self.probabilities = matrix.reshape(rows, -1)
            width = self.probabilities.shape[1]
            names = schema.class_names or []
            self.keys = [str(c) for c in names] if len(names) == width else \
                [str(i) for i in range(width)]
        if "label" in roles:
            self.labels = class_texts(outputs[roles["label"]], schema.class_names)
        elif self.probabilities is not None:
            self.labels = np.array(self.keys, dtype=object)[self.probabilities.argmax(axis=1)]
        if "value" in roles:
            self.values = np.asarray(outputs[roles["value"]], dtype=np.float64).reshape(rows, -1)


def compare_offline(a: str, b: str, *, reference: str | Path | None = None,
                    target: str | None = None, trust: bool = False, rows: int = SAMPLED_ROWS,
                    seed: int = 0, resamples: int = RESAMPLES, timing: bool = True,
                    progress: Progress | None = None) -> OfflineComparison:
    """Compare the models `a` and `b` (paths, `name:3` or `name@alias`) on the same rows."""
    progress = progress or quiet()
    work_dir = new_work_dir("compare")
    side_a = open_version("A", a, work_dir, trust=trust, reference=reference, progress=progress)
    side_b = open_version("B", b, work_dir, trust=trust, reference=reference, progress=progress)
    progress.update(0.4, "Comparing schemas and files")
    facts_a = facts("A", side_a.title, a, side_a.artifact, side_a.onnx)
    facts_b = facts("B", side_b.title, b, side_b.artifact, side_b.onnx)
    result = OfflineComparison(a=facts_a, b=facts_b,
                               schema_changes=schema_diff(side_a.schema, side_b.schema),
                               operators=operators_side_by_side(facts_a, facts_b), rows=0,
                               rows_from="")
    data = shared_rows(side_a.schema, side_b.schema, reference=reference, target=target,
                       rows=rows, seed=seed)
    result.rows, result.rows_from = data.count, data.described
    if data.note:
        result.predictions_note = data.note
        return result
    progress.update(0.5, f"Running both versions on {data.described}")
    session_a, session_b = onnx_session(side_a.onnx.model_file), onnx_session(side_b.onnx.model_file)
    answers_a = _Answers(side_a.schema, run_rows(session_a, data.feeds_a, data.count),
                         data.count)
    answers_b = _Answers(side_b.schema, run_rows(session_b, data.feeds_b, data.count),
                         data.count)
    _compare_predictions(result, side_a, side_b, answers_a, answers_b, data)
    if target:
        progress.update(0.7, f"Scoring both against '{target}' ({resamples} resamples)")
        _compare_quality(result, side_a, side_b, answers_a, answers_b, data, target,
                         resamples=resamples, seed=seed)
    if timing:
        progress.update(0.85, "Timing A")
        result.latency_a = measure(session_a, _timing_inputs(data.feeds_a, data.described))
        progress.update(0.92, "Timing B")
        result.latency_b = measure(session_b, _timing_inputs(data.feeds_b, data.described))
    progress.update(1.0, "Compared")
    return result


def run_rows(session, feeds: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    """Each row's answer when it is asked alone, as a request to /predict is. A model quantized
    dynamically scales its inputs by the batch it is given, so a row run within a batch of all the
    rows can get another answer than the served model gives it."""
    if count <= 1:
        return run_model(session, feeds)
    answers = [run_model(session, {name: value[row:row + 1] for name, value in feeds.items()})
               for row in range(count)]
    return {name: np.concatenate([answer[name] for answer in answers]) for name in answers[0]}


def _compare_predictions(result: OfflineComparison, side_a: Version, side_b: Version,
                         answers_a: _Answers, answers_b: _Answers, data: SharedRows) -> None:
    if answers_a.labels is not None and answers_b.labels is not None:
        # Every class either version knows, so a class one of them never answers shows as such.
        classes = sorted(set(answers_a.labels.tolist()) | set(answers_b.labels.tolist())
                         | set(answers_a.keys or []) | set(answers_b.keys or []))
        agreed = int((answers_a.labels == answers_b.labels).sum())
        result.labels = LabelAgreement(
            rows=data.count, agreed=agreed, agreement=agreed / data.count if data.count else 1.0,
            classes=classes,
            confusion=confusion_matrix(answers_a.labels, answers_b.labels,
                                       labels=classes).tolist())
    result.outputs = _output_differences(side_a, side_b, answers_a, answers_b)
    result.disagreeing = _disagreeing_rows(answers_a, answers_b, data)


def _output_differences(side_a: Version, side_b: Version, answers_a: _Answers,
                        answers_b: _Answers) -> list[OutputDifference]:
    """Max and mean |B − A| per output: outputs of the same role are paired even when renamed;
    probabilities are matched class by class; other outputs are paired by name."""
    found: list[OutputDifference] = []
    paired_a, paired_b = set(), set()
    for role in ("probabilities", "value"):
        name_a, name_b = answers_a.names.get(role), answers_b.names.get(role)
        if name_a is None or name_b is None:
            continue
        paired_a.add(name_a)
        paired_b.add(name_b)
        name = name_a if name_a == name_b else f"{name_a} ↔ {name_b}"
        if role == "probabilities":
            shared = [k for k in answers_a.keys if k in answers_b.keys]
            if not shared:
                found.append(OutputDifference(name=name, role=role,
                                              note="A and B have no class in common"))
                continue
            left = answers_a.probabilities[:, [answers_a.keys.index(k) for k in shared]]
            right = answers_b.probabilities[:, [answers_b.keys.index(k) for k in shared]]
            note = None if len(shared) == len(answers_a.keys) == len(answers_b.keys) else \
                f"over the {len(shared)} classes both have"
        else:
            left, right, note = answers_a.values, answers_b.values, None
        found.append(_difference(name, role, left, right, note))
    labels = {o.name for o in side_a.schema.outputs if o.role == "label"} | \
        {o.name for o in side_b.schema.outputs if o.role == "label"}
    for name, values in answers_a.outputs.items():
        if name in paired_a or name in labels or name in paired_b \
                or name not in answers_b.outputs:
            continue
        found.append(_difference(name, "tensor", values, answers_b.outputs[name], None))
    return found


def _difference(name: str, role: str, a: np.ndarray, b: np.ndarray,
                note: str | None) -> OutputDifference:
    try:
        parity = compare_numbers(name, role, a, b, Tolerance())
    except (TypeError, ValueError):  # text or other non-numeric tensors
        return OutputDifference(name=name, role=role, note="not numbers")
    if parity.max_abs_diff is None:
        return OutputDifference(name=name, role=role, note="the shapes differ")
    return OutputDifference(name=name, role=role, max_abs_diff=parity.max_abs_diff,
                            mean_abs_diff=parity.mean_abs_diff, note=note)


def _row_differences(answers_a: _Answers, answers_b: _Answers, rows: int) -> np.ndarray:
    """The largest |B − A| of each row over the probabilities both have, or the values."""
    if answers_a.probabilities is not None and answers_b.probabilities is not None:
        shared = [k for k in answers_a.keys if k in answers_b.keys]
        if shared:
            left = answers_a.probabilities[:, [answers_a.keys.index(k) for k in shared]]
            right = answers_b.probabilities[:, [answers_b.keys.index(k) for k in shared]]
            return np.abs(right - left).max(axis=1)
    if answers_a.values is not None and answers_b.values is not None \
            and answers_a.values.shape == answers_b.values.shape:
        return np.abs(answers_b.values - answers_a.values).max(axis=1)
    return np.full(rows, np.nan)


def _disagreeing_rows(answers_a: _Answers, answers_b: _Answers,
                      data: SharedRows) -> list[DisagreeingRow]:
    """The TOP_ROWS rows whose answers differ most: a changed label first, then the largest
    difference in numbers."""
    differences = _row_differences(answers_a, answers_b, data.count)
    flipped = np.zeros(data.count, dtype=bool)
    if answers_a.labels is not None and answers_b.labels is not None:
        flipped = answers_a.labels != answers_b.labels
    moved = np.nan_to_num(differences, nan=0.0)
    order = np.lexsort((np.arange(data.count), -moved, ~flipped))
    listed = []
    for row in order[:TOP_ROWS].tolist():
        if not flipped[row] and moved[row] == 0:
            break  # the rest answer alike
        listed.append(DisagreeingRow(
            row=row, a=_shown(answers_a, row), b=_shown(answers_b, row),
            labels_differ=bool(flipped[row]),
            difference=float(differences[row]) if np.isfinite(differences[row]) else None,
            features=_features_of(data, row)))
    return listed


def _shown(answers: _Answers, row: int) -> Any:
    if answers.labels is not None:
        return answers.labels[row]
    if answers.values is not None:
        return float(answers.values[row, 0])
    return None


def _features_of(data: SharedRows, row: int) -> dict[str, Any]:
    if data.frame is None:
        return {}
    return {name: value.item() if hasattr(value, "item") else value
            for name, value in data.frame.iloc[row].items()}


def _compare_quality(result: OfflineComparison, side_a: Version, side_b: Version,
                     answers_a: _Answers, answers_b: _Answers, data: SharedRows, target: str,
                     *, resamples: int, seed: int) -> None:
    tasks = {side_a.schema.task, side_b.schema.task}
    if tasks == {"classification"}:
        if answers_a.labels is None or answers_b.labels is None:
            result.quality_note = "One of the versions gives no labels to score."
            return
        # The true answers as each version names classes (a class index 0 may be "class_0").
        result.quality = classification_quality(
            target, class_texts(data.target, side_a.schema.class_names), answers_a.labels,
            answers_b.labels, answers_a.probabilities, answers_b.probabilities, answers_a.keys,
            answers_b.keys, truth_b=class_texts(data.target, side_b.schema.class_names),
            resamples=resamples, seed=seed)
    elif tasks == {"regression"}:
        if answers_a.values is None or answers_b.values is None:
            result.quality_note = "One of the versions gives no values to score."
            return
        try:
            truth = data.target.astype(np.float64)
        except (TypeError, ValueError):
            result.quality_note = f"The target column '{target}' does not hold numbers."
            return
        result.quality = regression_quality(target, truth, answers_a.values[:, 0],
                                            answers_b.values[:, 0], resamples=resamples,
                                            seed=seed)
    else:
        result.quality_note = (f"A is a {side_a.schema.task} model and B a {side_b.schema.task} "
                               "one: there is no common measure of quality to compare.")


def _timing_inputs(feeds: dict[str, np.ndarray], described: str) -> GoldenInputs:
    single = {name: value[:1] for name, value in feeds.items()}
    batch = {name: value[:TIMING_BATCH_ROWS] for name, value in feeds.items()}
    return GoldenInputs(feeds, single, batch, described)
