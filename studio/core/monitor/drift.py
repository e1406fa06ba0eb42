"""Drift statistics from binned counts: how far live traffic has moved from the reference profile.

Everything works on two count vectors over the same bins (the reference profile's, which the
server also counts live values into), so no raw values are ever needed. Four views of the same
question, because each answers it differently:

- PSI (Population Stability Index): the industry's alert number, with the usual 0.1 / 0.25 rule.
- Jensen-Shannon distance (base 2): symmetric, bounded in [0, 1], robust to empty bins.
- KS statistic: the largest gap between the two cumulative distributions (ordered bins only).
- Chi-square p-value: whether the difference could be chance at this sample size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import chi2

from studio.core.errors import ExitStatus, StudioError
from studio.core.monitor.reference import CategoryCounts, NumericBins, ReferenceProfile

PSI_EPSILON = 1e-4
OTHER = "other"
"""The bin live categories the reference never saw are counted in."""
PREDICTIONS_ROW = "(predictions)"
"""The row name the model's outputs are reported under, next to its features."""

Level = Literal["ok", "warn", "alert", "no data", "too few", "not in reference"]


class DriftError(StudioError):
    """Live counts cannot be compared with the reference (different bins)."""

    exit_status = ExitStatus.USAGE


def _proportions(counts: Sequence[float]) -> np.ndarray | None:
    values = np.asarray(counts, dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else None


def _pair(ref: Sequence[float], live: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    if len(ref) != len(live):
        raise ValueError(f"reference has {len(ref)} bins, live has {len(live)}")
    p, q = _proportions(ref), _proportions(live)
    return None if p is None or q is None else (p, q)


def psi(ref: Sequence[float], live: Sequence[float], eps: float = PSI_EPSILON) -> float:
    """Population Stability Index, sum((live% - ref%) * ln(live% / ref%)); NaN if either is empty.

    A bin empty on one side would make the log infinite, so each proportion is floored at `eps`
    (not renormalised). Flooring, unlike adding eps everywhere, leaves bins with data untouched:
    equal distributions give exactly 0, and one empty bin adds a bounded, visible amount
    (with eps = 1e-4, a bin holding 5% on one side adds about 0.31, an alert on its own).
    """
    pair = _pair(ref, live)
    if pair is None:
        return math.nan
    p, q = (np.maximum(x, eps) for x in pair)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(ref: Sequence[float], live: Sequence[float]) -> float:
    """Jensen-Shannon distance in base 2: sqrt of the JS divergence, in [0, 1]; NaN if empty.

    Equals scipy.spatial.distance.jensenshannon(ref, live, base=2).
    """
    pair = _pair(ref, live)
    if pair is None:
        return math.nan
    p, q = pair
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:  # KL(x || m) in bits; 0 * log 0 is 0
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return math.sqrt(max((kl(p) + kl(q)) / 2, 0.0))


def ks_statistic(ref: Sequence[float], live: Sequence[float]) -> float:
    """Largest absolute difference of the two cumulative distributions over ordered bins.

    Equals scipy.stats.ks_2samp(...).statistic on the samples the counts describe, each value
    taken as its bin's index. Only meaningful when the bins have an order (numeric features).
    """
    pair = _pair(ref, live)
    if pair is None:
        return math.nan
    p, q = pair
    return float(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))


def chi_square_pvalue(ref: Sequence[float], live: Sequence[float]) -> float:
    """p-value of the chi-square test that both counts come from one distribution.

    The test of homogeneity on the 2 x K table (scipy.stats.chi2_contingency with
    correction=False). Bins empty on both sides are dropped (they carry no information and would
    divide by zero); one bin left means nothing differs, so 1.0. NaN when a side has no counts.
    """
    if len(ref) != len(live):
        raise ValueError(f"reference has {len(ref)} bins, live has {len(live)}")
    table = np.asarray([ref, live], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] == 0 or np.any(rows == 0):
        return math.nan
    if table.shape[1] == 1:
        return 1.0
    expected = np.outer(rows, table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return float(chi2.sf(statistic, table.shape[1] - 1))


@dataclass
class Thresholds:
    """PSI levels: below `psi_warn` is stable, from `psi_alert` on the feature has shifted.

    0.1 and 0.25 are the customary credit-scoring rule of thumb; users may tune them.
    """

    psi_warn: float = 0.1
    psi_alert: float = 0.25

    def level(self, value: float) -> Level:
        if math.isnan(value):
            return "no data"
        return "alert" if value >= self.psi_alert else "warn" if value >= self.psi_warn else "ok"


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    """'numeric' or 'categorical'."""
    psi: float
    js: float
    ks: float
    """NaN for categorical features: their bins have no order, so a CDF means nothing."""
    chi2_p: float
    reference_count: float
    live_count: float
    level: Level


def _aligned(name: str, profile: NumericBins | CategoryCounts,
             live: Sequence[float] | Mapping[str, float]) -> tuple[list[float], list[float]]:
    """Reference and live counts over the same bins."""
    reference = [float(c) for c in profile.counts]
    if isinstance(profile, CategoryCounts):
        if not isinstance(live, Mapping):
            raise DriftError(f"Live counts of '{name}' are bins, but the reference counts it "
                             "by category.", "Redeploy the model with the current reference.")
        index = {category: i for i, category in enumerate(profile.categories)}
        counts = [0.0] * (len(profile.categories) + 1)  # the last bin is OTHER
        for category, count in live.items():
            counts[index.get(str(category), len(profile.categories))] += float(count)
        return [*reference, 0.0], counts
    if isinstance(live, Mapping) or len(live) != len(reference):
        shape = "categories" if isinstance(live, Mapping) else f"{len(live)} bins"
        raise DriftError(f"Live counts of '{name}' ({shape}) do not match the reference's "
                         f"{len(reference)} bins.",
                         "The server was deployed with another reference profile; redeploy it.")
    return reference, [float(c) for c in live]


def _kind_of(live: Sequence[float] | Mapping[str, float]) -> str:
    return "categorical" if isinstance(live, Mapping) else "numeric"


def _total(live: Sequence[float] | Mapping[str, float]) -> float:
    return float(sum(live.values() if isinstance(live, Mapping) else live))


def compare(name: str, profile: NumericBins | CategoryCounts | None,
            live: Sequence[float] | Mapping[str, float],
            thresholds: Thresholds | None = None) -> FeatureDrift:
    """Drift of one feature (or of the predictions) against its reference profile entry."""
    thresholds = thresholds or Thresholds()
    if profile is None:
        return FeatureDrift(name, _kind_of(live), math.nan, math.nan, math.nan, math.nan,
                            0.0, _total(live), "not in reference")
    ref, counts = _aligned(name, profile, live)
    value = psi(ref, counts)
    return FeatureDrift(
        name, profile.kind, value, js_distance(ref, counts),
        ks_statistic(ref, counts) if profile.kind == "numeric" else math.nan,
        chi_square_pvalue(ref, counts), sum(ref), sum(counts),
        "no data" if sum(counts) == 0 else thresholds.level(value))


def _nothing_counted(profile: NumericBins | CategoryCounts) -> list[float] | dict[str, float]:
    """Live counts of a feature the server did not report: zero in every reference bin."""
    return {} if isinstance(profile, CategoryCounts) else [0.0] * len(profile.counts)


def compare_profile(reference: ReferenceProfile,
                    live_counts: Mapping[str, Sequence[float] | Mapping[str, float]],
                    thresholds: Thresholds | None = None,
                    predictions: Sequence[float] | Mapping[str, float] | None = None,
                    ) -> list[FeatureDrift]:
    """Every feature of the reference and of the live counts, most drifted (PSI) first.

    `live_counts` maps a numeric feature to counts over the reference bins and a categorical one
    to category -> count. A reference feature with no live counts is 'no data'; a live feature the
    reference lacks is 'not in reference'. `predictions`, when given, is compared with the
    profile's predictions and reported as the row PREDICTIONS_ROW.
    """
    results = [compare(name, profile, live_counts.get(name, _nothing_counted(profile)),
                       thresholds)
               for name, profile in reference.features.items()]
    results += [compare(name, None, live, thresholds)
                for name, live in live_counts.items() if name not in reference.features]
    if predictions is not None:
        results.append(compare(PREDICTIONS_ROW, reference.predictions, predictions, thresholds))
    # Most drifted first; rows without a PSI after them, by name.
    return sorted(results, key=lambda r: (math.isnan(r.psi), -r.psi if not math.isnan(r.psi)
                                          else 0.0, r.feature))


def check_bins(reference: ReferenceProfile, live_edges: Mapping[str, Sequence[float]],
               given: bool) -> None:
    """Live counts are compared bin for bin: the server's bins (`live_edges`, feature -> the `le`
    bounds it counts on) must be the reference's. `given`: the user chose this profile, so the
    way out is the server's own, not a redeploy."""
    for name, edges in live_edges.items():
        profile = reference.features.get(name)
        if not isinstance(profile, NumericBins):
            continue
        if len(profile.edges) != len(edges) or not np.allclose(profile.edges, edges, rtol=1e-6,
                                                                atol=0):
            raise DriftError(
                f"The server counts '{name}' on other bins than the reference gives.",
                "This profile is not the one the server was bundled with: use the server's own "
                "(leave the profile out, or save GET /reference)." if given else
                "The server was deployed with another reference profile; redeploy it.")
