"""Turn a scikit-learn, XGBoost or LightGBM model into a verified ONNX model.

The estimator exists only in a child process (it came from a pickle or a skops file), so the whole
conversion happens there: load, convert with skl2onnx (onnxmltools for boosters), run the same
golden rows through the original and the ONNX model, and write the ONNX file with its parity verdict
in the metadata. The parent then loads the written file through `load_model`, which validates it
like any other ONNX model.

Classifiers export `label` and `probabilities` as plain tensors (no ZipMap); a ColumnTransformer over
a table becomes one [N, 1] input per column with its own element type.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from studio.core.errors import ExitStatus, StudioError, first_line
from studio.core.files import check_not_a_source, pending_file, write_error
from studio.core.model import datasets
from studio.core.model.artifact import ModelArtifact, moved
from studio.core.model.artifact import load as load_model
from studio.core.model.formats import sklearn as sklearn_format
from studio.core.model.isolation import DEFAULT_TIMEOUT_S, run_isolated
from studio.core.model.schema import FeatureSpec, TensorSpec
from studio.core.model.session import onnx_session
from studio.core.optimize import parity
from studio.core.optimize.optimize import BATCH_ROWS, Latency, timed
from studio.core.optimize.parity import ParityReport, Tolerance
from studio.core.tasks import Progress, quiet

DEFAULT_OPSET = 17
GOLDEN_ROWS = 200
PARITY_PROPERTY = "slipway.parity"
SOURCE_PROPERTY = "slipway.source"


class ConversionError(StudioError):
    """The model cannot be converted to ONNX (a step without a converter, an unsupported model)."""

    exit_status = ExitStatus.NOT_LOADABLE


class ConversionReport(BaseModel):
    source: str
    source_format: str
    output_path: str
    converter: str
    opset: int
    file_size: int
    seconds: float
    parity: ParityReport
    latency_before: Latency | None = None
    """The original model's own prediction, timed on the same rows as the ONNX model."""
    latency_after: Latency | None = None


@dataclass(frozen=True)
class Conversion:
    artifact: ModelArtifact
    """The ONNX model, loaded and validated like any other."""
    report: ConversionReport

    @property
    def passed(self) -> bool:
        return self.report.parity.passed


def _loader(artifact: ModelArtifact) -> tuple[str, list[str]]:
    """How the child reads the model file: (loader name, skops types to trust)."""
    fmt = artifact.format
    suffix = artifact.model_file.suffix.lower()
    if fmt in ("xgboost", "lightgbm"):
        return fmt, []
    if fmt == "skops" or suffix == ".skops":
        trusted = sklearn_format.skops_untrusted_types(artifact.model_file) if artifact.trusted else []
        return "skops", trusted
    return "pickle", []


def convert(artifact: ModelArtifact, output: str | Path, *, opset: int = DEFAULT_OPSET,
            reference: str | Path | None = None, tolerance: Tolerance | None = None,
            timeout: float = DEFAULT_TIMEOUT_S, progress: Progress | None = None) -> Conversion:
    """Convert `artifact` to ONNX at `output` and check parity on `reference` rows (or sampled ones).

    The file is written even when parity fails, and says so in its metadata; the caller decides
    what to do with a failing model (the CLI exits 4, the app marks it and asks before saving).
    """
    progress = progress or quiet()
    if artifact.schema.metadata.onnx is not None:
        raise ConversionError(f"'{artifact.path.name}' is already an ONNX model.",
                              "Use Optimize (slipway optimize) to make it smaller or faster.")
    if not artifact.schema.features:
        raise ConversionError(f"'{artifact.path.name}' describes no tabular features to convert.",
                              "Only tabular scikit-learn, XGBoost and LightGBM models convert.")
    output = Path(output)
    check_not_a_source(output, artifact.model_file)
    if reference:
        # Fail fast, naming the missing column, before a child spends seconds loading the model.
        datasets.read_table(reference, artifact.schema.features)
    loader, trusted = _loader(artifact)
    tolerance = tolerance or Tolerance()
    progress.update(None, f"Converting {artifact.path.name} to ONNX (opset {opset})")
    started = time.perf_counter()
    with pending_file(output) as pending:
        result = _convert_in_a_child(artifact, pending.path, opset, reference, tolerance, loader,
                                     trusted, timeout, progress)
        progress.update(0.9, "Validating the ONNX model")
        checked = load_model(pending.path)
        file_size = pending.path.stat().st_size
        pending.commit()
    report = ConversionReport(
        source=str(artifact.path), source_format=artifact.format, output_path=str(output),
        converter=result["converter"], opset=result["opset"], file_size=file_size,
        seconds=round(time.perf_counter() - started, 3),
        parity=ParityReport.model_validate(result["parity"]),
        latency_before=result.get("latency_before"), latency_after=result.get("latency_after"),
    )
    return Conversion(artifact=moved(checked, output), report=report)


def _convert_in_a_child(artifact: ModelArtifact, output: Path, opset: int,
                        reference: str | Path | None, tolerance: Tolerance, loader: str,
                        trusted: list[str], timeout: float, progress: Progress) -> dict[str, Any]:
    return run_isolated("convert", {
        "path": str(artifact.model_file),
        "loader": loader,
        "trusted": trusted,
        "output": str(output),
        "opset": opset,
        "reference": str(reference) if reference else None,
        "tolerance": tolerance.model_dump(),
        "features": [f.model_dump() for f in artifact.schema.features],
        "inputs": [t.model_dump() for t in artifact.schema.inputs],
        "class_names": artifact.schema.class_names,
        "task": artifact.schema.task,
        "source": f"{artifact.format}:{artifact.schema.metadata.sha256}",
    }, timeout=timeout, progress=progress, what="Converting the model")


# --- child side -----------------------------------------------------------------------------------

def convert_in_child(request: dict[str, Any]) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    path = Path(request["path"])
    estimator = sklearn_format.load_estimator(path, request["loader"], request["trusted"])
    features = [FeatureSpec.model_validate(f) for f in request["features"]]
    inputs = [TensorSpec.model_validate(t) for t in request["inputs"]]
    model, converter = _to_onnx(estimator, inputs, request["opset"])
    model = _at_opset(model, request["opset"])

    if request["reference"]:
        frame = datasets.read_table(request["reference"], features)
        described = f"{Path(request['reference']).name}, {len(frame)} rows"
    else:
        frame = datasets.sample_frame(features, GOLDEN_ROWS)
        described = f"{GOLDEN_ROWS} rows sampled from the schema"
    feeds = datasets.onnx_feeds(inputs, features, frame)
    original, roles = _original_outputs(estimator, frame, feeds, features, request["task"])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    new = dict(zip(names, session.run(None, feeds)))
    report = parity.compare(original, new, roles, Tolerance(**request["tolerance"]), described)
    before, after = _latencies(estimator, onnx_session(model.SerializeToString()), frame,
                               inputs, features, request["task"])

    props = {
        "slipway.features": json.dumps([f.model_dump() for f in features]),
        SOURCE_PROPERTY: request["source"],
        PARITY_PROPERTY: json.dumps({"passed": report.passed, "summary": report.summary()}),
    }
    if request.get("class_names"):
        props["slipway.class_names"] = json.dumps(request["class_names"])
    onnx.helper.set_model_props(model, props)
    output = Path(request["output"])
    try:
        onnx.save(model, output)
    except OSError as exc:  # a full disk is the disk's fault, not the model's
        raise write_error(exc, output) from exc
    return {"converter": converter, "opset": _default_opset(model), "parity": report.model_dump(),
            "latency_before": before.model_dump(), "latency_after": after.model_dump()}


def _latencies(estimator: Any, session: Any, frame: Any, inputs: list[TensorSpec],
               features: list[FeatureSpec], task: str) -> tuple[Latency, Latency]:
    """One row and a batch through the original model and through its ONNX conversion, both on
    one thread, as the optimizations are timed: what converting gains or costs."""
    batch_frame = frame.sample(BATCH_ROWS, replace=len(frame) < BATCH_ROWS, random_state=0)
    batch = datasets.onnx_feeds(inputs, features, batch_frame)
    single = {name: value[:1] for name, value in batch.items()}
    x_single = _as_model_sees(estimator, batch_frame.iloc[:1], single, features)
    x_batch = _as_model_sees(estimator, batch_frame, batch, features)
    before = timed(lambda: _predict(estimator, x_single, task),
                   lambda: _predict(estimator, x_batch, task), BATCH_ROWS)
    after = timed(lambda: session.run(None, single), lambda: session.run(None, batch), BATCH_ROWS)
    return before, after


def _default_opset(model: Any) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _at_opset(model: Any, opset: int) -> Any:
    """The model stamped with the ai.onnx opset that was asked for.

    Converters treat the target as a ceiling and write the lowest opset their operators need
    (skl2onnx often writes 11 when asked for 15, onnxmltools stops at 15, an XGBoost graph of
    ONNX-ML operators only declares no ai.onnx opset at all). onnx's version converter raises it,
    so the file says what the report says; if it cannot, the lower opset is kept and reported.
    """
    import onnx
    from onnx import version_converter
    from onnx.onnx_cpp2py_export.version_converter import ConvertError

    current = _default_opset(model)
    if current == opset:
        return model
    if current is None:
        model.opset_import.append(onnx.helper.make_opsetid("", opset))
    elif current < opset:
        try:
            model = version_converter.convert_version(model, opset)
        except (ConvertError, RuntimeError):  # no adapter for some operator: keep the model
            return model
    model.ir_version = max(model.ir_version,
                           onnx.helper.find_min_ir_version_for(list(model.opset_import), True))
    return model


def _original_outputs(estimator: Any, frame: Any, feeds: dict[str, np.ndarray],
                      features: list[FeatureSpec], task: str
                      ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """What the original model answers, given exactly the values the ONNX model sees (float32)."""
    return _predict(estimator, _as_model_sees(estimator, frame, feeds, features), task)


def _predict(estimator: Any, x: Any, task: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The original model's outputs for `x`, as it sees its input, shaped like the ONNX ones."""
    if _is_native_booster(estimator):
        return _booster_outputs(estimator, x, task)
    from sklearn.base import is_classifier

    if is_classifier(estimator):
        outputs = {"label": np.asarray(estimator.predict(x))}
        roles = {"label": "label"}
        if sklearn_format._has(estimator, "predict_proba"):
            outputs["probabilities"] = np.asarray(estimator.predict_proba(x))
            roles["probabilities"] = "probabilities"
        return outputs, roles
    return {"variable": np.asarray(estimator.predict(x))}, {"variable": "value"}


def _as_model_sees(estimator: Any, frame: Any, feeds: dict[str, np.ndarray],
                   features: list[FeatureSpec]) -> Any:
    import pandas as pd

    if len(feeds) == 1 and "input" in feeds:
        matrix = feeds["input"].astype(np.float64)
        if hasattr(estimator, "feature_names_in_"):
            return pd.DataFrame(matrix, columns=[f.name for f in features])
        return matrix
    columns = {}
    for feature in features:
        values = feeds[feature.tensor or feature.name][:, 0]
        numeric = feature.kind == "numeric" and feature.dtype != "string"
        columns[feature.name] = values.astype(np.float64) if numeric else values
    return pd.DataFrame(columns)


def _is_native_booster(estimator: Any) -> bool:
    return type(estimator).__name__ == "Booster"


def _booster_outputs(booster: Any, x: Any, task: str
                     ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A native booster predicts probabilities (classifiers) or values; shape them like ONNX."""
    matrix = np.asarray(x, dtype=np.float32)
    if type(booster).__module__.startswith("xgboost"):
        import xgboost

        raw = np.asarray(booster.predict(xgboost.DMatrix(matrix, feature_names=booster.feature_names)))
    else:
        raw = np.asarray(booster.predict(matrix))
    if task != "classification":
        return {"variable": raw}, {"variable": "value"}
    probabilities = np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw
    return ({"label": probabilities.argmax(axis=1), "probabilities": probabilities},
            {"label": "label", "probabilities": "probabilities"})


def _leaves(estimator: Any, path: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Every estimator inside pipelines, column transformers and unions, with its step path."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(estimator, Pipeline):
        return [leaf for name, step in estimator.steps for leaf in _leaves(step, path + (name,))]
    if isinstance(estimator, ColumnTransformer):
        branches = estimator.transformers_
        return [leaf for name, step, _ in branches if not isinstance(step, str)
                for leaf in _leaves(step, path + (name,))]
    if isinstance(estimator, FeatureUnion):
        return [leaf for name, step in estimator.transformer_list
                for leaf in _leaves(step, path + (name,))]
    return [(" › ".join(path) or type(estimator).__name__, estimator)]


def _check_convertible(estimator: Any) -> None:
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from sklearn.preprocessing import FunctionTransformer

    for step, leaf in _leaves(estimator):
        kind = type(leaf).__name__
        if isinstance(leaf, FunctionTransformer) and leaf.func is not None:
            func = getattr(leaf.func, "__qualname__", None)
            func = f"{leaf.func.__module__}.{func}" if func else repr(leaf.func)
            raise ConversionError(
                f"The step '{step}' is a FunctionTransformer calling {func}: arbitrary Python "
                "code has no ONNX equivalent.",
                "Replace it with built-in scikit-learn transformers (or register an ONNX converter "
                "for it with skl2onnx.update_registered_converter), retrain, and convert again.",
            )
        if type(leaf) not in sklearn_operator_name_map:
            raise ConversionError(
                f"The step '{step}' ({type(leaf).__module__}.{kind}) has no ONNX converter.",
                "Use a scikit-learn, XGBoost or LightGBM estimator there, or register a converter "
                "for this class with skl2onnx.update_registered_converter.",
            )


@contextmanager
def _xgboost_default_feature_names(estimator: Any) -> Iterator[None]:
    """onnxmltools reads XGBoost trees from their JSON dump, where each split names its feature,
    and understands only XGBoost's default names f0, f1, ...: a model trained on a DataFrame
    ("petal length (cm)") fails with "feature names should follow pattern 'f%d'". The names are
    hidden while converting (the ONNX input is a matrix in the same column order) and restored."""
    boosters = []
    for _, leaf in ([("", estimator)] if _is_native_booster(estimator) else _leaves(estimator)):
        module = type(leaf).__module__
        if module.startswith("xgboost"):
            boosters.append(leaf if _is_native_booster(leaf) else leaf.get_booster())
    saved = [(booster, booster.feature_names) for booster in boosters]
    for booster, _ in saved:
        booster.feature_names = None
    try:
        yield
    finally:
        for booster, names in saved:
            booster.feature_names = names


def _register_booster_converters() -> None:
    """Let skl2onnx convert XGBoost and LightGBM scikit-learn objects, also inside pipelines."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    boosters = (("xgboost", "XGBClassifier", "XGBRegressor", "XGBoost",
                 "onnxmltools.convert.xgboost.operator_converters.XGBoost", "convert_xgboost"),
                ("lightgbm", "LGBMClassifier", "LGBMRegressor", "LightGbm",
                 "onnxmltools.convert.lightgbm.operator_converters.LightGbm", "convert_lightgbm"))
    for library, classifier, regressor, alias, converter_module, converter_name in boosters:
        try:
            module = importlib.import_module(library)
            converter = getattr(importlib.import_module(converter_module), converter_name)
        except ImportError:
            continue
        update_registered_converter(getattr(module, classifier), f"{alias}{classifier}",
                                    calculate_linear_classifier_output_shapes, converter,
                                    options=classifier_options)
        update_registered_converter(getattr(module, regressor), f"{alias}{regressor}",
                                    calculate_linear_regressor_output_shapes, converter)


def _initial_types(inputs: list[TensorSpec]) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    types = {"string": StringTensorType, "int64": Int64TensorType, "int32": Int64TensorType,
             "float64": DoubleTensorType, "bool": BooleanTensorType}
    return [(t.name, types.get(t.dtype, FloatTensorType)([None, t.shape[-1] if isinstance(
        t.shape[-1], int) else None])) for t in inputs]


def _to_onnx(estimator: Any, inputs: list[TensorSpec], opset: int) -> tuple[Any, str]:
    if _is_native_booster(estimator):
        return _native_booster_to_onnx(estimator, inputs, opset)
    import skl2onnx

    _register_booster_converters()
    _check_convertible(estimator)
    final = sklearn_format._final_estimator(estimator)
    options = {id(final): {"zipmap": False}} if hasattr(final, "classes_") else None
    try:
        with _xgboost_default_feature_names(estimator):
            model = skl2onnx.convert_sklearn(estimator, initial_types=_initial_types(inputs),
                                             target_opset={"": opset, "ai.onnx.ml": 3},
                                             options=options)
    except Exception as exc:  # skl2onnx raises bare RuntimeError/TypeError with its reasons
        raise ConversionError(f"skl2onnx could not convert the model: {first_line(exc)}",
                              "The details are in the log; a step may use an option the "
                              "converter does not support.", detail=repr(exc)) from exc
    return model, f"skl2onnx {skl2onnx.__version__}"


def _native_booster_to_onnx(booster: Any, inputs: list[TensorSpec], opset: int) -> tuple[Any, str]:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType
    from onnxmltools.convert.common.onnx_ex import get_maximum_opset_supported

    initial = [(inputs[0].name, FloatTensorType([None, inputs[0].shape[-1]]))]
    # onnxmltools converts up to its own highest opset (15); _at_opset raises it afterwards.
    target = min(opset, get_maximum_opset_supported())
    try:
        if type(booster).__module__.startswith("xgboost"):
            with _xgboost_default_feature_names(booster):
                model = onnxmltools.convert_xgboost(booster, initial_types=initial,
                                                    target_opset=target)
        else:
            model = onnxmltools.convert_lightgbm(booster, initial_types=initial,
                                                 target_opset=target, zipmap=False)
    except Exception as exc:
        raise ConversionError(f"onnxmltools could not convert the booster: {exc}",
                              "Save the model through the library's scikit-learn API and retry.",
                              detail=repr(exc)) from exc
    # onnxmltools declares a LightGBM booster's label as shape [1]; it has one value per row.
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims) == 1 and dims[0].dim_value == 1:
            dims[0].Clear()
    return model, f"onnxmltools {onnxmltools.__version__}"
