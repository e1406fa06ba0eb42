"""`slipway` as a person or a script runs it: real processes, real files, exit codes and streams."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import onnx
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from studio import __version__
from studio.core.model.schema import ModelSchema

SQUEEZENET = Path(onnx.__file__).parent / "backend/test/data/light/light_squeezenet.onnx"


def slipway(*args, timeout=120):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "studio.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def ridge_joblib(tmp_path_factory):
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    path = tmp_path_factory.mktemp("cli") / "diabetes_ridge.joblib"
    joblib.dump(Ridge().fit(X, y), path)
    return path


def test_version():
    result = slipway("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"slipway {__version__}"


def test_inspect_prints_a_readable_summary():
    result = slipway("inspect", SQUEEZENET)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("light_squeezenet  (onnx, other)")
    assert "data_0  float32  [1, 3, 224, 224]" in out
    assert "Conv 26" in out
    assert result.stderr == ""


def test_inspect_json_is_the_model_schema():
    result = slipway("inspect", SQUEEZENET, "--json")
    assert result.returncode == 0, result.stderr
    schema = ModelSchema.from_json(result.stdout)
    assert schema.name == "light_squeezenet"
    assert schema.inputs[0].shape == [1, 3, 224, 224]
    assert schema.metadata.onnx.operators["Conv"] == 26
    assert schema.samples.v2["inputs"][0]["shape"] == [1, 3, 224, 224]


def test_a_pickle_needs_trust_and_says_how(ridge_joblib):
    refused = slipway("inspect", ridge_joblib)
    assert refused.returncode == 3
    assert refused.stdout == ""
    first_line = refused.stderr.splitlines()[0]
    assert first_line.startswith("slipway: error: 'diabetes_ridge.joblib' is a Python pickle")
    assert "--trust" in first_line
    assert "sklearn.linear_model._ridge.Ridge" in refused.stderr
    assert "Traceback" not in refused.stderr

    trusted = slipway("inspect", ridge_joblib, "--trust", "--json")
    assert trusted.returncode == 0, trusted.stderr
    schema = ModelSchema.from_json(trusted.stdout)
    assert schema.task == "regression"
    assert [f.name for f in schema.features][:3] == ["age", "sex", "bmi"]


@pytest.mark.parametrize("make_input, expected", [
    (lambda d: d / "missing.onnx", "There is no file or folder at"),
    (lambda d: _write(d / "empty.onnx", b""), "is empty (0 bytes)"),
    (lambda d: _write(d / "noise.onnx", os.urandom(2048)), "not a readable ONNX model"),
    (lambda d: _write(d / "list.pkl", pickle.dumps([1, 2, 3])), "not a model"),
    (lambda d: _write(d / "notes.csv", b"a,b\n1,2\n"), "not a model format Slipway Studio loads"),
    (lambda d: d, "without an MLmodel file"),
])
def test_bad_input_exits_3_with_one_line_and_no_traceback(tmp_path, make_input, expected):
    target = make_input(tmp_path)
    result = slipway("inspect", target, "--trust")
    assert result.returncode == 3
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("slipway: error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("args", [["inspect"], ["inspect", "x.onnx", "--bogus"], ["--bogus"]])
def test_bad_usage_exits_2(args):
    result = slipway(*args)
    assert result.returncode == 2
    assert "usage: slipway" in result.stderr


def test_verbose_adds_the_details(tmp_path):
    noise = _write(tmp_path / "noise.onnx", os.urandom(2048))
    result = slipway("-v", "inspect", noise)
    assert result.returncode == 3
    assert len(result.stderr.splitlines()) > 1


# --- what a model file says is shown, never obeyed --------------------------------------------

@pytest.fixture
def escaping_onnx(tmp_path):
    """SqueezeNet whose producer name and a metadata property carry terminal escapes."""
    model = onnx.load(SQUEEZENET)
    model.producer_name = "exporter\x1b[2J\x1b[31mRED"
    entry = model.metadata_props.add()
    entry.key, entry.value = "author", "me\rYOU \u202etxt.exe"
    path = tmp_path / "escaping.onnx"
    onnx.save_model(model, path)
    return path


def test_inspect_shows_control_characters_as_escapes(escaping_onnx):
    result = slipway("inspect", escaping_onnx)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert "\u202e" not in result.stdout
    assert "exporter\\x1b[2J\\x1b[31mRED" in result.stdout
    assert "author: me\\rYOU \\u202etxt.exe" in result.stdout


# --- the last resort: no traceback ever reaches a person ------------------------------------------

@pytest.mark.parametrize("raised, words", [
    (RuntimeError("the model zoo exploded\nwith a long story below"),
     "stopped on an unexpected RuntimeError: the model zoo exploded. This is a bug"),
    (MemoryError(), "ran out of memory"),
])
def test_an_unexpected_error_is_one_line_with_the_details_in_a_log(monkeypatch, capsys, tmp_path,
                                                                   raised, words):
    from studio import cli
    from studio.core.model import artifact

    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(artifact, "load", fail)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    status = cli.main(["inspect", str(SQUEEZENET)])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1 and err.startswith("slipway: error: ") and words in err
    assert "Traceback" not in err
    if isinstance(raised, RuntimeError):
        log = tmp_path / "slipway-studio" / "logs" / "cli.log"
        assert str(log) in err
        assert "Traceback" in log.read_text() and "with a long story below" in log.read_text()
