"""What a Slipway server counted of its inputs and outputs, read from its /metrics: the live side of
every drift comparison, on the server's own bins (the reference profile's edges)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from studio.core.monitor.promql import Bins, bucket_increase, increase, per_bin
from studio.core.monitor.scrape import Scrape

FEATURE_VALUE = "slipway_feature_value"
FEATURE_CATEGORY = "slipway_feature_category_total"
PREDICTIONS = "slipway_predictions_total"
PREDICTION_VALUE = "slipway_prediction_value"


@dataclass(frozen=True)
class LiveCounts:
    """What the server counted of its inputs and outputs over some scrapes, on its own bins."""

    numeric: dict[str, Bins]
    categorical: dict[str, dict[str, float]]
    predictions: Bins | dict[str, float] | None
    """Label counts for a classifier, value bins for a regressor, None when not exported."""

    @property
    def rows(self) -> float:
        """Rows counted: every row gives each feature one value, so the largest feature total."""
        totals = [sum(counts) for _, counts in self.numeric.values()]
        totals += [sum(counts.values()) for counts in self.categorical.values()]
        return max(totals, default=0.0)

    def counts(self) -> dict[str, list[float] | dict[str, float]]:
        """Feature -> counts, the shape drift.compare_profile takes."""
        found: dict[str, list[float] | dict[str, float]] = {
            name: counts for name, (_, counts) in self.numeric.items()}
        found.update(self.categorical)
        return found


def live_counts(scrapes: Sequence[Scrape], since_start: bool = False) -> LiveCounts:
    """Per-bin counts of every feature and of the predictions over the scrapes.

    Numeric features come from `slipway_feature_value_bucket{feature}` (its `le` bounds are the
    reference profile's edges), categorical ones from `slipway_feature_category_total
    {feature,category}` (values outside the reference are counted as `__other__`), predictions
    from `slipway_predictions_total{label}` or `slipway_prediction_value_bucket`. The server
    exports these only when it was given a reference profile; otherwise all are empty.
    With `since_start`, counting starts from zero before the first scrape (the series covers the
    server's whole life), so requests served before the first scrape count too.
    """
    scrapes = [Scrape(math.nan, math.nan, {}, {}), *scrapes] if since_start else list(scrapes)
    numeric: dict[str, dict[float, float]] = {}  # feature -> cumulative count by `le`
    for key, grown in increase(scrapes, FEATURE_VALUE + "_bucket").items():
        labels = dict(key)
        numeric.setdefault(labels.get("feature", ""), {})[float(labels["le"])] = grown
    categorical: dict[str, dict[str, float]] = {}
    for key, grown in increase(scrapes, FEATURE_CATEGORY).items():
        labels = dict(key)
        categorical.setdefault(labels.get("feature", ""), {})[labels.get("category", "")] = grown
    predictions: Bins | dict[str, float] | None = None
    if any(PREDICTIONS.removesuffix("_total") in s.types for s in scrapes):
        predictions = {dict(key).get("label", ""): grown
                       for key, grown in increase(scrapes, PREDICTIONS).items()}
    elif any(PREDICTION_VALUE in s.types for s in scrapes):
        predictions = per_bin(bucket_increase(scrapes, PREDICTION_VALUE))
    return LiveCounts({feature: per_bin(sorted(les.items())) for feature, les in numeric.items()},
                      categorical, predictions)
