"""Conversion to ONNX, checked against the real models: every conversion runs in a child process
(as in the app), its parity report is read, and the ONNX file it wrote is run here on the data the
model was trained on and compared with the original estimator's own answers.

The conversions are started together when the module begins (`conversions` runs a few at a time,
each in its own child process) and each test waits for the ones it reads.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

from studio.core.errors import StudioError
from studio.core.model.artifact import load
from studio.core.model.datasets import DatasetError
from studio.core.optimize.convert import (
    DEFAULT_OPSET,
    GOLDEN_ROWS,
    PARITY_PROPERTY,
    ConversionError,
    convert,
)
from studio.core.optimize.parity import Tolerance

# The models of the `sklearn_matrix` fixture.
CLASSIFIERS = [f"{kind}_{data}" for kind in ("logreg", "forest", "gboost", "svc_proba", "mlp")
               for data in ("iris", "wine", "breast_cancer")]
REGRESSORS = [f"{kind}_diabetes" for kind in ("ridge", "forest_regressor", "gboost_regressor",
                                              "svr", "mlp_regressor")]
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]
# (library, file): sklearn-API models through joblib, boosters in their own formats.
# Native files cover multi-class, binary (one probability column in the booster) and regression.
BOOSTERS = [("xgboost", "classifier_iris.joblib"), ("xgboost", "regressor_diabetes.joblib"),
            ("xgboost", "classifier_iris.json"), ("xgboost", "regressor_diabetes.ubj"),
            ("lightgbm", "classifier_iris.joblib"), ("lightgbm", "regressor_diabetes.joblib"),
            ("lightgbm", "classifier_iris.txt"), ("lightgbm", "binary_breast_cancer_numpy.txt")]
IMPOSSIBLE = Tolerance(atol=0.0, rtol=0.0)
"""float32 ONNX against float64 scikit-learn: no MLP meets this."""


@pytest.fixture(scope="module")
def reference_files(tmp_path_factory, customers, iris) -> dict[str, object]:
    """Golden rows as people keep them: the customers table (with its target column, which the
    conversion must ignore) as CSV and Parquet, iris features as a bare .npy matrix, and a CSV
    that lacks a feature column."""
    folder = tmp_path_factory.mktemp("reference")
    X, y = customers
    table = X.assign(churn=y)
    files = {"csv": folder / "customers.csv", "parquet": folder / "customers.parquet",
             "npy": folder / "iris_rows.npy", "missing": folder / "customers_no_spend.csv"}
    table.iloc[:120].to_csv(files["csv"], index=False)
    table.iloc[120:].to_parquet(files["parquet"])
    np.save(files["npy"], iris[0].to_numpy()[::3])
    X.drop(columns=["monthly_spend"]).to_csv(files["missing"], index=False)
    return files


@pytest.fixture(scope="module")
def boosters(xgboost_models, lightgbm_models):
    return {"xgboost": xgboost_models, "lightgbm": lightgbm_models}


@pytest.fixture(scope="module", autouse=True)
def _start_converting(conversions, sklearn_matrix, sklearn_models, boosters, unconvertible_models,
                      reference_files):
    """Every conversion this module reads, queued at once."""
    mixed = sklearn_models["mixed_pipeline"].path
    jobs = [(sklearn_matrix[name].path, {"trust": True}) for name in CLASSIFIERS + REGRESSORS]
    jobs += [(mixed, {"trust": True, "reference": reference_files["csv"]}),
             (mixed, {"trust": True, "reference": reference_files["parquet"]}),
             (sklearn_models["logreg_iris"].path, {"trust": True,
                                                   "reference": reference_files["npy"]}),
             (sklearn_models["svc_proba_iris"].path, {"trust": True, "opset": 15}),
             (sklearn_models["mlp_wine"].path, {"trust": True, "tolerance": IMPOSSIBLE})]
    jobs += [(boosters[library][name].path, {"trust": name.endswith(".joblib")})
             for library, name in BOOSTERS]
    jobs += [(model.path, {"trust": True}) for model in unconvertible_models.values()]
    for path, options in jobs:
        conversions.start(path, **options)


def run_onnx(path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def matrix_feeds(X: pd.DataFrame) -> dict[str, np.ndarray]:
    return {"input": X.to_numpy(dtype=np.float32)}


def default_opset(path) -> int:
    return next(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx"))


def check_reloads_like_the_source(conversion, source_artifact) -> None:
    """What the ONNX file says about itself, read back from disk by the normal loader."""
    reloaded = load(conversion.report.output_path)
    assert reloaded.format == "onnx"
    assert [f.name for f in reloaded.schema.features] == \
        [f.name for f in source_artifact.schema.features]
    assert reloaded.schema.class_names == source_artifact.schema.class_names
    assert reloaded.schema.task == source_artifact.schema.task


# --- scikit-learn: the matrix --------------------------------------------------------------------

@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_converts_with_passing_parity(name, sklearn_matrix, conversions, loads):
    model = sklearn_matrix[name]
    conversion = conversions.get(model.path, trust=True)
    report = conversion.report
    parity = report.parity

    assert parity.passed and conversion.passed, parity.summary()
    assert parity.rows == GOLDEN_ROWS and "sampled" in parity.inputs
    outputs = {o.name: o for o in parity.outputs}
    assert outputs["label"].label_agreement == 1.0 and parity.flipped_rows == []
    assert outputs["probabilities"].max_abs_diff < 1e-5
    assert report.converter.startswith("skl2onnx") and report.opset == DEFAULT_OPSET
    assert default_opset(report.output_path) == DEFAULT_OPSET

    # The file itself: plain tensors named label and probabilities, no ZipMap.
    schema = conversion.artifact.schema
    assert "ZipMap" not in schema.metadata.onnx.operators
    assert [(o.name, o.role) for o in schema.outputs] == [("label", "label"),
                                                          ("probabilities", "probabilities")]
    assert schema.outputs[1].dtype == "float32"

    # What the estimator itself answers on its training data, against the ONNX file.
    answers = run_onnx(report.output_path, matrix_feeds(model.X))
    expected = model.estimator.predict(model.X)
    assert np.mean(answers["label"] == expected) >= 0.99
    np.testing.assert_allclose(answers["probabilities"], model.estimator.predict_proba(model.X),
                               atol=1e-4)
    check_reloads_like_the_source(conversion, loads.get(model.path, trust=True))


def test_iris_class_names_stay_names(sklearn_matrix, conversions):
    conversion = conversions.get(sklearn_matrix["forest_iris"].path, trust=True)
    assert conversion.artifact.schema.class_names == IRIS_CLASSES
    answers = run_onnx(conversion.report.output_path, matrix_feeds(sklearn_matrix["forest_iris"].X))
    assert set(answers["label"]) == set(IRIS_CLASSES)


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressor_converts_with_passing_parity(name, sklearn_matrix, conversions, loads):
    model = sklearn_matrix[name]
    conversion = conversions.get(model.path, trust=True)
    parity = conversion.report.parity

    assert parity.passed, parity.summary()
    [value] = parity.outputs
    assert (value.name, value.role, value.mismatched) == ("variable", "value", 0)
    assert value.max_abs_diff < 1e-3
    assert [(o.name, o.role) for o in conversion.artifact.schema.outputs] == [("variable", "value")]

    answers = run_onnx(conversion.report.output_path, matrix_feeds(model.X))
    np.testing.assert_allclose(answers["variable"].ravel(), model.estimator.predict(model.X),
                               rtol=1e-4, atol=1e-3)
    check_reloads_like_the_source(conversion, loads.get(model.path, trust=True))


# --- a mixed-type table --------------------------------------------------------------------------

def test_mixed_pipeline_has_one_typed_input_per_column(sklearn_models, conversions, loads,
                                                       reference_files):
    model = sklearn_models["mixed_pipeline"]
    conversion = conversions.get(model.path, trust=True, reference=reference_files["csv"])
    assert conversion.passed, conversion.report.parity.summary()

    graph = onnx.load(conversion.report.output_path).graph
    inputs = {i.name: i.type.tensor_type for i in graph.input}
    assert list(inputs) == ["plan", "region", "age", "monthly_spend"]
    for name, tensor in inputs.items():
        expected = onnx.TensorProto.STRING if name in ("plan", "region") else onnx.TensorProto.FLOAT
        assert tensor.elem_type == expected, name
        first, second = tensor.shape.dim
        assert not first.HasField("dim_value") and second.dim_value == 1, name
    outputs = {o.name: o.type for o in graph.output}
    assert list(outputs) == ["label", "probabilities"]
    assert all(t.WhichOneof("value") == "tensor_type" for t in outputs.values())  # no ZipMap
    assert "ZipMap" not in {n.op_type for n in graph.node}

    X = model.X
    feeds = {c: X[[c]].to_numpy(dtype=np.float32 if pd.api.types.is_numeric_dtype(X[c])
                                else object) for c in X.columns}
    answers = run_onnx(conversion.report.output_path, feeds)
    assert list(answers["label"]) == list(model.estimator.predict(X))
    np.testing.assert_allclose(answers["probabilities"], model.estimator.predict_proba(X),
                               atol=1e-5)
    schema = conversion.artifact.schema
    assert [(f.name, f.kind, f.dtype) for f in schema.features] == [
        ("plan", "categorical", "string"), ("region", "categorical", "string"),
        ("age", "numeric", "float32"), ("monthly_spend", "numeric", "float32")]
    check_reloads_like_the_source(conversion, loads.get(model.path, trust=True))


# --- reference data ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, model_name, rows", [("csv", "mixed_pipeline", 120),
                                                    ("parquet", "mixed_pipeline", 180),
                                                    ("npy", "logreg_iris", 50)])
def test_parity_runs_on_the_reference_rows(kind, model_name, rows, sklearn_models, conversions,
                                           reference_files):
    path = reference_files[kind]
    conversion = conversions.get(sklearn_models[model_name].path, trust=True, reference=path)
    parity = conversion.report.parity
    assert parity.passed, parity.summary()
    assert parity.rows == rows
    assert path.name in parity.inputs and f"{rows} rows" in parity.inputs
    assert path.name in conversion.report.parity.summary()


def test_a_reference_without_a_feature_column_is_refused_by_name(sklearn_models, loads,
                                                                 reference_files, tmp_path):
    artifact = loads.get(sklearn_models["mixed_pipeline"].path, trust=True)
    output = tmp_path / "never.onnx"
    with pytest.raises(DatasetError) as raised:
        convert(artifact, output, reference=reference_files["missing"])
    assert isinstance(raised.value, StudioError)
    assert "monthly_spend" in raised.value.message
    assert "customers_no_spend.csv" in raised.value.message
    assert raised.value.hint
    assert not output.exists()


# --- opset ---------------------------------------------------------------------------------------

def test_the_target_opset_is_the_files_opset(sklearn_models, conversions):
    # skl2onnx alone writes opset 9 for this SVC (the lowest its operators need).
    conversion = conversions.get(sklearn_models["svc_proba_iris"].path, trust=True, opset=15)
    assert conversion.passed, conversion.report.parity.summary()
    assert conversion.report.opset == 15
    assert default_opset(conversion.report.output_path) == 15
    assert conversion.artifact.schema.metadata.onnx.opsets["ai.onnx"] == 15


# --- what cannot convert -------------------------------------------------------------------------

def test_a_function_transformer_is_named_with_its_function(unconvertible_models, conversions):
    model = unconvertible_models["function_transformer"]
    with pytest.raises(ConversionError) as raised:
        conversions.get(model.path, trust=True)
    message = raised.value.message
    assert "'functiontransformer'" in message and "model_code.log1p_abs" in message
    assert "FunctionTransformer" in message
    assert raised.value.hint and "\n" not in str(raised.value)
    assert not list(conversions.folder.glob(f"{model.path.stem}*"))  # nothing written


def test_an_estimator_without_a_converter_is_named_with_its_class(unconvertible_models,
                                                                   conversions):
    model = unconvertible_models["custom_estimator"]
    with pytest.raises(ConversionError) as raised:
        conversions.get(model.path, trust=True)
    message = raised.value.message
    assert "'nearestmeanclassifier'" in message
    assert "model_code.NearestMeanClassifier" in message and "no ONNX converter" in message
    assert raised.value.hint and "\n" not in str(raised.value)
    assert not list(conversions.folder.glob(f"{model.path.stem}*"))  # nothing written


def test_an_onnx_model_is_not_converted_again(onnx_iris_classifier, tmp_path):
    with pytest.raises(ConversionError, match="already an ONNX model"):
        convert(load(onnx_iris_classifier.path), tmp_path / "again.onnx")


# --- a failing parity is never silent ------------------------------------------------------------

def test_failing_parity_is_written_and_says_so(sklearn_models, conversions):
    conversion = conversions.get(sklearn_models["mlp_wine"].path, trust=True, tolerance=IMPOSSIBLE)
    report = conversion.report
    assert not report.parity.passed and not conversion.passed
    assert report.parity.tolerance == IMPOSSIBLE
    probabilities = next(o for o in report.parity.outputs if o.name == "probabilities")
    assert not probabilities.passed and probabilities.mismatched > 0
    assert 0 < probabilities.max_abs_diff < 1e-5  # float32 rounding, nothing worse
    assert report.parity.summary().startswith("FAIL")

    model = onnx.load(report.output_path)
    props = {p.key: p.value for p in model.metadata_props}
    verdict = json.loads(props[PARITY_PROPERTY])
    assert verdict["passed"] is False and verdict["summary"].startswith("FAIL")
    assert conversion.artifact.schema.metadata.onnx is not None  # a valid, loadable model


# --- XGBoost and LightGBM ------------------------------------------------------------------------

@pytest.mark.parametrize("library, name", BOOSTERS)
def test_booster_converts_with_passing_parity(library, name, boosters, conversions, loads):
    model = boosters[library][name]
    native = not name.endswith(".joblib")
    conversion = conversions.get(model.path, trust=not native)
    report = conversion.report
    assert report.parity.passed, report.parity.summary()
    assert report.converter.startswith("onnxmltools" if native else "skl2onnx")
    assert default_opset(report.output_path) == DEFAULT_OPSET == report.opset

    source = loads.get(model.path, **({} if native else {"trust": True}))
    check_reloads_like_the_source(conversion, source)
    answers = run_onnx(report.output_path, matrix_feeds(model.X))
    if name.startswith("regressor"):
        assert [o.name for o in conversion.artifact.schema.outputs] == ["variable"]
        np.testing.assert_allclose(answers["variable"].ravel(), model.estimator.predict(model.X),
                                   rtol=1e-4, atol=1e-3)
        return
    schema = conversion.artifact.schema
    assert [(o.name, o.role) for o in schema.outputs] == [("label", "label"),
                                                          ("probabilities", "probabilities")]
    assert schema.outputs[0].shape[0] != 1  # one label per row, not a fixed [1]
    assert next(o for o in report.parity.outputs if o.name == "label").label_agreement == 1.0
    X = model.X.to_numpy() if "_numpy" in name else model.X
    assert np.mean(answers["label"] == model.estimator.predict(X)) >= 0.99
    np.testing.assert_allclose(answers["probabilities"], model.estimator.predict_proba(X),
                               atol=1e-5)
