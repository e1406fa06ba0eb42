"""run_batch on real files: the demo wine classifier (ONNX) over its own rows written as CSV and
Parquet, and a scikit-learn pipeline (converted on the way) over a file with bad rows in it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from studio.core.batch.options import BatchError, BatchOptions, rejects_path
from studio.core.batch.rows import BadRowError
from studio.core.batch.run import BatchProgress, run_batch
from studio.core.errors import Cancelled
from studio.core.model.artifact import load
from studio.core.tasks import Progress
from studio.ui.app import DEMO_MODEL, DEMO_REFERENCE

CLASSES = ["class_0", "class_1", "class_2"]


@pytest.fixture(scope="module")
def demo():
    return load(DEMO_MODEL)


@pytest.fixture(scope="module")
def wine_rows() -> pd.DataFrame:
    """The demo's 178 rows, repeated to 1,780 so that small chunks make many of them."""
    rows = pd.read_csv(DEMO_REFERENCE)
    return pd.concat([rows] * 10, ignore_index=True)


def expected_predictions(frame: pd.DataFrame, features: list[str]) -> tuple[list[str], np.ndarray]:
    """What ONNX Runtime answers for the rows, called directly on the whole matrix."""
    session = ort.InferenceSession(str(DEMO_MODEL), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(
        ["label", "probabilities"], {"input": frame[features].to_numpy(np.float32)})
    return [CLASSES[i] if not isinstance(i, str) else i for i in labels], probabilities


def feature_names(model) -> list[str]:
    return [f.name for f in model.schema.features]


def read_any(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("data_name, output_name", [
    ("wine.csv", "predicted.csv"), ("wine.csv", "predicted.parquet"),
    ("wine.parquet", "predicted.csv"), ("wine.parquet", "predicted.parquet")])
def test_every_row_gets_its_prediction_beside_its_input_columns(
        tmp_path, demo, wine_rows, data_name, output_name):
    data = tmp_path / data_name
    if data.suffix == ".csv":
        wine_rows.to_csv(data, index=False)
    else:
        wine_rows.to_parquet(data, index=False, row_group_size=500)
    output = tmp_path / output_name

    summary = run_batch(demo, data, output, BatchOptions(chunk_size=256))

    written = read_any(output)
    labels, probabilities = expected_predictions(wine_rows, feature_names(demo))
    assert list(written.columns) == [*wine_rows.columns, "label",
                                     *(f"probability_{c}" for c in CLASSES)]
    assert summary.rows_read == summary.rows_predicted == len(wine_rows) == len(written)
    assert summary.rows_rejected == 0
    np.testing.assert_allclose(written[wine_rows.columns].to_numpy(float),
                               wine_rows.to_numpy(float))
    assert written["label"].tolist() == labels
    np.testing.assert_allclose(written[[f"probability_{c}" for c in CLASSES]].to_numpy(),
                               probabilities, rtol=1e-6, atol=1e-7)


def test_a_column_named_like_an_output_is_kept_and_the_output_renamed(tmp_path, demo, wine_rows):
    data = tmp_path / "wine.csv"
    wine_rows.assign(label="from the lab").to_csv(data, index=False)

    run_batch(demo, data, tmp_path / "out.csv")

    written = pd.read_csv(tmp_path / "out.csv")
    assert (written["label"] == "from the lab").all()
    assert set(written["predicted_label"]) <= set(CLASSES)


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def csv_with_bad_rows(tmp_path, wine_rows) -> tuple[Path, dict[int, str]]:
    """61 rows, 4 of them bad, a note with line breaks inside its quotes pushing
    every later line down, and where each bad row sits in the file (line -> what is wrong)."""
    header = ",".join([*wine_rows.columns, "note"])
    good = [",".join(str(v) for v in row) + ",ok" for row in wine_rows.head(60).to_numpy()]
    lines = [header] + good[:10]
    lines.append(good[10].removesuffix(",ok") + ',"two\nlines"')        # lines 12-13
    bad: dict[int, str] = {}
    lines += good[11:20]                                                 # lines 14-22
    fields = good[20].split(",")
    fields[1] = "lots"                                                   # malic_acid
    lines.append(",".join(fields))
    bad[23] = "malic_acid: 'lots' is not a number"
    lines += good[21:30]                                                 # lines 24-32
    lines.append(good[30] + ",extra")
    bad[33] = "fields where the header has"
    lines += good[31:40]                                                 # lines 34-42
    fields = good[40].split(",")
    fields[12] = ""                                                      # proline
    lines.append(",".join(fields))
    bad[43] = "proline is missing"
    lines += good[41:60]                                                 # lines 44-62
    lines.append("1.0,2.0")
    bad[63] = "fields where the header has"
    path = tmp_path / "wine_with_bad_rows.csv"
    write_lines(path, lines)
    return path, bad


def test_bad_rows_are_set_aside_with_their_lines_and_every_other_row_is_predicted(
        tmp_path, demo, csv_with_bad_rows):
    data, bad = csv_with_bad_rows
    output = tmp_path / "out.csv"
    seen: list[BatchProgress] = []

    summary = run_batch(demo, data, output, BatchOptions(chunk_size=7),
                        progress=Progress(on_partial=seen.append))

    rejects = list(csv.DictReader(rejects_path(output).open(encoding="utf-8")))
    assert [int(r["line"]) for r in rejects] == sorted(bad)
    for reject in rejects:
        assert bad[int(reject["line"])] in reject["reason"]
    assert rejects[0]["malic_acid"] == "lots"
    written = pd.read_csv(output)
    assert len(written) == 57 == summary.rows_predicted
    assert summary.rows_read == 61 == summary.rows_predicted + summary.rows_rejected
    assert written["note"].iloc[10] == "two\nlines"
    assert [r.position for r in summary.first_rejects] == sorted(bad)
    assert sorted(r.position for p in seen for r in p.new_rejects) == sorted(bad)


def test_with_bad_rows_fatal_the_first_stops_the_run_and_nothing_is_written(
        tmp_path, demo, csv_with_bad_rows):
    data, bad = csv_with_bad_rows
    output = tmp_path / "out.csv"
    output.write_text("yesterday's predictions\n")

    with pytest.raises(BadRowError) as raised:
        run_batch(demo, data, output, BatchOptions(chunk_size=7, on_bad_rows="fail"))

    assert "Line 23 " in raised.value.message and "'lots'" in raised.value.message
    assert output.read_text() == "yesterday's predictions\n"
    assert files_in(tmp_path) == sorted([data.name, output.name])


def test_bad_rows_of_a_parquet_file_are_named_by_their_row(tmp_path, demo, wine_rows):
    frame = wine_rows.head(100).copy()
    frame["alcohol"] = frame["alcohol"].astype(object)
    frame.loc[41, "alcohol"] = None
    frame.loc[76, "alcohol"] = "n/a"
    frame["alcohol"] = frame["alcohol"].astype(str).where(frame["alcohol"].notna(), None)
    data = tmp_path / "wine.parquet"
    frame.to_parquet(data, index=False)

    summary = run_batch(demo, data, tmp_path / "out.parquet", BatchOptions(chunk_size=30))

    rejects = pd.read_csv(rejects_path(tmp_path / "out.parquet"))
    assert rejects["row"].tolist() == [42, 77]
    assert all("alcohol is missing" in r for r in rejects["reason"])
    assert pq.read_metadata(tmp_path / "out.parquet").num_rows == 98 == summary.rows_predicted
    assert pq.read_schema(tmp_path / "out.parquet").field("alcohol").type == pa.float64()


def test_a_cancelled_run_leaves_the_output_as_it_was(tmp_path, demo, wine_rows):
    data = tmp_path / "wine.csv"
    pd.concat([wine_rows] * 10).to_csv(data, index=False)
    output = tmp_path / "out.parquet"
    output.write_bytes(b"the previous run")
    seen: list[BatchProgress] = []

    def cancel_on_first(snapshot: BatchProgress) -> None:
        seen.append(snapshot)
        progress.cancel()

    progress = Progress(on_partial=cancel_on_first)
    with pytest.raises(Cancelled):
        run_batch(demo, data, output, BatchOptions(chunk_size=10), progress=progress)

    assert 0 < seen[0].rows_read < 17_800
    assert output.read_bytes() == b"the previous run"
    assert files_in(tmp_path) == sorted([data.name, output.name])


def test_a_file_without_the_models_columns_is_refused_before_anything_is_written(tmp_path, demo):
    data = tmp_path / "other.csv"
    write_lines(data, ["a,b", "1,2"])

    with pytest.raises(BatchError) as raised:
        run_batch(demo, data, tmp_path / "out.csv")

    assert "no column for 13 of the model's 13 features" in raised.value.message
    assert files_in(tmp_path) == ["other.csv"]


def test_a_scikit_learn_model_is_converted_and_answers_as_it_does_for_the_rows_that_fit(
        tmp_path, sklearn_models):
    trained = sklearn_models["mixed_pipeline"]  # its one-hot encoder ignores unknown categories
    model = load(trained.path, trust=True)
    frame = trained.X.head(50).astype({"plan": object, "age": object})
    frame.loc[7, "plan"] = "a plan never seen"
    frame.loc[12, "age"] = "forty"
    data = tmp_path / "customers.csv"
    frame.to_csv(data, index=False)

    summary = run_batch(model, data, tmp_path / "out.csv")

    written = pd.read_csv(tmp_path / "out.csv")
    assert summary.converted
    assert [r.position for r in summary.first_rejects] == [14]
    assert summary.first_rejects[0].reason == "age: 'forty' is not a number"
    kept = frame.drop(index=12).astype({"age": float})
    assert written["label"].tolist() == trained.estimator.predict(kept).tolist()


def test_a_row_the_model_answers_with_nan_is_set_aside_not_written(tmp_path, demo, wine_rows):
    frame = wine_rows.head(40).astype({"alcohol": object})
    frame.loc[25, "alcohol"] = "inf"
    data = tmp_path / "wine.csv"
    frame.to_csv(data, index=False)

    summary = run_batch(demo, data, tmp_path / "out.csv", BatchOptions(chunk_size=16))

    assert [(r.position, r.reason) for r in summary.first_rejects] == \
        [(27, "the model gave no number for it (NaN)")]
    written = pd.read_csv(tmp_path / "out.csv")
    assert len(written) == 39 and not written.isna().any().any()


def test_the_predictions_do_not_depend_on_the_number_of_threads(tmp_path):
    """A forest of 20 fully grown trees on random labels ties its vote on many rows, and which
    class a tie gets depends on the order the votes are summed in: a run on three threads must
    write, byte for byte, what a run on one writes."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    train = rng.standard_normal((2000, 5)).astype(np.float32)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(
        train, rng.integers(0, 2, 2000))
    model_file = tmp_path / "forest.onnx"
    model_file.write_bytes(to_onnx(forest, train[:1], options={"zipmap": False})
                           .SerializeToString())
    data = tmp_path / "rows.csv"
    pd.DataFrame(rng.standard_normal((20_000, 5)).round(6),
                 columns=[f"x{i}" for i in range(5)]).to_csv(data, index=False)
    model = load(model_file)

    one = run_batch(model, data, tmp_path / "one.csv", BatchOptions(chunk_size=8192, threads=1))
    three = run_batch(model, data, tmp_path / "three.csv",
                      BatchOptions(chunk_size=8192, threads=3))

    assert (one.threads, three.threads) == (1, 3)
    written = pd.read_csv(tmp_path / "one.csv")
    tied = np.isclose(written["probability_0"], written["probability_1"])
    assert tied.sum() > 1000, "the forest tied too rarely to show anything"
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "three.csv").read_bytes()
