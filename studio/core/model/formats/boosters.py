"""XGBoost and LightGBM models in their own file formats (no pickle, so no trust needed).

XGBoost writes `.json` or `.ubj`; LightGBM writes a text model (`.txt`). Both libraries are optional:
without them the studio says which package to install. Their scikit-learn API objects arrive
through joblib/pickle and are described by `formats.sklearn` like any estimator. Loading still
happens in a child process, because a damaged file can crash the libraries' C++ code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.core.errors import ModelLoadError, first_line
from studio.core.model.isolation import run_isolated
from studio.core.model.schema import OutputSpec, numeric_feature
from studio.core.tasks import Progress

XGBOOST_SUFFIXES = {".ubj", ".xgb", ".json"}
LIGHTGBM_SUFFIXES = {".txt", ".lgb"}


def sniff(path: Path) -> str | None:
    """'xgboost' or 'lightgbm' when the file's first bytes say so, else None."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    suffix = path.suffix.lower()  # MODEL.JSON from Windows is the same file
    if suffix in LIGHTGBM_SUFFIXES and head.startswith(b"tree\n"):
        return "lightgbm"
    if suffix == ".json" and b'"learner"' in head:
        return "xgboost"
    if suffix in (".ubj", ".xgb"):
        return "xgboost"
    return None


def _require(library: str) -> Any:
    try:
        return __import__(library)
    except ImportError as exc:
        raise ModelLoadError(
            f"This is a {library} model, and {library} is not installed.",
            f"Install it next to Slipway Studio: pip install {library} "
            "(or pip install 'slipway-studio[boosters]').",
        ) from exc


def load_booster(path: Path, library: str, *, timeout: float, progress: Progress) -> dict[str, Any]:
    """Describe a native XGBoost/LightGBM file, read in a child process (parent side)."""
    return run_isolated("inspect", {"path": str(path), "loader": library}, timeout=timeout,
                        progress=progress)


def load_native(path: Path, library: str) -> Any:
    module = _require(library)
    try:
        if library == "xgboost":
            booster = module.Booster()
            booster.load_model(str(path))
            return booster
        return module.Booster(model_file=str(path))
    except Exception as exc:  # both libraries raise their own error types for bad files
        raise ModelLoadError(
            f"'{path.name}' is not a readable {library} model: {first_line(exc)}",
            f"Save the model again with {library}'s save_model.",
            detail=str(exc),
        ) from exc


def describe_native(booster: Any) -> dict[str, Any]:
    if type(booster).__module__.startswith("xgboost"):
        return _describe_xgboost(booster)
    return _describe_lightgbm(booster)


def _outputs(task: str, classes: list[int]) -> list[OutputSpec]:
    if task == "classification":
        return [
            OutputSpec(name="label", role="label", dtype="int64", shape=["N"]),
            OutputSpec(name="probabilities", role="probabilities", dtype="float32",
                       shape=["N", len(classes)]),
        ]
    return [OutputSpec(name="variable", role="value" if task == "regression" else "tensor",
                       dtype="float32", shape=["N", 1])]


def _describe(task: str, classes: list[int], names: list[str], estimator: str,
              library: str, version: str, objective: str) -> dict[str, Any]:
    features = [numeric_feature(name) for name in names]
    return {
        "task": task,
        "features": [f.model_dump() for f in features],
        "outputs": [o.model_dump() for o in _outputs(task, classes)],
        "class_names": classes if task == "classification" else None,
        "estimator": estimator,
        "steps": [],
        "library_versions": {library: version},
        "warnings": [] if task != "other" else [f"Objective '{objective}' is neither a classifier "
                                                 "nor a regressor; outputs are served as raw scores."],
    }


def _describe_xgboost(booster: Any) -> dict[str, Any]:
    import xgboost

    config = json.loads(booster.save_config())
    objective = config["learner"]["objective"]["name"]
    n_classes = int(config["learner"]["learner_model_param"].get("num_class", "0") or 0)
    names = booster.feature_names or [f"x{i}" for i in range(booster.num_features())]
    if objective.startswith(("binary:", "multi:")):
        task, classes = "classification", list(range(max(n_classes, 2)))
    elif objective.startswith(("reg:", "count:", "survival:")):
        task, classes = "regression", []
    else:
        task, classes = "other", []
    return _describe(task, classes, list(names), "xgboost.Booster", "xgboost",
                     xgboost.__version__, objective)


def _describe_lightgbm(booster: Any) -> dict[str, Any]:
    import lightgbm

    dump = booster.dump_model(num_iteration=1)
    objective = str(dump.get("objective", "")).split()[0] if dump.get("objective") else ""
    n_classes = int(dump.get("num_class", 1))
    names = booster.feature_name()
    if all(n.startswith("Column_") for n in names):
        names = [f"x{i}" for i in range(len(names))]
    if objective in ("binary", "multiclass", "multiclassova", "cross_entropy"):
        task, classes = "classification", list(range(max(n_classes, 2)))
    elif objective.startswith("regression") or objective in ("huber", "fair", "poisson", "quantile",
                                                              "mape", "gamma", "tweedie"):
        task, classes = "regression", []
    else:
        task, classes = "other", []
    return _describe(task, classes, names, "lightgbm.Booster", "lightgbm",
                     lightgbm.__version__, objective)
