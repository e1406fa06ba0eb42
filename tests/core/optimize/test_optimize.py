"""Optimizing ONNX models: int8 (dynamic and static), float16 and graph optimization on a real MLP
converted by the studio, on a random forest (where quantization cannot help), and on a real CNN
from the onnx wheel. Every result is a report with sizes, latencies and parity."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from studio.core.errors import Cancelled
from studio.core.model.artifact import load
from studio.core.optimize.optimize import (
    BATCH_ROWS,
    DEFAULT_TOLERANCES,
    Optimization,
    OptimizationError,
    optimize,
)
from studio.core.tasks import Progress

MLP_OPTIMIZATIONS = ["int8", "int8-static", "fp16", "graph"]


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory, wine):
    """The wine rows the MLP learned from, with the target column a person would leave in."""
    X, y = wine
    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    X.assign(target=y).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def mlp_onnx(conversions, wide_mlp):
    """MLPClassifier(256, 256) on wine, converted by the studio (parity passed)."""
    conversion = conversions.get(wide_mlp.path, trust=True)
    assert conversion.passed, conversion.report.parity.summary()
    return conversion.artifact


@pytest.fixture(scope="module")
def forest_onnx(conversions, sklearn_models):
    conversion = conversions.get(sklearn_models["forest_wine"].path, trust=True)
    assert conversion.passed, conversion.report.parity.summary()
    return conversion.artifact


@pytest.fixture(scope="module", autouse=True)
def _start_converting(conversions, wide_mlp, sklearn_models):
    conversions.start(wide_mlp.path, trust=True)
    conversions.start(sklearn_models["forest_wine"].path, trust=True)


@pytest.fixture(scope="module")
def mlp_optimized(mlp_onnx, wine_csv, tmp_path_factory):
    """Each optimization of the MLP, once: static int8 is calibrated on the wine rows, and int8
    checks parity on them (see test_int8_shrinks_the_mlp_and_keeps_parity)."""
    folder = tmp_path_factory.mktemp("optimized")
    return {kind: optimize(mlp_onnx, kind, folder / f"mlp-{kind}.onnx",
                           reference=wine_csv if kind.startswith("int8") else None)
            for kind in MLP_OPTIMIZATIONS}


def operators(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_int8_shrinks_the_mlp_and_keeps_parity(mlp_onnx, mlp_optimized):
    # Parity is checked on the rows the model learned from: rows sampled from the schema draw
    # each feature independently, far from the data, where an MLP's probabilities swing on a
    # small change of its activations.
    result = mlp_optimized["int8"]
    report = result.report
    assert report.applicable and report.output_path
    assert report.size_before == mlp_onnx.model_file.stat().st_size
    assert report.size_after == result.artifact.model_file.stat().st_size
    print(f"int8 size ratio on the MLP: {report.size_ratio:.3f}")
    assert report.size_ratio <= 0.35
    assert report.parity.tolerance == DEFAULT_TOLERANCES[Optimization.INT8]
    assert report.parity.passed, report.parity.summary()
    assert report.parity.rows == 178 and "wine.csv" in report.parity.inputs
    assert report.parity.label_agreement >= DEFAULT_TOLERANCES[Optimization.INT8].min_label_agreement
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= operators(report.output_path)


@pytest.mark.parametrize("kind", MLP_OPTIMIZATIONS)
def test_each_optimization_reports_size_latency_and_parity(kind, mlp_onnx, mlp_optimized):
    result = mlp_optimized[kind]
    report = result.report
    assert result.artifact is not None and report.applicable
    assert report.optimization == kind and report.source_path == str(mlp_onnx.model_file)
    assert report.output_path == str(result.artifact.model_file)
    assert report.size_before > 0 and report.size_after > 0
    for latency in (report.latency_before, report.latency_after):
        assert latency.single_row_ms > 0 and latency.batch_ms > 0
        assert latency.batch_rows == BATCH_ROWS and latency.threads == 1
    assert report.parity is not None and report.parity.passed, report.parity.summary()
    assert report.parity.tolerance == DEFAULT_TOLERANCES[Optimization(kind)]
    assert [o.name for o in report.parity.outputs] == ["label", "probabilities"]
    assert report.passed
    # The report survives JSON, as the CLI and the app pass it on.
    assert type(report).model_validate_json(report.model_dump_json()) == report


def test_static_int8_is_calibrated_on_the_reference(mlp_optimized):
    report = mlp_optimized["int8-static"].report
    assert "Calibrated on wine.csv, 178 rows" in report.note
    assert report.size_ratio < 0.5
    assert {"QuantizeLinear", "DequantizeLinear"} <= operators(report.output_path)


def test_fp16_stores_half_floats_and_keeps_float_inputs(mlp_optimized):
    path = mlp_optimized["fp16"].report.output_path
    model = onnx.load(path)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert mlp_optimized["fp16"].report.size_ratio < 0.7


@pytest.mark.parametrize("kind", MLP_OPTIMIZATIONS)
def test_metadata_survives_optimization(kind, mlp_onnx, mlp_optimized):
    optimized = mlp_optimized[kind].artifact
    assert optimized.schema.features == mlp_onnx.schema.features
    assert optimized.schema.class_names == mlp_onnx.schema.class_names == [0, 1, 2]
    assert optimized.schema.task == "classification"
    props = {p.key: p.value for p in onnx.load(str(optimized.model_file)).metadata_props}
    assert props["slipway.optimization"] == kind
    assert json.loads(props["slipway.class_names"]) == [0, 1, 2]
    assert "slipway.parity" in props and "slipway.source" in props


# --- where optimization cannot help --------------------------------------------------------------

@pytest.mark.parametrize("kind", ["int8", "int8-static"])
def test_a_forest_has_nothing_to_quantize(kind, forest_onnx, tmp_path):
    output = tmp_path / f"forest-{kind}.onnx"
    result = optimize(forest_onnx, kind, output)
    report = result.report
    assert result.artifact is None and not report.applicable and not report.passed
    assert report.note.startswith("Nothing to quantize")
    assert "TreeEnsembleClassifier" in report.note
    assert report.output_path is None and report.size_after is None and report.parity is None
    assert not output.exists()


def test_a_forest_gains_nothing_from_float16(forest_onnx, tmp_path):
    output = tmp_path / "forest-fp16.onnx"
    result = optimize(forest_onnx, Optimization.FP16, output)
    assert result.artifact is None and not result.report.applicable
    assert "float32 only" in result.report.note
    assert not output.exists()


def test_a_model_that_is_not_onnx_must_be_converted_first(loads, sklearn_models, tmp_path):
    artifact = loads.get(sklearn_models["mlp_wine"].path, trust=True)
    with pytest.raises(OptimizationError) as raised:
        optimize(artifact, "int8", tmp_path / "out.onnx")
    assert "not an ONNX model" in raised.value.message
    assert "Convert it to ONNX first" in raised.value.hint
    assert not (tmp_path / "out.onnx").exists()


# --- an image model ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def squeezenet(squeezenet_onnx):
    return load(squeezenet_onnx)


@pytest.mark.parametrize("kind", ["fp16", "int8"])
def test_squeezenet_optimizes_with_parity_on_tensors(kind, squeezenet, tmp_path):
    # The onnx wheel's light models make their weights at run time (ConstantOfShape) and list
    # every stored tensor as an input too (IR version 3).
    result = optimize(squeezenet, kind, tmp_path / f"squeezenet-{kind}.onnx")
    report = result.report
    assert result.artifact is not None and report.applicable, report.note
    assert report.latency_before.single_row_ms > 0 and report.latency_after.single_row_ms > 0
    assert report.latency_before.batch_rows == 1  # the model takes exactly one image
    parity = report.parity
    assert parity.rows == 1 and "random tensor" in parity.inputs
    [output] = parity.outputs
    assert (output.name, output.role) == ("softmaxout_1", "tensor")
    assert output.max_abs_diff is not None and output.max_abs_diff < 1e-2
    assert parity.passed, parity.summary()
    assert [t.shape for t in result.artifact.schema.inputs] == [[1, 3, 224, 224]]
    assert result.artifact.schema.inputs[0].dtype == "float32"
    ops = operators(report.output_path)
    if kind == "int8":
        assert "ConvInteger" in ops
        assert "constant fills" in report.note
    else:
        model = onnx.load(report.output_path)
        assert "Cast" in ops
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


# --- cancellation --------------------------------------------------------------------------------

def test_cancelled_before_it_starts(mlp_onnx, tmp_path):
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        optimize(mlp_onnx, "int8", tmp_path / "never.onnx", progress=progress)
    assert not (tmp_path / "never.onnx").exists()


@pytest.mark.parametrize("stage", ["Dynamic int8 quantization", "Timing the optimized model"])
def test_cancelled_while_optimizing_leaves_no_file(stage, mlp_onnx, tmp_path):
    seen: list[str] = []

    def on_update(fraction, message):
        seen.append(message)
        if message.startswith(stage):
            progress.cancel()

    progress = Progress(on_update)
    output = tmp_path / "cancelled.onnx"
    with pytest.raises(Cancelled):
        optimize(mlp_onnx, "int8", output, progress=progress)
    assert any(m.startswith(stage) for m in seen)
    assert not output.exists()


def test_progress_reaches_every_stage(mlp_onnx, tmp_path):
    messages: list[tuple[float | None, str]] = []
    optimize(mlp_onnx, "graph", tmp_path / "graph.onnx",
             progress=Progress(lambda f, m: messages.append((f, m))))
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] >= 0.9
    assert any("parity" in m for _, m in messages)


def test_the_optimized_model_answers_like_the_original_on_real_rows(mlp_optimized, wide_mlp):
    """Not the studio's own check: the int8 file run here on the wine rows, against scikit-learn."""
    import onnxruntime as ort

    session = ort.InferenceSession(mlp_optimized["int8"].report.output_path,
                                   providers=["CPUExecutionProvider"])
    label, probabilities = session.run(None, {"input": wide_mlp.X.to_numpy(np.float32)})
    assert np.mean(label == wide_mlp.estimator.predict(wide_mlp.X)) >= 0.97
    assert np.abs(probabilities - wide_mlp.estimator.predict_proba(wide_mlp.X)).max() < 0.1
