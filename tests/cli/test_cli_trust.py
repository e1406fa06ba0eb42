"""`slipway inspect` on a pickle that hides a dangerous call: one line per dangerous import on
stderr before the error, the whole list after it, nothing on stdout (with --json too)."""

import os
import pickle
import subprocess
import sys

import pytest
from hostile_pickles import (
    COMPUTED_IMPORT,
    call_hidden_in_joblib,
    called_with,
    global_,
    os_system_call,
)


def slipway(*args, timeout=120):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "studio.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def hostile_joblib(tmp_path_factory, sklearn_models):
    calls = (os_system_call() + pickle.POP + global_("builtins", "eval")
             + called_with("print('the scan missed this')"))
    return call_hidden_in_joblib(sklearn_models["logreg_iris"].estimator,
                                 tmp_path_factory.mktemp("cli-trust") / "iris.joblib", calls)


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_each_dangerous_import_gets_a_line_before_the_error(hostile_joblib, json_flag):
    refused = slipway("inspect", hostile_joblib, *json_flag)
    assert refused.returncode == 3
    assert refused.stdout == ""
    lines = refused.stderr.splitlines()
    assert lines[:2] == [
        "slipway: danger: os.system runs other programs and shell commands",
        "slipway: danger: builtins.eval runs Python code carried as text or data, which the scan "
        "cannot see",
    ]
    assert lines[2].startswith("slipway: error: 'iris.joblib' is a Python pickle")
    assert lines[3].startswith("  the file would import: os.system, builtins.eval, "
                               "sklearn.linear_model._logistic.LogisticRegression")
    assert len(lines) == 4
    assert "Traceback" not in refused.stderr


def test_what_the_scan_cannot_name_gets_a_line_after_the_list(tmp_path):
    path = tmp_path / "computed.pkl"
    path.write_bytes(COMPUTED_IMPORT)
    refused = slipway("inspect", path)
    assert refused.returncode == 3
    assert refused.stderr.splitlines()[1:] == [
        "  the file would import: builtins.str",
        "  (an import the scan cannot name: its module or attribute is computed while the file "
        "loads)",
    ]
