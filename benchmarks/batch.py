"""Batch predictions benchmark: `slipway batch` against a pandas + scikit-learn script, and the
memory a run takes on a small and a very large file.

    .venv/bin/python benchmarks/batch.py            # measure and print
    .venv/bin/python benchmarks/batch.py --write    # and update the batch section of
                                                    # docs/benchmarks.md

The model is the serving benchmark's forest (benchmarks/serve.py: a 100-tree RandomForestClassifier
on 20 features of make_classification data, saved with joblib), converted to ONNX once by the
studio's verified conversion (its time is reported apart). The data is CSV: 20 feature columns of
random values with six decimals, as a file of measurements would have them.

Throughput, end to end: each side is one process started from the shell, from reading the file to
the predictions file written (label and a probability per class beside the input columns), timed
by the wall clock:

  (a) script   what a person writes with pandas and scikit-learn (SCRIPT below): read_csv, predict,
               predict_proba, to_csv, on the joblib model
  (b) Slipway  `slipway batch model.onnx data.csv -o out.csv`: streamed in chunks through ONNX
               Runtime

run in alternating rounds on the same file (the machine is shared, so what else runs slows both
alike), reported as rows per minute and as the ratio of the two. The labels of the two outputs are
compared row by row.

The model alone: the same rows already in memory as a float32 array, through ONNX Runtime as
`slipway batch` runs it (each chunk split into a slice per core, each slice on one thread), and
through the joblib forest's `predict_proba`: what no tool running this forest can do without, so
the script's time over it is the most any of them could reach on this machine.

Memory: `slipway batch` on a 100,000-row file and on a 10,000,000-row one, each in its own process,
twice; the peak resident set size of each run (VmHWM, read by the process as it exits) and the
difference of the two files' medians.

Raw results go to benchmarks/results/batch-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pyarrow as pa
import pyarrow.csv as pa_csv
import sklearn
from serve import train_models

from studio.core.batch.options import DEFAULT_CHUNK_SIZE, BatchOptions
from studio.core.batch.run import as_onnx
from studio.core.model.artifact import load
from studio.core.model.session import onnx_session

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = HERE / "results"
SECTION = "batch"
COMMAND = ".venv/bin/python benchmarks/batch.py --write"
THROUGHPUT_ROWS = 1_000_000
SMALL_ROWS = 100_000
LARGE_ROWS = 10_000_000
ROUNDS = 2
WRITE_ROWS = 500_000
"""Rows generated at a time when the data files are written."""
TARGET_ROWS_PER_MINUTE = 1_000_000
TARGET_RATIO = 10.0
MEMORY_ROUNDS = 2
"""Runs on each file for the memory figures, whose median is compared: one run's peak varies by
a few tens of MB with where the allocators' pages happen to fall."""
MEMORY_BUDGET_MB = 50
"""'Within a few tens of MB': the most the large file's peak may exceed the small one's."""

SCRIPT = """\
import sys

import joblib
import pandas as pd

model_file, data_file, output_file = sys.argv[1:4]
model = joblib.load(model_file)
data = pd.read_csv(data_file)
features = data[[f"x{i}" for i in range(model.n_features_in_)]].to_numpy()
data["label"] = model.predict(features)
probabilities = model.predict_proba(features)
for j, name in enumerate(model.classes_):
    data[f"probability_{name}"] = probabilities[:, j]
data.to_csv(output_file, index=False)
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_data(path: Path, rows: int, features: int, seed: int = 0) -> int:
    """A CSV file of `rows` random rows with six decimals; its size in bytes."""
    rng = np.random.default_rng(seed)
    names = [f"x{i}" for i in range(features)]
    schema = pa.schema([(name, pa.float64()) for name in names])
    with pa_csv.CSVWriter(str(path), schema) as writer:
        for start in range(0, rows, WRITE_ROWS):
            block = np.round(rng.standard_normal((min(WRITE_ROWS, rows - start), features)) * 2, 6)
            writer.write_table(pa.Table.from_arrays(list(block.T), schema=schema))
    return path.stat().st_size


PEAK_WRAPPER = """\
import atexit, runpy, sys

def record_peak():
    with open("/proc/self/status") as status:
        peak_kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(peak_file, "w") as out:
        out.write(peak_kb)

peak_file, target, *args = sys.argv[1:]
atexit.register(record_peak)
sys.argv = [target, *args]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""
"""Runs a module or script and, as it exits, writes its peak resident memory (VmHWM, kB) to a
file. Not getrusage: its ru_maxrss counts the parent's memory too, which a child started by vfork
shares until it runs the new program."""


def timed(target: list[str], log_file: Path) -> tuple[float, float, int, int]:
    """Run `python <target…>` (a module name or a script, then its arguments); its wall-clock
    seconds, CPU seconds (user and system, all threads), peak resident memory (bytes) and exit
    status."""
    peak_file = log_file.with_suffix(".peak")
    command = [sys.executable, "-c", PEAK_WRAPPER, str(peak_file), *target]
    with open(log_file, "w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    peak = int(peak_file.read_text()) * 1024 if peak_file.exists() else 0
    return seconds, usage.ru_utime + usage.ru_stime, peak, process.returncode


def slipway_batch(model: Path, data: Path, output: Path,
                  log_file: Path) -> tuple[float, float, int]:
    seconds, cpu, peak, status = timed(["studio.cli", "batch", str(model), str(data), "-o",
                                        str(output)], log_file)
    if status != 0:
        raise SystemExit(f"slipway batch failed ({status}): {log_file.read_text()[-2000:]}")
    return seconds, cpu, peak


def script_batch(script: Path, model: Path, data: Path, output: Path,
                 log_file: Path) -> tuple[float, float, int]:
    seconds, cpu, peak, status = timed([str(script), str(model), str(data), str(output)],
                                       log_file)
    if status != 0:
        raise SystemExit(f"the script failed ({status}): {log_file.read_text()[-2000:]}")
    return seconds, cpu, peak


def disagreements(ours: Path, theirs: Path) -> tuple[int, int, float]:
    """Rows whose labels differ, how many of those are tied votes (the forest's two
    probabilities equal, where either answer is the model's), and the largest difference
    between the two files' probabilities."""
    def read(path: Path) -> pa.Table:
        return pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(
            include_columns=["label", "probability_0", "probability_1"],
            column_types={"label": pa.string()}))

    a, b = read(ours), read(theirs)
    differ = a.column("label").to_numpy(zero_copy_only=False) != \
        b.column("label").to_numpy(zero_copy_only=False)
    tied = np.isclose(b.column("probability_0").to_numpy(), b.column("probability_1").to_numpy())
    gap = float(np.abs(a.column("probability_1").to_numpy()
                       - b.column("probability_1").to_numpy()).max())
    return int(differ.sum()), int((differ & tied).sum()), gap


def model_alone(onnx_file: Path, joblib_file: Path, data: Path) -> tuple[float, float]:
    """Seconds for the forest alone on every row of `data`, already in memory: ONNX Runtime as
    `slipway batch` runs it, then scikit-learn's predict_proba."""
    import joblib

    table = pa_csv.read_csv(data)
    rows = np.column_stack([column.to_numpy() for column in table.columns]).astype(np.float32)
    del table
    session = onnx_session(onnx_file)
    feed = session.get_inputs()[0].name
    threads = BatchOptions().model_threads
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:  # each slice of a chunk on a thread, as (b) does
        for start in range(0, len(rows), DEFAULT_CHUNK_SIZE):
            chunk = rows[start:start + DEFAULT_CHUNK_SIZE]
            list(pool.map(lambda part: session.run(None, {feed: part}),
                          np.array_split(chunk, threads)))
    onnx_s = time.perf_counter() - started
    forest = joblib.load(joblib_file)
    started = time.perf_counter()
    forest.predict_proba(rows)
    return onnx_s, time.perf_counter() - started


def measure(work: Path, throughput_rows: int, large_rows: int, rounds: int) -> dict[str, Any]:
    log("Training the forest (benchmarks/serve.py)")
    forest = train_models(work, ("forest",))[0]
    log("Converting it to ONNX (the studio's verified conversion)")
    started = time.perf_counter()
    onnx_model, _ = as_onnx(load(forest.path, trust=True))
    conversion_s = time.perf_counter() - started
    script = work / "predict_script.py"
    script.write_text(SCRIPT)

    data = work / "data.csv"
    log(f"Writing {throughput_rows:,} rows")
    data_bytes = write_data(data, throughput_rows, forest.features)
    runs: list[dict[str, float]] = []
    for round_ in range(rounds):
        log(f"Round {round_ + 1}/{rounds}: slipway batch")
        slipway_s, slipway_cpu, slipway_peak = slipway_batch(
            onnx_model.model_file, data, work / "slipway.csv", work / "slipway.log")
        log(f"Round {round_ + 1}/{rounds}: the pandas + scikit-learn script")
        script_s, script_cpu, script_peak = script_batch(
            script, forest.path, data, work / "script.csv", work / "script.log")
        runs.append({"slipway_s": slipway_s, "script_s": script_s,
                     "slipway_cpu_s": slipway_cpu, "script_cpu_s": script_cpu,
                     "slipway_peak_mb": slipway_peak / 2**20,
                     "script_peak_mb": script_peak / 2**20})
        log(f"  Slipway {slipway_s:.1f} s, script {script_s:.1f} s "
            f"({script_s / slipway_s:.1f}x)")
    disagree, tied, gap = disagreements(work / "slipway.csv", work / "script.csv")
    log("The model alone, on the rows in memory")
    model_onnx_s, model_sklearn_s = model_alone(onnx_model.model_file, forest.path, data)
    data.unlink()

    memory = {}
    for rows in (SMALL_ROWS, large_rows):
        path = work / f"memory-{rows}.csv"
        log(f"Writing {rows:,} rows for the memory run")
        size = write_data(path, rows, forest.features, seed=1)
        runs_here = []
        for round_ in range(MEMORY_ROUNDS):
            log(f"slipway batch on {rows:,} rows ({size / 2**30:.2f} GiB), run {round_ + 1}")
            seconds, _, peak = slipway_batch(onnx_model.model_file, path,
                                             work / "memory-out.csv", work / f"memory-{rows}.log")
            runs_here.append((seconds, peak / 2**20))
            log(f"  peak {peak / 2**20:.0f} MiB in {seconds:.1f} s")
        memory[rows] = {"seconds": statistics.median(s for s, _ in runs_here),
                        "peak_mb": statistics.median(p for _, p in runs_here),
                        "peaks_mb": [p for _, p in runs_here], "file_bytes": size}
        path.unlink()
        (work / "memory-out.csv").unlink()

    slipway_s = statistics.median(r["slipway_s"] for r in runs)
    script_s = statistics.median(r["script_s"] for r in runs)
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "rows": throughput_rows,
        "data_bytes": data_bytes,
        "conversion_s": conversion_s,
        "runs": runs,
        "slipway_rows_per_minute": throughput_rows / slipway_s * 60,
        "script_rows_per_minute": throughput_rows / script_s * 60,
        "ratio": script_s / slipway_s,
        "ratios": [r["script_s"] / r["slipway_s"] for r in runs],
        "model_onnx_s": model_onnx_s,
        "model_sklearn_s": model_sklearn_s,
        "ceiling_ratio": script_s / model_onnx_s,
        "labels_disagree": disagree,
        "labels_disagree_tied": tied,
        "probability_gap": gap,
        "memory": {str(rows): value for rows, value in memory.items()},
        "memory_growth_mb": memory[large_rows]["peak_mb"] - memory[SMALL_ROWS]["peak_mb"],
        "large_rows": large_rows,
    }


def machine() -> str:
    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name")), cpu)
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, scikit-learn "
            f"{sklearn.__version__}, pandas {__import__('pandas').__version__}, ONNX Runtime "
            f"{onnxruntime.__version__}, pyarrow {pa.__version__}")


def verdicts(report: dict[str, Any]) -> list[str]:
    def line(ok: bool, text: str) -> str:
        return f"- {'met' if ok else '**not met**'}: {text}"

    small = report["memory"][str(SMALL_ROWS)]["peak_mb"]
    large = report["memory"][str(report["large_rows"])]["peak_mb"]
    return [
        line(report["slipway_rows_per_minute"] >= TARGET_ROWS_PER_MINUTE,
             f"at least {TARGET_ROWS_PER_MINUTE:,} rows per minute end to end "
             f"({report['slipway_rows_per_minute']:,.0f})"),
        line(report["ratio"] >= TARGET_RATIO,
             f"at least {TARGET_RATIO:.0f}x the pandas + scikit-learn script "
             f"({report['ratio']:.1f}x; rounds "
             f"{', '.join(f'{r:.1f}x' for r in report['ratios'])}; the forest alone allows "
             f"{report['ceiling_ratio']:.1f}x here)"),
        line(report["memory_growth_mb"] <= MEMORY_BUDGET_MB,
             f"peak memory on {report['large_rows']:,} rows within {MEMORY_BUDGET_MB} MB of the "
             f"peak on {SMALL_ROWS:,} rows ({large:.0f} MiB against {small:.0f} MiB)"),
    ]


def section(report: dict[str, Any]) -> str:
    rows = report["rows"]
    runs = report["runs"]
    memory = report["memory"]
    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    table = [
        "| | wall time (median) | CPU time (median) | rows per minute | peak memory |",
        "|---|---|---|---|---|",
        f"| (a) pandas + scikit-learn script | {median('script_s'):.1f} s | "
        f"{median('script_cpu_s'):.1f} s | {report['script_rows_per_minute']:,.0f} | "
        f"{max(r['script_peak_mb'] for r in runs):,.0f} MiB |",
        f"| (b) `slipway batch` (ONNX Runtime) | {median('slipway_s'):.1f} s | "
        f"{median('slipway_cpu_s'):.1f} s | **{report['slipway_rows_per_minute']:,.0f}** | "
        f"{max(r['slipway_peak_mb'] for r in runs):,.0f} MiB |",
    ]
    agreement = "the labels agree on every row" if not report["labels_disagree"] else (
        f"the labels differ on {report['labels_disagree']:,} of {rows:,} rows, "
        f"{report['labels_disagree_tied']:,} of them tied votes (50 trees each way on this "
        "random data, where the order in which the trees' votes are summed decides the class)")
    memory_table = ["| rows | file | time (median) | peak memory (median; each run) |",
                    "|---|---|---|---|"]
    for count, value in memory.items():
        each = ", ".join(f"{peak:.0f}" for peak in value["peaks_mb"])
        memory_table.append(f"| {int(count):,} | {value['file_bytes'] / 2**20:,.0f} MiB | "
                            f"{value['seconds']:.1f} s | {value['peak_mb']:.0f} MiB ({each}) |")
    return "\n".join([
        f"<!-- {SECTION}:start -->",
        "## Batch predictions: `slipway batch` against a pandas + scikit-learn script",
        "",
        "```sh",
        COMMAND,
        "```",
        "",
        f"Measured {report['date']} on {report['machine']}. The serving benchmark's forest "
        "(100 trees, 20 features), converted once to ONNX by the studio's verified conversion "
        f"({report['conversion_s']:.0f} s, not counted below). A CSV file of {rows:,} rows "
        f"({report['data_bytes'] / 2**20:,.0f} MiB), 20 columns of random values with six "
        "decimals. Each side is one process from the shell, timed from start to the predictions "
        "file written (the input columns, the label, a probability per class), in "
        f"{len(runs)} alternating rounds. (a) is `pandas.read_csv`, `predict`, `predict_proba`, "
        "`to_csv` on the joblib model (SCRIPT in benchmarks/batch.py); (b) streams the file in "
        f"chunks of {DEFAULT_CHUNK_SIZE:,} rows through ONNX Runtime, with its defaults: the "
        "model on every core (each chunk split into a slice per core), the next chunk read and "
        "checked on a thread of its own meanwhile, the last written on another. The CPU time is "
        "the process's, all threads.",
        "",
        *table,
        "",
        f"Ratio (b)/(a), wall time: **{report['ratio']:.1f}×** (rounds: "
        f"{', '.join(f'{r:.1f}×' for r in report['ratios'])}); CPU time: "
        f"{median('script_cpu_s') / median('slipway_cpu_s'):.1f}×. The probabilities agree within "
        f"{report['probability_gap']:.1g}; {agreement}.",
        "",
        "What bounds the ratio is the model. The forest alone, on the same rows already in "
        f"memory, takes {report['model_onnx_s']:.1f} s in ONNX Runtime on every core as (b) "
        f"runs it, and {report['model_sklearn_s']:.1f} s in scikit-learn's `predict_proba` on "
        "one: the script's time over the first is the most any tool running this forest could "
        f"reach on this machine, **{report['ceiling_ratio']:.1f}×**, before reading a byte or "
        "writing one. (b) saves the script's second pass through the forest (`predict`, then "
        "`predict_proba`), pandas' parsing and `to_csv`'s number formatting, and overlaps "
        "reading and writing with predicting; it cannot make the trees cheaper. The script runs "
        "on one core and (b) on all of them, so the ratio grows with the cores.",
        "",
        "### Memory: a small file and a very large one",
        "",
        *memory_table,
        "",
        f"Peak resident memory of `slipway batch` (its own process, VmHWM; the median of "
        f"{MEMORY_ROUNDS} runs) grows by "
        f"**{report['memory_growth_mb']:.0f} MiB** from {SMALL_ROWS:,} rows to "
        f"{report['large_rows']:,}: memory follows the chunk size, not the file. The script "
        "(a) holds the whole file, and its frame, in memory.",
        "",
        "### Targets",
        "",
        *verdicts(report),
        f"<!-- {SECTION}:end -->",
    ])


def write_doc(text: str) -> None:
    current = DOC.read_text()
    pattern = re.compile(rf"<!-- {SECTION}:start -->.*?<!-- {SECTION}:end -->", re.S)
    if pattern.search(current):
        DOC.write_text(pattern.sub(lambda _: text, current))
    else:
        DOC.write_text(current.rstrip() + "\n\n" + text + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true",
                        help="update the batch section of docs/benchmarks.md")
    parser.add_argument("--rows", type=int, default=THROUGHPUT_ROWS,
                        help=f"rows of the throughput file (default {THROUGHPUT_ROWS:,})")
    parser.add_argument("--large-rows", type=int, default=LARGE_ROWS,
                        help=f"rows of the large memory file (default {LARGE_ROWS:,})")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slipway-batch-bench-") as folder:
        report = measure(Path(folder), args.rows, args.large_rows, args.rounds)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{SECTION}-{report['date']}.json"
    out.write_text(json.dumps(report, indent=2))
    text = section(report)
    print(text)
    log(f"Raw results in {out.relative_to(ROOT)}")
    if args.write:
        write_doc(text)
        log(f"Updated the {SECTION} section of {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
