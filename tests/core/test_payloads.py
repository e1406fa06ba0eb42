"""Request bodies for load tests, checked against the real Slipway server: the demo wine model
deployed with the process runtime (its schema as the studio writes it), a mixed-type churn model
(strings, an integer and a float, one input tensor per column) and a plain tensor model, both
served in this process by uvicorn. A body pool is good when the load tester can send every body in
it and the server answers every one with 200.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from load_servers import Answer, AsgiServer, HttpServer, Request, refused_address

from studio.core.artifacts import load
from studio.core.client import ServerUnreachable
from studio.core.errors import StudioError
from studio.core.loadtest import LoadPlan, run
from studio.core.payloads import (
    MAX_REFERENCE_ROWS,
    RANDOM_ROWS,
    Drift,
    PayloadError,
    apply_drift,
    bodies_for,
    fetch_schema,
    fixed_body,
    for_server,
    parse_drift,
    row_bodies,
    rows_from_reference,
    rows_from_schema,
    tensor_bodies,
)
from studio.core.schema import ModelSchema

pytestmark = pytest.mark.timeout(120)

DEMO_DIR = Path(__file__).resolve().parents[2] / "resources" / "demo"
DEMO_MODEL = DEMO_DIR / "wine_classifier.onnx"
WINE_REFERENCE = DEMO_DIR / "wine_reference.csv"
SERVING_TESTS = Path(__file__).resolve().parents[1] / "serving"


def _server_helpers():
    """tests/serving/server_helpers: serving.json as the bundler writes it (and the server package
    on sys.path)."""
    if str(SERVING_TESTS) not in sys.path:
        sys.path.insert(0, str(SERVING_TESTS))
    import server_helpers

    return server_helpers


@dataclass(frozen=True)
class Served:
    url: str
    schema: ModelSchema
    """The schema the server was configured with."""

    @property
    def v2_route(self) -> str:
        return f"/v2/models/{self.schema.name}/infer"


def _serve_in_process(path: Path, schema: dict) -> AsgiServer:
    helpers = _server_helpers()
    from slipway_server import create_app, settings_from_dict

    config = helpers.bundler_config(path, schema, schema["name"])
    app = create_app(settings_from_dict(config, path.parent))
    return AsgiServer(app, app.wait_ready)


def _metadata(path: Path) -> dict:
    return {"format": "onnx", "path": str(path), "file_size": path.stat().st_size,
            "sha256": _server_helpers().sha256(path)}


@pytest.fixture(scope="module")
def wine_server() -> Iterator[Served]:
    """The demo model, bundled and run by the studio's process runtime."""
    from studio.core.deploy import DeployOptions, deploy

    artifact = load(DEMO_MODEL)
    deployment = deploy(artifact, DeployOptions(runtime="process"))
    try:
        yield Served(deployment.url, artifact.schema)
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def churn_server(tmp_path_factory) -> Iterator[Served]:
    """plan (string category), age (int64) and monthly_spend (float32), each its own [N, 1] input,
    through a ColumnTransformer pipeline converted by skl2onnx."""
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(7)
    n = 300
    X = pd.DataFrame({"plan": rng.choice(["basic", "plus", "pro"], n),
                      "age": rng.integers(18, 80, n),
                      "monthly_spend": rng.gamma(2.0, 30.0, n).astype(np.float32)})
    y = np.where(X["monthly_spend"] / 30 + (X["plan"] == "basic") - (X["age"] - 50) / 40 > 2.0,
                 "churn", "stay")
    prep = ColumnTransformer([("categories", OneHotEncoder(handle_unknown="error"), ["plan"]),
                              ("numbers", StandardScaler(), ["age", "monthly_spend"])])
    pipeline = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=1000))]).fit(X, y)
    types = [("plan", StringTensorType([None, 1])), ("age", Int64TensorType([None, 1])),
             ("monthly_spend", FloatTensorType([None, 1]))]
    model = convert_sklearn(pipeline, initial_types=types,
                            options={id(pipeline.steps[-1][1]): {"zipmap": False}},
                            target_opset={"": 17, "ai.onnx.ml": 3})
    path = tmp_path_factory.mktemp("churn") / "churn.onnx"
    onnx.save_model(model, path)
    features = [
        {"name": "plan", "kind": "categorical", "dtype": "string",
         "categories": ["basic", "plus", "pro"], "example": "plus", "tensor": "plan"},
        {"name": "age", "kind": "numeric", "dtype": "int64", "example": 42, "spread": 15.0,
         "tensor": "age"},
        {"name": "monthly_spend", "kind": "numeric", "dtype": "float32", "example": 55.5,
         "spread": 40.0, "tensor": "monthly_spend"},
    ]
    schema = {
        "name": "churn", "task": "classification",
        "inputs": [{"name": f["name"], "dtype": f["dtype"], "shape": ["N", 1]} for f in features],
        "features": features,
        "outputs": [{"name": "label", "role": "label", "dtype": "string", "shape": ["N"]},
                    {"name": "probabilities", "role": "probabilities", "dtype": "float32",
                     "shape": ["N", 2]}],
        "class_names": ["churn", "stay"], "metadata": _metadata(path),
    }
    with _serve_in_process(path, schema) as server:
        yield Served(server.url, ModelSchema.model_validate(schema))


@pytest.fixture(scope="module")
def relu_server(tmp_path_factory) -> Iterator[Served]:
    """A tensor model without tabular features: Relu over an [N, 3, 4, 4] float tensor."""
    import onnx
    from onnx import TensorProto, helper

    shape = ["N", 3, 4, 4]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("relu") / "relu.onnx"
    onnx.save_model(model, path)
    schema = {"name": "relu", "task": "other",
              "inputs": [{"name": "x", "dtype": "float32", "shape": shape}], "features": [],
              "outputs": [{"name": "y", "role": "tensor", "dtype": "float32", "shape": shape}],
              "class_names": None, "metadata": _metadata(path)}
    with _serve_in_process(path, schema) as server:
        yield Served(server.url, ModelSchema.model_validate(schema))


def assert_all_accepted(url: str, route: str, bodies: list[bytes]) -> None:
    """The load tester sends every body once; the server answers each with 200."""
    report = run(LoadPlan(url, route=route, payloads=bodies, connections=2,
                          requests=len(bodies), timeout_s=10))
    assert report.errors_by_kind == {}, report.error_samples
    assert report.completed == len(bodies)


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


# --- asking the server --------------------------------------------------------------------------

def test_fetch_schema_gives_the_schema_the_studio_bundled(wine_server):
    served = fetch_schema(wine_server.url)
    assert served == wine_server.schema.model_copy(update={"samples": None})
    assert [f.name for f in served.features][:2] == ["alcohol", "malic_acid"]


def test_fetch_schema_from_the_in_process_server(churn_server):
    assert fetch_schema(churn_server.url) == churn_server.schema


def test_a_server_without_a_schema_route_points_to_payload_files():
    async def not_found(request: Request) -> Answer:
        return Answer(404, b'{"detail":"Not Found"}')

    with HttpServer(not_found) as server, pytest.raises(PayloadError) as caught:
        fetch_schema(server.url)
    assert "404" in caught.value.message
    assert "--payload" in caught.value.hint
    assert [r.path for r in server.requests] == ["/schema"]


def test_a_schema_route_that_answers_something_else_points_to_payload_files():
    async def other(request: Request) -> Answer:
        return Answer(200, b'{"name": "iris", "version": 3}')

    with HttpServer(other) as server, pytest.raises(PayloadError) as caught:
        fetch_schema(server.url)
    assert "not a Slipway model schema" in caught.value.message
    assert "--payload" in caught.value.hint


def test_fetch_schema_with_nothing_listening_says_so():
    sock, url = refused_address()
    try:
        with pytest.raises(ServerUnreachable):
            fetch_schema(url)
    finally:
        sock.close()


def test_for_server_builds_rows_for_the_model_the_server_describes(wine_server, tmp_path):
    bodies, label = for_server(wine_server.url, "/predict/batch", seed=4)
    assert len(bodies) == RANDOM_ROWS and label == "random valid rows from the schema"
    assert len(orjson.loads(bodies[0])["instances"][0]) == 13
    bodies, label = for_server(wine_server.url, "/predict", reference=WINE_REFERENCE,
                               drifts=[parse_drift("alcohol=+1sd")])
    assert len(bodies) == 178 and label.startswith("rows of wine_reference.csv, drifted")
    path = tmp_path / "one.json"
    path.write_text('{"features": [1, 2, 3]}')
    assert for_server(wine_server.url, "/predict", payload_file=path) == (
        [b'{"features": [1, 2, 3]}'], "the body in one.json")


def test_for_server_sends_a_payload_file_without_asking_the_server(tmp_path):
    path = tmp_path / "one.json"
    path.write_text('{"features": [1, 2, 3]}')
    sock, url = refused_address()
    try:
        bodies, _ = for_server(url, "/predict", payload_file=path)
        assert bodies == [b'{"features": [1, 2, 3]}']
        with pytest.raises(PayloadError, match="cannot be combined"):
            for_server(url, "/predict", payload_file=path, drifts=[parse_drift("a=+1sd")])
        with pytest.raises(StudioError):
            for_server(url, "/predict")  # no file: the schema is needed, and nobody answers
    finally:
        sock.close()


def test_nan_is_never_rendered_into_a_body(wine_schema):
    frame = rows_from_schema(wine_schema, count=3)
    frame.loc[1, "hue"] = math.inf
    with pytest.raises(PayloadError, match="NaN or infinity"):
        row_bodies(frame, wine_schema, "/predict")
