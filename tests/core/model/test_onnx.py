"""ONNX models: real CNNs from the onnx wheel and a skl2onnx classifier, inspected without running
them, and their sample requests run through onnxruntime."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from studio.core.errors import ModelLoadError
from studio.core.model.artifact import load
from studio.core.model.schema import ModelSchema

LIGHT_MODELS = sorted(p.name for p in
                      (Path(onnx.__file__).parent / "backend/test/data/light").glob("*.onnx"))
NUMPY_TYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32,
               "BOOL": np.bool_, "BYTES": object}
# onnx.helper writes the newest IR version by default; onnxruntime may not read it yet.
ORT_IR_VERSION = 10


def count_operators(graph: onnx.GraphProto) -> Counter:
    """Every node's op_type, subgraphs (If/Loop/Scan bodies) included: counted independently of
    the product's own walk."""
    counts: Counter = Counter()
    for node in graph.node:
        counts[node.op_type] += 1
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                counts += count_operators(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    counts += count_operators(subgraph)
    return counts


def dims(value: onnx.ValueInfoProto) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value.type.tensor_type.shape.dim]


def v2_feeds(body: dict) -> dict[str, np.ndarray]:
    """The v2 request body as onnxruntime feeds, the way a v2 server decodes it."""
    return {
        item["name"]: np.array(item["data"], dtype=NUMPY_TYPES[item["datatype"]])
        .reshape(item["shape"])
        for item in body["inputs"]
    }


def run_v2(path: Path, body: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, v2_feeds(body))


# --- the CNNs from the onnx wheel ----------------------------------------------------------------

@pytest.fixture(scope="module", params=LIGHT_MODELS)
def light_model(request, light_onnx):
    path = light_onnx / request.param
    return path, onnx.load(str(path)), load(path)


def test_light_model_inputs_are_the_graph_inputs_that_are_not_weights(light_model):
    _, graph_model, artifact = light_model
    weights = {t.name for t in graph_model.graph.initializer}
    expected = [(i.name, dims(i)) for i in graph_model.graph.input if i.name not in weights]
    schema = artifact.schema
    assert [(t.name, t.shape) for t in schema.inputs] == expected
    assert all(t.dtype == "float32" for t in schema.inputs)
    assert len(schema.inputs) == 1 and schema.inputs[0].shape == [1, 3, 224, 224]


def test_light_model_outputs_operators_opset_and_facts(light_model):
    path, graph_model, artifact = light_model
    schema = artifact.schema
    assert artifact.format == "onnx" and schema.metadata.format == "onnx"
    assert schema.name == path.stem
    assert schema.task == "other"
    assert schema.class_names is None
    assert [(o.name, o.shape, o.dtype, o.role) for o in schema.outputs] == [
        (o.name, dims(o), "float32", "tensor") for o in graph_model.graph.output
    ]
    info = schema.metadata.onnx
    counts = count_operators(graph_model.graph)
    assert info.operators == dict(counts)
    assert list(info.operators.values()) == sorted(info.operators.values(), reverse=True)
    assert info.node_count == len(graph_model.graph.node)
    assert info.opsets == {(o.domain or "ai.onnx"): o.version for o in graph_model.opset_import}
    assert info.ir_version == graph_model.ir_version
    assert info.parameter_count == sum(int(np.prod(t.dims)) for t in graph_model.graph.initializer)
    assert schema.metadata.file_size == path.stat().st_size
    assert schema.metadata.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_light_model_has_no_tabular_features_only_a_v2_sample(light_model):
    _, _, artifact = light_model
    samples = artifact.schema.samples
    assert artifact.schema.features == []
    assert samples.rest is None and samples.rest_batch is None
    [tensor] = samples.v2["inputs"]
    assert tensor["shape"] == [1, 3, 224, 224] and tensor["datatype"] == "FP32"
    assert len(tensor["data"]) == 3 * 224 * 224


def test_light_model_schema_round_trips_through_json(light_model):
    schema = light_model[2].schema
    assert ModelSchema.from_json(schema.to_json()) == schema


@pytest.mark.parametrize("name", ["light_squeezenet", "light_resnet50"])
def test_v2_sample_runs_through_onnxruntime(light_onnx, name):
    path = light_onnx / f"{name}.onnx"
    schema = load(path).schema
    outputs = run_v2(path, schema.samples.v2)
    # The wheel stores the reference output next to the model: its shape is the truth.
    reference = onnx.TensorProto()
    reference.ParseFromString((light_onnx / f"{name}_output_0.pb").read_bytes())
    assert outputs[0].shape == tuple(reference.dims)
    assert list(outputs[0].shape) == schema.outputs[0].shape
    assert np.isfinite(outputs[0]).all()


def test_operators_inside_subgraphs_are_counted(tmp_path):
    """An If node's branches hold nodes of their own; the histogram includes them."""
    then_out = helper.make_tensor_value_info("then_out", TensorProto.FLOAT, [2])
    then_graph = helper.make_graph([helper.make_node("Relu", ["x"], ["then_out"])], "then", [],
                                   [then_out])
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["neg"]), helper.make_node("Relu", ["neg"], ["else_out"])],
        "else", [], [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, [2])])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
         helper.make_node("Greater", ["total", "zero"], ["positive"]),
         helper.make_node("If", ["positive"], ["y"], then_branch=then_graph,
                          else_branch=else_graph)],
        "branchy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=ORT_IR_VERSION)
    path = tmp_path / "branchy.onnx"
    onnx.save_model(model, path)
    info = load(path).schema.metadata.onnx
    assert info.operators == dict(count_operators(model.graph))
    assert info.operators == {"Relu": 2, "ReduceSum": 1, "Greater": 1, "If": 1, "Neg": 1}
    assert info.node_count == 6


# --- a classifier converted by skl2onnx ----------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_classifier(onnx_iris_classifier):
    return onnx_iris_classifier, load(onnx_iris_classifier.path)


def test_skl2onnx_classifier_is_a_classification_with_class_names_from_the_graph(onnx_classifier):
    model, artifact = onnx_classifier
    schema = artifact.schema
    assert schema.task == "classification"
    assert schema.class_names == ["setosa", "versicolor", "virginica"]
    assert schema.class_names == list(model.estimator.classes_)
    assert [(o.name, o.role, o.dtype) for o in schema.outputs] == [
        ("label", "label", "string"), ("probabilities", "probabilities", "float32")]
    assert schema.outputs[1].shape[-1] == 3
    assert schema.metadata.onnx.opsets.get("ai.onnx.ml") is not None
    [tensor] = schema.inputs
    assert tensor.dtype == "float32" and tensor.shape[-1] == 4
    assert [f.name for f in schema.features] == ["x0", "x1", "x2", "x3"]
    assert all(f.kind == "numeric" and f.tensor == tensor.name for f in schema.features)


def test_skl2onnx_classifier_v2_sample_predicts_like_the_sklearn_model(onnx_classifier):
    model, artifact = onnx_classifier
    body = artifact.schema.samples.v2
    label, probabilities = run_v2(model.path, body)
    assert probabilities.shape == (1, 3)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    row = np.array(body["inputs"][0]["data"], dtype=np.float32).reshape(1, -1)
    import pandas as pd

    expected = model.estimator.predict(pd.DataFrame(row, columns=model.X.columns))
    assert list(label) == list(expected)


def test_skl2onnx_classifier_schema_round_trips_through_json(onnx_classifier):
    schema = onnx_classifier[1].schema
    assert ModelSchema.from_json(schema.to_json()) == schema


# --- external data -------------------------------------------------------------------------------

def _matmul_model() -> onnx.ModelProto:
    weights = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "weights")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "weights"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], [weights])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=ORT_IR_VERSION)


@pytest.fixture
def external_model(tmp_path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "matmul.onnx"
    onnx.save_model(_matmul_model(), path, save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    assert (folder / "weights.bin").is_file()
    return path


def _point_external_data_at(path: Path, location: str) -> None:
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save_model(model, path)


def test_external_data_inside_the_model_folder_loads(external_model):
    schema = load(external_model).schema
    assert [(t.name, t.shape) for t in schema.inputs] == [("x", ["batch", 4])]
    assert schema.metadata.onnx.parameter_count == 12
    weights = external_model.parent / "weights.bin"
    assert schema.metadata.file_size == external_model.stat().st_size + weights.stat().st_size
    [y] = run_v2(external_model, schema.samples.v2)
    assert y.shape == (1, 3)


def test_external_data_outside_the_model_folder_is_refused(external_model):
    secret = external_model.parent.parent / "secret.bin"
    secret.write_bytes((external_model.parent / "weights.bin").read_bytes())
    _point_external_data_at(external_model, "../secret.bin")
    with pytest.raises(ModelLoadError) as caught:
        load(external_model)
    assert caught.value.message == ("Tensor 'weights' reads its data from '../secret.bin', "
                                    "outside the model's folder.")
    assert "next to the .onnx file" in caught.value.hint


def test_external_data_at_an_absolute_path_is_refused(external_model):
    _point_external_data_at(external_model, "/etc/passwd")
    with pytest.raises(ModelLoadError, match="reads its data from '/etc/passwd', outside the "
                                             "model's folder"):
        load(external_model)


def test_missing_external_data_file_is_named(external_model):
    (external_model.parent / "weights.bin").unlink()
    with pytest.raises(ModelLoadError) as caught:
        load(external_model)
    assert caught.value.message == ("Tensor 'weights' stores its data in 'weights.bin', "
                                    "which does not exist.")


# --- memory --------------------------------------------------------------------------------------

def test_a_model_too_large_for_the_memory_limit_is_refused_with_both_sizes(resnet50_onnx):
    size = resnet50_onnx.stat().st_size
    with pytest.raises(ModelLoadError) as caught:
        load(resnet50_onnx, memory_limit=1024)
    message = caught.value.message
    assert message.startswith("This model needs about ")
    assert "of memory to load, and only 1.0 KiB is available." in message
    needed = f"{2 * size / 1024:.1f} KiB"
    assert f"needs about {needed}" in message
    assert "0 MiB" not in message
    assert "Close other programs" in caught.value.hint


def test_a_model_within_the_memory_limit_loads(resnet50_onnx):
    size = resnet50_onnx.stat().st_size
    assert load(resnet50_onnx, memory_limit=4 * size).schema.task == "other"
