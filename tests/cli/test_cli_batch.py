"""`slipway batch` as a script runs it: a real process over real files, its exit status, its
summary (text and JSON), the rejected rows on stderr and in the rejects file, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

from studio.ui.app import DEMO_MODEL, DEMO_REFERENCE


def slipway(*args, timeout=240) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "studio.cli", *map(str, args)], check=False,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def wine_with_a_bad_row(tmp_path):
    """The demo's rows as CSV with the value 'twelve' on line 6."""
    lines = DEMO_REFERENCE.read_text().splitlines()
    fields = lines[5].split(",")
    fields[0] = "twelve"
    lines[5] = ",".join(fields)
    path = tmp_path / "wine.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_batch_writes_parquet_and_reports_the_rejected_line(tmp_path, wine_with_a_bad_row):
    output = tmp_path / "predicted.parquet"

    done = slipway("batch", DEMO_MODEL, wine_with_a_bad_row, "-o", output, "--chunk-size", "50",
                   "--json")

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rows_read"], summary["rows_predicted"], summary["rows_rejected"]) == \
        (178, 177, 1)
    assert summary["first_rejects"] == [{"line": 6,
                                         "reason": "alcohol: 'twelve' is not a number"}]
    assert "rejected line 6: alcohol: 'twelve' is not a number" in done.stderr
    assert pq.read_metadata(output).num_rows == 177
    rejects = pd.read_csv(tmp_path / "predicted.rejects.csv")
    assert rejects["line"].tolist() == [6] and rejects["alcohol"].tolist() == ["twelve"]


def test_batch_with_bad_rows_fatal_exits_2_and_writes_nothing(tmp_path, wine_with_a_bad_row):
    output = tmp_path / "predicted.csv"

    done = slipway("batch", DEMO_MODEL, wine_with_a_bad_row, "-o", output,
                   "--on-bad-rows", "fail")

    assert done.returncode == 2
    assert "Line 6 of 'wine.csv' does not fit the model" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wine.csv"]


def test_batch_prints_the_summary_for_a_person(tmp_path):
    done = slipway("batch", DEMO_MODEL, DEMO_REFERENCE, "-o", tmp_path / "out.csv")

    assert done.returncode == 0, done.stderr
    assert "rows read           178" in done.stdout
    assert f"predicted           178  -> {tmp_path / 'out.csv'}" in done.stdout
    assert len(pd.read_csv(tmp_path / "out.csv")) == 178


def test_ctrl_c_stops_the_run_with_130_and_leaves_no_output(tmp_path):
    # 890,000 rows: many seconds of work at any speed, so the signal comes mid-run, however long
    # the first progress line took to appear.
    header, *rows = DEMO_REFERENCE.read_text().splitlines()
    data = tmp_path / "big.csv"
    data.write_text(header + "\n" + ("\n".join(rows) + "\n") * 5000)
    output = tmp_path / "out.csv"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    process = subprocess.Popen(
        [sys.executable, "-m", "studio.cli", "batch", str(DEMO_MODEL), str(data), "-o",
         str(output), "--chunk-size", "100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in process.stderr:  # the first progress line: rows are being predicted
        if "rows read" in line:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]
