"""scikit-learn models saved with joblib, pickle or skops, and boosters saved natively.

Parent side (the studio's own process): `load_pickle` and `load_skops` decide whether the file may
be loaded at all and then hand it to a child process (`studio.core.model.isolation`). A pickle imports
and calls whatever it names, so it loads only with the user's explicit trust; before asking, the
studio lists what the file would import and call, the dangerous ones first, read from its opcodes
without running it (`studio.core.model.pickle_scan`).
A skops file lists the types it would instantiate, and only unknown ones need trust.

Child side: `inspect_in_child` unpickles (or reads) the estimator and describes it as plain data:
task, features with their kinds and categories, outputs and pipeline steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.core.errors import ModelLoadError, TrustRequired
from studio.core.model.isolation import run_isolated
from studio.core.model.pickle_scan import scan_pickle
from studio.core.model.schema import (
    FeatureSpec,
    ModelMetadata,
    ModelSchema,
    OutputSpec,
    PipelineStep,
    numeric_feature,
    tabular_inputs,
)
from studio.core.tasks import Progress

PICKLE_SUFFIXES = {".joblib", ".pkl", ".pickle"}


# --- parent side ---------------------------------------------------------------------------------

def load_pickle(path: Path, *, trust: bool, timeout: float, progress: Progress) -> dict[str, Any]:
    if not trust:
        raise TrustRequired(
            f"'{path.name}' is a Python pickle: loading it runs any code it contains.",
            "Load it only if you trust where it came from (in the app: Trust and load; on the "
            "command line: --trust). Saving models with skops avoids this.",
            findings=scan_pickle(path, progress=progress),
        )
    return run_isolated("inspect", {"path": str(path), "loader": "pickle"}, timeout=timeout,
                        progress=progress)


def skops_untrusted_types(path: Path) -> list[str]:
    import skops.io

    try:
        return list(skops.io.get_untrusted_types(file=path))
    except Exception as exc:  # skops raises zip, JSON and key errors for damaged files
        raise ModelLoadError(
            f"'{path.name}' is not a readable skops file: {type(exc).__name__}: {exc}",
            "Save the model again with skops.io.dump.",
            detail=repr(exc),
        ) from exc


def load_skops(path: Path, *, trust: bool, timeout: float, progress: Progress) -> dict[str, Any]:
    untrusted = skops_untrusted_types(path)
    if untrusted and not trust:
        raise TrustRequired(
            f"'{path.name}' contains {len(untrusted)} type(s) that skops does not trust by default.",
            "Check the types below; load only if you expect them (in the app: Trust and load; on "
            "the command line: --trust).",
            reasons=untrusted,
        )
    return run_isolated("inspect", {"path": str(path), "loader": "skops", "trusted": untrusted},
                        timeout=timeout, progress=progress)


def schema_from_description(path: Path, fmt: str, description: dict[str, Any],
                            features: list[FeatureSpec] | None = None) -> ModelSchema:
    """Build the ModelSchema from what the child reported (`features` may override its own)."""
    features = features if features is not None else [
        FeatureSpec.model_validate(f) for f in description["features"]
    ]
    return ModelSchema(
        name=path.stem,
        task=description["task"],
        inputs=tabular_inputs(features, per_column=description.get("column_inputs", False)),
        features=features,
        outputs=[OutputSpec.model_validate(o) for o in description["outputs"]],
        class_names=description.get("class_names"),
        metadata=ModelMetadata(
            format=fmt,
            path=str(path),
            file_size=0,
            sha256="",
            estimator=description.get("estimator"),
            library_versions=description.get("library_versions", {}),
            steps=[PipelineStep.model_validate(s) for s in description.get("steps", [])],
            warnings=description.get("warnings", []),
        ),
    )


# --- child side -----------------------------------------------------------------------------------

def load_estimator(path: Path, loader: str, trusted: list[str]) -> Any:
    """The model object in a file (child process only): pickle, skops or a native booster."""
    if loader in ("xgboost", "lightgbm"):
        from studio.core.model.formats import boosters

        return boosters.load_native(path, loader)
    return _unpickle(path) if loader == "pickle" else _load_skops(path, trusted)


def inspect_in_child(request: dict[str, Any]) -> dict[str, Any]:
    """Load the estimator named by the request and describe it (runs in the child process)."""
    estimator = load_estimator(Path(request["path"]), request["loader"], request.get("trusted", []))
    if type(estimator).__name__ == "Booster":
        from studio.core.model.formats import boosters

        return boosters.describe_native(estimator)
    return describe_estimator(estimator)


def _unpickle(path: Path) -> Any:
    import joblib

    try:
        return joblib.load(path)
    except ModuleNotFoundError as exc:
        raise ModelLoadError(
            f"The model needs the Python module '{exc.name}', which is not installed here.",
            f"Install the package that provides '{exc.name}' next to Slipway Studio, or save the "
            "model with skops, which records only data.",
            detail=str(exc),
        ) from exc
    except (EOFError, ValueError, IndexError) as exc:
        # joblib wraps pickle.UnpicklingError in these for truncated or foreign files.
        # A truncated joblib file raises a bare EOFError, whose text is empty.
        reason = str(exc) or ("the file ends before the model does" if isinstance(exc, EOFError)
                              else type(exc).__name__)
        raise ModelLoadError(
            f"'{path.name}' is not a readable pickle or joblib file: {reason}",
            "The file may be truncated or in another format; save the model again.",
            detail=repr(exc),
        ) from exc
    except Exception as exc:
        import pickle

        if isinstance(exc, pickle.UnpicklingError):
            raise ModelLoadError(
                f"'{path.name}' is not a readable pickle or joblib file: {exc}",
                "The file may be truncated or in another format; save the model again.",
            ) from exc
        raise


def _load_skops(path: Path, trusted: list[str]) -> Any:
    import skops.io

    return skops.io.load(path, trusted=trusted)


def _qualified_name(obj: Any) -> str:
    cls = type(obj)
    module = cls.__module__
    # sklearn.linear_model._logistic.LogisticRegression -> sklearn.linear_model.LogisticRegression
    public = ".".join(p for p in module.split(".") if not p.startswith("_"))
    return f"{public}.{cls.__qualname__}"


def _is_estimator(obj: Any) -> bool:
    return any(hasattr(obj, m) for m in ("predict", "transform", "predict_proba"))


def describe_estimator(estimator: Any) -> dict[str, Any]:
    import sklearn
    from sklearn.base import is_classifier, is_regressor

    if not _is_estimator(estimator):
        raise ModelLoadError(
            f"The file holds a {type(estimator).__module__}.{type(estimator).__qualname__}, "
            "not a model: it has no predict or transform method.",
            "Save the fitted estimator or pipeline itself (joblib.dump(model, path)).",
        )
    final = _final_estimator(estimator)
    if is_classifier(estimator):
        task = "classification"
    elif is_regressor(estimator):
        task = "regression"
    else:
        task = "other"
    features = _features(estimator)
    classes = None
    outputs: list[OutputSpec] = []
    if task == "classification":
        classes = [_plain(c) for c in getattr(final, "classes_", [])]
        label_dtype = "string" if any(isinstance(c, str) for c in classes) else "int64"
        outputs.append(OutputSpec(name="label", role="label", dtype=label_dtype, shape=["N"]))
        if _has(estimator, "predict_proba"):
            outputs.append(OutputSpec(name="probabilities", role="probabilities",
                                      dtype="float32", shape=["N", len(classes)]))
    else:
        n_outputs = int(getattr(final, "n_outputs_", 1) or 1)
        outputs.append(OutputSpec(name="variable", role="value" if task == "regression" else "tensor",
                                  dtype="float32", shape=["N", n_outputs]))
    versions = {"scikit-learn": sklearn.__version__}
    for library in ("xgboost", "lightgbm"):
        if type(final).__module__.startswith(library):
            versions[library] = __import__(library).__version__
    return {
        "task": task,
        "features": [f.model_dump() for f in features],
        "outputs": [o.model_dump() for o in outputs],
        "class_names": classes,
        "estimator": _qualified_name(estimator),
        "steps": [s.model_dump() for s in _steps(estimator)],
        "library_versions": versions,
        "column_inputs": _selects_columns_by_name(estimator),
    }


def _selects_columns_by_name(estimator: Any) -> bool:
    from sklearn.compose import ColumnTransformer

    first = _first_step(estimator)
    return isinstance(first, ColumnTransformer) and hasattr(first, "feature_names_in_")


def _has(estimator: Any, method: str) -> bool:
    try:
        return callable(getattr(estimator, method))
    except AttributeError:  # e.g. SVC(probability=False).predict_proba
        return False


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, for JSON."""
    return value.item() if hasattr(value, "item") else value


def _final_estimator(estimator: Any) -> Any:
    from sklearn.pipeline import Pipeline

    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return estimator


def _first_step(estimator: Any) -> Any:
    from sklearn.pipeline import Pipeline

    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[0][1]
    return estimator


def _steps(estimator: Any) -> list[PipelineStep]:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(estimator, Pipeline):
        return [PipelineStep(name=name, type=_qualified_name(step), steps=_steps(step))
                for name, step in estimator.steps]
    if isinstance(estimator, ColumnTransformer):
        names = _input_names(estimator)
        return [
            PipelineStep(name=name, type=_qualified_name(t) if not isinstance(t, str) else t,
                         columns=[names[i] for i in indices], steps=_steps(t))
            for name, t, indices in _ct_branches(estimator)
        ]
    if isinstance(estimator, FeatureUnion):
        return [PipelineStep(name=name, type=_qualified_name(t), steps=_steps(t))
                for name, t in estimator.transformer_list]
    return []


def _input_names(estimator: Any) -> list[str]:
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    booster_names = getattr(estimator, "feature_name_", None)  # LightGBM's sklearn API
    if booster_names is not None and not all(n.startswith("Column_") for n in booster_names):
        return [str(n) for n in booster_names]
    count = getattr(estimator, "n_features_in_", None)
    if count is None:
        raise ModelLoadError(
            f"The {type(estimator).__name__} does not record how many features it takes: "
            "it looks unfitted.",
            "Fit the model before saving it.",
        )
    return [f"x{i}" for i in range(int(count))]


def _ct_branches(ct: Any) -> list[tuple[str, Any, list[int]]]:
    """(name, transformer, input column indices) for each ColumnTransformer branch that is used."""
    indices = getattr(ct, "_transformer_to_input_indices", {})
    branches = []
    for name, transformer, _columns in ct.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        used = [int(i) for i in indices.get(name, [])]
        if used:
            branches.append((name, transformer, used))
    return branches


def _encoder_categories(transformer: Any) -> list[list[Any]] | None:
    """Known categories per column when the branch one-hot or ordinally encodes its input."""
    from sklearn.pipeline import Pipeline

    steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    for step in steps:
        categories = getattr(step, "categories_", None)
        if categories is not None:
            return [[_plain(c) for c in column if c == c] for column in categories]  # drop NaN
    return None


def _scaler_stats(transformer: Any) -> list[tuple[float, float | None]] | None:
    """Per column, a valid example and a typical spread, from what a scaler or imputer learned:
    a StandardScaler's mean and scale, the middle and a quarter of a MinMaxScaler's range, an
    imputer's fill value (no spread)."""
    from sklearn.pipeline import Pipeline

    steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    for step in steps:
        if getattr(step, "mean_", None) is not None and getattr(step, "scale_", None) is not None:
            return [(round(float(m), 6), round(float(sd), 6)) for m, sd in zip(step.mean_, step.scale_)]
        if getattr(step, "data_min_", None) is not None:
            return [(round(float(lo + hi) / 2, 6), round(float(hi - lo) / 4, 6))
                    for lo, hi in zip(step.data_min_, step.data_max_)]
        if getattr(step, "statistics_", None) is not None:  # SimpleImputer's means or medians
            try:
                return [(round(float(v), 6), None) for v in step.statistics_]
            except (TypeError, ValueError):
                return None
    return None


def _features(estimator: Any) -> list[FeatureSpec]:
    from sklearn.compose import ColumnTransformer

    first = _first_step(estimator)
    if isinstance(first, ColumnTransformer):
        return _column_transformer_features(first)
    names = _input_names(first if hasattr(first, "n_features_in_") else estimator)
    stats = _scaler_stats(first) or []
    return [
        numeric_feature(name, example=stats[i][0], spread=stats[i][1]) if i < len(stats)
        else numeric_feature(name)
        for i, name in enumerate(names)
    ]


def _column_transformer_features(ct: Any) -> list[FeatureSpec]:
    names = _input_names(ct)
    features: dict[int, FeatureSpec] = {}
    for _, transformer, indices in _ct_branches(ct):
        categories = None if isinstance(transformer, str) else _encoder_categories(transformer)
        stats = None if isinstance(transformer, str) else _scaler_stats(transformer)
        for position, index in enumerate(indices):
            if categories is not None and position < len(categories):
                known = categories[position]
                dtype = "string" if any(isinstance(c, str) for c in known) else "int64"
                features[index] = FeatureSpec(name=names[index], kind="categorical", dtype=dtype,
                                              categories=known)
            elif index not in features:
                example, spread = stats[position] if stats and position < len(stats) else (None,
                                                                                           None)
                features[index] = numeric_feature(names[index], example=example, spread=spread)
    return [features[i] for i in sorted(features)]
