"""Does the new model answer like the original? Output by output, on the same golden rows.

Numbers (probabilities, regression values, raw tensors) pass when every element satisfies
|new - original| <= atol + rtol * |original|, the rule numpy.isclose applies. Labels pass when the
share of rows whose label is unchanged reaches `min_label_agreement`; the rows that flipped are
listed so a person can look at them.

A row whose two most probable classes are tied within the tolerance (a 100-tree forest voting
50/50) has no single right label: float rounding may pick either. Such rows are counted as ties,
not as flips.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

MAX_FLIPPED_LISTED = 25


class Tolerance(BaseModel):
    atol: float = 1e-4
    rtol: float = 1e-3
    min_label_agreement: float = 1.0
    """1.0: every label must match."""


class OutputParity(BaseModel):
    name: str
    role: str
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    mismatched: int = 0
    """Elements (numbers) or rows (labels) outside the tolerance."""
    label_agreement: float | None = None
    ties: int = 0
    """Rows whose label changed between classes the original model scored as tied."""
    passed: bool


class FlippedRow(BaseModel):
    row: int
    original: Any
    new: Any


class ParityReport(BaseModel):
    inputs: str
    """Where the golden rows came from, for the reader: a dataset's name or 'sampled from schema'."""
    rows: int
    outputs: list[OutputParity]
    flipped_rows: list[FlippedRow] = Field(default_factory=list)
    tolerance: Tolerance
    passed: bool

    @property
    def label_agreement(self) -> float | None:
        labels = [o.label_agreement for o in self.outputs if o.label_agreement is not None]
        return min(labels) if labels else None

    def summary(self) -> str:
        parts = []
        for output in self.outputs:
            if output.label_agreement is not None:
                parts.append(f"{output.name}: {output.label_agreement:.2%} agree")
            elif output.max_abs_diff is not None:
                parts.append(f"{output.name}: values differ by at most {output.max_abs_diff:.2e}")
        verdict = "pass" if self.passed else "FAIL"
        return f"{verdict} on {self.rows} rows ({self.inputs}); " + ", ".join(parts)


def _labels(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim > 1:
        values = values.reshape(len(values), -1)[:, 0]
    if values.dtype.kind in "SUO":
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)
    return values


def tied_rows(probabilities: np.ndarray | None, tolerance: Tolerance) -> np.ndarray | None:
    """Rows whose two highest probabilities are equal within the tolerance."""
    if probabilities is None:
        return None
    p = np.asarray(probabilities, dtype=np.float64).reshape(len(probabilities), -1)
    if p.shape[1] < 2:
        return None
    top = np.sort(p, axis=1)[:, -2:]
    return (top[:, 1] - top[:, 0]) <= tolerance.atol + tolerance.rtol * np.abs(top[:, 1])


def compare_labels(name: str, original: np.ndarray, new: np.ndarray, tolerance: Tolerance,
                   ties: np.ndarray | None = None) -> tuple[OutputParity, list[FlippedRow]]:
    a, b = _labels(original), _labels(new)
    if len(a) != len(b):  # one label per row, or the rows do not correspond at all
        return OutputParity(name=name, role="label", mismatched=max(len(a), len(b)),
                            label_agreement=0.0, passed=False), []
    if a.dtype.kind in "iuf" and b.dtype.kind in "iuf":
        same = a.astype(np.float64) == b.astype(np.float64)
    else:
        same = np.array([str(x) == str(y) for x, y in zip(a, b)])
    tie = ~same & ties if ties is not None and len(ties) == len(same) else np.zeros_like(same)
    kept = same | tie
    agreement = float(kept.mean()) if len(kept) else 1.0
    flipped = [FlippedRow(row=int(i), original=_plain(a[i]), new=_plain(b[i]))
               for i in np.flatnonzero(~kept)[:MAX_FLIPPED_LISTED]]
    return OutputParity(name=name, role="label", mismatched=int((~kept).sum()),
                        label_agreement=agreement, ties=int(tie.sum()),
                        passed=agreement >= tolerance.min_label_agreement), flipped


def compare_numbers(name: str, role: str, original: np.ndarray, new: np.ndarray,
                    tolerance: Tolerance) -> OutputParity:
    a = np.asarray(original, dtype=np.float64)
    b = np.asarray(new, dtype=np.float64)
    a = a.reshape(len(a), -1) if a.size else a.reshape(len(a), 0)
    b = b.reshape(len(b), -1) if b.size else b.reshape(len(b), 0)
    if a.shape != b.shape:
        return OutputParity(name=name, role=role, passed=False, mismatched=int(max(a.size, b.size)))
    finite = np.isfinite(a) == np.isfinite(b)
    close = np.isclose(b, a, atol=tolerance.atol, rtol=tolerance.rtol, equal_nan=True) & finite
    # NaN where the original has NaN (or the same infinity) is agreement, difference 0; a NaN on
    # one side only is as far off as a number can be, and the reported difference says so.
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - b)
    diff = np.where(close, np.where(np.isfinite(diff), diff, 0.0),
                    np.where(np.isnan(diff), np.inf, diff))
    return OutputParity(
        name=name, role=role,
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        mismatched=int((~close).sum()),
        passed=bool(close.all()),
    )


def compare(original: dict[str, np.ndarray], new: dict[str, np.ndarray], roles: dict[str, str],
            tolerance: Tolerance, inputs: str) -> ParityReport:
    """Compare outputs with the same names; `roles` says which are labels."""
    outputs: list[OutputParity] = []
    flipped: list[FlippedRow] = []
    rows = 0
    probabilities = next((original[n] for n, r in roles.items()
                          if r == "probabilities" and n in original), None)
    ties = tied_rows(probabilities, tolerance)
    for name, reference in original.items():
        if name not in new:
            outputs.append(OutputParity(name=name, role=roles.get(name, "tensor"), passed=False))
            continue
        rows = len(reference)
        if roles.get(name) == "label":
            parity, flips = compare_labels(name, reference, new[name], tolerance, ties)
            flipped += flips
        else:
            parity = compare_numbers(name, roles.get(name, "tensor"), reference, new[name], tolerance)
        outputs.append(parity)
    return ParityReport(inputs=inputs, rows=rows, outputs=outputs, flipped_rows=flipped,
                        tolerance=tolerance, passed=bool(outputs) and all(o.passed for o in outputs))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
