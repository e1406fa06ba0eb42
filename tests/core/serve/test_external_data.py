"""ONNX models whose tensors live in files beside the .onnx: bundled with those files where the
model expects them, and served by both runtimes like ONNX Runtime answers in this process."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from serving_checks import onnx_answer

from studio.core.model.artifact import load
from studio.core.serve.bundle import BundleError, ImageOptions, write_bundle
from studio.core.serve.client import ModelClient
from studio.core.serve.deploy import DeployOptions, deploy

DATA_LOCATION = "weights/dense.bin"
ORT_IR_VERSION = 10


def dense_model() -> onnx.ModelProto:
    """y = x @ W + b, with W and b big enough to be worth storing outside the graph."""
    weights = numpy_helper.from_array(
        np.random.default_rng(3).standard_normal((4, 3)).astype(np.float32), "dense_weights")
    bias = numpy_helper.from_array(np.array([0.5, -1.0, 2.0], dtype=np.float32), "dense_bias")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "dense_weights"], ["xw"]),
         helper.make_node("Add", ["xw", "dense_bias"], ["y"])], "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], [weights, bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=ORT_IR_VERSION)


@pytest.fixture(scope="module")
def external_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("external") / "model"
    (folder / "weights").mkdir(parents=True)
    path = folder / "dense.onnx"
    onnx.save_model(dense_model(), path, save_as_external_data=True,
                    all_tensors_to_one_file=True, location=DATA_LOCATION, size_threshold=0)
    assert (folder / DATA_LOCATION).is_file()
    return path


def served_like_onnx_runtime(url: str, model_file: Path) -> None:
    rows = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    expected = onnx_answer(model_file, {"x": rows})["y"]
    with ModelClient(url, timeout=30) as client:
        reply = client.predict({"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32",
                                            "data": rows.ravel().tolist()}]},
                               route="/v2/models/dense/infer")
    assert reply.status == 200, reply.body
    assert np.allclose(reply.body["outputs"][0]["data"], expected.ravel(), atol=1e-6)


def test_the_bundle_keeps_external_data_where_the_model_expects_it(external_model, tmp_path):
    bundle = write_bundle(load(external_model), tmp_path / "bundle",
                          image=ImageOptions(wheelhouse=tmp_path / "no-wheels-needed"))
    assert bundle.data_files == (DATA_LOCATION,)
    assert (bundle.path / DATA_LOCATION).read_bytes() == \
        (external_model.parent / DATA_LOCATION).read_bytes()
    dockerfile = (bundle.path / "Dockerfile").read_text()
    assert f"COPY {DATA_LOCATION} /app/{DATA_LOCATION}\n" in dockerfile
    assert f"!{DATA_LOCATION}\n" in (bundle.path / ".dockerignore").read_text()


def test_an_external_data_name_the_image_cannot_copy_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save_model(dense_model(), folder / "dense.onnx", save_as_external_data=True,
                    location="dense weights $HOME.bin", size_threshold=0)
    artifact = load(folder / "dense.onnx")
    with pytest.raises(BundleError) as caught:
        write_bundle(artifact, tmp_path / "bundle",
                     image=ImageOptions(wheelhouse=tmp_path / "no-wheels-needed"))
    assert "'dense weights $HOME.bin' cannot go into an image" in caught.value.message
    assert not (tmp_path / "bundle").exists()
    # The process runtime copies files, not Dockerfile lines: any name serves there.
    bundle = write_bundle(artifact, tmp_path / "process", with_wheels=False)
    assert (bundle.path / "dense weights $HOME.bin").is_file()


def test_the_process_runtime_serves_a_model_with_external_data(external_model):
    deployment = deploy(load(external_model), DeployOptions(runtime="process"))
    try:
        assert (deployment.bundle_path / DATA_LOCATION).is_file()
        served_like_onnx_runtime(deployment.url, external_model)
    finally:
        deployment.stop()


@pytest.mark.docker
@pytest.mark.needs_base_image
def test_a_container_serves_a_model_with_external_data(external_model, base_image):
    deployment = deploy(load(external_model), DeployOptions(
        runtime="docker", tag="slipway-test/external-data:1",
        image=ImageOptions(base_image=base_image)))
    try:
        served_like_onnx_runtime(deployment.url, external_model)
    finally:
        deployment.stop()
