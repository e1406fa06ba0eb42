"""Every way a file can fail to be a model gives a ModelLoadError whose sentence says what is wrong
and whose hint says what to do next."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from studio.core.errors import ModelLoadError, StudioError
from studio.core.model.artifact import SUPPORTED_TEXT, load


def load_error(path: Path, **options) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as caught:
        load(path, **options)
    error = caught.value
    assert isinstance(error, StudioError)
    assert error.hint, "every error says what to do next"
    return error


@pytest.mark.parametrize("name", ["model.onnx", "model.joblib", "model.pkl", "model.skops",
                                  "model.json"])
def test_an_empty_file(tmp_path, name):
    path = tmp_path / name
    path.touch()
    error = load_error(path, trust=True)
    assert error.message == f"'{name}' is empty (0 bytes): there is no model in it."
    assert error.hint == "The save or copy that made it probably failed; save the model again."


def test_a_path_that_does_not_exist(tmp_path):
    path = tmp_path / "gone" / "model.onnx"
    error = load_error(path)
    assert error.message == f"There is no file or folder at '{path}'."
    assert "moved or renamed" in error.hint


def test_a_user_path_is_expanded(monkeypatch, tmp_path, squeezenet_onnx):
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copy(squeezenet_onnx, tmp_path / "squeeze.onnx")
    assert load("~/squeeze.onnx").schema.name == "squeeze"


ONNX_DAMAGED = ("is not a readable ONNX model: the file is damaged, truncated or not ONNX at all.")


def test_random_bytes_named_onnx(tmp_path):
    path = tmp_path / "noise.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    error = load_error(path)
    assert error.message == f"'noise.onnx' {ONNX_DAMAGED}"
    assert error.hint == "Export the model again, or check the copy finished."


def test_text_named_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("these are my notes, not a model\n" * 10)
    assert load_error(path).message == f"'notes.onnx' {ONNX_DAMAGED}"


def test_a_truncated_onnx_file(tmp_path, squeezenet_onnx):
    data = squeezenet_onnx.read_bytes()
    path = tmp_path / "half.onnx"
    path.write_bytes(data[: len(data) // 2])
    assert load_error(path).message == f"'half.onnx' {ONNX_DAMAGED}"


def test_a_protobuf_that_is_not_a_model(tmp_path, light_onnx):
    """A TensorProto parses as a ModelProto with no graph: it is still not a model."""
    path = tmp_path / "tensor.onnx"
    shutil.copy(light_onnx / "light_squeezenet_output_0.pb", path)
    error = load_error(path)
    assert error.message == "'tensor.onnx' holds no ONNX graph: it is not an ONNX model."


def test_an_onnx_graph_the_checker_rejects(tmp_path):
    """A node reads a tensor nothing produces: parseable, but not a valid model."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "nowhere"], ["y"])], "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    path = tmp_path / "broken.onnx"
    onnx.save_model(model, path)
    error = load_error(path)
    assert error.message.startswith("'broken.onnx' is not a valid ONNX model: ")
    assert "nowhere" in error.message
    assert "onnx.checker must accept it" in error.hint


@pytest.mark.parametrize("name", ["model.bin", "weights.h5", "config.json", "readme.txt"])
def test_a_file_in_a_format_the_studio_does_not_load(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b'{"not": "a model"}\n' if name.endswith(".json") else b"some bytes\n")
    error = load_error(path)
    assert error.message == f"'{name}' is not a model format Slipway Studio loads."
    assert error.hint == f"Open one of: {SUPPORTED_TEXT}."


def test_a_folder_without_mlmodel(tmp_path):
    folder = tmp_path / "just_a_folder"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"\x80\x04N.")
    error = load_error(folder)
    assert error.message == ("'just_a_folder' is a folder without an MLmodel file, so it is not an "
                             "MLflow model.")
    assert "mlflow.<flavor>.save_model" in error.hint


def test_random_bytes_named_skops(tmp_path):
    path = tmp_path / "model.skops"
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    error = load_error(path)
    assert error.message.startswith("'model.skops' is not a readable skops file: ")
    assert error.hint == "Save the model again with skops.io.dump."


def test_a_pickle_of_a_list_is_not_a_model(tmp_path):
    path = tmp_path / "numbers.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    error = load_error(path, trust=True)
    assert error.message == ("The file holds a builtins.list, not a model: it has no predict or "
                             "transform method.")
    assert "joblib.dump(model, path)" in error.hint


def test_a_truncated_joblib_file_says_why(tmp_path, sklearn_models):
    data = sklearn_models["logreg_iris"].path.read_bytes()
    path = tmp_path / "half.joblib"
    path.write_bytes(data[: len(data) // 2])
    error = load_error(path, trust=True)
    assert error.message.startswith("'half.joblib' is not a readable pickle or joblib file: ")
    reason = error.message.split("joblib file: ", 1)[1]
    assert reason.strip(" .:"), "the message names no reason"
    assert "truncated" in error.hint


def test_a_truncated_pickle_file_says_why(tmp_path, sklearn_models):
    data = sklearn_models["logreg_iris_pickle"].path.read_bytes()
    path = tmp_path / "half.pkl"
    path.write_bytes(data[: len(data) // 2])
    error = load_error(path, trust=True)
    assert error.message.startswith("'half.pkl' is not a readable pickle or joblib file: ")
    assert error.message.split("joblib file: ", 1)[1].strip(" .:")


def _peak_memory_of_loading(path) -> tuple[str, int]:
    """Load `path` in a fresh Python: (the error message, the peak resident memory in MiB)."""
    import subprocess
    import sys

    script = ("from studio.core.errors import StudioError\n"
              "from studio.core.model.artifact import load\n"
              "try:\n"
              f"    load({str(path)!r})\n"
              "    message = 'loaded'\n"
              "except StudioError as exc:\n"
              "    message = exc.message\n"
              "print(message)\n"
              # VmHWM, not ru_maxrss: Linux carries the parent's peak across fork and exec into
              # ru_maxrss, and a parent that ran many tests is large.
              "print(next(int(line.split()[1]) for line in open('/proc/self/status')\n"
              "           if line.startswith('VmHWM:')) // 1024)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=True)
    message, peak_mib = result.stdout.strip().splitlines()[-2:]
    return message, int(peak_mib)


@pytest.mark.parametrize("size_gib", [1.5, 2.0])
def test_a_huge_file_of_zeros_named_onnx_is_refused_without_reading_it(tmp_path, size_gib):
    path = tmp_path / "zeros.onnx"
    with open(path, "wb") as sparse:
        sparse.truncate(int(size_gib * 1024**3))  # no disk used, reads as zeros
    message, peak_mib = _peak_memory_of_loading(path)
    assert message.startswith("'zeros.onnx' ")
    assert ONNX_DAMAGED in message or "cannot exceed 2 GiB" in message
    assert peak_mib < 600, f"{peak_mib} MiB were used to refuse it"


def test_unreadable_studio_metadata_in_an_onnx_file_is_set_aside_with_a_warning(tmp_path,
                                                                               light_onnx):
    model = onnx.load(light_onnx / "light_squeezenet.onnx")
    for key, value in (("slipway.features", "{not json"), ("slipway.class_names", '{"a": 1}')):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path = tmp_path / "tagged.onnx"
    onnx.save_model(model, path)
    schema = load(path).schema
    assert schema.features == [] and schema.class_names is None
    assert len(schema.metadata.warnings) == 2
    assert all("metadata is not readable and was ignored" in w for w in schema.metadata.warnings)
