"""Is B better than A on the same rows, and how sure can one be? Each version's quality against a
target column, the paired difference B − A with a bootstrap interval, and McNemar's test.

Quality on all rows is computed by scikit-learn (accuracy, macro F1 and one-vs-rest ROC AUC for
classifiers; MAE, RMSE and R² for regressors). The interval of B − A is a paired percentile
bootstrap: each resample draws rows with replacement, the same rows for both versions (so what the
rows share, an easy or a hard row, cancels out), and every metric is computed on the same resamples.
The draws are `numpy.random.default_rng(seed).integers(0, n, (BATCH, n))`, batch after batch, as
`scipy.stats.bootstrap(..., paired=True, batch=BATCH, method="percentile")` draws them.

Why not call scipy.stats.bootstrap with scikit-learn's metrics: that calls a metric once per
resample, and scikit-learn takes milliseconds a call (2,000 resamples of F1 and AUC for two
versions take a minute on a busy machine). Here a resample is a row of counts (how often each row
was drawn), and every metric is a weighted sum over rows, so one matrix product scores a batch of
resamples at once: the same figures in well under a second. A resample in which a metric is not
defined (ROC AUC when a class was not drawn) is left out, and `resamples` says how many counted.

McNemar's test asks whether the two classifiers' errors are exchangeable: of the rows exactly one
of them gets right, does each get about half? With fewer than 25 such rows the p-value is the exact
binomial one, else the chi-square with continuity correction (scipy.stats.binomtest and chi2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import BaseModel
from scipy import stats
from sklearn import metrics as sk

RESAMPLES = 2000
BATCH = 100
CONFIDENCE = 0.95
EXACT_BELOW = 25
"""McNemar: fewer discordant rows than this get the exact binomial p-value."""


class MetricComparison(BaseModel):
    """One metric for A and B on the same rows, and the difference B − A."""

    metric: str
    higher_is_better: bool
    a: float | None
    b: float | None
    difference: float | None
    """B − A on all rows."""
    low: float | None = None
    high: float | None = None
    """The bootstrap percentile interval of B − A."""
    resamples: int = 0
    """Resamples in which the metric was defined for both (the interval is over these)."""
    note: str | None = None


class McNemar(BaseModel):
    both_right: int
    only_a_right: int
    only_b_right: int
    both_wrong: int
    method: Literal["exact binomial", "chi-square, continuity-corrected"]
    statistic: float | None
    """The chi-square statistic (None for the exact test)."""
    p_value: float


class Quality(BaseModel):
    target: str
    task: str
    rows: int
    confidence: float
    resamples: int
    seed: int
    metrics: list[MetricComparison]
    mcnemar: McNemar | None = None


# --- the bootstrap ---------------------------------------------------------------------------------

Scores = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Given resample weights (resamples × rows), each version's metric per resample."""


def resample_weights(rng: np.random.Generator, rows: int, count: int) -> np.ndarray:
    """`count` resamples of `rows` rows, drawn with replacement, as how often each row was drawn."""
    drawn = rng.integers(0, rows, (count, rows))
    offsets = drawn + (np.arange(count)[:, None] * rows)
    return np.bincount(offsets.ravel(), minlength=count * rows).reshape(count, rows).astype(
        np.float64)


def paired_bootstrap(scores: dict[str, Scores], rows: int, *, resamples: int = RESAMPLES,
                     seed: int = 0, confidence: float = CONFIDENCE
                     ) -> dict[str, tuple[float | None, float | None, int]]:
    """For each named metric, the percentile interval of B − A and the resamples it rests on."""
    rng = np.random.default_rng(seed)
    differences: dict[str, list[np.ndarray]] = {name: [] for name in scores}
    for start in range(0, resamples, BATCH):
        weights = resample_weights(rng, rows, min(BATCH, resamples - start))
        for name, score in scores.items():
            a, b = score(weights)
            differences[name].append(b - a)
    tail = (1 - confidence) / 2 * 100
    intervals = {}
    for name, parts in differences.items():
        values = np.concatenate(parts) if parts else np.array([])
        values = values[np.isfinite(values)]
        if len(values) == 0:
            intervals[name] = (None, None, 0)
            continue
        low, high = np.percentile(values, [tail, 100 - tail])
        intervals[name] = (float(low), float(high), len(values))
    return intervals


# --- weighted metrics: one value per resample ------------------------------------------------------

def weighted_accuracy(weights: np.ndarray, correct: np.ndarray) -> np.ndarray:
    return weights @ correct.astype(np.float64) / weights.sum(axis=1)


def weighted_macro_f1(weights: np.ndarray, truth: np.ndarray, predicted: np.ndarray,
                      classes: np.ndarray) -> np.ndarray:
    """scikit-learn's f1_score(average="macro"): the mean over the classes that occur in the
    resample's truth or predictions of 2·TP / (true + predicted)."""
    true_hot = (truth[:, None] == classes[None, :]).astype(np.float64)
    predicted_hot = (predicted[:, None] == classes[None, :]).astype(np.float64)
    hits = weights @ (true_hot * predicted_hot)
    occurring = weights @ true_hot + weights @ predicted_hot
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(occurring > 0, 2 * hits / occurring, np.nan)
    present = np.isfinite(per_class).any(axis=1)
    result = np.full(len(weights), np.nan)
    result[present] = np.nanmean(per_class[present], axis=1)
    return result


def weighted_binary_auc(weights: np.ndarray, positive: np.ndarray,
                        score: np.ndarray) -> np.ndarray:
    """The area under the ROC curve per resample: the chance that a drawn positive row scores above
    a drawn negative one, ties counting a half (what roc_auc_score's trapezoids add up to). NaN
    where the resample has no positive or no negative row."""
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # groups of tied scores
    positive_weights = np.add.reduceat((weights * positive)[:, order], starts, axis=1)
    negative_weights = np.add.reduceat((weights * ~positive)[:, order], starts, axis=1)
    below = np.cumsum(negative_weights, axis=1) - negative_weights
    wins = (positive_weights * (below + 0.5 * negative_weights)).sum(axis=1)
    pairs = positive_weights.sum(axis=1) * negative_weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / pairs, np.nan)


def weighted_ovr_auc(weights: np.ndarray, truth: np.ndarray, probabilities: np.ndarray,
                     keys: list[str]) -> np.ndarray:
    """roc_auc_score(multi_class="ovr", average="macro"), or the binary AUC of the second column."""
    if len(keys) == 2:
        return weighted_binary_auc(weights, truth == keys[1], probabilities[:, 1])
    per_class = [weighted_binary_auc(weights, truth == key, probabilities[:, k])
                 for k, key in enumerate(keys)]
    return np.mean(per_class, axis=0)  # NaN when any class is missing from the resample


def weighted_regression(weights: np.ndarray, truth: np.ndarray,
                        predicted: np.ndarray) -> dict[str, np.ndarray]:
    total = weights.sum(axis=1)
    errors = predicted - truth
    squared = weights @ (errors ** 2)
    spread = weights @ (truth ** 2) - (weights @ truth) ** 2 / total
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(spread > 0, 1 - squared / spread, np.nan)
    return {"MAE": weights @ np.abs(errors) / total, "RMSE": np.sqrt(squared / total), "R²": r2}


# --- quality of two classifiers, of two regressors -------------------------------------------------

def _auc(truth: np.ndarray, probabilities: np.ndarray | None,
         keys: list[str] | None) -> tuple[float | None, str | None]:
    """ROC AUC on all rows (scikit-learn), or None and why it is not defined."""
    if probabilities is None or not keys or probabilities.shape[1] != len(keys) or len(keys) < 2:
        return None, "no class probabilities"
    missing = [key for key in keys if not (truth == key).any()]
    if missing:
        return None, f"class {missing[0]} never occurs in the target"
    unknown = sorted(set(truth.tolist()) - set(keys))
    if unknown:
        return None, f"the target holds {unknown[0]}, which the model has no probability for"
    if len(keys) == 2:
        return float(sk.roc_auc_score(truth == keys[1], probabilities[:, 1])), None
    return float(np.mean([sk.roc_auc_score(truth == key, probabilities[:, k])
                          for k, key in enumerate(keys)])), None


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    only_a = int((correct_a & ~correct_b).sum())
    only_b = int((~correct_a & correct_b).sum())
    discordant = only_a + only_b
    counts = {"both_right": int((correct_a & correct_b).sum()), "only_a_right": only_a,
              "only_b_right": only_b, "both_wrong": int((~correct_a & ~correct_b).sum())}
    if discordant < EXACT_BELOW:
        p_value = stats.binomtest(only_a, discordant, 0.5).pvalue if discordant else 1.0
        return McNemar(**counts, method="exact binomial", statistic=None, p_value=float(p_value))
    statistic = (abs(only_a - only_b) - 1) ** 2 / discordant
    return McNemar(**counts, method="chi-square, continuity-corrected", statistic=float(statistic),
                   p_value=float(stats.chi2.sf(statistic, 1)))


def classification_quality(target: str, truth: np.ndarray, labels_a: np.ndarray,
                           labels_b: np.ndarray, probabilities_a: np.ndarray | None,
                           probabilities_b: np.ndarray | None, keys_a: list[str] | None,
                           keys_b: list[str] | None, *, truth_b: np.ndarray | None = None,
                           resamples: int = RESAMPLES, seed: int = 0,
                           confidence: float = CONFIDENCE) -> Quality:
    """Accuracy, macro F1 and ROC AUC of each version against `truth` (all text), with B − A.
    `truth_b` is the same truth as B names its classes, when B names them otherwise than A."""
    truth_a = truth
    truth_b = truth if truth_b is None else truth_b
    correct_a, correct_b = labels_a == truth_a, labels_b == truth_b
    classes_a, classes_b = (np.array(sorted(set(t.tolist()) | set(p.tolist())), dtype=object)
                            for t, p in ((truth_a, labels_a), (truth_b, labels_b)))
    auc_a, why_a = _auc(truth_a, probabilities_a, keys_a)
    auc_b, why_b = _auc(truth_b, probabilities_b, keys_b)
    figures = {
        "accuracy": (float(sk.accuracy_score(truth_a, labels_a)),
                     float(sk.accuracy_score(truth_b, labels_b)),
                     lambda w: (weighted_accuracy(w, correct_a), weighted_accuracy(w, correct_b))),
        "F1 (macro)": (float(sk.f1_score(truth_a, labels_a, average="macro")),
                       float(sk.f1_score(truth_b, labels_b, average="macro")),
                       lambda w: (weighted_macro_f1(w, truth_a, labels_a, classes_a),
                                  weighted_macro_f1(w, truth_b, labels_b, classes_b))),
    }
    notes = {}
    if auc_a is not None and auc_b is not None:
        figures["ROC AUC (one-vs-rest)"] = (
            auc_a, auc_b, lambda w: (weighted_ovr_auc(w, truth_a, probabilities_a, keys_a),
                                     weighted_ovr_auc(w, truth_b, probabilities_b, keys_b)))
    else:
        notes["ROC AUC (one-vs-rest)"] = (auc_a, auc_b, "; ".join(
            f"not defined for {side}: {why}" for side, why in (("A", why_a), ("B", why_b)) if why))
    quality = _quality(target, "classification", len(truth), figures, notes, higher=True,
                       resamples=resamples, seed=seed, confidence=confidence)
    quality.mcnemar = mcnemar(correct_a, correct_b)
    return quality


def regression_quality(target: str, truth: np.ndarray, values_a: np.ndarray,
                       values_b: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0,
                       confidence: float = CONFIDENCE) -> Quality:
    """MAE, RMSE and R² of each version against `truth`, with B − A."""
    truth = truth.astype(np.float64)
    values_a, values_b = values_a.astype(np.float64), values_b.astype(np.float64)

    def scorer(metric: str) -> Scores:
        return lambda w: (weighted_regression(w, truth, values_a)[metric],
                          weighted_regression(w, truth, values_b)[metric])

    figures = {
        "MAE": (float(sk.mean_absolute_error(truth, values_a)),
                float(sk.mean_absolute_error(truth, values_b)), scorer("MAE")),
        "RMSE": (float(sk.root_mean_squared_error(truth, values_a)),
                 float(sk.root_mean_squared_error(truth, values_b)), scorer("RMSE")),
        "R²": (float(sk.r2_score(truth, values_a)), float(sk.r2_score(truth, values_b)),
               scorer("R²")),
    }
    quality = _quality(target, "regression", len(truth), figures, {}, higher=False,
                       resamples=resamples, seed=seed, confidence=confidence)
    for metric in quality.metrics:
        metric.higher_is_better = metric.metric == "R²"
    return quality


def _quality(target: str, task: str, rows: int,
             figures: dict[str, tuple[float, float, Scores]],
             notes: dict[str, tuple[float | None, float | None, str]], *, higher: bool,
             resamples: int, seed: int, confidence: float) -> Quality:
    intervals = paired_bootstrap({name: score for name, (_, _, score) in figures.items()}, rows,
                                 resamples=resamples, seed=seed, confidence=confidence)
    compared = []
    for name, (a, b, _) in figures.items():
        low, high, used = intervals[name]
        compared.append(MetricComparison(metric=name, higher_is_better=higher, a=a, b=b,
                                         difference=b - a, low=low, high=high, resamples=used))
    for name, (a, b, note) in notes.items():
        compared.append(MetricComparison(metric=name, higher_is_better=higher, a=a, b=b,
                                         difference=None, note=note))
    return Quality(target=target, task=task, rows=rows, confidence=confidence,
                   resamples=resamples, seed=seed, metrics=compared)
