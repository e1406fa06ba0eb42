"""`slipway convert` and `slipway optimize` as a script runs them: real processes, real files,
exit codes (0 parity passed, 3 cannot convert / nothing to optimize, 4 written but failed parity),
JSON reports and the human parity table.

The commands of each stage run together (each is a process with a child of its own) and the
tests read their results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import onnx
import pytest

from studio.core.optimize.convert import ConversionReport
from studio.core.optimize.optimize import OptimizationReport


def slipway(*args, timeout=240) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "studio.cli", *map(str, args)], check=False,
                          capture_output=True, text=True, timeout=timeout, env=env)


def run_all(commands: dict[str, list]) -> dict[str, subprocess.CompletedProcess]:
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(slipway, *args) for name, args in commands.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("cli-convert")


@pytest.fixture(scope="module")
def wine_csv(folder, wine):
    X, y = wine
    path = folder / "wine.csv"
    X.assign(target=y).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def converted(folder, wide_mlp, sklearn_models, unconvertible_models, onnx_iris_classifier):
    """The conversions, and an optimization that needs none of them."""
    return run_all({
        "ok": ["convert", wide_mlp.path, "--trust", "--opset", "15", "-o", folder / "mlp.onnx"],
        "failed": ["convert", sklearn_models["mlp_wine"].path, "--trust", "--atol", "0", "--rtol", "0", "--json",
                   "-o", folder / "mlp-exact.onnx"],
        "function": ["convert", unconvertible_models["function_transformer"].path, "--trust",
                     "-o", folder / "function.onnx"],
        "custom": ["convert", unconvertible_models["custom_estimator"].path, "--trust",
                   "-o", folder / "custom.onnx"],
        "linear": ["optimize", onnx_iris_classifier.path, "--int8", "--json",
                   "-o", folder / "no.onnx"],
        "regressor": ["convert", sklearn_models["forest_regressor_diabetes"].path, "--trust",
                      "-o", folder / "forest.onnx"],
    })


@pytest.fixture(scope="module")
def optimized(folder, converted, wine_csv):
    assert converted["ok"].returncode == 0, converted["ok"].stderr
    mlp = folder / "mlp.onnx"
    return run_all({
        "int8": ["optimize", mlp, "--int8", "--reference", wine_csv, "-o", folder / "mlp-int8.onnx"],
        "fp16": ["optimize", mlp, "--fp16", "--json", "-o", folder / "mlp-fp16.onnx"],
    })


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


# --- convert -------------------------------------------------------------------------------------

def test_convert_prints_the_parity_table_and_exits_0(converted, folder):
    result = converted["ok"]
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Converted mlp_wide_wine.joblib -> {folder / 'mlp.onnx'} (skl2onnx")
    assert "opset 15" in lines[0]
    assert lines[1].startswith("  latency  one row ") and "(sklearn-joblib -> ONNX, median" in lines[1]
    assert lines[2].startswith("Parity on 200 rows (200 rows sampled from the schema): pass")
    assert "labels kept >= 100%" in lines[2]
    header = lines[3].split()
    assert header[:2] == ["output", "role"] and header[-2:] == ["agreement", "result"]
    rows = {line.split()[0]: line.split() for line in lines[4:6]}
    assert rows["label"][1] == "label" and rows["label"][-2:] == ["100.00%", "pass"]
    assert rows["probabilities"][1] == "probabilities" and rows["probabilities"][-1] == "pass"
    assert result.stderr == ""


def test_a_regressors_parity_speaks_of_values_not_labels(converted):
    result = converted["regressor"]
    assert result.returncode == 0, result.stderr
    parity = next(line for line in result.stdout.splitlines() if line.startswith("Parity on"))
    assert "values within atol" in parity
    assert "label" not in parity


def test_the_conversion_reports_its_latency_before_and_after(converted):
    report = ConversionReport.model_validate_json(converted["failed"].stdout)
    assert report.latency_before.batch_rows == report.latency_after.batch_rows == 256
    assert report.latency_before.single_row_ms > 0 and report.latency_after.single_row_ms > 0


def test_convert_writes_the_opset_asked_for(converted, folder):
    assert converted["ok"].returncode == 0
    model = onnx.load(folder / "mlp.onnx")
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 15


def test_a_failed_parity_exits_4_with_the_file_written(converted, folder):
    result = converted["failed"]
    assert result.returncode == 4, result.stderr
    report = ConversionReport.model_validate_json(result.stdout)  # --json: the report, only
    assert not report.parity.passed
    assert report.parity.tolerance.atol == 0 and report.parity.tolerance.rtol == 0
    probabilities = next(o for o in report.parity.outputs if o.name == "probabilities")
    assert not probabilities.passed and probabilities.max_abs_diff > 0
    [line] = result.stderr.splitlines()
    assert line.startswith("slipway: error:") and "FAILED" in line
    assert str(folder / "mlp-exact.onnx") in line
    props = {p.key: p.value for p in onnx.load(folder / "mlp-exact.onnx").metadata_props}
    assert json.loads(props["slipway.parity"])["passed"] is False


def test_json_report_has_the_parity_fields(converted):
    data = json.loads(converted["failed"].stdout)
    assert {"source", "source_format", "output_path", "converter", "opset", "file_size",
            "seconds", "parity"} <= data.keys()
    assert {"inputs", "rows", "outputs", "flipped_rows", "tolerance", "passed"} <= data["parity"].keys()
    for output in data["parity"]["outputs"]:
        assert {"name", "role", "max_abs_diff", "mean_abs_diff", "mismatched", "label_agreement",
                "passed"} <= output.keys()


@pytest.mark.parametrize("name, named", [
    ("function", ["'functiontransformer'", "model_code.log1p_abs"]),
    ("custom", ["'nearestmeanclassifier'", "model_code.NearestMeanClassifier"]),
])
def test_an_unconvertible_step_exits_3_with_one_line(name, named, converted, folder):
    result = converted[name]
    assert result.returncode == 3
    no_traceback(result)
    [line] = result.stderr.splitlines()
    assert line.startswith("slipway: error: The step ")
    assert all(part in line for part in named)
    assert result.stdout == ""
    assert not (folder / f"{name}.onnx").exists()


def test_convert_without_an_output_is_a_usage_error(sklearn_models):
    result = slipway("convert", sklearn_models["ridge_diabetes"].path, "--trust")
    assert result.returncode == 2
    assert "-o/--output" in result.stderr


# --- optimize ------------------------------------------------------------------------------------

def test_optimize_int8_prints_sizes_latency_and_parity(optimized, folder):
    result = optimized["int8"]
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("int8: Dynamic int8 quantization")
    assert "  size     " in out and "% of the original" in out
    assert "  latency  one row " in out
    assert "Parity on 178 rows (wine.csv, 178 rows): pass" in out
    assert "output" in out and "agreement" in out
    assert (folder / "mlp-int8.onnx").stat().st_size < 0.35 * (folder / "mlp.onnx").stat().st_size
    assert result.stderr == ""


def test_optimize_json_is_the_report(optimized, folder):
    result = optimized["fp16"]
    assert result.returncode == 0, result.stderr
    report = OptimizationReport.model_validate_json(result.stdout)
    assert report.optimization == "fp16" and report.applicable
    assert report.output_path == str(folder / "mlp-fp16.onnx")
    assert report.latency_before.single_row_ms > 0 and report.latency_after.batch_ms > 0
    assert report.parity.passed and report.parity.rows == 200
    assert {o.name for o in report.parity.outputs} == {"label", "probabilities"}


def test_optimize_that_cannot_help_exits_3_with_its_report(converted, folder):
    result = converted["linear"]
    assert result.returncode == 3
    no_traceback(result)
    [line] = result.stderr.splitlines()
    assert line.startswith("slipway: error: Nothing to quantize")
    assert "LinearClassifier" in line and line.endswith("No file was written.")
    report = OptimizationReport.model_validate_json(result.stdout)  # --json: still the report
    assert not report.applicable and report.output_path is None and report.parity is None
    assert report.note.startswith("Nothing to quantize")
    assert not (folder / "no.onnx").exists()


# --- what is written, and over what --------------------------------------------------------------

@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB filesystem (tmpfs, mounted as root; CI runs as root) holding a previous model."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_is_said_as_such_and_keeps_the_previous_output(full_disk, wide_mlp):
    previous = full_disk / "mlp.onnx"
    previous.write_bytes(b"the model that was here before")
    result = slipway("convert", wide_mlp.path, "--trust", "-o", previous)
    no_traceback(result)
    assert result.returncode == 1
    assert result.stderr.startswith("slipway: error: Slipway could not write 'mlp.onnx': "
                                    "No space left on device.")
    assert "Free some space" in result.stderr and "model's own code" not in result.stderr
    assert previous.read_bytes() == b"the model that was here before"
    assert [p.name for p in full_disk.iterdir()] == ["mlp.onnx"]  # no partial file left


def test_optimizing_a_model_onto_itself_is_refused_and_leaves_it_as_it_was(converted, folder):
    source = folder / "mlp.onnx"
    before = source.read_bytes()
    result = slipway("optimize", source, "--int8", "-o", source)
    no_traceback(result)
    assert result.returncode == 1
    assert "'mlp.onnx' is the model it would be made from" in result.stderr
    assert source.read_bytes() == before


def test_converting_a_model_onto_itself_is_refused(tmp_path, sklearn_models):
    model = tmp_path / "model.joblib"
    model.write_bytes(sklearn_models["logreg_iris"].path.read_bytes())
    before = model.read_bytes()
    result = slipway("convert", model, "--trust", "-o", tmp_path / "." / "model.joblib")
    no_traceback(result)
    assert result.returncode == 1
    assert "'model.joblib' is the model it would be made from" in result.stderr
    assert model.read_bytes() == before
