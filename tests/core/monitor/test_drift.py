"""Drift statistics checked against scipy on the same counts, and a reference profile compared with
live counts binned the way the server bins them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import chi2_contingency, entropy, ks_2samp

from studio.core.model.schema import FeatureSpec
from studio.core.monitor.drift import (
    OTHER,
    PREDICTIONS_ROW,
    DriftError,
    Thresholds,
    chi_square_pvalue,
    compare_profile,
    js_distance,
    ks_statistic,
    psi,
)
from studio.core.monitor.reference import ReferenceProfile, baseline_from_counts, build_profile


def _count_pairs(seed: int = 7, with_empty_bins: bool = True):
    """Random (reference, live) count vectors of several sizes, some with empty bins."""
    rng = np.random.default_rng(seed)
    pairs = []
    for k in (2, 3, 5, 10, 20):
        for _ in range(4):
            low = 0 if with_empty_bins else 1
            ref, live = rng.integers(low, 60, size=k), rng.integers(low, 60, size=k)
            if ref.sum() and live.sum():
                pairs.append((ref, live))
    return pairs


def _samples(counts: np.ndarray) -> np.ndarray:
    """The values binned counts describe, each taken as its bin's index."""
    return np.repeat(np.arange(len(counts)), counts)


# --- the statistics against scipy ---------------------------------------------------------------


def test_psi_by_hand():
    # ref 50% / 50%, live 25% / 75%:
    # (0.25 - 0.5) * ln(0.25 / 0.5) + (0.75 - 0.5) * ln(0.75 / 0.5) = 0.1733 + 0.1014 = 0.2747
    assert psi([50, 50], [25, 75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))


@pytest.mark.parametrize(("ref", "live"), _count_pairs(with_empty_bins=False))
def test_psi_is_the_symmetric_kl_divergence(ref, live):
    # PSI = KL(live || ref) + KL(ref || live); scipy's entropy normalises the counts itself.
    assert psi(ref, live) == pytest.approx(entropy(live, ref) + entropy(ref, live), rel=1e-12)


@pytest.mark.parametrize(("ref", "live"), _count_pairs())
def test_psi_floors_empty_bins_at_epsilon(ref, live):
    p = np.maximum(ref / ref.sum(), 1e-4)
    q = np.maximum(live / live.sum(), 1e-4)
    expected = rel_entr(q, p).sum() + rel_entr(p, q).sum()
    assert psi(ref, live) == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(psi(ref, live))


@pytest.mark.parametrize(("ref", "live"), _count_pairs())
def test_js_distance_matches_scipy(ref, live):
    assert js_distance(ref, live) == pytest.approx(jensenshannon(ref, live, base=2), abs=1e-12)


@pytest.mark.parametrize(("ref", "live"), _count_pairs())
def test_ks_statistic_matches_scipy_on_the_expanded_samples(ref, live):
    assert ks_statistic(ref, live) == pytest.approx(
        ks_2samp(_samples(ref), _samples(live)).statistic, abs=1e-12)


@pytest.mark.parametrize(("ref", "live"), _count_pairs())
def test_chi_square_matches_scipy_without_empty_columns(ref, live):
    table = np.array([ref, live])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        pytest.skip("one non-empty bin: nothing to test")
    expected = chi2_contingency(table, correction=False).pvalue
    assert chi_square_pvalue(ref, live) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_identical_and_proportional_distributions_do_not_drift():
    ref = [10, 20, 30, 0, 40]
    for live in (ref, [2 * c for c in ref]):
        assert psi(ref, live) == 0.0
        assert js_distance(ref, live) == 0.0
        assert ks_statistic(ref, live) == 0.0
        assert chi_square_pvalue(ref, live) == pytest.approx(1.0)


def test_all_mass_moved_is_maximal_drift():
    ref, live = [10, 0, 0], [0, 0, 10]
    assert js_distance(ref, live) == pytest.approx(1.0)
    assert ks_statistic(ref, live) == 1.0
    # Two bins, each with 1 on one side and eps on the other: 2 * (1 - eps) * ln(1 / eps)
    assert psi(ref, live) == pytest.approx(2 * (1 - 1e-4) * math.log(1e4))
    assert chi_square_pvalue(ref, live) < 1e-4


def test_one_bin_emptied_is_counted_but_finite():
    # The reference has 20% in the last bin, live has none of it.
    ref, live = [40, 40, 20], [50, 50, 0]
    value = psi(ref, live)
    assert 0.25 < value < 2.0
    assert js_distance(ref, live) == pytest.approx(jensenshannon(ref, live, base=2))


def test_statistics_without_data_or_with_different_bins():
    for statistic in (psi, js_distance, ks_statistic, chi_square_pvalue):
        assert math.isnan(statistic([5, 0, 5], [0, 0, 0]))
        assert math.isnan(statistic([0, 0], [1, 2]))
        with pytest.raises(ValueError, match="3 bins"):
            statistic([1, 2, 3], [1, 2])
    # Everything in one bin on both sides: nothing differs.
    assert chi_square_pvalue([7, 0, 0], [3, 0, 0]) == 1.0


# --- a profile against live counts --------------------------------------------------------------


def _live_bins(edges: list[float], values: np.ndarray) -> list[float]:
    """Counts per reference bin, as the server counts them (a value on an edge closes its bin)."""
    index = np.searchsorted(edges, values, side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(float).tolist()


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    n = 5000
    frame = pd.DataFrame({
        "age": rng.normal(40, 10, n),
        "income": rng.lognormal(10, 0.5, n),
        "color": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
    })
    features = [FeatureSpec(name="age", kind="numeric", dtype="float64"),
                FeatureSpec(name="income", kind="numeric", dtype="float64"),
                FeatureSpec(name="color", kind="categorical", dtype="string")]
    return build_profile(frame, features)


def test_a_shifted_feature_alerts_while_untouched_ones_stay_ok(reference):
    rng = np.random.default_rng(1)
    n = 5000
    live = {
        "age": _live_bins(reference.features["age"].edges, rng.normal(55, 10, n)),
        "income": _live_bins(reference.features["income"].edges,
                             rng.lognormal(10, 0.5, n)),
        "color": dict(zip(*np.unique(rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
                                     return_counts=True), strict=True)),
    }
    rows = compare_profile(reference, live)
    by_name = {row.feature: row for row in rows}
    assert rows[0].feature == "age"  # most drifted first
    assert [row.psi for row in rows] == sorted((row.psi for row in rows), reverse=True)

    age = by_name["age"]
    assert age.level == "alert" and age.psi > 0.25
    assert age.ks > 0.4 and age.chi2_p < 1e-6
    assert age.reference_count == 5000 and age.live_count == 5000
    for name in ("income", "color"):
        assert by_name[name].level == "ok", by_name[name]
        assert by_name[name].psi < 0.02 and by_name[name].chi2_p > 0.001
    assert by_name["color"].kind == "categorical" and math.isnan(by_name["color"].ks)
    assert by_name["income"].kind == "numeric"

    # The thresholds are the user's: a strict warn level flags the small sampling noise.
    strict = {r.feature: r for r in compare_profile(reference, live,
                                                    Thresholds(psi_warn=1e-6, psi_alert=10))}
    assert strict["income"].level == "warn" and strict["age"].level == "warn"


def test_unseen_categories_go_to_the_other_bin(reference):
    profile = reference.features["color"]
    share = dict(zip(profile.categories, profile.counts, strict=True))
    # Same mix as the reference, plus 30% of values it never saw (the server names them
    # `__other__`; a brand-new name is treated the same).
    live = {**share, "__other__": 1000.0, "purple": 500.0}
    (row,) = [r for r in compare_profile(reference, {"color": live}) if r.feature == "color"]
    assert row.live_count == 5000 + 1500
    assert row.level == "alert"
    # Equivalent to an explicit extra bin, empty in the reference.
    ref_bins = [*profile.counts, 0]
    live_bins = [*profile.counts, 1500]
    assert row.psi == pytest.approx(psi(ref_bins, live_bins))
    assert row.js == pytest.approx(jensenshannon(ref_bins, live_bins, base=2))
    assert OTHER == "other"


def test_features_missing_on_either_side_are_reported_not_raised(reference):
    edges = reference.features["age"].edges
    rows = compare_profile(reference, {"age": _live_bins(edges, np.full(10, 40.0)),
                                       "new_feature": [1.0, 2.0, 3.0],
                                       "color": {}})
    by_name = {row.feature: row for row in rows}
    assert by_name["new_feature"].level == "not in reference"
    assert by_name["new_feature"].live_count == 6 and math.isnan(by_name["new_feature"].psi)
    assert by_name["income"].level == "no data" and by_name["income"].live_count == 0
    assert by_name["color"].level == "no data"
    # Rows without a PSI come after every row with one.
    assert rows[0].feature == "age" and {r.feature for r in rows[1:]} == {
        "color", "income", "new_feature"}


def test_live_bins_that_do_not_match_the_reference_are_a_clear_error(reference):
    with pytest.raises(DriftError, match="'age'.*do not match"):
        compare_profile(reference, {"age": [1.0, 2.0]})
    with pytest.raises(DriftError, match="'color'"):
        compare_profile(reference, {"color": [1.0, 2.0, 3.0]})


def test_predictions_are_compared_when_given():
    profile = ReferenceProfile.model_validate({
        "rows": 100, "features": {},
        "predictions": {"kind": "categorical", "categories": ["yes", "no"], "counts": [50, 50]}})
    (row,) = compare_profile(profile, {}, predictions={"yes": 90.0, "no": 10.0})
    assert row.feature == PREDICTIONS_ROW and row.level == "alert"
    (row,) = compare_profile(ReferenceProfile(rows=1, features={}), {},
                             predictions={"yes": 1.0})
    assert row.level == "not in reference"


def test_baseline_from_live_counts_has_the_reference_shape(reference):
    age = reference.features["age"]
    baseline = baseline_from_counts(
        {"age": (age.edges, [float(c) for c in age.counts])},
        {"color": {"red": 3.0, "blue": 5.0, "__other__": 1.0}},
        predictions={"yes": 6.0, "no": 3.0})
    assert baseline.to_json_dict() == {
        "rows": 5000,
        "features": {
            "age": {"kind": "numeric", "edges": age.edges, "counts": age.counts},
            "color": {"kind": "categorical", "categories": ["blue", "red", "__other__"],
                      "counts": [5, 3, 1]},
        },
        "predictions": {"kind": "categorical", "categories": ["yes", "no"], "counts": [6, 3]},
        "source": "live",
    }
    # Later traffic on the same bins compares with it bin for bin.
    rows = compare_profile(baseline, {"age": age.counts, "color": {"red": 3, "blue": 5,
                                                                      "__other__": 1}})
    assert {row.level for row in rows} == {"ok"} and all(row.psi == 0 for row in rows)

    assert baseline_from_counts({}, {}).to_json_dict() == {"rows": 0, "features": {},
                                                           "source": "live"}
    with pytest.raises(ValueError, match="2 edges need 3 counts"):
        baseline_from_counts({"x": ([1.0, 2.0], [1.0, 2.0])})
