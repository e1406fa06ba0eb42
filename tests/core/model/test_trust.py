"""Trust: pickles run code when loaded, so without trust the studio only reads their opcodes and
lists what they would import (compressed or not; tests/core/model/test_pickle_scan.py holds that
list to hostile files); skops files load without trust unless they hold types skops does not
know."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
from hostile_pickles import WritesMarker

from studio.core.errors import ModelLoadError, StudioError, TrustRequired
from studio.core.model.artifact import load

PICKLE_HINT = ("Load it only if you trust where it came from (in the app: Trust and load; on the "
               "command line: --trust). Saving models with skops avoids this.")


# --- pickles -------------------------------------------------------------------------------------

def test_a_pipeline_pickle_without_trust_lists_what_it_would_import(sklearn_models):
    path = sklearn_models["mixed_pipeline"].path
    with pytest.raises(TrustRequired) as caught:
        load(path)
    error = caught.value
    assert isinstance(error, StudioError)
    assert error.message == ("'mixed_pipeline.joblib' is a Python pickle: loading it runs any "
                             "code it contains.")
    assert error.hint == PICKLE_HINT
    assert error.reasons[0] == "sklearn.pipeline.Pipeline"
    assert {"sklearn.compose._column_transformer.ColumnTransformer",
            "sklearn.preprocessing._encoders.OneHotEncoder",
            "sklearn.preprocessing._data.StandardScaler"} <= set(error.reasons)


def test_a_plain_pickle_lists_every_import_completely(sklearn_models):
    with pytest.raises(TrustRequired) as caught:
        load(sklearn_models["logreg_iris_pickle"].path)
    reasons = caught.value.reasons
    assert "sklearn.linear_model._logistic.LogisticRegression" in reasons
    assert "numpy.ndarray" in reasons
    assert not any("partial" in r for r in reasons)
    assert len(reasons) == len(set(reasons))


def test_the_pickle_is_scanned_without_running_it(tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "writes_marker.pkl"
    path.write_bytes(pickle.dumps(WritesMarker(marker)))
    with pytest.raises(TrustRequired) as caught:
        load(path)
    assert any(r.endswith(".open") for r in caught.value.reasons), caught.value.reasons
    assert not marker.exists(), "loading without trust ran the pickle"
    # With trust the same file does run (in the child), which shows the marker test can fail.
    with pytest.raises(ModelLoadError) as loaded:
        load(path, trust=True)
    assert marker.exists()
    assert loaded.value.message == ("The file holds a _io.TextIOWrapper, not a model: it has no "
                                    "predict or transform method.")


@pytest.mark.parametrize("compress", [1, 3, 9, ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)],
                         ids=str)
def test_a_compressed_joblib_lists_the_same_imports_as_an_uncompressed_one(tmp_path, sklearn_models,
                                                                          compress):
    estimator = sklearn_models["ridge_diabetes"].estimator
    path = tmp_path / "ridge_compressed.joblib"
    joblib.dump(estimator, path, compress=compress)
    with pytest.raises(TrustRequired) as caught:
        load(path)
    joblib.dump(estimator, tmp_path / "ridge.joblib")
    with pytest.raises(TrustRequired) as uncompressed:
        load(tmp_path / "ridge.joblib")
    assert caught.value.reasons == uncompressed.value.reasons
    assert caught.value.reasons[0] == "sklearn.linear_model._ridge.Ridge"
    assert {f.verdict for f in caught.value.findings} == {"listed"}


def test_a_compressed_joblib_loads_with_trust(tmp_path, sklearn_models, loads):
    model = sklearn_models["ridge_diabetes"]
    path = tmp_path / "ridge_compressed.joblib"
    joblib.dump(model.estimator, path, compress=3)
    schema = loads.get(path, trust=True).schema
    assert schema.task == "regression"
    assert [f.name for f in schema.features] == model.feature_names


# --- skops ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def _start_loading(loads, skops_iris_pipeline, skops_with_function):
    loads.start(skops_iris_pipeline.path)
    loads.start(skops_with_function.path, trust=True)


def test_skops_with_only_trusted_types_loads_without_trust(loads, skops_iris_pipeline):
    model = skops_iris_pipeline
    assert skops.io.get_untrusted_types(file=model.path) == []
    artifact = loads.get(model.path)
    schema = artifact.schema
    assert artifact.format == "skops" == schema.metadata.format
    assert artifact.trusted is False
    assert schema.task == "classification"
    assert schema.class_names == ["setosa", "versicolor", "virginica"]
    assert schema.metadata.estimator == "sklearn.pipeline.Pipeline"
    assert [f.name for f in schema.features] == model.feature_names
    assert [o.role for o in schema.outputs] == ["label", "probabilities"]
    row = schema.samples.rest["features"]
    assert model.estimator.predict(pd.DataFrame([row]))[0] in schema.class_names


def test_skops_with_an_unknown_function_needs_trust_and_names_it(skops_with_function):
    path = skops_with_function.path
    with pytest.raises(TrustRequired) as caught:
        load(path)
    error = caught.value
    assert error.reasons == ["model_code.log1p_abs"]
    assert error.reasons == skops.io.get_untrusted_types(file=path)
    assert error.message == ("'iris_log1p.skops' contains 1 type(s) that skops does not trust "
                             "by default.")
    assert "--trust" in error.hint


def test_skops_with_an_unknown_function_loads_with_trust(loads, skops_with_function):
    model = skops_with_function
    artifact = loads.get(model.path, trust=True)
    assert artifact.trusted is True
    schema = artifact.schema
    assert schema.task == "classification"
    assert [s.type for s in schema.metadata.steps] == [
        "sklearn.preprocessing.FunctionTransformer", "sklearn.linear_model.LogisticRegression"]
    row = schema.samples.rest["features"]
    prediction = model.estimator.predict(pd.DataFrame([row]))[0]
    assert prediction in schema.class_names
    assert np.isfinite(model.estimator.predict_proba(pd.DataFrame([row]))).all()
