"""Reference profiles as they are bundled: feature bins and counts, and the model's predictions on
the same rows, labelled as the server labels its answers."""

import json

import numpy as np
import pytest

from studio.core.model.artifact import load
from studio.core.monitor.reference import (
    SCHEMA_ROWS,
    ProfileError,
    ReferenceProfile,
    model_profile,
    numeric_profile,
    read_profile,
)
from studio.core.optimize.convert import convert


@pytest.fixture(scope="module")
def onnx_of(sklearn_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")

    def converted(name):
        source = load(sklearn_models[name].path, trust=True)
        return convert(source, folder / f"{name}.onnx").artifact, sklearn_models[name]
    return converted


def test_numeric_bins_are_deciles_with_the_last_bin_open_ended():
    values = np.arange(1000, dtype=np.float64)
    profile = numeric_profile(values, bins=10)
    assert len(profile.edges) == 9 and len(profile.counts) == 10
    assert profile.counts == [100] * 10
    assert all(a < b for a, b in zip(profile.edges, profile.edges[1:]))


def test_a_dataset_profile_counts_every_row_and_the_classifiers_predictions(onnx_of):
    artifact, trained = onnx_of("logreg_iris")
    profile = model_profile(artifact, trained.X)
    assert profile.source == "dataset" and profile.rows == len(trained.X)
    for name in trained.feature_names:
        assert sum(profile.features[name].counts) == len(trained.X)
    predictions = profile.predictions
    assert predictions.kind == "categorical"
    expected = dict(zip(*np.unique(trained.estimator.predict(trained.X).astype(str),
                                   return_counts=True)))
    assert dict(zip(predictions.categories, predictions.counts)) == expected


def test_a_regressors_predictions_are_binned(onnx_of):
    artifact, trained = onnx_of("ridge_diabetes")
    profile = model_profile(artifact, trained.X)
    predictions = profile.predictions
    assert predictions.kind == "numeric" and sum(predictions.counts) == len(trained.X)
    predicted = trained.estimator.predict(trained.X)
    assert predictions.edges[0] > predicted.min() and predictions.edges[-1] < predicted.max()


def test_without_a_dataset_the_bins_come_from_the_schema_and_say_so(onnx_of):
    artifact, _ = onnx_of("logreg_iris")
    profile = model_profile(artifact)
    assert profile.source == "schema" and profile.rows == SCHEMA_ROWS
    assert set(profile.features) == {f.name for f in artifact.schema.features}
    assert profile.predictions is not None


def test_categorical_columns_get_category_counts(onnx_of):
    artifact, trained = onnx_of("mixed_pipeline")
    profile = model_profile(artifact, trained.X)
    plan = profile.features["plan"]
    assert plan.kind == "categorical"
    assert dict(zip(plan.categories, plan.counts)) == \
        trained.X["plan"].value_counts().to_dict()
    assert profile.features["age"].kind == "numeric"


def test_a_tensor_model_has_no_profile():
    import onnx

    squeezenet = (f"{onnx.__file__.rsplit('/', 1)[0]}/backend/test/data/light/"
                  "light_squeezenet.onnx")
    assert model_profile(load(squeezenet)) is None


def test_a_profile_round_trips_through_the_json_the_server_serves(onnx_of, tmp_path):
    artifact, trained = onnx_of("mixed_pipeline")
    profile = model_profile(artifact, trained.X)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile.to_json_dict()))
    assert read_profile(path) == profile
    document = profile.to_json_dict()
    assert document["source"] == "dataset" and document["features"]["plan"]["kind"] == "categorical"
    assert set(document["features"]["age"]) == {"kind", "edges", "counts"}


@pytest.mark.parametrize("entry, words", [
    ({"kind": "numeric", "edges": [1.0, 2.0], "counts": [1, 2]}, "2 edges need 3 counts"),
    ({"kind": "numeric", "edges": [2.0, 1.0], "counts": [1, 2, 3]}, "edges must increase"),
    ({"kind": "numeric", "edges": [1.0], "counts": [1, -2]}, "greater than or equal to 0"),
    ({"kind": "categorical", "categories": ["a", "b"], "counts": [1]}, "2 categories need"),
    ({"kind": "ordinal", "counts": [1]}, "does not match any of the expected tags"),
], ids=["counts-vs-edges", "unordered-edges", "negative-count", "categories-vs-counts",
        "unknown-kind"])
def test_a_profile_that_cannot_be_compared_bin_for_bin_is_refused(tmp_path, entry, words):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"rows": 3, "features": {"age": entry}}))
    with pytest.raises(ProfileError) as caught:
        read_profile(path)
    assert caught.value.message.startswith("'profile.json' is not a reference profile: ")
    assert "features.age" in caught.value.message and words in caught.value.message
    assert caught.value.exit_status == 2


def test_categories_are_compared_as_text():
    profile = ReferenceProfile.model_validate(
        {"features": {"zip": {"kind": "categorical", "categories": [1, "2"], "counts": [3, 4]}}})
    assert profile.features["zip"].categories == ["1", "2"]
    assert profile.rows == 0 and profile.source is None and profile.is_baseline


def test_a_profile_on_a_servers_bins_counts_as_the_server_counts():
    """Reference data attached to a running server: numbers on its `le` bounds, compared in the
    model's precision (a float32 value just above an edge in float64 is on it in float32, where the
    server puts it), and categories it does not know under the category it counts them as."""
    import pandas as pd

    from studio.core.monitor.reference import SERVER_OTHER, profile_on_bins

    just_above = float(np.nextafter(np.float64(np.float32(0.1)), 1.0))
    frame = pd.DataFrame({"x": [0.05, just_above, 0.5, 2.0, float("nan")],
                          "colour": ["red", "red", "blue", "mauve", "teal"],
                          "ignored": [1, 2, 3, 4, 5]})
    profile = profile_on_bins(frame, {"x": [float(np.float32(0.1)), 1.0]},
                              {"colour": ["red", "blue"]}, {"x": "float32"})

    assert profile.source == "dataset" and profile.rows == 5 and profile.is_baseline
    assert set(profile.features) == {"x", "colour"} and profile.predictions is None
    assert profile.features["x"].counts == [2, 1, 1]  # NaN is no value
    colours = dict(zip(profile.features["colour"].categories, profile.features["colour"].counts))
    assert colours == {"red": 2, "blue": 1, SERVER_OTHER: 2}
    in_float64 = profile_on_bins(frame, {"x": [float(np.float32(0.1)), 1.0]}, {})
    assert in_float64.features["x"].counts == [1, 2, 1]
