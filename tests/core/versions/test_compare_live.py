"""Two versions compared live: both served for real at once, loaded with the same requests in
interleaved rounds over real HTTP; and how the verdict and the answer check read their figures."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import orjson
import pytest
from compare_models import WINE_CSV, int8_of, wine_rows, wine_version
from sklearn.neural_network import MLPClassifier

from studio.core.tasks import Progress
from studio.core.versions.compare_answers import compare_answers
from studio.core.versions.compare_inputs import CompareError
from studio.core.versions.compare_live import (
    LiveComparison,
    LiveOptions,
    LiveRound,
    LiveSnapshot,
    compare_live,
    figure_rows,
    verdict,
)


def test_both_served_and_loaded_in_interleaved_rounds(tmp_path):
    mlp = wine_version(tmp_path, "wine_mlp",
                       MLPClassifier(hidden_layer_sizes=(8,), max_iter=200, random_state=0))
    int8 = int8_of(mlp, tmp_path)
    X, _ = wine_rows()
    rows = X.to_numpy(dtype=np.float32)
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                for p in (mlp, int8)]
    labels = [[s.run(["label"], {"input": rows[i:i + 1]})[0][0] for i in range(len(rows))]
              for s in sessions]
    flipped = int((np.array(labels[0]) != np.array(labels[1])).sum())

    seen: list[object] = []
    options = LiveOptions(rounds=2, round_s=0.5, warmup_s=0.1, connections=2, runtime="process",
                          reference=WINE_CSV, answers=len(rows))
    result = compare_live(str(mlp), str(int8), options, progress=Progress(on_partial=seen.append))

    # Interleaved: A then B in each round, each round handed out as it was measured.
    assert [(r.round, r.side) for r in result.rounds] == [(1, "A"), (1, "B"), (2, "A"), (2, "B")]
    assert [v for v in seen if isinstance(v, LiveRound)] == result.rounds
    assert {(v.side, v.round) for v in seen if isinstance(v, LiveSnapshot)} <= {
        (side, n) for side in "AB" for n in (1, 2)}
    assert all(r.completed > 0 and r.errors == 0 for r in result.rounds)
    # The table is the median over rounds with its range, and the per-round ratio B / A.
    p50 = result.latency[0]
    a, b = ([r.p50_ms for r in result.rounds if r.side == side] for side in "AB")
    assert p50.name == "p50" and p50.a.median == pytest.approx(np.median(a))
    assert (p50.b.low, p50.b.high) == (min(b), max(b))
    assert p50.ratio.median == pytest.approx(np.median([y / x for x, y in zip(a, b)]))

    # The same rows sent to both, one at a time: their answers differ where the labels do.
    assert result.answers.sampled == len(rows)
    assert result.answers.by_kind.get("label", 0) == flipped > 0
    assert f"differ on {result.answers.sampled - result.answers.agreed} of {len(rows)}" in \
        result.verdict

    # Each server counted its own requests under its own version.
    server_a, server_b = result.servers
    assert server_a.version and server_b.version and server_a.version != server_b.version
    measured = {side: sum(r.completed for r in result.rounds if r.side == side) for side in "AB"}
    assert server_a.requests >= measured["A"] and server_b.requests >= measured["B"]
    assert result.to_dict()["servers"][1]["version"] == server_b.version


def _round(side: str, number: int, p50: float, throughput: float = 100.0) -> LiveRound:
    return LiveRound(side, number, 3, throughput, p50, p50 * 2, p50 * 3, p50, 100, 0, [])


@pytest.mark.parametrize("b_p50, says", [
    ((2.0, 2.2, 2.1), "A is faster: B's median latency is 110% higher"),
    ((0.5, 0.6, 0.4), "B is faster: its median latency is 50% lower"),
    ((0.8, 1.3, 1.0), "Neither is consistently faster"),
])
def test_the_verdict_reads_the_spread_of_the_per_round_ratios(b_p50, says):
    rounds = [r for n, b in enumerate(b_p50, start=1) for r in (_round("A", n, 1.0),
                                                                _round("B", n, b))]
    comparison = LiveComparison("A: a", "B: b", "http://a", "http://b", "process", "plan",
                                rounds=rounds)
    comparison.latency, comparison.throughput = figure_rows(rounds)
    text = verdict(comparison)
    assert text.startswith(says)
    assert f"range {min(b_p50):.2f}–{max(b_p50):.2f}" in text


def test_answers_agree_within_the_tolerance_and_differ_by_label_first():
    def body(label: str, p: float) -> bytes:
        return orjson.dumps({"label": label, "probabilities": {"x": p, "y": 1 - p},
                             "model": "wine", "version": "1"})

    assert compare_answers(200, body("x", 0.7), 200, body("x", 0.7 + 1e-7)).agreed
    moved = compare_answers(200, body("x", 0.7), 200, body("x", 0.75))
    assert (moved.kind, moved.where) == ("value", "probabilities.x: 0.7 vs 0.75")
    assert compare_answers(200, body("x", 0.7), 200, body("y", 0.3)).kind == "label"
    assert compare_answers(200, body("x", 0.7), 500, b"{}").kind == "status"
    assert compare_answers(422, b"{}", 422, b'{"other": 1}').agreed
    # What names the server rather than the answer is not compared.
    assert compare_answers(200, body("x", 0.7), 200, body("x", 0.7).replace(b'"1"', b'"2"')).agreed


def test_live_options_are_checked_before_anything_is_served():
    with pytest.raises(CompareError, match="at least one round"):
        compare_live("a.onnx", "b.onnx", LiveOptions(rounds=0))
