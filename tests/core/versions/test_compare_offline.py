"""Two versions compared offline, every figure held against a direct computation on the same rows:
onnxruntime run here, numpy and scikit-learn for the figures, scipy's bootstrap (seeded alike) for
the intervals, and the binomial formula for McNemar's test."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from compare_models import (
    WINE_CSV,
    diabetes_csv,
    diabetes_data,
    diabetes_version,
    int8_of,
    wine_rows,
    wine_version,
)
from scipy import stats
from sklearn import metrics as sk
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPClassifier

from studio.core.versions.compare_inputs import CompareError
from studio.core.versions.compare_offline import TOP_ROWS, compare_offline

CLASSES = np.array(["class_0", "class_1", "class_2"], dtype=object)
RESAMPLES = 300
SEED = 7


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict[str, Path]:
    """A small wine MLP (not a perfect one, so its int8 quantization changes some labels), that
    quantization, and a forest that no longer takes `alcohol`."""
    folder = tmp_path_factory.mktemp("versions")
    mlp = wine_version(folder, "wine_mlp",
                       MLPClassifier(hidden_layer_sizes=(8,), max_iter=200, random_state=0))
    forest = wine_version(folder, "wine_forest",
                          RandomForestClassifier(n_estimators=20, max_depth=2, random_state=0),
                          drop=("alcohol",))
    return {"mlp": mlp, "int8": int8_of(mlp, folder), "forest": forest}


def _run(path: Path, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Labels (as class names) and probabilities, straight from onnxruntime, each row asked alone
    (the int8 model scales its inputs by the batch it is given)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rows = X.to_numpy(dtype=np.float32)
    answers = [session.run(["label", "probabilities"], {"input": rows[i:i + 1]})
               for i in range(len(rows))]
    return (CLASSES[np.concatenate([label for label, _ in answers])],
            np.concatenate([p for _, p in answers]).astype(np.float64))


def _scipy_interval(statistic, rows: int) -> tuple[float, float]:
    """scipy's paired percentile bootstrap of B − A, over the row indices, seeded as the
    comparison is."""
    result = stats.bootstrap((np.arange(rows),), lambda i: statistic(i), vectorized=False,
                             n_resamples=RESAMPLES, batch=100, method="percentile",
                             confidence_level=0.95, rng=np.random.default_rng(SEED))
    interval = result.confidence_interval
    return interval.low, interval.high


def _exact_mcnemar(only_a: int, only_b: int) -> float:
    n = only_a + only_b
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def test_a_model_and_its_int8_quantization(versions):
    X, target = wine_rows()
    truth = CLASSES[target]
    labels_a, probabilities_a = _run(versions["mlp"], X)
    labels_b, probabilities_b = _run(versions["int8"], X)
    assert (labels_a != labels_b).any(), "the quantization should change some labels"

    result = compare_offline(str(versions["mlp"]), str(versions["int8"]), reference=WINE_CSV,
                             target="target", resamples=RESAMPLES, seed=SEED)

    # The files side by side.
    assert result.same_schema
    assert result.a.file_size == versions["mlp"].stat().st_size
    assert result.b.file_size == versions["int8"].stat().st_size
    for facts, path in ((result.a, versions["mlp"]), (result.b, versions["int8"])):
        assert facts.operators == dict(Counter(n.op_type for n in onnx.load(path).graph.node))
    assert ("MatMulInteger", 0, 2) in result.operators
    assert ("MatMul", 2, 0) in result.operators

    # Labels: agreement and the confusion matrix of A's labels against B's.
    assert result.rows == len(X)
    assert result.labels.agreed == int((labels_a == labels_b).sum())
    assert result.labels.agreement == pytest.approx(np.mean(labels_a == labels_b))
    expected = np.zeros((3, 3), dtype=int)
    np.add.at(expected, (np.searchsorted(CLASSES, labels_a), np.searchsorted(CLASSES, labels_b)),
              1)
    assert result.labels.classes == CLASSES.tolist()
    assert result.labels.confusion == expected.tolist()

    # How far the probabilities move.
    (output,) = result.outputs
    moved = np.abs(probabilities_b - probabilities_a)
    assert output.role == "probabilities"
    assert output.max_abs_diff == pytest.approx(moved.max(), rel=1e-6)
    assert output.mean_abs_diff == pytest.approx(moved.mean(), rel=1e-6)

    # The rows that disagree most: changed labels first, then by their largest move.
    flipped = labels_a != labels_b
    per_row = moved.max(axis=1)
    order = sorted(range(len(X)), key=lambda r: (not flipped[r], -per_row[r], r))[:TOP_ROWS]
    assert [row.row for row in result.disagreeing] == order
    first = result.disagreeing[0]
    assert first.labels_differ and (first.a, first.b) == (labels_a[order[0]], labels_b[order[0]])
    assert first.features["proline"] == pytest.approx(X["proline"][order[0]])

    # Each version's quality, and B − A.
    quality = result.quality
    metrics = {m.metric: m for m in quality.metrics}
    direct = {
        "accuracy": lambda labels, _p, i: sk.accuracy_score(truth[i], labels[i]),
        "F1 (macro)": lambda labels, _p, i: sk.f1_score(truth[i], labels[i], average="macro"),
        "ROC AUC (one-vs-rest)": lambda _l, p, i: sk.roc_auc_score(
            truth[i], p[i], multi_class="ovr", average="macro", labels=CLASSES.tolist()),
    }
    every = np.arange(len(X))
    for name, score in direct.items():
        a, b = score(labels_a, probabilities_a, every), score(labels_b, probabilities_b, every)
        assert metrics[name].a == pytest.approx(a)
        assert metrics[name].b == pytest.approx(b)
        assert metrics[name].difference == pytest.approx(b - a)
        low, high = _scipy_interval(
            lambda i, score=score: score(labels_b, probabilities_b, i)
            - score(labels_a, probabilities_a, i), len(X))
        assert metrics[name].resamples == RESAMPLES
        assert metrics[name].low == pytest.approx(low, abs=1e-9), name
        assert metrics[name].high == pytest.approx(high, abs=1e-9), name

    # McNemar's test on the rows exactly one of them gets right.
    right_a, right_b = labels_a == truth, labels_b == truth
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    test = quality.mcnemar
    assert (test.both_right, test.only_a_right, test.only_b_right, test.both_wrong) == (
        int((right_a & right_b).sum()), only_a, only_b, int((~right_a & ~right_b).sum()))
    assert test.method == "exact binomial"
    assert test.p_value == pytest.approx(_exact_mcnemar(only_a, only_b))

    # In-process latency of one row and of the batch.
    for latency in (result.latency_a, result.latency_b):
        assert latency.single_row_ms > 0 and latency.batch_ms > 0
        assert latency.batch_rows == len(X)


def test_two_models_where_an_input_changed(versions):
    X, target = wine_rows()
    labels_a, probabilities_a = _run(versions["mlp"], X)
    labels_b, probabilities_b = _run(versions["forest"], X.drop(columns=["alcohol"]))

    result = compare_offline(str(versions["mlp"]), str(versions["forest"]), reference=WINE_CSV,
                             target="target", resamples=100, seed=SEED, timing=False)

    changes = {(c.part, c.name): c for c in result.schema_changes}
    assert changes[("feature", "alcohol")].change == "removed"
    assert (changes[("input", "input")].a, changes[("input", "input")].b) == (
        "float32 [?, 13]", "float32 [?, 12]")
    assert ("TreeEnsembleClassifier", 0, 1) in result.operators
    # Each version read the columns it knows from the same rows.
    assert result.labels.agreed == int((labels_a == labels_b).sum())
    assert result.outputs[0].max_abs_diff == pytest.approx(
        np.abs(probabilities_b - probabilities_a).max(), rel=1e-6)
    accuracy = {m.metric: m for m in result.quality.metrics}["accuracy"]
    assert accuracy.b == pytest.approx(np.mean(labels_b == CLASSES[target]))
    assert result.latency_a is None


def test_two_regressors_scored_against_the_target(tmp_path):
    X, y = diabetes_data()
    data = diabetes_csv(tmp_path)
    a = diabetes_version(tmp_path, "linear", LinearRegression())
    b = diabetes_version(tmp_path, "boosted", GradientBoostingRegressor(n_estimators=30,
                                                                        random_state=0))
    values = {}
    for side, path in (("a", a), ("b", b)):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        values[side] = session.run(None, {"input": X.to_numpy(dtype=np.float32)})[0] \
            .astype(np.float64).ravel()

    result = compare_offline(str(a), str(b), reference=data, target="progression",
                             resamples=RESAMPLES, seed=SEED, timing=False)

    assert result.labels is None
    moved = np.abs(values["b"] - values["a"])
    assert result.outputs[0].max_abs_diff == pytest.approx(moved.max(), rel=1e-5)
    assert result.outputs[0].mean_abs_diff == pytest.approx(moved.mean(), rel=1e-5)
    assert [row.row for row in result.disagreeing[:5]] == np.argsort(-moved)[:5].tolist()
    metrics = {m.metric: m for m in result.quality.metrics}
    direct = {"MAE": sk.mean_absolute_error, "RMSE": sk.root_mean_squared_error,
              "R²": sk.r2_score}
    for name, score in direct.items():
        assert metrics[name].a == pytest.approx(score(y, values["a"]))
        assert metrics[name].b == pytest.approx(score(y, values["b"]))
        low, high = _scipy_interval(lambda i, score=score: score(y[i], values["b"][i])
                                    - score(y[i], values["a"][i]), len(y))
        assert metrics[name].low == pytest.approx(low, abs=1e-6), name
        assert metrics[name].high == pytest.approx(high, abs=1e-6), name
    assert metrics["R²"].higher_is_better and not metrics["MAE"].higher_is_better
    assert result.quality.mcnemar is None


def test_rows_sampled_from_the_schema_without_reference_data(versions):
    result = compare_offline(str(versions["mlp"]), str(versions["int8"]), rows=64, seed=1,
                             timing=False)
    assert result.rows == 64 and "seed 1" in result.rows_from
    assert result.labels.rows == 64
    assert result.quality is None


def test_a_target_needs_data_that_holds_it(versions):
    with pytest.raises(CompareError, match="needs reference data"):
        compare_offline(str(versions["mlp"]), str(versions["int8"]), target="target")
    with pytest.raises(CompareError, match="'quality' is not in"):
        compare_offline(str(versions["mlp"]), str(versions["int8"]), reference=WINE_CSV,
                        target="quality", timing=False)
