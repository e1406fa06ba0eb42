"""Do two servers answer one request alike? Their JSON answers walked side by side.

A label (a `label` field of /predict and /predict/batch, a v2 output named like a label or holding
text) must be equal; a number may differ by the tolerance the parity check uses (|B − A| <=
atol + rtol·|A|); anything else that differs (a field or an item one answer lacks) is a difference
of shape. What names the server rather than the answer (`model`, `version`, `model_name`,
`model_version`, `id`) is not compared: two versions are expected to differ there.

A request both refuse with the same status agrees; one refused by only one of them does not
(`status`). Shadow traffic and the live comparison's sample both judge answers this way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from studio.core.optimize.parity import Tolerance

Kind = Literal["label", "value", "shape", "status", "unreadable"]
IGNORED = frozenset({"model", "version", "model_name", "model_version", "id"})
SEVERITY: tuple[Kind, ...] = ("status", "label", "value", "shape", "unreadable")
"""Which difference is reported when an answer has several: a changed status or label first."""


@dataclass(frozen=True)
class AnswerComparison:
    agreed: bool
    kind: Kind | None = None
    where: str = ""
    """The first place of the reported kind, e.g. `predictions[3].label: "a" vs "b"`."""


def compare_answers(status_a: int, body_a: bytes, status_b: int, body_b: bytes,
                    tolerance: Tolerance | None = None) -> AnswerComparison:
    tolerance = tolerance or Tolerance()
    ok_a, ok_b = 200 <= status_a < 300, 200 <= status_b < 300
    if ok_a != ok_b or (not ok_a and status_a != status_b):
        return AnswerComparison(False, "status", f"status {status_a} vs {status_b}")
    if not ok_a or body_a == body_b:
        return AnswerComparison(True)
    try:
        a, b = orjson.loads(body_a), orjson.loads(body_b)
    except orjson.JSONDecodeError:
        return AnswerComparison(False, "unreadable", "an answer is not JSON")
    found: dict[Kind, str] = {}
    _walk(a, b, "", False, tolerance, found)
    if not found:
        return AnswerComparison(True)
    kind = next(k for k in SEVERITY if k in found)
    return AnswerComparison(False, kind, found[kind])


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _walk(a: Any, b: Any, path: str, label: bool, tolerance: Tolerance,
          found: dict[Kind, str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        keys_a, keys_b = set(a) - IGNORED, set(b) - IGNORED
        if keys_a != keys_b:
            missing = sorted(keys_a ^ keys_b)[0]
            found.setdefault("shape", f"{path or 'the answer'}: '{missing}' in only one")
        # A v2 output holding labels: named so, or text.
        labels = label or ("data" in a and (
            "label" in str(a.get("name", "")).lower() or a.get("datatype") == "BYTES"))
        for key in sorted(keys_a & keys_b):
            _walk(a[key], b[key], f"{path}.{key}" if path else key,
                  labels or key == "label", tolerance, found)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            found.setdefault("shape", f"{path}: {len(a)} items vs {len(b)}")
        for index, (left, right) in enumerate(zip(a, b)):
            _walk(left, right, f"{path}[{index}]", label, tolerance, found)
        return
    if _number(a) and _number(b) and not label:
        if not _close(float(a), float(b), tolerance):
            found.setdefault("value", f"{path}: {a!r} vs {b!r}")
        return
    if a != b or type(a) is not type(b) and not (_number(a) and _number(b)):
        kind: Kind = "label" if label or isinstance(a, str) or isinstance(b, str) else "shape"
        found.setdefault(kind, f"{path}: {a!r} vs {b!r}")


def _close(a: float, b: float, tolerance: Tolerance) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(b - a) <= tolerance.atol + tolerance.rtol * abs(a)
