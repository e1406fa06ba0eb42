"""The trust prompt's list holds to what the loader would really import: hostile pickles built
opcode by opcode (tests/hostile_pickles.py) list their dangerous call first, whatever trick hides
it; real models list their classes with nothing flagged; and the scan streams the file within its
limits, saying so when a limit cut it short."""

from __future__ import annotations

import copyreg
import json
import os
import pickle
import pickletools
import subprocess
import sys
import zlib

import joblib
import numpy as np
import pytest
from hostile_pickles import (
    COMPRESSORS,
    DANGEROUS_IN,
    EXTENSION_CODE,
    TRICKS,
    WritesMarker,
    array_built_inside_a_frame,
    array_read_through_a_copy,
    call_hidden_in_joblib,
    called_with,
    extension_call,
    global_,
    names_the_loader_asks_for,
    open_call,
    os_system_call,
    program,
    text,
)

from studio.core.errors import Cancelled, TrustRequired
from studio.core.model.artifact import load
from studio.core.model.pickle_scan import scan_pickle
from studio.core.tasks import Progress


def trust_prompt(path):
    """The findings `load` hands the person deciding."""
    with pytest.raises(TrustRequired) as caught:
        load(path)
    return caught.value.findings


def by_verdict(findings, verdict):
    return [f.name for f in findings if f.verdict == verdict]


@pytest.fixture
def os_system_extension():
    copyreg.add_extension("os", "system", EXTENSION_CODE)
    yield EXTENSION_CODE
    copyreg.remove_extension("os", "system", EXTENSION_CODE)


@pytest.fixture
def logreg(sklearn_models):
    return sklearn_models["logreg_iris"].estimator


# --- each trick lists the dangerous call, first -------------------------------------------------

@pytest.mark.parametrize("trick", TRICKS)
def test_each_trick_lists_its_dangerous_call_first(tmp_path, trick):
    path = tmp_path / f"{trick}.pkl"
    path.write_bytes(TRICKS[trick])
    pickletools.dis(TRICKS[trick], out=open(os.devnull, "w"))  # a well-formed pickle program
    findings = trust_prompt(path)
    first = findings[0]
    assert (first.name, first.verdict) == (DANGEROUS_IN[trick], "dangerous"), findings
    assert first.why
    # And it is what pickle's own loader asks for: every name it imports is in the list.
    assert set(names_the_loader_asks_for(path)) <= {f.name for f in findings}


def test_a_registered_extension_code_is_named(tmp_path, os_system_extension):
    path = tmp_path / "extension.pkl"
    path.write_bytes(extension_call(os_system_extension))
    findings = trust_prompt(path)
    assert (findings[0].name, findings[0].verdict) == ("os.system", "dangerous")
    assert names_the_loader_asks_for(path) == ["os.system"]


def test_an_unregistered_extension_code_is_flagged_as_unnamed(tmp_path):
    path = tmp_path / "extension.pkl"
    path.write_bytes(extension_call(0x5A20))
    findings = trust_prompt(path)
    assert [(f.name, f.verdict) for f in findings] == [
        ("(an import the scan cannot name: extension code 23072, which is not registered here)",
         "unnamed")]


def test_names_computed_while_loading_are_flagged(tmp_path):
    # str("os") makes the module name at load time; the result is then called again.
    path = tmp_path / "computed.pkl"
    path.write_bytes(program(global_("builtins", "str"), text("os"), pickle.TUPLE1, pickle.REDUCE,
                             text("system"), pickle.STACK_GLOBAL, text("x"), pickle.TUPLE1,
                             pickle.REDUCE, text("y"), pickle.TUPLE1, pickle.REDUCE))
    findings = trust_prompt(path)
    assert by_verdict(findings, "unnamed") == [
        "(an import the scan cannot name: its module or attribute is computed while the file "
        "loads)",
        "(a call the scan cannot name: it calls something computed while the file loads)"]
    assert by_verdict(findings, "listed") == ["builtins.str"]


@pytest.mark.parametrize("module", ["os", "builtins"])
def test_a_computed_attribute_of_a_module_with_dangerous_members_is_dangerous(tmp_path, module):
    # The attribute is str("system") or str("eval"): named only while loading.
    path = tmp_path / "computed_attribute.pkl"
    path.write_bytes(program(text(module), global_("builtins", "str"), text("eval"),
                             pickle.TUPLE1, pickle.REDUCE, pickle.STACK_GLOBAL))
    assert by_verdict(trust_prompt(path), "dangerous") == [f"{module}.<computed>"]


def test_setting_attributes_on_an_import_itself_is_dangerous(tmp_path):
    # BUILD with (None, {'predict': ...}) on the class: setattr on LogisticRegression itself.
    path = tmp_path / "patches_a_class.pkl"
    path.write_bytes(program(global_("sklearn.linear_model", "LogisticRegression"), pickle.NONE,
                             pickle.EMPTY_DICT, text("predict"), pickle.NONE, pickle.SETITEM,
                             pickle.TUPLE2, pickle.BUILD))
    [finding] = trust_prompt(path)
    assert (finding.name, finding.verdict) == ("sklearn.linear_model.LogisticRegression",
                                               "dangerous")
    assert "changed by the file" in finding.why


DANGEROUS_NAMES = [
    ("os", "system"), ("posix", "system"), ("nt", "spawnv"), ("subprocess", "Popen"),
    ("pty", "spawn"), ("shutil", "rmtree"), ("sys", "settrace"), ("importlib", "import_module"),
    ("runpy", "run_path"), ("timeit", "timeit"), ("code", "InteractiveInterpreter"),
    ("ctypes", "CDLL"), ("socket", "create_connection"), ("urllib.request", "urlopen"),
    ("webbrowser", "open"), ("pickle", "loads"), ("marshal", "loads"), ("_pickle", "loads"),
    ("builtins", "exec"), ("builtins", "eval"), ("builtins", "compile"),
    ("builtins", "__import__"), ("builtins", "open"), ("builtins", "getattr"), ("io", "open"),
    ("codecs", "open"), ("operator", "attrgetter"), ("operator", "methodcaller"),
    ("types", "FunctionType"), ("numpy.testing._private.utils", "runstring"),
    ("joblib", "load"), ("sklearn.base", "__builtins__"),
]


@pytest.mark.parametrize("module, name", DANGEROUS_NAMES, ids=lambda part: part)
def test_dangerous_names_are_flagged_with_what_they_do(tmp_path, module, name):
    path = tmp_path / "calls.pkl"
    path.write_bytes(program(global_(module, name), called_with("x")))
    [finding] = scan_pickle(path)
    assert (finding.name, finding.verdict) == (f"{module}.{name}", "dangerous")
    assert finding.why


@pytest.mark.parametrize("module, name", [
    ("collections", "OrderedDict"), ("functools", "partial"), ("numpy", "dtype"),
    ("sklearn.pipeline", "Pipeline"), ("scipy.sparse", "csr_matrix"), ("builtins", "set")])
def test_ordinary_names_are_listed(tmp_path, module, name):
    path = tmp_path / "calls.pkl"
    path.write_bytes(program(global_(module, name), called_with("x")))
    assert [(f.name, f.verdict) for f in scan_pickle(path)] == [(f"{module}.{name}", "listed")]


def test_a_name_too_long_to_read_is_shown_shortened(tmp_path):
    module = "sklearn." + "x" * 5000
    path = tmp_path / "long_name.pkl"
    path.write_bytes(program(global_(module, "Model"), called_with("x")))
    [finding] = scan_pickle(path)
    assert finding.name == f"{module}.Model"[:200] + "… (5,014 characters)"


# --- hidden inside real joblib files -------------------------------------------------------------

def test_a_call_after_a_real_model_with_arrays_is_listed(tmp_path, logreg):
    path = call_hidden_in_joblib(logreg, tmp_path / "logreg.joblib", os_system_call())
    findings = trust_prompt(path)
    assert (findings[0].name, findings[0].verdict) == ("os.system", "dangerous")
    assert findings[0].why == "runs other programs and shell commands"
    names = by_verdict(findings, "listed")
    assert "sklearn.linear_model._logistic.LogisticRegression" in names
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in names
    assert by_verdict(findings, "unnamed") == []
    assert set(names_the_loader_asks_for(path)) <= {f.name for f in findings}


def test_the_hidden_call_really_runs_when_trusted_and_the_model_still_loads(tmp_path, logreg):
    marker = tmp_path / "ran.txt"
    path = call_hidden_in_joblib(logreg, tmp_path / "logreg_open.joblib", open_call(marker))
    assert by_verdict(trust_prompt(path), "dangerous") == ["builtins.open"]
    assert not marker.exists()
    artifact = load(path, trust=True)
    assert marker.exists(), "the hidden call did not run, so this file proves nothing"
    assert artifact.schema.metadata.estimator == "sklearn.linear_model.LogisticRegression"


@pytest.mark.parametrize("method", COMPRESSORS)
def test_a_compressed_joblib_lists_the_hidden_call(tmp_path, logreg, method):
    plain = call_hidden_in_joblib(logreg, tmp_path / "plain.joblib", os_system_call())
    path = tmp_path / f"hostile.{method}.joblib"
    path.write_bytes(COMPRESSORS[method](plain.read_bytes()))
    findings = trust_prompt(path)
    assert (findings[0].name, findings[0].verdict) == ("os.system", "dangerous")
    assert findings == trust_prompt(plain)
    assert set(names_the_loader_asks_for(path, method)) <= {f.name for f in findings}


def test_a_compressed_hidden_call_runs_under_joblib_when_trusted(tmp_path, logreg):
    marker = tmp_path / "ran.txt"
    plain = call_hidden_in_joblib(logreg, tmp_path / "plain.joblib", open_call(marker))
    path = tmp_path / "hostile.joblib"
    path.write_bytes(zlib.compress(plain.read_bytes()))
    assert by_verdict(trust_prompt(path), "dangerous") == ["builtins.open"]
    load(path, trust=True)
    assert marker.exists()


def test_a_call_inside_an_object_array_is_listed(tmp_path):
    # joblib writes an object array as a nested pickle right after its NumpyArrayWrapper.
    marker = tmp_path / "ran.txt"
    path = tmp_path / "object_array.joblib"
    joblib.dump({"weights": np.arange(5.0), "extra": np.array([WritesMarker(marker)], dtype=object),
                 "after": np.ones((2, 3), dtype=np.int32)}, path)
    findings = trust_prompt(path)
    assert (findings[0].name, findings[0].verdict) == ("io.open", "dangerous")  # open pickles so
    assert by_verdict(findings, "unnamed") == []
    assert set(names_the_loader_asks_for(path)) <= {f.name for f in findings}
    assert not marker.exists()


def test_an_array_built_inside_a_frame_is_read_after_the_frame(tmp_path):
    path = tmp_path / "framed.joblib"
    path.write_bytes(array_built_inside_a_frame())
    findings = trust_prompt(path)
    assert [(f.name, f.verdict) for f in findings[:1]] == [("os.system", "dangerous")]
    assert by_verdict(findings, "unnamed") == []
    assert names_the_loader_asks_for(path)[-1] == "os.system"


def test_a_wrapper_the_scan_cannot_follow_stops_the_scan_and_says_so(tmp_path):
    path = tmp_path / "copied_wrapper.joblib"
    path.write_bytes(array_read_through_a_copy())
    assert "os.system" in names_the_loader_asks_for(path)  # the loader does run the call
    findings = trust_prompt(path)
    [stopped] = by_verdict(findings, "unnamed")
    assert stopped.startswith("(the scan stopped at byte ")
    assert "BUILD on an object that may be joblib's NumpyArrayWrapper" in stopped


# --- real models: their classes, nothing flagged -------------------------------------------------

def assert_ordinary(findings):
    assert [f for f in findings if f.verdict != "listed"] == [], findings


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)],
                         ids=str)
def test_a_real_forest_lists_its_classes_with_nothing_flagged(tmp_path, sklearn_models, compress):
    path = tmp_path / "forest.joblib"
    joblib.dump(sklearn_models["forest_wine"].estimator, path, compress=compress)
    findings = trust_prompt(path)
    assert_ordinary(findings)
    assert {"sklearn.ensemble._forest.RandomForestClassifier",
            "sklearn.tree._classes.DecisionTreeClassifier",
            "sklearn.tree._tree.Tree"} <= {f.name for f in findings}


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_a_real_pipeline_lists_its_classes_whatever_the_protocol(tmp_path, sklearn_models,
                                                                 protocol, dump):
    path = tmp_path / "pipeline.pkl"
    estimator = sklearn_models["mixed_pipeline"].estimator
    if dump == "pickle":
        path.write_bytes(pickle.dumps(estimator, protocol=protocol))
    else:
        joblib.dump(estimator, path, protocol=protocol)
    findings = trust_prompt(path)
    assert_ordinary(findings)
    assert {"sklearn.pipeline.Pipeline", "sklearn.compose._column_transformer.ColumnTransformer",
            "sklearn.preprocessing._encoders.OneHotEncoder"} <= {f.name for f in findings}


@pytest.mark.parametrize("name", ["logreg_iris", "gboost_breast_cancer", "svc_proba_iris",
                                  "mlp_wine", "forest_regressor_diabetes", "logreg_iris_pickle"])
def test_the_fixture_models_have_nothing_flagged(sklearn_models, name):
    assert_ordinary(trust_prompt(sklearn_models[name].path))


def test_boosters_saved_with_joblib_have_nothing_flagged(xgboost_models, lightgbm_models):
    for models in (xgboost_models, lightgbm_models):
        assert_ordinary(trust_prompt(models["classifier_iris.joblib"].path))


# --- limits ---------------------------------------------------------------------------------------

def test_a_limit_that_cuts_the_scan_short_says_so(tmp_path):
    path = tmp_path / "long.pkl"
    filler = (pickle.NONE + pickle.POP) * 40_000
    path.write_bytes(program(filler, os_system_call(), proto=4))
    findings = scan_pickle(path, limit=64 * 1024)
    assert [(f.name, f.verdict) for f in findings] == [
        ("(the scan was cut short by its limit of 64.0 KiB read: the rest of the file is not "
         "listed and may import anything)", "unnamed")]
    assert by_verdict(scan_pickle(path), "dangerous") == ["os.system"]


def test_the_decompressed_bytes_are_capped_too(tmp_path):
    # 16 MiB of bytes before the call: stepped over, but inflated first.
    payload = pickle.BINBYTES8 + (16 * 1024**2).to_bytes(8, "little") + bytes(16 * 1024**2)
    path = tmp_path / "bomb.joblib"
    path.write_bytes(zlib.compress(program(payload, pickle.POP, os_system_call())))
    findings = scan_pickle(path, inflate_limit=4 * 1024**2)
    assert by_verdict(findings, "unnamed") == [
        "(the scan was cut short by its limit of 4.0 MiB decompressed: the rest of the file is "
        "not listed and may import anything)"]
    assert by_verdict(scan_pickle(path), "dangerous") == ["os.system"]


def test_holding_too_many_values_cuts_the_scan_short(tmp_path, monkeypatch):
    from studio.core.model import pickle_scan

    monkeypatch.setattr(pickle_scan, "MOST_VALUES_HELD", 10_000)
    path = tmp_path / "memo.pkl"
    path.write_bytes(program((pickle.NONE + pickle.MEMOIZE + pickle.POP) * 20_000,
                             os_system_call()))
    [finding] = scan_pickle(path)
    assert finding.verdict == "unnamed"
    assert finding.name.startswith("(the scan was cut short: the file holds more than 10,000 values")


# In a process of its own, so that reading the file whole cannot take the test run down with it;
# tracemalloc counts what Python allocates while loading (ru_maxrss would count the memory of
# the pytest process this one was forked from).
MEASURE_SCAN = """
import json, sys, tracemalloc
from pathlib import Path
from studio.core.errors import TrustRequired
from studio.core.model.artifact import load
tracemalloc.start()
try:
    load(Path(sys.argv[1]))
except TrustRequired as error:
    findings = [[f.name, f.verdict] for f in error.findings]
print(json.dumps({"findings": findings, "peak_mib": tracemalloc.get_traced_memory()[1] / 2**20}))
"""


def test_a_2_gib_file_is_scanned_without_reading_it_whole(tmp_path):
    # 2 GiB of bytes (a sparse file: nothing is written to disk) between two imports.
    size = 2 * 1024**3
    path = tmp_path / "huge.pkl"
    with open(path, "wb") as handle:
        handle.write(pickle.PROTO + b"\x04" + pickle.BINBYTES8 + size.to_bytes(8, "little"))
        handle.seek(size, os.SEEK_CUR)
        handle.write(pickle.POP + os_system_call() + pickle.STOP)
    result = subprocess.run([sys.executable, "-c", MEASURE_SCAN, str(path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["findings"] == [["os.system", "dangerous"]]
    assert report["peak_mib"] < 256, f"the scan held {report['peak_mib']:.0f} MiB"


def test_a_cancelled_load_stops_the_scan(tmp_path):
    path = tmp_path / "long.pkl"
    path.write_bytes(program((pickle.NONE + pickle.POP) * 10_000))
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        scan_pickle(path, progress=progress)
