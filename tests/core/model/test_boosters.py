"""XGBoost and LightGBM: sklearn-API models through joblib (trust needed) and boosters saved in
their own formats (no trust needed), read in a child process."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from studio.core.errors import ModelLoadError, TrustRequired
from studio.core.model.artifact import detect_format, load
from studio.core.model.schema import ModelSchema

XGBOOST_FILES = ["classifier_iris.joblib", "classifier_iris.json", "classifier_iris.ubj",
                 "binary_breast_cancer_numpy.json", "regressor_diabetes.joblib",
                 "regressor_diabetes.ubj"]
LIGHTGBM_FILES = ["classifier_iris.joblib", "classifier_iris.txt",
                  "binary_breast_cancer_numpy.txt", "regressor_diabetes.joblib",
                  "regressor_diabetes.txt"]


def _options(name: str) -> dict:
    return {"trust": True} if name.endswith(".joblib") else {}


@pytest.fixture(scope="module")
def xgb(loads, xgboost_models):
    for name in XGBOOST_FILES:
        loads.start(xgboost_models[name].path, **_options(name))

    def get(name):
        return xgboost_models[name], loads.get(xgboost_models[name].path, **_options(name))
    return get


@pytest.fixture(scope="module")
def lgbm(loads, lightgbm_models):
    for name in LIGHTGBM_FILES:
        loads.start(lightgbm_models[name].path, **_options(name))

    def get(name):
        return lightgbm_models[name], loads.get(lightgbm_models[name].path, **_options(name))
    return get


def expected_format(library: str, name: str) -> str:
    return "sklearn-joblib" if name.endswith(".joblib") else library


def check_common(library, name, model, artifact):
    schema = artifact.schema
    assert artifact.format == expected_format(library, name) == schema.metadata.format
    assert library in schema.metadata.library_versions
    assert ModelSchema.from_json(schema.to_json()) == schema
    if name.startswith("regressor"):
        assert schema.task == "regression"
        assert schema.class_names is None
        assert [(o.name, o.role) for o in schema.outputs] == [("variable", "value")]
    else:
        n_classes = len(np.unique(model.y))
        assert schema.task == "classification"
        assert schema.class_names == list(range(n_classes))
        assert [(o.name, o.role, o.shape) for o in schema.outputs] == [
            ("label", "label", ["N"]), ("probabilities", "probabilities", ["N", n_classes])]
    assert len(schema.features) == model.X.shape[1]
    assert all(f.kind == "numeric" for f in schema.features)
    assert [(t.name, t.shape) for t in schema.inputs] == [("input", ["N", model.X.shape[1]])]


# --- XGBoost -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", XGBOOST_FILES)
def test_xgboost_task_features_and_classes(xgb, name):
    model, artifact = xgb(name)
    check_common("xgboost", name, model, artifact)
    names = [f.name for f in artifact.schema.features]
    if "numpy" in name:
        assert names == [f"x{i}" for i in range(model.X.shape[1])]
    else:
        assert names == model.feature_names


@pytest.mark.parametrize("name", ["classifier_iris.json", "classifier_iris.ubj"])
def test_native_xgboost_files_need_no_trust(xgb, name):
    _, artifact = xgb(name)
    assert artifact.trusted is False
    assert artifact.schema.metadata.estimator == "xgboost.Booster"


def test_xgboost_sklearn_model_through_joblib_needs_trust(xgboost_models):
    with pytest.raises(TrustRequired) as caught:
        load(xgboost_models["classifier_iris.joblib"].path)
    assert "xgboost.sklearn.XGBClassifier" in caught.value.reasons


@pytest.mark.parametrize("name", ["classifier_iris.joblib", "regressor_diabetes.joblib"])
def test_xgboost_rest_sample_is_accepted_by_the_model(xgb, name):
    model, artifact = xgb(name)
    row = artifact.schema.samples.rest["features"]
    [prediction] = model.estimator.predict(pd.DataFrame([row]))
    assert np.isfinite(prediction)


def test_a_damaged_xgboost_file_is_named(tmp_path, xgboost_models):
    text = xgboost_models["classifier_iris.json"].path.read_text()
    path = tmp_path / "half.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ModelLoadError) as caught:
        load(path)
    assert caught.value.message.startswith("'half.json' is not a readable xgboost model: ")
    assert caught.value.hint == "Save the model again with xgboost's save_model."


# --- LightGBM ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", LIGHTGBM_FILES)
def test_lightgbm_task_features_and_classes(lgbm, name):
    model, artifact = lgbm(name)
    check_common("lightgbm", name, model, artifact)
    names = [f.name for f in artifact.schema.features]
    if "numpy" in name:
        assert names == [f"x{i}" for i in range(model.X.shape[1])]
    else:
        # LightGBM keeps only the names it sanitized (spaces become underscores), in its text
        # files and in its sklearn API's feature_names_in_ alike; it matches columns by position.
        assert names == list(model.estimator.feature_names_in_)
        assert names == [n.replace(" ", "_") for n in model.feature_names]


def test_native_lightgbm_file_needs_no_trust(lgbm):
    _, artifact = lgbm("classifier_iris.txt")
    assert artifact.trusted is False
    assert artifact.schema.metadata.estimator == "lightgbm.Booster"


@pytest.mark.parametrize("name", ["classifier_iris.joblib", "regressor_diabetes.joblib"])
def test_lightgbm_rest_sample_is_accepted_by_the_model(lgbm, name):
    model, artifact = lgbm(name)
    row = artifact.schema.samples.rest["features"]
    [prediction] = model.estimator.predict(pd.DataFrame([row]))
    assert np.isfinite(prediction)


def test_a_damaged_lightgbm_file_is_reported_even_when_it_crashes_lightgbm(tmp_path,
                                                                          lightgbm_models):
    """LightGBM 4.x aborts (SIGABRT/SIGSEGV) on a truncated text model; that happens in the child,
    and the studio reports it with LightGBM's own log as the detail."""
    lines = lightgbm_models["classifier_iris.txt"].path.read_text().splitlines(keepends=True)
    path = tmp_path / "half.txt"
    path.write_text("".join(lines[: len(lines) // 3]))
    with pytest.raises(ModelLoadError) as caught:
        load(path)
    message = caught.value.message
    crashed = re.fullmatch(r"Loading the model crashed the loader process \(signal \d+\)\.",
                           message)
    assert crashed or message.startswith("'half.txt' is not a readable lightgbm model: "), message
    if crashed:
        assert "[LightGBM]" in caught.value.detail
        assert "damaged" in caught.value.hint


@pytest.mark.parametrize(("source", "copy", "library"), [
    ("classifier_iris.json", "CLASSIFIER.JSON", "xgboost"),
    ("classifier_iris.ubj", "Classifier.UBJ", "xgboost"),
    ("classifier_iris.txt", "CLASSIFIER.TXT", "lightgbm"),
])
def test_native_files_are_recognised_whatever_the_case_of_their_suffix(
        tmp_path, request, source, copy, library):
    models = request.getfixturevalue(f"{library}_models")
    path = tmp_path / copy
    path.write_bytes(models[source].path.read_bytes())
    assert detect_format(path) == library
