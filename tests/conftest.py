"""Real models shared by every test folder: trained once per session, saved the way people save
them.

Nothing here imports Qt or the studio: these fixtures only make model files (scikit-learn with
joblib, pickle and skops; ONNX from the onnx wheel and from skl2onnx; XGBoost and LightGBM in their
own formats; MLflow folders written by mlflow itself). Each model file comes with the fitted
estimator and the data it was trained on, so a test can check what the studio says about the file
against what the real model does.

Longer than 500 lines because every suite shares these models, each trained once per session: one
fixture per model, side by side, is what a reader scans to find the model a test uses.
"""

from __future__ import annotations

import os
import pickle
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
import pandas as pd
import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

# A module the loader's child process must be able to import (see model_code_importable).
import model_code

LIGHT_ONNX = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
DEFAULT_TEST_BASE_IMAGE = "slipway/python:3.11-bookworm"


def pytest_collection_modifyitems(config, items):
    """`docker` tests need an engine, `needs_base_image` ones a local base image (./dev test
    provides both). They are skipped where these are missing, except when SLIPWAY_REQUIRE_DOCKER=1
    (CI): there a missing engine must fail the run, not hide the tests."""
    if os.environ.get("SLIPWAY_REQUIRE_DOCKER") == "1":
        return
    from studio.core.serve.runtimes.docker import engine_status

    wanted = [item for item in items if "docker" in item.keywords]
    if not wanted:
        return
    status = engine_status()
    for item in wanted:
        if not status.available:
            item.add_marker(pytest.mark.skip(reason=f"no Docker engine: {status.reason}"))
        elif "needs_base_image" in item.keywords and not os.environ.get("SLIPWAY_TEST_BASE_IMAGE"):
            item.add_marker(pytest.mark.skip(reason="SLIPWAY_TEST_BASE_IMAGE is not set "
                                                    "(./dev test makes the base image)"))


@pytest.fixture(scope="session")
def base_image() -> str:
    return os.environ.get("SLIPWAY_TEST_BASE_IMAGE", DEFAULT_TEST_BASE_IMAGE)


@pytest.fixture(scope="session", autouse=True)
def private_data_folder(tmp_path_factory):
    """The studio's data folder (the model registry, the installation id) in a temporary folder
    for the whole run, inherited by every `slipway` process a test starts: loading, converting and
    optimizing record versions, and a test run must never write into the user's registry."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))
        yield


IRIS_CLASSES = ["setosa", "versicolor", "virginica"]


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model, the data it learned from, and the file it was saved to."""

    name: str
    estimator: Any
    X: pd.DataFrame
    y: pd.Series | np.ndarray
    path: Path

    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.X.columns]


# --- data ----------------------------------------------------------------------------------------

def _frame(loader) -> tuple[pd.DataFrame, pd.Series]:
    X, y = loader(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    """Iris with the species as strings, so class names are names."""
    from sklearn.datasets import load_iris

    X, y = _frame(load_iris)
    return X, y.map(dict(enumerate(IRIS_CLASSES))).rename("species")


@pytest.fixture(scope="session")
def wine() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_wine

    return _frame(load_wine)


@pytest.fixture(scope="session")
def breast_cancer() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer

    return _frame(load_breast_cancer)


@pytest.fixture(scope="session")
def diabetes() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_diabetes

    return _frame(load_diabetes)


@pytest.fixture(scope="session")
def customers() -> tuple[pd.DataFrame, np.ndarray]:
    """A mixed table: two string categorical columns, two numeric ones, and a string target."""
    rng = np.random.default_rng(7)
    n = 300
    X = pd.DataFrame({
        "plan": rng.choice(["basic", "plus", "pro"], n),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "age": rng.integers(18, 80, n).astype(float),
        "monthly_spend": rng.gamma(2.0, 30.0, n),
    })
    score = X["monthly_spend"] / 30 + (X["plan"] == "basic") * 1.5 - (X["age"] - 50) / 40
    y = np.where(score + rng.normal(0, 0.5, n) > 2.5, "churn", "stay")
    return X, y


# --- scikit-learn --------------------------------------------------------------------------------

def mixed_pipeline():
    """ColumnTransformer: one-hot for the string columns, scaling for the numeric ones."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
        ("numbers", StandardScaler(), ["age", "monthly_spend"]),
    ])
    return Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=1000))])


@pytest.fixture(scope="session")
def sklearn_models(tmp_path_factory, iris, wine, breast_cancer, diabetes,
                   customers) -> dict[str, TrainedModel]:
    """Classifiers and regressors on the four sklearn datasets plus a mixed-type pipeline.

    Every model is saved with joblib (`<name>.joblib`); `logreg_iris_pickle` is the same
    LogisticRegression saved with pickle (`.pkl`). `svc_wine_numpy` is fitted on a bare numpy
    array, so it knows no feature names.
    """
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    folder = tmp_path_factory.mktemp("sklearn-models")
    specs: dict[str, tuple[Any, tuple]] = {
        "logreg_iris": (LogisticRegression(max_iter=1000), iris),
        "forest_wine": (RandomForestClassifier(n_estimators=15, random_state=0), wine),
        "gboost_breast_cancer": (GradientBoostingClassifier(n_estimators=15, random_state=0),
                                 breast_cancer),
        "svc_proba_iris": (make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)),
                           iris),
        "svc_wine_numpy": (SVC(), wine),
        "mlp_wine": (make_pipeline(StandardScaler(),
                                   MLPClassifier(hidden_layer_sizes=(16,), max_iter=300,
                                                 random_state=0)), wine),
        "ridge_diabetes": (Ridge(), diabetes),
        "forest_regressor_diabetes": (RandomForestRegressor(n_estimators=15, random_state=0),
                                      diabetes),
        "gboost_regressor_diabetes": (GradientBoostingRegressor(n_estimators=15, random_state=0),
                                      diabetes),
        "mlp_regressor_diabetes": (make_pipeline(StandardScaler(),
                                                 MLPRegressor(hidden_layer_sizes=(16,),
                                                              max_iter=200, random_state=0)),
                                   diabetes),
        "mixed_pipeline": (mixed_pipeline(), customers),
    }
    models: dict[str, TrainedModel] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # SVC(probability=True) is deprecated in scikit-learn 1.9 but still what people saved.
        warnings.filterwarnings("ignore", message="The `probability` parameter",
                                category=FutureWarning)
        for name, (estimator, (X, y)) in specs.items():
            fit_X = X.to_numpy() if name.endswith("_numpy") else X
            estimator.fit(fit_X, y)
            path = folder / f"{name}.joblib"
            joblib.dump(estimator, path)
            models[name] = TrainedModel(name, estimator, X, y, path)
    logreg = models["logreg_iris"]
    pickled = folder / "logreg_iris_pickle.pkl"
    with open(pickled, "wb") as handle:
        pickle.dump(logreg.estimator, handle)
    models["logreg_iris_pickle"] = TrainedModel("logreg_iris_pickle", logreg.estimator,
                                                logreg.X, logreg.y, pickled)
    return models


# --- ONNX ----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def light_onnx() -> Path:
    """The folder of small real CNNs (squeezenet, resnet50, ...) that ships in the onnx wheel."""
    assert LIGHT_ONNX.is_dir(), f"the onnx wheel has no test models at {LIGHT_ONNX}"
    return LIGHT_ONNX


@pytest.fixture(scope="session")
def squeezenet_onnx(light_onnx) -> Path:
    return light_onnx / "light_squeezenet.onnx"


@pytest.fixture(scope="session")
def resnet50_onnx(light_onnx) -> Path:
    return light_onnx / "light_resnet50.onnx"


@pytest.fixture(scope="session")
def onnx_iris_classifier(tmp_path_factory, sklearn_models) -> TrainedModel:
    """The iris LogisticRegression converted by skl2onnx (zipmap=False): label + probabilities."""
    from skl2onnx import to_onnx

    source = sklearn_models["logreg_iris"]
    sample = source.X.to_numpy(dtype=np.float32)[:1]
    model = to_onnx(source.estimator, sample, options={"zipmap": False})
    path = tmp_path_factory.mktemp("onnx-models") / "iris_logreg.onnx"
    onnx.save_model(model, path)
    return TrainedModel("iris_logreg_onnx", source.estimator, source.X, source.y, path)


# --- skops ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def skops_iris_pipeline(tmp_path_factory, iris) -> TrainedModel:
    """StandardScaler + LogisticRegression saved with skops: only types skops trusts."""
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    path = tmp_path_factory.mktemp("skops-models") / "iris_pipeline.skops"
    skops.io.dump(estimator, path)
    return TrainedModel("iris_pipeline_skops", estimator, X, y, path)


@pytest.fixture(scope="session")
def model_code_importable():
    """Let child processes import `model_code` (the loader child runs with its own sys.path)."""
    with pytest.MonkeyPatch.context() as patch:
        paths = [str(TESTS_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        patch.setenv("PYTHONPATH", os.pathsep.join(paths))
        yield


@pytest.fixture(scope="session")
def skops_with_function(tmp_path_factory, iris, model_code_importable) -> TrainedModel:
    """A skops pipeline with a FunctionTransformer calling model_code.log1p_abs: skops does not
    trust a module-level function it has never heard of."""
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = iris
    estimator = make_pipeline(FunctionTransformer(model_code.log1p_abs),
                              LogisticRegression(max_iter=1000)).fit(X, y)
    path = tmp_path_factory.mktemp("skops-models") / "iris_log1p.skops"
    skops.io.dump(estimator, path)
    return TrainedModel("iris_log1p_skops", estimator, X, y, path)


# --- XGBoost and LightGBM ------------------------------------------------------------------------

def _booster_saver(folder: Path, models: dict[str, TrainedModel], booster_of):
    """add(name, estimator, X, y, suffixes): save with joblib (.joblib) or the library's own
    format (any other suffix, through the booster `booster_of(estimator)` returns)."""
    def add(name: str, estimator, X, y, suffixes: list[str]) -> None:
        for suffix in suffixes:
            path = folder / f"{name}{suffix}"
            if suffix == ".joblib":
                joblib.dump(estimator, path)
            else:
                booster_of(estimator).save_model(str(path))
            models[f"{name}{suffix}"] = TrainedModel(name, estimator, X, y, path)

    return add


@pytest.fixture(scope="session")
def xgboost_models(tmp_path_factory, iris, breast_cancer, diabetes) -> dict[str, TrainedModel]:
    """sklearn-API models saved with joblib, and their boosters saved natively (.json and .ubj).

    Names: classifier_iris (.joblib, .json, .ubj), binary_breast_cancer_numpy (.json, fitted on
    numpy so the booster has no feature names), regressor_diabetes (.joblib, .ubj).
    """
    xgboost = pytest.importorskip("xgboost")
    folder = tmp_path_factory.mktemp("xgboost-models")
    iris_X, iris_y = iris
    codes = iris_y.map({name: i for i, name in enumerate(IRIS_CLASSES)})
    models: dict[str, TrainedModel] = {}

    add = _booster_saver(folder, models, lambda estimator: estimator.get_booster())

    params = {"n_estimators": 8, "max_depth": 3, "n_jobs": 1}
    add("classifier_iris", xgboost.XGBClassifier(**params).fit(iris_X, codes), iris_X, codes,
        [".joblib", ".json", ".ubj"])
    X, y = breast_cancer
    add("binary_breast_cancer_numpy", xgboost.XGBClassifier(**params).fit(X.to_numpy(), y), X, y,
        [".json"])
    X, y = diabetes
    add("regressor_diabetes", xgboost.XGBRegressor(**params).fit(X, y), X, y, [".joblib", ".ubj"])
    return models


@pytest.fixture(scope="session")
def lightgbm_models(tmp_path_factory, iris, breast_cancer, diabetes) -> dict[str, TrainedModel]:
    """sklearn-API models saved with joblib, and their boosters saved as LightGBM text (.txt).

    Names: classifier_iris (.joblib, .txt), binary_breast_cancer_numpy (.txt),
    regressor_diabetes (.joblib, .txt).
    """
    lightgbm = pytest.importorskip("lightgbm")
    folder = tmp_path_factory.mktemp("lightgbm-models")
    iris_X, iris_y = iris
    codes = iris_y.map({name: i for i, name in enumerate(IRIS_CLASSES)})
    models: dict[str, TrainedModel] = {}

    add = _booster_saver(folder, models, lambda estimator: estimator.booster_)

    params = {"n_estimators": 8, "num_leaves": 7, "min_child_samples": 5, "verbose": -1,
              "n_jobs": 1}
    add("classifier_iris", lightgbm.LGBMClassifier(**params).fit(iris_X, codes), iris_X, codes,
        [".joblib", ".txt"])
    X, y = breast_cancer
    add("binary_breast_cancer_numpy", lightgbm.LGBMClassifier(**params).fit(X.to_numpy(), y),
        X, y, [".txt"])
    X, y = diabetes
    add("regressor_diabetes", lightgbm.LGBMRegressor(**params).fit(X, y), X, y,
        [".joblib", ".txt"])
    return models


# --- MLflow --------------------------------------------------------------------------------------

def _mlflow():
    pytest.importorskip("mlflow")
    import mlflow.onnx
    import mlflow.sklearn
    from mlflow.models import infer_signature

    return mlflow, infer_signature


@pytest.fixture(scope="session")
def mlflow_sklearn_skops(tmp_path_factory, customers) -> TrainedModel:
    """mlflow.sklearn.save_model with its default (skops) serialization: the mixed pipeline, with a
    signature and a two-row input example."""
    mlflow, infer_signature = _mlflow()
    X, y = customers
    estimator = mixed_pipeline().fit(X, y)
    folder = tmp_path_factory.mktemp("mlflow") / "churn_skops"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(estimator, str(folder),
                                  signature=infer_signature(X, estimator.predict(X)),
                                  input_example=X.iloc[3:5], pip_requirements=["scikit-learn"])
    return TrainedModel("churn_skops", estimator, X, y, folder)


@pytest.fixture(scope="session")
def mlflow_sklearn_cloudpickle(tmp_path_factory, iris) -> TrainedModel:
    """mlflow.sklearn.save_model(serialization_format="cloudpickle") of a model fitted on a bare
    numpy array: only the signature knows the feature names."""
    mlflow, infer_signature = _mlflow()
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    estimator.fit(X.to_numpy(), y)
    folder = tmp_path_factory.mktemp("mlflow") / "iris_cloudpickle"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(estimator, str(folder), serialization_format="cloudpickle",
                                  signature=infer_signature(X, y.to_numpy()),
                                  input_example=X.iloc[50:52], pip_requirements=["scikit-learn"])
    return TrainedModel("iris_cloudpickle", estimator, X, y, folder)


@pytest.fixture(scope="session")
def mlflow_onnx(tmp_path_factory, onnx_iris_classifier) -> TrainedModel:
    """mlflow.onnx.save_model of the skl2onnx iris classifier, with a column signature."""
    mlflow, infer_signature = _mlflow()
    source = onnx_iris_classifier
    X = source.X
    folder = tmp_path_factory.mktemp("mlflow") / "iris_onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.onnx.save_model(onnx.load(source.path), str(folder),
                               signature=infer_signature(X, source.y.to_numpy()),
                               input_example=X.iloc[100:102], pip_requirements=["onnx"])
    return TrainedModel("iris_onnx", source.estimator, X, source.y, folder)


# --- more scikit-learn models, for conversion --------------------------------------------------

CLASSIFIER_KINDS = ("logreg", "forest", "gboost", "svc_proba", "mlp")
REGRESSOR_KINDS = ("ridge", "forest_regressor", "gboost_regressor", "svr", "mlp_regressor")
CLASSIFICATION_SETS = ("iris", "wine", "breast_cancer")


def _estimator(kind: str):
    """The estimators of `sklearn_models`, by the first part of their names."""
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    return {
        "logreg": lambda: LogisticRegression(max_iter=1000),
        "forest": lambda: RandomForestClassifier(n_estimators=15, random_state=0),
        "gboost": lambda: GradientBoostingClassifier(n_estimators=15, random_state=0),
        "svc_proba": lambda: make_pipeline(StandardScaler(),
                                           SVC(probability=True, random_state=0)),
        "mlp": lambda: make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(16,), max_iter=300, random_state=0)),
        "ridge": Ridge,
        "forest_regressor": lambda: RandomForestRegressor(n_estimators=15, random_state=0),
        "gboost_regressor": lambda: GradientBoostingRegressor(n_estimators=15, random_state=0),
        "svr": lambda: make_pipeline(StandardScaler(), SVR()),
        "mlp_regressor": lambda: make_pipeline(StandardScaler(), MLPRegressor(
            hidden_layer_sizes=(16,), max_iter=200, random_state=0)),
    }[kind]()


def _fit_and_save(folder: Path, name: str, estimator, X, y) -> TrainedModel:
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="The `probability` parameter",
                                category=FutureWarning)
        estimator.fit(X, y)
    path = folder / f"{name}.joblib"
    joblib.dump(estimator, path)
    return TrainedModel(name, estimator, X, y, path)


@pytest.fixture(scope="session")
def sklearn_matrix(tmp_path_factory, sklearn_models, iris, wine, breast_cancer,
                   diabetes) -> dict[str, TrainedModel]:
    """Every classifier kind on iris, wine and breast_cancer, every regressor kind on diabetes,
    named `<kind>_<dataset>` as in `sklearn_models` (whose models are reused, not retrained)."""
    folder = tmp_path_factory.mktemp("sklearn-matrix")
    data = {"iris": iris, "wine": wine, "breast_cancer": breast_cancer}
    wanted = [(f"{kind}_{name}", kind, data[name]) for kind in CLASSIFIER_KINDS
              for name in CLASSIFICATION_SETS]
    wanted += [(f"{kind}_diabetes", kind, diabetes) for kind in REGRESSOR_KINDS]
    return {name: sklearn_models.get(name) or _fit_and_save(folder, name, _estimator(kind), *xy)
            for name, kind, xy in wanted}


@pytest.fixture(scope="session")
def wide_mlp(tmp_path_factory, wine) -> TrainedModel:
    """StandardScaler + MLPClassifier(256, 256) on wine: enough weights for quantization to
    matter (about 70k parameters)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(256, 256),
                                                              max_iter=200, random_state=0))
    return _fit_and_save(tmp_path_factory.mktemp("wide-mlp"), "mlp_wide_wine", estimator, *wine)


@pytest.fixture(scope="session")
def unconvertible_models(tmp_path_factory, iris, model_code_importable) -> dict[str, TrainedModel]:
    """Pipelines with a step no ONNX converter knows, saved with joblib:
    `function_transformer` (FunctionTransformer(model_code.log1p_abs) + LogisticRegression) and
    `custom_estimator` (StandardScaler + model_code.NearestMeanClassifier)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    folder = tmp_path_factory.mktemp("unconvertible")
    return {name: _fit_and_save(folder, name, estimator, *iris) for name, estimator in {
        "function_transformer": make_pipeline(FunctionTransformer(model_code.log1p_abs),
                                              LogisticRegression(max_iter=1000)),
        "custom_estimator": make_pipeline(StandardScaler(), model_code.NearestMeanClassifier()),
    }.items()}


# --- served demo model (monitor, load and drift tests) ----------------------------------------------

@pytest.fixture(scope="session")
def wine_csv() -> Path:
    """The demo model's own training rows, shipped beside it: its drift reference."""
    from studio.ui.app import DEMO_REFERENCE

    return DEMO_REFERENCE


@pytest.fixture(scope="module")
def reference_server(wine_csv):
    """The demo model served as a local process with the wine rows attached as its reference."""
    from monitor_servers import running_demo

    with running_demo(wine_csv) as deployment:
        yield deployment
