"""Labels that change between classes the original model scored as tied are ties, not flips."""

import numpy as np

from studio.core.optimize.parity import Tolerance, compare

ROLES = {"label": "label", "probabilities": "probabilities"}


def test_a_label_flip_on_an_exact_tie_counts_as_kept_and_is_reported():
    original = {"label": np.array([0, 0, 1]),
                "probabilities": np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])}
    new = {"label": np.array([1, 0, 1]),
           "probabilities": np.array([[0.4999999, 0.5000001], [0.9, 0.1], [0.2, 0.8]])}
    report = compare(original, new, ROLES, Tolerance(), "three rows")
    label = report.outputs[0]
    assert report.passed
    assert label.ties == 1 and label.label_agreement == 1.0
    assert report.flipped_rows == []


def test_a_flip_with_a_clear_margin_is_a_flip_even_when_another_row_ties():
    original = {"label": np.array([0, 0]), "probabilities": np.array([[0.5, 0.5], [0.7, 0.3]])}
    new = {"label": np.array([1, 1]), "probabilities": np.array([[0.5, 0.5], [0.7, 0.3]])}
    report = compare(original, new, ROLES, Tolerance(), "two rows")
    label = report.outputs[0]
    assert not report.passed
    assert label.ties == 1 and label.mismatched == 1 and label.label_agreement == 0.5
    assert [f.row for f in report.flipped_rows] == [1]


def test_without_probabilities_every_changed_label_is_a_flip():
    report = compare({"label": np.array(["a", "b"])}, {"label": np.array(["a", "a"])},
                     {"label": "label"}, Tolerance(min_label_agreement=0.4), "two rows")
    assert report.passed and report.outputs[0].ties == 0
    assert report.flipped_rows[0].model_dump() == {"row": 1, "original": "b", "new": "a"}
