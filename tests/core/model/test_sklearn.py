"""scikit-learn models trained here, saved with joblib and pickle, loaded (with trust) in a child
process and described: task, features, classes, outputs, steps; and the sample requests the studio
writes are accepted by the real model."""

from __future__ import annotations

import hashlib

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import sklearn

from studio.core.model.schema import ModelSchema

CLASSIFIERS = ["logreg_iris", "logreg_iris_pickle", "forest_wine", "gboost_breast_cancer",
               "svc_proba_iris", "svc_wine_numpy", "mlp_wine", "mixed_pipeline"]
REGRESSORS = ["ridge_diabetes", "forest_regressor_diabetes", "gboost_regressor_diabetes",
              "mlp_regressor_diabetes"]
ALL = CLASSIFIERS + REGRESSORS
ESTIMATORS = {
    "logreg_iris": "sklearn.linear_model.LogisticRegression",
    "logreg_iris_pickle": "sklearn.linear_model.LogisticRegression",
    "forest_wine": "sklearn.ensemble.RandomForestClassifier",
    "gboost_breast_cancer": "sklearn.ensemble.GradientBoostingClassifier",
    "svc_proba_iris": "sklearn.pipeline.Pipeline",
    "svc_wine_numpy": "sklearn.svm.SVC",
    "mlp_wine": "sklearn.pipeline.Pipeline",
    "mixed_pipeline": "sklearn.pipeline.Pipeline",
    "ridge_diabetes": "sklearn.linear_model.Ridge",
    "forest_regressor_diabetes": "sklearn.ensemble.RandomForestRegressor",
    "gboost_regressor_diabetes": "sklearn.ensemble.GradientBoostingRegressor",
    "mlp_regressor_diabetes": "sklearn.pipeline.Pipeline",
}


@pytest.fixture(scope="module", autouse=True)
def _start_loading(loads, sklearn_models):
    for name in ALL:
        loads.start(sklearn_models[name].path, trust=True)


@pytest.fixture
def loaded(loads, sklearn_models):
    def get(name):
        model = sklearn_models[name]
        return model, loads.get(model.path, trust=True)
    return get


def request_frame(model, rows: list[dict]) -> pd.DataFrame | np.ndarray:
    """Rows as the model wants them: a DataFrame when it was fitted on one, else an array."""
    frame = pd.DataFrame(rows)
    if getattr(model.estimator, "feature_names_in_", None) is None:
        return frame.to_numpy(dtype=float)
    return frame


# --- what every model says -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_facts_every_schema_carries(loaded, name):
    model, artifact = loaded(name)
    schema = artifact.schema
    expected_format = "sklearn-pickle" if model.path.suffix == ".pkl" else "sklearn-joblib"
    assert artifact.format == expected_format == schema.metadata.format
    assert artifact.trusted is True
    assert artifact.path == model.path == artifact.model_file
    assert schema.name == model.path.stem
    assert schema.metadata.estimator == ESTIMATORS[name]
    assert schema.metadata.library_versions["scikit-learn"] == sklearn.__version__
    assert schema.metadata.file_size == model.path.stat().st_size
    assert schema.metadata.sha256 == hashlib.sha256(model.path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ALL)
def test_schema_round_trips_through_json(loaded, name):
    schema = loaded(name)[1].schema
    assert ModelSchema.from_json(schema.to_json()) == schema


@pytest.mark.parametrize("name", [n for n in ALL if n != "mixed_pipeline"])
def test_numeric_models_have_one_feature_per_column_in_one_float_matrix(loaded, name):
    model, artifact = loaded(name)
    schema = artifact.schema
    expected = (model.feature_names if hasattr(model.estimator, "feature_names_in_")
                else [f"x{i}" for i in range(model.X.shape[1])])
    assert [f.name for f in schema.features] == expected
    assert all(f.kind == "numeric" and f.dtype == "float32" and f.tensor == "input"
               for f in schema.features)
    assert [(t.name, t.dtype, t.shape) for t in schema.inputs] == [
        ("input", "float32", ["N", len(expected)])]


def test_a_model_fitted_on_an_array_gets_positional_feature_names(loaded):
    _, artifact = loaded("svc_wine_numpy")
    assert [f.name for f in artifact.schema.features] == [f"x{i}" for i in range(13)]


# --- classifiers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifiers_report_classes_label_and_probabilities(loaded, name):
    model, artifact = loaded(name)
    schema = artifact.schema
    classes = [c.item() if hasattr(c, "item") else c for c in model.estimator.classes_]
    assert schema.task == "classification"
    assert schema.class_names == classes
    label_dtype = "string" if isinstance(classes[0], str) else "int64"
    expected = [("label", "label", label_dtype, ["N"])]
    if name != "svc_wine_numpy":
        expected.append(("probabilities", "probabilities", "float32", ["N", len(classes)]))
    assert [(o.name, o.role, o.dtype, o.shape) for o in schema.outputs] == expected


def test_svc_without_probability_has_no_probabilities_output(loaded):
    model, artifact = loaded("svc_wine_numpy")
    assert not hasattr(model.estimator, "predict_proba")
    assert [o.role for o in artifact.schema.outputs] == ["label"]


def test_class_names_are_the_iris_species(loaded):
    assert loaded("logreg_iris")[1].schema.class_names == ["setosa", "versicolor", "virginica"]
    assert loaded("forest_wine")[1].schema.class_names == [0, 1, 2]
    assert loaded("gboost_breast_cancer")[1].schema.class_names == [0, 1]


def test_pickle_and_joblib_copies_of_one_model_describe_it_the_same(loaded):
    _, from_joblib = loaded("logreg_iris")
    _, from_pickle = loaded("logreg_iris_pickle")
    for field in ("task", "inputs", "features", "outputs", "class_names"):
        assert getattr(from_pickle.schema, field) == getattr(from_joblib.schema, field)
    assert from_pickle.schema.metadata.format == "sklearn-pickle"


# --- regressors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", REGRESSORS)
def test_regressors_report_one_value_output_and_no_classes(loaded, name):
    _, artifact = loaded(name)
    schema = artifact.schema
    assert schema.task == "regression"
    assert schema.class_names is None
    assert [(o.name, o.role, o.dtype, o.shape) for o in schema.outputs] == [
        ("variable", "value", "float32", ["N", 1])]


# --- pipelines -----------------------------------------------------------------------------------

def test_pipeline_steps_are_listed_with_public_type_names(loaded):
    _, artifact = loaded("svc_proba_iris")
    steps = artifact.schema.metadata.steps
    assert [(s.name, s.type) for s in steps] == [("standardscaler",
                                                  "sklearn.preprocessing.StandardScaler"),
                                                 ("svc", "sklearn.svm.SVC")]


@pytest.mark.parametrize("name", ["svc_proba_iris", "mlp_wine", "mlp_regressor_diabetes"])
def test_examples_of_scaled_features_are_the_means_the_scaler_learned(loaded, name):
    model, artifact = loaded(name)
    scaler = model.estimator.steps[0][1]
    examples = [f.example for f in artifact.schema.features]
    assert examples == pytest.approx(list(scaler.mean_), abs=1e-5)
    assert examples == pytest.approx(list(model.X.mean()), abs=1e-5)


def test_column_transformer_features_one_per_column_with_kinds_and_categories(loaded):
    model, artifact = loaded("mixed_pipeline")
    schema = artifact.schema
    encoder = model.estimator.named_steps["prep"].named_transformers_["categories"]
    scaler = model.estimator.named_steps["prep"].named_transformers_["numbers"]
    plan, region, age, spend = schema.features
    assert [f.name for f in schema.features] == ["plan", "region", "age", "monthly_spend"]
    assert (plan.kind, plan.dtype, plan.categories) == ("categorical", "string",
                                                        ["basic", "plus", "pro"])
    assert (region.kind, region.dtype) == ("categorical", "string")
    assert region.categories == ["east", "north", "south", "west"]
    assert [plan.categories, region.categories] == [list(c) for c in encoder.categories_]
    for feature, mean in zip((age, spend), scaler.mean_, strict=True):
        assert (feature.kind, feature.dtype, feature.categories) == ("numeric", "float32", None)
        assert feature.example == pytest.approx(mean, abs=1e-5)
    # A mixed table travels as one [N, 1] tensor per column, typed like the column.
    assert [(t.name, t.dtype, t.shape) for t in schema.inputs] == [
        ("plan", "string", ["N", 1]), ("region", "string", ["N", 1]),
        ("age", "float32", ["N", 1]), ("monthly_spend", "float32", ["N", 1])]
    assert [f.tensor for f in schema.features] == ["plan", "region", "age", "monthly_spend"]
    assert schema.class_names == ["churn", "stay"]


def test_column_transformer_steps_name_their_columns(loaded):
    _, artifact = loaded("mixed_pipeline")
    [prep, final] = artifact.schema.metadata.steps
    assert (prep.name, prep.type) == ("prep", "sklearn.compose.ColumnTransformer")
    assert [(s.name, s.type, s.columns) for s in prep.steps] == [
        ("categories", "sklearn.preprocessing.OneHotEncoder", ["plan", "region"]),
        ("numbers", "sklearn.preprocessing.StandardScaler", ["age", "monthly_spend"])]
    assert (final.name, final.type) == ("model", "sklearn.linear_model.LogisticRegression")


# --- the sample requests are valid ---------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_rest_sample_is_accepted_by_the_real_model(loaded, name):
    model, artifact = loaded(name)
    samples = artifact.schema.samples
    row = samples.rest["features"]
    assert list(row) == [f.name for f in artifact.schema.features]
    [prediction] = model.estimator.predict(request_frame(model, [row]))
    if artifact.schema.task == "classification":
        assert prediction in artifact.schema.class_names
    else:
        assert np.isfinite(prediction)
    # The batch form carries the same row, positionally.
    [instance] = samples.rest_batch["instances"]
    assert instance == list(row.values())


def test_categorical_sample_values_are_known_categories(loaded):
    _, artifact = loaded("mixed_pipeline")
    row = artifact.schema.samples.rest["features"]
    assert row["plan"] in ("basic", "plus", "pro")
    assert row["region"] in ("east", "north", "south", "west")
    assert isinstance(row["age"], float)


def _skl2onnx_session(estimator, schema):
    """Convert the model the way the schema says it will be served and open it in onnxruntime."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = {"float32": FloatTensorType, "string": StringTensorType}
    initial = [(t.name, types[t.dtype]([None, t.shape[1]])) for t in schema.inputs]
    onx = convert_sklearn(estimator, initial_types=initial, options={"zipmap": False},
                          target_opset={"": 17, "ai.onnx.ml": 3})
    return ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])


def _v2_feeds(body):
    return {item["name"]: np.array(item["data"], dtype=np.float32 if item["datatype"] == "FP32"
                                   else object).reshape(item["shape"]) for item in body["inputs"]}


@pytest.mark.parametrize("name", ["logreg_iris", "mixed_pipeline"])
def test_v2_sample_fits_the_converted_model_and_predicts_like_sklearn(loaded, name):
    model, artifact = loaded(name)
    schema = artifact.schema
    session = _skl2onnx_session(model.estimator, schema)
    label, probabilities = session.run(None, _v2_feeds(schema.samples.v2))
    expected = model.estimator.predict(request_frame(model, [schema.samples.rest["features"]]))
    assert list(label) == list(expected)
    assert probabilities.shape == (1, len(schema.class_names))
