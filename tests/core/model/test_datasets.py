"""Reference data: CSV, Parquet and .npy files read into the model's columns and types, rows
sampled from a schema, and the ONNX feeds made from either."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from studio.core.errors import StudioError
from studio.core.model.datasets import (
    DatasetError,
    onnx_feeds,
    read_table,
    sample_frame,
    tensor_feeds,
)
from studio.core.model.schema import FeatureSpec, TensorSpec, numeric_feature, tabular_inputs

PLAN = FeatureSpec(name="plan", kind="categorical", dtype="string",
                   categories=["basic", "plus", "pro"])
SEATS = FeatureSpec(name="seats", kind="categorical", dtype="int64", categories=[1, 5, 20])


def mixed_features() -> list[FeatureSpec]:
    features = [PLAN.model_copy(), SEATS.model_copy(), numeric_feature("age", example=40.0),
                numeric_feature("monthly spend", example=55.5)]
    tabular_inputs(features, per_column=True)
    return features


@pytest.fixture
def table() -> pd.DataFrame:
    """Columns in another order than the model's, plus a target and an id it does not take."""
    return pd.DataFrame({
        "customer_id": ["c1", "c2", "c3"],
        "monthly spend": [10.5, 99.0, 42.25],
        "age": [31, 58, 44],
        "plan": ["pro", "basic", "plus"],
        "seats": [5, 1, 20],
        "churned": [True, False, False],
    })


def check_table(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == ["plan", "seats", "age", "monthly spend"]
    assert len(frame) == 3
    assert list(frame["plan"]) == ["pro", "basic", "plus"]
    assert frame["plan"].dtype == object
    assert frame["age"].dtype == np.float64 and list(frame["age"]) == [31.0, 58.0, 44.0]
    assert list(frame["monthly spend"]) == [10.5, 99.0, 42.25]
    assert list(frame["seats"]) == [5, 1, 20]


def test_csv_keeps_the_model_columns_in_model_order(table, tmp_path):
    path = tmp_path / "customers.csv"
    table.to_csv(path, index=False)
    check_table(read_table(path, mixed_features()))


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet_keeps_the_model_columns_in_model_order(suffix, table, tmp_path):
    path = tmp_path / f"customers{suffix}"
    table.to_parquet(path)
    check_table(read_table(path, mixed_features()))


def test_npy_columns_are_the_features_in_order(tmp_path):
    features = [numeric_feature(n) for n in ("a", "b", "c")]
    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "rows.npy", array)
    frame = read_table(tmp_path / "rows.npy", features)
    assert list(frame.columns) == ["a", "b", "c"]
    assert frame.to_numpy().tolist() == array.tolist()
    assert all(frame[c].dtype == np.float64 for c in frame.columns)


def test_npy_of_the_wrong_width_names_both_shapes(tmp_path):
    np.save(tmp_path / "rows.npy", np.zeros((4, 2)))
    with pytest.raises(DatasetError) as raised:
        read_table(tmp_path / "rows.npy", [numeric_feature(n) for n in ("a", "b", "c")])
    assert "(4, 2)" in raised.value.message and "3 features" in raised.value.message


def test_npy_of_python_objects_is_not_unpickled(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="could not be read"):
        read_table(tmp_path / "objects.npy", [numeric_feature("a")])


def test_missing_columns_are_named(table, tmp_path):
    path = tmp_path / "partial.csv"
    table.drop(columns=["age", "plan"]).to_csv(path, index=False)
    with pytest.raises(DatasetError) as raised:
        read_table(path, mixed_features())
    error = raised.value
    assert isinstance(error, StudioError)
    assert "'partial.csv' lacks 2 of the model's feature columns: plan, age." == error.message
    assert error.hint


def test_many_missing_columns_are_summarised(tmp_path):
    pd.DataFrame({"other": [1.0]}).to_csv(tmp_path / "wide.csv", index=False)
    features = [numeric_feature(f"f{i}") for i in range(20)]
    with pytest.raises(DatasetError) as raised:
        read_table(tmp_path / "wide.csv", features)
    assert "lacks 20 of" in raised.value.message and "f7 …" in raised.value.message
    assert "f8" not in raised.value.message


def test_text_in_a_numeric_column_is_named_with_the_value(tmp_path):
    (tmp_path / "typo.csv").write_text("age,monthly spend\n31,10.5\n58,n/a?\n44,42\n")
    with pytest.raises(DatasetError) as raised:
        read_table(tmp_path / "typo.csv", [numeric_feature("age"), numeric_feature("monthly spend")])
    message = raised.value.message
    assert "'monthly spend'" in message and "not numbers" in message
    assert "data row 2" in message and "'n/a?'" in message


def test_empty_values_in_a_numeric_column_are_missing_values(tmp_path):
    (tmp_path / "gaps.csv").write_text("age,x\n31,1\n,2\n44,3\n")
    frame = read_table(tmp_path / "gaps.csv", [numeric_feature("age")])
    assert frame["age"].isna().tolist() == [False, True, False]


@pytest.mark.parametrize("content, expected", [
    ("", r"is empty \(0 bytes\)"),
    ("age,plan\n", "has no rows"),
])
def test_an_empty_dataset_is_refused(content, expected, tmp_path):
    (tmp_path / "empty.csv").write_text(content)
    with pytest.raises(DatasetError, match=expected):
        read_table(tmp_path / "empty.csv", [numeric_feature("age")])


def test_an_unreadable_parquet_file_is_a_dataset_error(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DatasetError, match="could not be read as a dataset"):
        read_table(tmp_path / "broken.parquet", [numeric_feature("age")])


def test_other_formats_and_missing_files_are_refused(tmp_path):
    (tmp_path / "rows.xlsx").write_bytes(b"not a spreadsheet")
    with pytest.raises(DatasetError, match="CSV, Parquet or .npy"):
        read_table(tmp_path / "rows.xlsx", [numeric_feature("age")])
    with pytest.raises(DatasetError, match="no dataset file"):
        read_table(tmp_path / "nowhere.csv", [numeric_feature("age")])


# --- rows sampled from a schema ------------------------------------------------------------------

def test_sample_frame_draws_known_categories_and_keeps_dtypes():
    features = mixed_features() + [numeric_feature("count", dtype="int64", example=12)]
    frame = sample_frame(features, rows=300, seed=3)
    assert list(frame.columns) == [f.name for f in features] and len(frame) == 300
    assert set(frame["plan"]) == {"basic", "plus", "pro"}
    assert all(isinstance(v, str) for v in frame["plan"])
    assert set(frame["seats"]) == {1, 5, 20} and frame["seats"].dtype == np.int64
    assert frame["age"].dtype == np.float64 and frame["age"].nunique() > 250
    assert abs(frame["age"].mean() - 40.0) < 2.0
    assert (frame["count"] == frame["count"].round()).all()


def test_sample_frame_is_reproducible():
    features = mixed_features()
    pd.testing.assert_frame_equal(sample_frame(features, 50, seed=1),
                                  sample_frame(features, 50, seed=1))
    assert not sample_frame(features, 50, seed=1).equals(sample_frame(features, 50, seed=2))


def test_sample_frame_spreads_around_zero_and_uses_text_examples():
    features = [numeric_feature("centred", example=0.0), numeric_feature("unknown"),
                FeatureSpec(name="note", kind="categorical", dtype="string", example="hello")]
    frame = sample_frame(features, rows=200)
    assert frame["centred"].std() > 0.5 and frame["unknown"].std() > 0.5
    assert set(frame["note"]) == {"hello"}


# --- ONNX feeds ----------------------------------------------------------------------------------

def test_feeds_are_one_typed_column_each_for_a_mixed_table(table, tmp_path):
    features = mixed_features()
    inputs = [TensorSpec(name="plan", dtype="string", shape=["N", 1]),
              TensorSpec(name="seats", dtype="int64", shape=["N", 1]),
              TensorSpec(name="age", dtype="float32", shape=["N", 1]),
              TensorSpec(name="monthly spend", dtype="float32", shape=["N", 1])]
    path = tmp_path / "customers.csv"
    table.to_csv(path, index=False)
    feeds = onnx_feeds(inputs, features, read_table(path, features))
    assert {k: (v.dtype, v.shape) for k, v in feeds.items()} == {
        "plan": (np.dtype(object), (3, 1)), "seats": (np.dtype(np.int64), (3, 1)),
        "age": (np.dtype(np.float32), (3, 1)), "monthly spend": (np.dtype(np.float32), (3, 1))}
    assert feeds["plan"][:, 0].tolist() == ["pro", "basic", "plus"]


def test_feeds_are_one_matrix_for_numeric_features():
    features = [numeric_feature(n) for n in ("a", "b")]
    inputs = tabular_inputs(features)
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    feeds = onnx_feeds(inputs, features, frame)
    assert list(feeds) == ["input"] and feeds["input"].dtype == np.float32
    assert feeds["input"].tolist() == [[1.0, 3.0], [2.0, 4.0]]


def test_tensor_feeds_fill_symbolic_dimensions():
    feeds = tensor_feeds([TensorSpec(name="image", dtype="float32", shape=["batch", 3, 8, 8]),
                          TensorSpec(name="ids", dtype="int64", shape=[None, "seq"])], rows=4)
    assert feeds["image"].shape == (4, 3, 8, 8) and feeds["image"].dtype == np.float32
    assert feeds["ids"].shape == (4, 1) and feeds["ids"].dtype == np.int64
