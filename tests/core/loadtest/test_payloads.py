"""Request bodies for load tests, checked against the real Slipway server: the demo wine model
deployed with the process runtime (its schema as the studio writes it), a mixed-type churn model
(strings, an integer and a float, one input tensor per column) and a plain tensor model, both
served in this process by uvicorn. A body pool is good when the load tester can send every body in
it and the server answers every one with 200.
"""

from __future__ import annotations

import json
import math

import numpy as np
import orjson
import pandas as pd
import pytest
from served_models import DEMO_MODEL, WINE_REFERENCE, assert_all_accepted

from studio.core.loadtest.payloads import (
    MAX_REFERENCE_ROWS,
    RANDOM_ROWS,
    Drift,
    PayloadError,
    apply_drift,
    bodies_for,
    fixed_body,
    parse_drift,
    row_bodies,
    rows_from_reference,
    rows_from_schema,
    tensor_bodies,
)
from studio.core.model.artifact import load
from studio.core.model.schema import ModelSchema

pytestmark = pytest.mark.timeout(120)

# --- drift -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "drift"), [
    ("petal_length=+2sd", Drift("petal_length", shift_sd=2.0)),
    ("petal_length=-0.5sd", Drift("petal_length", shift_sd=-0.5)),
    ("age=-0.5", Drift("age", shift=-0.5)),
    ("age=+5", Drift("age", shift=5.0)),
    ("income=*1.5", Drift("income", scale=1.5)),
    ("income=x1.5", Drift("income", scale=1.5)),
    ("  tax=x2  ", Drift("tax", scale=2.0)),
    ("rate=+1e-3", Drift("rate", shift=0.001)),
])
def test_parse_drift_reads_shifts_and_scales(text, drift):
    assert parse_drift(text) == drift


@pytest.mark.parametrize("text", [
    "petal_length", "petal_length=2", "petal_length=+", "petal_length=+abc",
    "petal_length=+1.2.3", "petal_length=*2sd", "petal_length=/2", "=+2", "",
])
def test_parse_drift_refuses_what_is_not_a_drift(text):
    with pytest.raises(PayloadError) as caught:
        parse_drift(text)
    assert f"'{text}'" in caught.value.message


def test_drifts_describe_themselves():
    assert Drift("alcohol", shift_sd=2.0).describe() == "alcohol +2 sd"
    assert Drift("ash", shift=-0.5).describe() == "ash -0.5"
    assert Drift("magnesium", scale=1.5).describe() == "magnesium ×1.5"
    assert Drift("hue").describe() == "hue unchanged"


@pytest.fixture(scope="module")
def wine_schema() -> ModelSchema:
    return load(DEMO_MODEL).schema


@pytest.fixture(scope="module")
def wine_rows(wine_schema) -> pd.DataFrame:
    return rows_from_reference(WINE_REFERENCE, wine_schema)


def test_a_shift_in_sd_moves_only_that_feature_by_its_own_sd(wine_rows, wine_schema):
    before = wine_rows.copy()
    drifted = apply_drift(wine_rows, [parse_drift("alcohol=+2sd")], wine_schema)
    sd = float(np.std(wine_rows["alcohol"]))
    assert sd > 0.5  # the column's own deviation (about 0.81), not 1.0 nor the schema's spread
    assert drifted["alcohol"].mean() - wine_rows["alcohol"].mean() == pytest.approx(2 * sd)
    assert float(np.std(drifted["alcohol"])) == pytest.approx(sd)
    others = [c for c in wine_rows.columns if c != "alcohol"]
    pd.testing.assert_frame_equal(drifted[others], wine_rows[others])
    pd.testing.assert_frame_equal(wine_rows, before)  # the input frame is left alone


def test_scales_and_plain_shifts_combine(wine_rows, wine_schema):
    drifted = apply_drift(wine_rows, [parse_drift("magnesium=x1.5"), parse_drift("ash=-0.5")],
                          wine_schema)
    np.testing.assert_allclose(drifted["magnesium"], wine_rows["magnesium"] * 1.5)
    np.testing.assert_allclose(drifted["ash"], wine_rows["ash"] - 0.5)
    np.testing.assert_array_equal(drifted["hue"], wine_rows["hue"])


def test_no_drift_gives_the_rows_back(wine_rows, wine_schema):
    assert apply_drift(wine_rows, [], wine_schema) is wine_rows


def test_an_integer_feature_stays_whole_when_drifted(churn_server):
    rows = rows_from_schema(churn_server.schema, count=50)
    drifted = apply_drift(rows, [parse_drift("age=+0.37sd")], churn_server.schema)
    assert (drifted["age"] != rows["age"]).any()
    assert np.all(np.asarray(drifted["age"], dtype=float) % 1 == 0)


def test_drift_of_an_unknown_feature_names_it_and_the_known_ones(wine_rows, wine_schema):
    with pytest.raises(PayloadError) as caught:
        apply_drift(wine_rows, [parse_drift("petal_length=+2sd")], wine_schema)
    assert "petal_length" in caught.value.message
    assert "alcohol" in caught.value.hint


def test_drift_of_a_categorical_feature_is_refused_by_name(churn_server):
    rows = rows_from_schema(churn_server.schema, count=10)
    with pytest.raises(PayloadError) as caught:
        apply_drift(rows, [parse_drift("plan=+1sd")], churn_server.schema)
    assert "'plan'" in caught.value.message and "categorical" in caught.value.message


# --- bodies the real server accepts --------------------------------------------------------------

@pytest.mark.parametrize("route", ["/predict", "/predict/batch", "/v2/models/wine_classifier/infer"])
def test_reference_and_random_rows_are_bodies_the_server_accepts(wine_server, wine_rows, route):
    reference = row_bodies(wine_rows, wine_server.schema, route)
    assert len(reference) == len(wine_rows) == 178
    schema = wine_server.schema
    random_rows = row_bodies(rows_from_schema(schema, count=100), schema, route)
    assert_all_accepted(wine_server.url, route, reference + random_rows)


def test_a_predict_body_carries_the_row_it_was_made_from(wine_server, wine_rows):
    import httpx

    bodies = row_bodies(wine_rows.iloc[:1], wine_server.schema, "/predict")
    sent = orjson.loads(bodies[0])["features"]
    assert list(sent) == [f.name for f in wine_server.schema.features]
    assert sent == pytest.approx(wine_rows.iloc[0].to_dict())
    answer = httpx.post(wine_server.url + "/predict", content=bodies[0],
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    assert answer.json()["label"] == "class_0"  # the first wine of the dataset is cultivar 0


def test_drifted_rows_are_bodies_the_server_accepts(wine_server):
    bodies, label = bodies_for(wine_server.schema, "/predict", "reference", WINE_REFERENCE,
                               [parse_drift("proline=+2sd"), parse_drift("hue=x0.8")])
    assert label == "rows of wine_reference.csv, drifted: proline +2 sd; hue ×0.8"
    assert_all_accepted(wine_server.url, "/predict", bodies)


@pytest.mark.parametrize("route", [
    "/predict",
    "/predict/batch",
    "/v2/models/churn/infer",
])
def test_mixed_type_rows_are_bodies_the_server_accepts(churn_server, route):
    bodies, label = bodies_for(churn_server.schema, route, "random")
    assert len(bodies) == RANDOM_ROWS and label == "random valid rows from the schema"
    assert_all_accepted(churn_server.url, route, bodies)


def test_mixed_type_v2_bodies_have_one_tensor_per_column(churn_server):
    schema = churn_server.schema
    body = orjson.loads(row_bodies(rows_from_schema(schema, count=1), schema,
                                   churn_server.v2_route)[0])
    inputs = {tensor["name"]: tensor for tensor in body["inputs"]}
    assert list(inputs) == ["plan", "age", "monthly_spend"]
    assert [inputs[n]["datatype"] for n in inputs] == ["BYTES", "INT64", "FP32"]
    assert all(t["shape"] == [1, 1] and len(t["data"]) == 1 for t in inputs.values())
    assert inputs["plan"]["data"][0] in ("basic", "plus", "pro")


def test_random_tensors_are_bodies_the_server_accepts(relu_server):
    bodies, label = bodies_for(relu_server.schema, relu_server.v2_route, "random")
    assert label == "random tensors of the input shapes"
    assert len(bodies) == 64 and len(set(bodies)) == 64
    first = orjson.loads(bodies[0])["inputs"][0]
    assert first["shape"] == [1, 3, 4, 4] and first["datatype"] == "FP32"
    assert len(first["data"]) == 48
    assert tensor_bodies(relu_server.schema, count=3, seed=5) == tensor_bodies(
        relu_server.schema, count=3, seed=5)
    assert_all_accepted(relu_server.url, relu_server.v2_route, bodies)


def test_a_tensor_model_gets_its_sample_and_refuses_rows_and_drift(relu_server):
    bodies, label = bodies_for(relu_server.schema, relu_server.v2_route, "sample")
    assert label == "the model's sample request"
    assert orjson.loads(bodies[0]) == relu_server.schema.with_samples().samples.v2
    assert_all_accepted(relu_server.url, relu_server.v2_route, bodies)
    with pytest.raises(PayloadError, match="/v2/models/relu/infer"):
        bodies_for(relu_server.schema, "/predict", "random")
    with pytest.raises(PayloadError, match="[Dd]rift"):
        bodies_for(relu_server.schema, relu_server.v2_route, "random",
                   drifts=[parse_drift("x=+1sd")])
    with pytest.raises(PayloadError, match="tensors"):
        rows_from_schema(relu_server.schema)


# --- the body pool -----------------------------------------------------------------------------

@pytest.mark.parametrize(("route", "form"), [
    ("/predict", "rest"), ("/predict/batch", "rest_batch"),
    ("/v2/models/wine_classifier/infer", "v2"),
])
def test_the_sample_source_is_the_models_own_sample_request(wine_schema, route, form):
    bodies, label = bodies_for(wine_schema, route, "sample")
    assert label == "the model's sample request"
    assert [orjson.loads(b) for b in bodies] == [getattr(wine_schema.with_samples().samples, form)]


def test_a_drifted_sample_moves_by_the_features_spread(wine_schema):
    """One row has no deviation of its own: the schema's spread stands in for it."""
    bodies, label = bodies_for(wine_schema, "/predict", "sample",
                               drifts=[parse_drift("alcohol=+2sd")])
    alcohol = next(f for f in wine_schema.features if f.name == "alcohol")
    sent = orjson.loads(bodies[0])["features"]
    assert sent["alcohol"] == pytest.approx(alcohol.example + 2 * alcohol.spread)
    assert label.endswith("drifted: alcohol +2 sd")


def test_random_rows_are_many_distinct_and_reproducible(wine_schema):
    bodies, _ = bodies_for(wine_schema, "/predict", "random", seed=1)
    assert len(bodies) == RANDOM_ROWS == len(set(bodies))
    assert bodies_for(wine_schema, "/predict", "random", seed=1)[0] == bodies
    assert bodies_for(wine_schema, "/predict", "random", seed=2)[0] != bodies


def test_reference_rows_are_capped(tmp_path, wine_schema):
    names = [f.name for f in wine_schema.features]
    rows = MAX_REFERENCE_ROWS + 50
    frame = pd.DataFrame(np.random.default_rng(0).normal(5, 1, (rows, len(names))), columns=names)
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    assert len(rows_from_reference(path, wine_schema)) == MAX_REFERENCE_ROWS


def test_missing_values_in_reference_rows_are_refused(tmp_path, wine_schema):
    text = WINE_REFERENCE.read_text().splitlines()
    cells = text[5].split(",")
    cells[2] = ""  # ash of the fifth wine is missing
    text[5] = ",".join(cells)
    path = tmp_path / "holes.csv"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(PayloadError, match="NaN"):
        bodies_for(wine_schema, "/predict", "reference", path)


def test_the_pool_needs_a_known_source_route_and_dataset(wine_schema):
    with pytest.raises(PayloadError, match="dataset"):
        bodies_for(wine_schema, "/predict", "reference")
    with pytest.raises(PayloadError, match="not a payload source"):
        bodies_for(wine_schema, "/predict", "replay")
    with pytest.raises(PayloadError, match="/score"):
        bodies_for(wine_schema, "/score", "random")


# --- payload files -------------------------------------------------------------------------------

def test_a_json_file_is_one_body(tmp_path):
    body = {"features": {"alcohol": 13.2, "hue": 1.04}, "id": "a"}
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body, indent=2))  # several lines, still one document
    bodies = fixed_body(path)
    assert len(bodies) == 1 and json.loads(bodies[0]) == body


def test_a_json_lines_file_is_one_body_per_line_in_order(tmp_path):
    path = tmp_path / "bodies.jsonl"
    path.write_bytes(b'{"features": [1, 2]}\r\n\r\n{"features": [3, 4]}\n  \n{"features": [5, 6]}')
    assert [json.loads(b) for b in fixed_body(path)] == [
        {"features": [1, 2]}, {"features": [3, 4]}, {"features": [5, 6]}]


@pytest.mark.parametrize(("content", "words"), [
    (b"", "empty"),
    (b"  \n\n \t\n", "empty"),
    (b"features=1,2,3\n", "neither JSON nor JSON Lines"),
    (b'{"features": [1, 2]}\n{"features": [3,\n', "neither JSON nor JSON Lines"),
    (b"\x00\xff\xfe garbage", "neither JSON nor JSON Lines"),
])
def test_a_payload_file_that_holds_no_body_is_refused(tmp_path, content, words):
    path = tmp_path / "payload.json"
    path.write_bytes(content)
    with pytest.raises(PayloadError) as caught:
        fixed_body(path)
    assert words in caught.value.message and "payload.json" in caught.value.message


def test_a_missing_payload_file_is_refused(tmp_path):
    with pytest.raises(PayloadError, match="Cannot read the payload file"):
        fixed_body(tmp_path / "nowhere.json")
    with pytest.raises(PayloadError, match="Cannot read the payload file"):
        fixed_body(tmp_path)  # a folder


def test_a_json_body_is_sent_as_it_is(tmp_path):
    path = tmp_path / "body.json"
    path.write_text('{"account": 123456789012345678901234567890, "features": [1.5, 2]}')
    assert json.loads(fixed_body(path)[0]) == json.loads(path.read_text())


def test_nan_is_never_rendered_into_a_body(wine_schema):
    frame = rows_from_schema(wine_schema, count=3)
    frame.loc[1, "hue"] = math.inf
    with pytest.raises(PayloadError, match="NaN or infinity"):
        row_bodies(frame, wine_schema, "/predict")
