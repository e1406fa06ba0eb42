"""parity.compare: the verdict every conversion and optimization carries. Labels by agreement
with the flipped rows listed, numbers by |new - original| <= atol + rtol * |original|."""

from __future__ import annotations

import numpy as np
import pytest

from studio.core.optimize.parity import MAX_FLIPPED_LISTED, ParityReport, Tolerance, compare

LABEL = {"label": "label"}
VALUE = {"variable": "value"}


def test_identical_outputs_pass():
    original = {"label": np.array([0, 1, 2]), "probabilities": np.eye(3)}
    report = compare(original, {k: v.copy() for k, v in original.items()},
                     {"label": "label", "probabilities": "probabilities"}, Tolerance(), "3 rows")
    assert report.passed and report.rows == 3 and report.inputs == "3 rows"
    assert [o.passed for o in report.outputs] == [True, True]
    assert report.label_agreement == 1.0 and report.flipped_rows == []
    assert report.outputs[1].max_abs_diff == 0.0


# --- labels --------------------------------------------------------------------------------------

def test_flipped_labels_are_listed_with_their_rows():
    original = np.array(["cat", "dog", "cat", "bird", "dog"])
    new = np.array(["cat", "cat", "cat", "bird", "bird"])
    report = compare({"label": original}, {"label": new}, LABEL, Tolerance(), "five rows")
    [label] = report.outputs
    assert not report.passed and not label.passed
    assert label.label_agreement == pytest.approx(0.6) and label.mismatched == 2
    assert [(f.row, f.original, f.new) for f in report.flipped_rows] == [(1, "dog", "cat"),
                                                                         (4, "dog", "bird")]
    assert "60.00% agree" in report.summary() and report.summary().startswith("FAIL")


def test_min_label_agreement_decides():
    original, new = np.arange(100) % 3, np.arange(100) % 3
    new[[5, 50]] = 9
    lenient = compare({"label": original}, {"label": new}, LABEL,
                      Tolerance(min_label_agreement=0.98), "100 rows")
    strict = compare({"label": original}, {"label": new}, LABEL,
                     Tolerance(min_label_agreement=0.99), "100 rows")
    assert lenient.passed and lenient.outputs[0].label_agreement == 0.98
    assert not strict.passed
    assert [f.row for f in lenient.flipped_rows] == [5, 50]  # listed even when it passes


def test_labels_compare_across_types():
    """ONNX returns int64 where scikit-learn returned int32, bytes where it returned str."""
    ints = compare({"label": np.array([1, 2], dtype=np.int32)},
                   {"label": np.array([1, 2], dtype=np.int64)}, LABEL, Tolerance(), "2 rows")
    text = compare({"label": np.array(["a", "b"], dtype=object)},
                   {"label": np.array([b"a", b"b"], dtype=object)}, LABEL, Tolerance(), "2 rows")
    column = compare({"label": np.array([1, 2])}, {"label": np.array([[1], [2]])}, LABEL,
                     Tolerance(), "2 rows")
    assert ints.passed and text.passed and column.passed


def test_many_flips_are_counted_but_listed_up_to_a_limit():
    original = np.zeros(200, dtype=int)
    report = compare({"label": original}, {"label": original + 1}, LABEL, Tolerance(), "200 rows")
    assert report.outputs[0].mismatched == 200
    assert len(report.flipped_rows) == MAX_FLIPPED_LISTED
    assert report.flipped_rows[0].row == 0


def test_labels_of_a_different_row_count_fail():
    for original, new in ((np.array([0, 1, 1]), np.array([0, 1])),
                          (np.array(["a", "b", "c"]), np.array(["a", "b"]))):
        report = compare({"label": original}, {"label": new}, LABEL, Tolerance(), "3 rows")
        assert not report.passed and report.outputs[0].label_agreement == 0.0


# --- numbers -------------------------------------------------------------------------------------

def test_the_tolerance_is_atol_plus_rtol_times_the_original():
    tolerance = Tolerance(atol=0.01, rtol=0.1)
    original = np.array([0.0, 10.0, 100.0])
    allowed = tolerance.atol + tolerance.rtol * np.abs(original)  # 0.01, 1.01, 10.01
    inside = compare({"variable": original}, {"variable": original + allowed * 0.99}, VALUE,
                     tolerance, "3 rows")
    outside = compare({"variable": original}, {"variable": original + allowed * 1.01}, VALUE,
                      tolerance, "3 rows")
    assert inside.passed
    assert not outside.passed and outside.outputs[0].mismatched == 3
    assert outside.outputs[0].max_abs_diff == pytest.approx(10.01 * 1.01)
    assert outside.outputs[0].mean_abs_diff == pytest.approx(allowed.mean() * 1.01)


def test_the_relative_part_scales_with_the_original_not_the_new_value():
    tolerance = Tolerance(atol=0.0, rtol=0.5)
    # |1 - 1.9| = 0.9 > 0.5 * |1|, although 0.9 <= 0.5 * |1.9| would have passed.
    report = compare({"variable": np.array([1.0])}, {"variable": np.array([1.9])}, VALUE,
                     tolerance, "1 row")
    assert not report.passed


def test_a_column_vector_matches_a_flat_vector():
    """scikit-learn regressors return [N], their ONNX form [N, 1]."""
    report = compare({"variable": np.array([1.0, 2.0])}, {"variable": np.array([[1.0], [2.0]])},
                     VALUE, Tolerance(), "2 rows")
    assert report.passed


@pytest.mark.parametrize("new", [np.zeros((4, 2)), np.zeros((3, 3)), np.zeros((4, 3, 2))])
def test_a_shape_mismatch_fails(new):
    report = compare({"probabilities": np.zeros((4, 3))}, {"probabilities": new},
                     {"probabilities": "probabilities"}, Tolerance(atol=1.0), "4 rows")
    assert not report.passed
    [output] = report.outputs
    assert not output.passed and output.mismatched > 0 and output.max_abs_diff is None


def test_a_missing_output_fails():
    original = {"label": np.array([0, 1]), "probabilities": np.array([[1.0, 0.0], [0.0, 1.0]])}
    report = compare(original, {"label": np.array([0, 1])},
                     {"label": "label", "probabilities": "probabilities"}, Tolerance(), "2 rows")
    assert not report.passed
    missing = next(o for o in report.outputs if o.name == "probabilities")
    assert not missing.passed and missing.role == "probabilities"
    assert next(o for o in report.outputs if o.name == "label").passed


def test_extra_outputs_of_the_new_model_are_not_compared():
    report = compare({"variable": np.ones(2)}, {"variable": np.ones(2), "debug": np.zeros(2)},
                     VALUE, Tolerance(), "2 rows")
    assert report.passed and [o.name for o in report.outputs] == ["variable"]


def test_nothing_to_compare_is_not_a_pass():
    assert not compare({}, {}, {}, Tolerance(), "no rows").passed


# --- NaN and infinity ----------------------------------------------------------------------------

def test_nan_where_the_original_has_nan_agrees():
    values = np.array([[np.nan, 1.0], [2.0, np.nan]])
    report = compare({"t": values}, {"t": values.copy()}, {}, Tolerance(), "2 rows")
    assert report.passed
    assert report.outputs[0].max_abs_diff == 0.0 and report.outputs[0].mean_abs_diff == 0.0


@pytest.mark.parametrize("original, new", [
    ([np.nan, 1.0], [0.0, 1.0]),      # the new model invents a number
    ([0.0, 1.0], [np.nan, 1.0]),      # the new model loses one
    ([np.inf, 1.0], [-np.inf, 1.0]),  # opposite infinities
    ([np.inf, 1.0], [1e30, 1.0]),     # an infinity that became finite
])
def test_nan_or_infinity_on_one_side_fails_and_shows_as_infinite(original, new):
    report = compare({"t": np.array(original)}, {"t": np.array(new)}, {}, Tolerance(atol=1e9),
                     "2 rows")
    [output] = report.outputs
    assert not report.passed and output.mismatched == 1
    assert output.max_abs_diff == np.inf  # not hidden behind the other rows' 0.0


def test_the_same_infinity_agrees():
    values = np.array([np.inf, -np.inf, 3.0])
    report = compare({"t": values}, {"t": values.copy()}, {}, Tolerance(), "3 rows")
    assert report.passed and report.outputs[0].max_abs_diff == 0.0


def test_a_report_round_trips_through_json():
    report = compare({"label": np.array([0, 1]), "probabilities": np.array([[0.9, 0.1], [0.2, 0.8]])},
                     {"label": np.array([0, 0]), "probabilities": np.array([[0.9, 0.1], [0.6, 0.4]])},
                     {"label": "label", "probabilities": "probabilities"}, Tolerance(), "2 rows")
    assert ParityReport.model_validate_json(report.model_dump_json()) == report
    assert report.flipped_rows[0].model_dump() == {"row": 1, "original": 1, "new": 0}
