"""Make an ONNX model smaller or faster, and show what changed: size, latency, parity.

Each optimization reads an ONNX artifact and writes a new one with a report. Where an optimization
cannot help, the report says so plainly and no file is written: a tree ensemble has no MatMul to
quantize, and ONNX-ML operators (Scaler, TreeEnsemble...) only run in float32.

Default tolerances differ per optimization, because each one trades exactness on purpose:
graph rewrites must be exact to float32 rounding; float16 keeps about three significant digits;
int8 moves probabilities by up to a few hundredths, and may flip a label near a decision boundary.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import onnx
from pydantic import BaseModel

from studio.core.errors import Cancelled, ExitStatus, StudioError, first_line
from studio.core.files import check_not_a_source, pending_file, write_error
from studio.core.model import datasets
from studio.core.model.artifact import ModelArtifact, moved
from studio.core.model.artifact import load as load_model
from studio.core.model.session import onnx_session
from studio.core.optimize import parity
from studio.core.optimize.parity import ParityReport, Tolerance
from studio.core.optimize.timing import median_ms
from studio.core.tasks import Progress, quiet

BATCH_ROWS = 256
GOLDEN_ROWS = 200


class Optimization(StrEnum):
    GRAPH = "graph"
    INT8 = "int8"
    INT8_STATIC = "int8-static"
    FP16 = "fp16"


DESCRIPTIONS = {
    Optimization.GRAPH: "Graph optimization (ONNX Runtime, saved offline)",
    Optimization.INT8: "Dynamic int8 quantization of weights",
    Optimization.INT8_STATIC: "Static int8 quantization, calibrated on reference rows",
    Optimization.FP16: "float16 weights and arithmetic (float32 inputs and outputs kept)",
}

DEFAULT_TOLERANCES = {
    Optimization.GRAPH: Tolerance(atol=1e-5, rtol=1e-4, min_label_agreement=1.0),
    Optimization.FP16: Tolerance(atol=1e-2, rtol=1e-2, min_label_agreement=0.99),
    Optimization.INT8: Tolerance(atol=5e-2, rtol=5e-2, min_label_agreement=0.97),
    Optimization.INT8_STATIC: Tolerance(atol=1e-1, rtol=1e-1, min_label_agreement=0.95),
}

# Operators each quantizer rewrites when their weights are stored in the model.
DYNAMIC_QUANTIZABLE = {"MatMul", "Conv", "Gather", "Attention", "LSTM", "EmbedLayerNormalization"}
STATIC_QUANTIZABLE = {"MatMul", "Conv", "Gemm", "ConvTranspose", "Gather"}
# scikit-learn estimators skl2onnx turns into MatMul or Gemm with stored weights; the others become
# ONNX-ML operators (TreeEnsemble, LinearClassifier, SVM...) no quantizer touches.
MATMUL_ESTIMATORS = ("MLPClassifier", "MLPRegressor", "PCA", "TruncatedSVD", "KernelPCA",
                     "IncrementalPCA")


def may_help(artifact: ModelArtifact, optimization: Optimization) -> bool:
    """Whether `optimization` can change this model at all, judged from what its schema says
    (its operators, or the estimators it converts from) without running anything; a default
    that cannot help is not offered ticked."""
    if optimization not in (Optimization.INT8, Optimization.INT8_STATIC):
        return True
    quantizable = DYNAMIC_QUANTIZABLE if optimization == Optimization.INT8 else STATIC_QUANTIZABLE
    meta = artifact.schema.metadata
    if meta.onnx is not None:
        return bool(quantizable & set(meta.onnx.operators))
    return any(name.rsplit(".", 1)[-1] in MATMUL_ESTIMATORS for name in _estimator_types(meta))


def _estimator_types(meta) -> list[str]:
    types = [meta.estimator] if meta.estimator else []
    pending = list(meta.steps)
    while pending:
        step = pending.pop()
        types.append(step.type)
        pending.extend(step.steps)
    return types


class OptimizationError(StudioError):
    """The optimization failed (the model is not ONNX, or a quantizer rejected it)."""

    exit_status = ExitStatus.NOT_LOADABLE


class Latency(BaseModel):
    single_row_ms: float
    batch_ms: float
    batch_rows: int
    threads: int = 1


class OptimizationReport(BaseModel):
    optimization: Optimization
    source_path: str
    output_path: str | None
    applicable: bool
    note: str
    size_before: int
    size_after: int | None = None
    latency_before: Latency | None = None
    latency_after: Latency | None = None
    parity: ParityReport | None = None

    @property
    def passed(self) -> bool:
        return self.applicable and self.parity is not None and self.parity.passed

    @property
    def size_ratio(self) -> float | None:
        return self.size_after / self.size_before if self.size_after else None


@dataclass(frozen=True)
class Optimized:
    artifact: ModelArtifact | None
    """None when the optimization could not help and nothing was written."""
    report: OptimizationReport


@dataclass
class GoldenInputs:
    feeds: dict[str, np.ndarray]
    single: dict[str, np.ndarray]
    batch: dict[str, np.ndarray]
    described: str


def golden_inputs(artifact: ModelArtifact, reference: str | Path | None = None) -> GoldenInputs:
    """Rows for parity and calibration, plus a single row and a batch for timing."""
    schema = artifact.schema
    if schema.features:
        if reference:
            frame = datasets.read_table(reference, schema.features)
            described = f"{Path(reference).name}, {len(frame)} rows"
        else:
            frame = datasets.sample_frame(schema.features, GOLDEN_ROWS)
            described = f"{GOLDEN_ROWS} rows sampled from the schema"
        feeds = datasets.onnx_feeds(schema.inputs, schema.features, frame)
        batch_frame = frame.sample(BATCH_ROWS, replace=len(frame) < BATCH_ROWS, random_state=0)
        batch = datasets.onnx_feeds(schema.inputs, schema.features, batch_frame)
        single = {name: value[:1] for name, value in feeds.items()}
        return GoldenInputs(feeds, single, batch, described)
    dynamic_batch = all(not isinstance(t.shape[0], int) for t in schema.inputs if t.shape)
    rows = 16 if dynamic_batch else 1
    feeds = datasets.tensor_feeds(schema.inputs, rows=rows)
    single = datasets.tensor_feeds(schema.inputs, rows=1)
    described = f"{rows} random tensor{'s' if rows > 1 else ''} of the input shape"
    return GoldenInputs(feeds, single, feeds, described)


def _as_arrays(outputs: list, names: list[str]) -> dict[str, np.ndarray]:
    """Session outputs by name; a ZipMap's list of {class: probability} becomes a matrix."""
    arrays = {}
    for name, value in zip(names, outputs):
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = np.array([[row[k] for k in sorted(row)] for row in value])
        arrays[name] = np.asarray(value)
    return arrays


def run_model(session, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return _as_arrays(session.run(None, feeds), names)


def measure(session, inputs: GoldenInputs) -> Latency:
    rows = len(next(iter(inputs.batch.values())))
    return timed(lambda: session.run(None, inputs.single),
                 lambda: session.run(None, inputs.batch), rows)


def timed(single: Callable[[], object], batch: Callable[[], object], rows: int) -> Latency:
    """The median latency of one row and of a batch of `rows`, measured the same way for every
    model the reports compare."""
    return Latency(single_row_ms=round(median_ms(single), 4),
                   batch_ms=round(median_ms(batch, min_calls=10), 4), batch_rows=rows)


def _weight_ops(model: onnx.ModelProto, op_types: set[str]) -> list[str]:
    """Nodes of `op_types` that have a stored (initializer) weight: what a quantizer can shrink.
    A Gather's weight (an embedding table) is its first input; the others' come after the data."""
    stored = {t.name for t in model.graph.initializer}
    return [n.op_type for n in model.graph.node if n.op_type in op_types
            and any(i in stored for i in (n.input[:1] if n.op_type == "Gather" else n.input[1:]))]


def _prepared(model: onnx.ModelProto, optimization: Optimization) -> onnx.ModelProto | None:
    """A copy of the model the optimizers can work on, or None when it needs no change.

    IR version 3 models list every initializer as a graph input too, so onnxruntime sees weights
    as inputs: float16 keeps them float32 (it keeps inputs' types), and a graph-optimized copy
    asks for them when run. They stop being inputs (IR 4 allows it). Quantizers only rewrite
    stored weights, so weights a Constant or ConstantOfShape node makes from stored values at run
    time (the light models in the onnx wheel) are stored instead.
    """
    stored = {t.name: t for t in model.graph.initializer}
    as_inputs = model.ir_version < 4 and any(i.name in stored for i in model.graph.input)
    values: dict[str, np.ndarray] = {}
    if optimization in (Optimization.INT8, Optimization.INT8_STATIC):
        outputs = {o.name for o in model.graph.output}
        for node in model.graph.node:
            if node.op_type in ("Constant", "ConstantOfShape") and node.output[0] not in outputs:
                value = _constant_value(node, stored)
                if value is not None:
                    values[node.output[0]] = value
    if not as_inputs and not values:
        return None
    prepared = onnx.ModelProto()
    prepared.CopyFrom(model)
    graph = prepared.graph
    if as_inputs:
        inputs = [i for i in graph.input if i.name not in stored]
        del graph.input[:]
        graph.input.extend(inputs)
        prepared.ir_version = 4
    if values:
        shapes = {n.input[0] for n in graph.node
                  if n.op_type == "ConstantOfShape" and n.output[0] in values}
        nodes = [n for n in graph.node if n.output[0] not in values]
        del graph.node[:]
        graph.node.extend(nodes)
        used = _inputs_used(graph)
        tensors = [t for t in graph.initializer if t.name not in shapes or t.name in used]
        tensors += [onnx.numpy_helper.from_array(v, name) for name, v in values.items()]
        del graph.initializer[:]
        graph.initializer.extend(tensors)
    return prepared


def _constant_value(node: onnx.NodeProto, stored: dict[str, onnx.TensorProto]) -> np.ndarray | None:
    """The tensor a Constant node holds, or a ConstantOfShape node makes from a stored shape."""
    attributes = {a.name: a for a in node.attribute}
    if node.op_type == "Constant" and "value" in attributes:
        return onnx.numpy_helper.to_array(attributes["value"].t)
    if node.op_type == "ConstantOfShape" and node.input and node.input[0] in stored:
        shape = onnx.numpy_helper.to_array(stored[node.input[0]]).astype(np.int64)
        fill = (onnx.numpy_helper.to_array(attributes["value"].t) if "value" in attributes
                else np.zeros(1, dtype=np.float32))
        return np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype)
    return None


def _inputs_used(graph: onnx.GraphProto) -> set[str]:
    """Every name a node reads, in subgraphs (If, Loop, Scan bodies) too, or the graph returns."""
    used = {o.name for o in graph.output}
    for node in graph.node:
        used.update(node.input)
        for attribute in node.attribute:
            for subgraph in ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH
                             else attribute.graphs):
                used |= _inputs_used(subgraph)
    return used


def _not_applicable_note(model: onnx.ModelProto, optimization: Optimization) -> str | None:
    ops = sorted({n.op_type for n in model.graph.node})
    if optimization == Optimization.INT8 and not _weight_ops(model, DYNAMIC_QUANTIZABLE):
        return ("Nothing to quantize: dynamic int8 shrinks the weights of MatMul, Conv and Gather "
                f"nodes, and this model has none (its operators: {', '.join(ops)}).")
    if optimization == Optimization.INT8_STATIC and not _weight_ops(model, STATIC_QUANTIZABLE):
        return ("Nothing to quantize: static int8 rewrites MatMul, Gemm and Conv nodes, and this "
                f"model has none (its operators: {', '.join(ops)}).")
    return None


def _quantized_nodes(model: onnx.ModelProto) -> int:
    markers = ("Integer", "QLinear", "QuantizeLinear", "DequantizeLinear", "DynamicQuantize")
    return sum(1 for n in model.graph.node if any(m in n.op_type for m in markers))


class _Calibration:
    """Feeds calibration rows to onnxruntime's static quantizer, one row at a time."""

    def __init__(self, feeds: dict[str, np.ndarray]):
        rows = len(next(iter(feeds.values())))
        self._rows = iter([{k: v[i:i + 1] for k, v in feeds.items()} for i in range(rows)])

    def get_next(self):
        return next(self._rows, None)


def _apply(optimization: Optimization, source: Path, output: Path, inputs: GoldenInputs) -> str:
    """Write the optimized model; returns a note for the report (empty when nothing to add)."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    if optimization == Optimization.GRAPH:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(output)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        return "Contains ONNX Runtime's fused operators: serve it with ONNX Runtime."
    if optimization == Optimization.INT8:
        # 7-bit weights: on x86 CPUs without VNNI (AVX2 only) onnxruntime's uint8 x int8 kernels
        # saturate with full 8-bit weights, which moves an MLP's probabilities by tenths.
        with _without_preprocessing_advice():
            quantize_dynamic(source, output, weight_type=QuantType.QInt8, reduce_range=True)
        return ""
    if optimization == Optimization.INT8_STATIC:
        with tempfile.TemporaryDirectory() as scratch, _without_preprocessing_advice():
            quantize_static(source, output, _Calibration(inputs.feeds),
                            quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8,
                            calibration_cache_path=Path(scratch) / "calibration.cache")
        return f"Calibrated on {inputs.described}."
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = convert_float_to_float16(onnx.load(source), keep_io_types=True)
    # The converter appends its input casts at the end of the graph; ONNX requires
    # topological order, and onnx.checker rejects the model without this.
    OnnxModel(model).topological_sort()
    halves = sum(1 for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16) \
        + sum(1 for n in model.graph.node for a in n.attribute
              if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == onnx.TensorProto.FLOAT16)
    if not halves:
        raise _NothingToDo("Nothing to convert: all of this model's float operators are ONNX-ML "
                           "operators that run in float32 only, so float16 cannot shrink it.")
    onnx.save(model, output)
    return ""


@contextmanager
def _without_preprocessing_advice():
    """onnxruntime's quantizers log advice to the root logger on every call ("consider
    pre-processing"); its pre-processing breaks ONNX-ML graphs, so the advice is kept out of the
    user's terminal and log. So is the warning that a model below opset 11 is raised to 11: the
    parity check that follows is the verification it asks for."""
    def advice(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "pre-processing" not in message and "does not support quantization" not in message

    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


class _NothingToDo(Exception):
    pass


def _carry_metadata(source: onnx.ModelProto, optimized: onnx.ModelProto, output: Path,
                    optimization: Optimization) -> None:
    """Keep the source's metadata (feature names, class names) and record what was done."""
    props = {p.key: p.value for p in source.metadata_props}
    props.update({p.key: p.value for p in optimized.metadata_props})
    props["slipway.optimization"] = optimization.value
    onnx.helper.set_model_props(optimized, props)
    onnx.save(optimized, output)


def optimize(artifact: ModelArtifact, optimization: Optimization | str, output: str | Path, *,
             reference: str | Path | None = None, tolerance: Tolerance | None = None,
             progress: Progress | None = None) -> Optimized:
    progress = progress or quiet()
    optimization = Optimization(optimization)
    if artifact.schema.metadata.onnx is None:
        raise OptimizationError(f"'{artifact.path.name}' is not an ONNX model yet.",
                                "Convert it to ONNX first (slipway convert), then optimize that.")
    source, output = artifact.model_file, Path(output)
    check_not_a_source(output, source)
    tolerance = tolerance or DEFAULT_TOLERANCES[optimization]
    report = OptimizationReport(optimization=optimization, source_path=str(source), output_path=None,
                                applicable=True, note="", size_before=source.stat().st_size)
    progress.update(0.05, "Preparing golden inputs")
    inputs = golden_inputs(artifact, reference)
    model = onnx.load(source)
    prepared = _prepared(model, optimization)
    note = _not_applicable_note(prepared or model, optimization)
    if note:
        return Optimized(None, report.model_copy(update={"applicable": False, "note": note}))

    progress.update(0.15, f"{DESCRIPTIONS[optimization]}")
    with pending_file(output) as pending:  # the destination changes only once all is checked
        written = pending.path
        try:
            with tempfile.TemporaryDirectory() as scratch:
                work = source
                if prepared is not None:
                    work = Path(scratch) / source.name
                    onnx.save(prepared, work)
                report.note = _apply(optimization, work, written, inputs)
        except _NothingToDo as nothing:
            return Optimized(None, report.model_copy(update={"applicable": False,
                                                             "note": str(nothing)}))
        except OSError as exc:  # a full disk is the disk's fault, not the quantizer's
            raise write_error(exc, output) from exc
        except Exception as exc:  # onnxruntime's quantizers raise bare exceptions with reasons
            raise OptimizationError(
                f"{DESCRIPTIONS[optimization]} failed: {first_line(exc)}",
                "The model may use operators the quantizer does not support; the details are in "
                "the log.", detail=repr(exc)) from exc
        result = onnx.load(written)
        if optimization in (Optimization.INT8, Optimization.INT8_STATIC) \
                and not _quantized_nodes(result):
            return Optimized(None, report.model_copy(update={
                "applicable": False,
                "note": "The quantizer found nothing it could rewrite in this model; no file was "
                        "written."}))
        try:
            _carry_metadata(model, result, written, optimization)
            progress.check()
            _measure_and_compare(artifact, optimization, source, written, inputs, tolerance,
                                 report, progress)
            folded = prepared is not None and len(prepared.graph.node) < len(model.graph.node)
            _explain_size(report, optimization, folded)
            progress.update(0.95, "Validating the optimized model")
            optimized = load_model(written)
        except (Cancelled, StudioError):
            raise  # no unchecked model is left behind: the pending file is discarded
        except OSError as exc:
            raise write_error(exc, output) from exc
        except Exception as exc:  # onnxruntime cannot load or run what the optimizer wrote
            raise OptimizationError(
                f"The {optimization.value} model was written but does not run: "
                f"{first_line(exc)}",
                "Try another optimization; the details are in the log.", detail=repr(exc)) from exc
        pending.commit()
    report.output_path = str(output)
    return Optimized(moved(optimized, output), report)


def _measure_and_compare(artifact: ModelArtifact, optimization: Optimization, source: Path,
                         written: Path, inputs: GoldenInputs, tolerance: Tolerance,
                         report: OptimizationReport, progress: Progress) -> None:
    """Latency before and after, and parity on the golden inputs, into `report`."""
    progress.update(0.4, "Timing the original model")
    before = onnx_session(source)
    report.latency_before = measure(before, inputs)
    progress.update(0.6, "Timing the optimized model")
    after = onnx_session(written)
    report.latency_after = measure(after, inputs)
    progress.update(0.8, "Checking parity with the original")
    roles = {o.name: o.role for o in artifact.schema.outputs}
    report.parity = parity.compare(run_model(before, inputs.feeds), run_model(after, inputs.feeds),
                                   roles, tolerance, inputs.described)
    report.size_after = written.stat().st_size


def _explain_size(report: OptimizationReport, optimization: Optimization, folded: bool) -> None:
    """Say why the result is not smaller when it is not."""
    if folded:
        report.note = " ".join(filter(None, [report.note, (
            "The original builds its weights at run time from constant fills (Constant, "
            "ConstantOfShape), a few bytes on disk; quantizing stores every weight.")]))
    if optimization != Optimization.GRAPH and report.size_after >= report.size_before \
            and not folded:
        report.note = " ".join(filter(None, [report.note, (
            "The result is not smaller than the original: this model's weights are too few "
            f"for {optimization.value} to pay for its extra nodes.")]))
