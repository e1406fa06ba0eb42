"""Every endpoint of the server, answering what onnxruntime answers in this process."""

from __future__ import annotations

import numpy as np
import pytest
from server_helpers import IRIS_CLASSES, IRIS_FEATURES

pytestmark = pytest.mark.anyio


def _mixed_feeds(frame):
    return {c: frame[[c]].to_numpy().astype(object if c in ("plan", "region") else np.float32)
            for c in frame.columns}


async def test_health_and_ready(iris_logreg):
    async with iris_logreg.serve() as (_app, client):
        health = await client.get("/health")
        assert (health.status_code, health.json()) == (200, {"status": "alive"})
        ready = await client.get("/ready")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


async def test_ready_is_503_before_warm_up_and_while_draining(iris_logreg):
    async with iris_logreg.serve() as (app, client):
        app.ready = False  # as it is until the warm-up inferences are done
        response = await client.get("/ready")
        assert (response.status_code, response.json()) == (503, {"status": "warming up"})
        assert (await client.get("/v2/health/ready")).status_code == 503
        assert (await client.get("/health")).status_code == 200
        app.ready = True
        assert (await client.get("/ready")).status_code == 200

        app.begin_drain()
        response = await client.get("/ready")
        assert (response.status_code, response.json()) == (503, {"status": "draining"})
        assert (await client.get("/v2/health/ready")).json() == {"ready": False}
        assert (await client.get("/v2/models/iris/ready")).status_code == 503
        # In-flight and late requests are still served while draining.
        row = iris_logreg.X[0].tolist()
        assert (await client.post("/predict", json={"features": row})).status_code == 200


async def test_predict_classifier_by_list_and_by_name(iris_logreg):
    rows = iris_logreg.X[[0, 60, 120]]
    async with iris_logreg.serve() as (_app, client):
        for row in rows:
            # One row, as the server runs it (a batch of several can differ in the last bit).
            expected = iris_logreg.ort({"input": row[None, :]})
            by_list = await client.post("/predict", json={"features": row.tolist()})
            named = dict(zip(IRIS_FEATURES, row.tolist()))
            by_name = await client.post("/predict", json={"features": named})
            assert by_list.status_code == by_name.status_code == 200
            assert by_list.json() == by_name.json()
            answer = by_list.json()
            assert answer["model"] == "iris" and answer["version"] == "1"
            assert answer["label"] == expected["label"][0]
            assert list(answer["probabilities"]) == IRIS_CLASSES
            probabilities = np.array(list(answer["probabilities"].values()), dtype=np.float32)
            np.testing.assert_array_equal(probabilities, expected["probabilities"][0])


async def test_predict_forest_and_batch_match_onnxruntime(iris_forest):
    rows = iris_forest.X[::7]
    expected = iris_forest.ort({"input": rows})
    async with iris_forest.serve() as (_app, client):
        named = [dict(zip(IRIS_FEATURES, r)) for r in rows.tolist()]
        for instances in (rows.tolist(), named):
            response = await client.post("/predict/batch", json={"instances": instances})
            assert response.status_code == 200
            answer = response.json()
            assert (answer["model"], answer["version"]) == ("iris_forest", "1")
            assert [p["label"] for p in answer["predictions"]] == expected["label"].tolist()
            probabilities = np.array([list(p["probabilities"].values())
                                      for p in answer["predictions"]], dtype=np.float32)
            np.testing.assert_array_equal(probabilities, expected["probabilities"])


async def test_predict_mixed_per_column_model(mixed_model):
    frame = mixed_model.X.iloc[:5]
    expected = mixed_model.ort(_mixed_feeds(frame))
    async with mixed_model.serve() as (_app, client):
        for i, record in enumerate(frame.to_dict("records")):
            single = mixed_model.ort(_mixed_feeds(frame.iloc[i:i + 1]))
            record = {k: (v if isinstance(v, str) else float(v)) for k, v in record.items()}
            response = await client.post("/predict", json={"features": record})
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["label"] == single["label"][0]
            np.testing.assert_array_equal(
                np.array([answer["probabilities"]["churn"], answer["probabilities"]["stay"]],
                         dtype=np.float32), single["probabilities"][0])
        rows = [list(r) for r in frame.itertuples(index=False)]
        rows = [[v if isinstance(v, str) else float(v) for v in r] for r in rows]
        batch = await client.post("/predict/batch", json={"instances": rows})
        assert [p["label"] for p in batch.json()["predictions"]] == expected["label"].tolist()


async def test_predict_regressor_value(regressor):
    rows = regressor.X[:4]
    expected = regressor.ort({"input": rows})["variable"][:, 0]
    async with regressor.serve() as (_app, client):
        response = await client.post("/predict", json={"features": rows[0].tolist()})
        assert response.status_code == 200
        assert set(response.json()) == {"value", "model", "version"}
        single = regressor.ort({"input": rows[:1]})["variable"][0, 0]
        assert np.float32(response.json()["value"]) == single
        batch = await client.post("/predict/batch", json={"instances": rows.tolist()})
        values = [p["value"] for p in batch.json()["predictions"]]
        np.testing.assert_array_equal(np.array(values, dtype=np.float32), expected)


async def test_v2_server_and_model_metadata(iris_logreg):
    async with iris_logreg.serve() as (_app, client):
        server = (await client.get("/v2")).json()
        assert server["name"] == "slipway" and server["extensions"] == ["binary_tensor_data"]
        assert isinstance(server["version"], str)
        assert (await client.get("/v2/health/live")).json() == {"live": True}
        assert (await client.get("/v2/health/ready")).json() == {"ready": True}
        ready = await client.get("/v2/models/iris/ready")
        assert (ready.status_code, ready.json()) == (200, {"name": "iris", "ready": True})
        metadata = (await client.get("/v2/models/iris")).json()
        assert metadata == {
            "name": "iris", "versions": ["1"], "platform": "onnxruntime_onnx",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
        }
        assert (await client.get("/v2/models/iris/versions/1")).json() == metadata
        unknown = await client.get("/v2/models/resnet")
        assert unknown.status_code == 404
        assert unknown.json() == {"error": "model 'resnet' is not served here (this server "
                                           "serves 'iris')"}
        assert (await client.get("/v2/models/iris/versions/7")).status_code == 404
        assert (await client.post("/v2/models/resnet/infer", json={})).status_code == 404


async def test_v2_infer_tabular(iris_logreg):
    rows = iris_logreg.X[[3, 77]]
    expected = iris_logreg.ort({"input": rows})
    async with iris_logreg.serve() as (_app, client):
        body = {"id": "req-1", "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                                           "data": rows.reshape(-1).tolist()}]}
        response = await client.post("/v2/models/iris/infer", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["model_name"] == "iris" and answer["model_version"] == "1"
        assert answer["id"] == "req-1"
        label, probabilities = answer["outputs"]
        assert label == {"name": "label", "datatype": "BYTES", "shape": [2],
                         "data": expected["label"].tolist()}
        assert probabilities["shape"] == [2, 3] and probabilities["datatype"] == "FP32"
        np.testing.assert_array_equal(np.array(probabilities["data"], dtype=np.float32),
                                      expected["probabilities"].reshape(-1))
        # Nested data (allowed by the protocol), the versioned route, and one chosen output.
        body = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                            "data": rows.tolist()}], "outputs": [{"name": "label"}]}
        response = await client.post("/v2/models/iris/versions/1/infer", json=body)
        assert [o["name"] for o in response.json()["outputs"]] == ["label"]


async def test_v2_infer_mixed_strings(mixed_model):
    frame = mixed_model.X.iloc[:3]
    expected = mixed_model.ort(_mixed_feeds(frame))
    inputs = [{"name": c, "shape": [3, 1], "datatype": "BYTES" if c in ("plan", "region")
               else "FP32", "data": [v if isinstance(v, str) else float(v) for v in frame[c]]}
              for c in frame.columns]
    async with mixed_model.serve() as (_app, client):
        response = await client.post("/v2/models/churn/infer", json={"inputs": inputs})
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == expected["label"].tolist()


async def test_squeezenet_is_served_through_v2(squeezenet):
    image = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    expected = squeezenet.ort({"data_0": image})["softmaxout_1"]
    async with squeezenet.serve() as (_app, client):
        metadata = (await client.get("/v2/models/light_squeezenet")).json()
        assert metadata["inputs"] == [{"name": "data_0", "datatype": "FP32",
                                       "shape": [1, 3, 224, 224]}]
        assert metadata["outputs"] == [{"name": "softmaxout_1", "datatype": "FP32",
                                        "shape": [1, 1000, 1, 1]}]
        body = {"inputs": [{"name": "data_0", "shape": [1, 3, 224, 224], "datatype": "FP32",
                            "data": image.reshape(-1).tolist()}]}
        response = await client.post("/v2/models/light_squeezenet/infer", json=body)
        assert response.status_code == 200, response.text[:300]
        output = response.json()["outputs"][0]
        assert output["shape"] == [1, 1000, 1, 1] and output["datatype"] == "FP32"
        np.testing.assert_array_equal(np.array(output["data"], dtype=np.float32),
                                      expected.reshape(-1))
        # No features: the REST routes point to v2.
        response = await client.post("/predict", json={"features": [1.0]})
        assert response.status_code == 404
        assert response.json() == {"error": "'light_squeezenet' takes tensors, not features: "
                                            "use POST /v2/models/light_squeezenet/infer"}
        wrong = await client.post("/v2/models/light_squeezenet/infer", json={"inputs": [
            {"name": "data_0", "shape": [1, 3, 224], "datatype": "FP32", "data": [0.0]}]})
        assert wrong.status_code == 400
        assert wrong.json() == {"error": "input 'data_0' has shape [1, 3, 224], the model takes "
                                         "[1, 3, 224, 224] (-1: any size)"}


async def test_unknown_route_and_wrong_method(iris_logreg):
    async with iris_logreg.serve() as (_app, client):
        missing = await client.get("/nowhere")
        assert (missing.status_code, missing.json()) == (
            404, {"error": "no route /nowhere: see /docs for this server's API"})
        wrong = await client.get("/predict")
        assert wrong.status_code == 405
        assert wrong.json() == {"error": "GET is not allowed on /predict; use POST"}
        assert wrong.headers["allow"] == "POST"


async def test_api_key(iris_logreg, monkeypatch):
    monkeypatch.setenv("IRIS_KEY", "s3cret")
    row = iris_logreg.X[0].tolist()
    async with iris_logreg.serve(auth={"api_key_env": "IRIS_KEY"}) as (_app, client):
        for path in ("/health", "/ready", "/metrics", "/v2/health/live", "/v2/health/ready"):
            assert (await client.get(path)).status_code == 200, path
        refused = await client.post("/predict", json={"features": row})
        assert refused.status_code == 401
        assert refused.json() == {"error": "missing or wrong API key: send 'Authorization: "
                                           "Bearer <key>' or 'X-API-Key: <key>'"}
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = await client.post("/predict", json={"features": row},
                                  headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        for headers in ({"Authorization": "Bearer s3cret"}, {"X-API-Key": "s3cret"}):
            assert (await client.post("/predict", json={"features": row},
                                      headers=headers)).status_code == 200
        for path in ("/v2", "/v2/models/iris", "/openapi.json", "/docs", "/elsewhere"):
            assert (await client.get(path)).status_code == 401, path
        assert (await client.get("/v2/models/iris", headers={"X-API-Key": "s3cret"})
                ).status_code == 200
        document = (await client.get("/openapi.json", headers={"X-API-Key": "s3cret"})).json()
        assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}


@pytest.mark.parametrize("protect", [False, True])
async def test_metrics_open_to_scrapers_unless_protected(iris_logreg, monkeypatch, protect):
    """/metrics shows feature histograms, label counts and the model's sha256: open by default
    for Prometheus, behind the API key with auth.protect_metrics."""
    monkeypatch.setenv("IRIS_KEY", "s3cret")
    auth = {"api_key_env": "IRIS_KEY", "protect_metrics": protect}
    async with iris_logreg.serve(auth=auth) as (_app, client):
        anonymous = await client.get("/metrics")
        if protect:
            assert anonymous.status_code == 401
            assert anonymous.json() == {"error": "missing or wrong API key: send 'Authorization: "
                                                 "Bearer <key>' or 'X-API-Key: <key>'"}
            assert anonymous.headers["www-authenticate"] == "Bearer"
            assert (await client.get("/metrics", headers={"X-API-Key": "nope"})).status_code == 401
        else:
            assert anonymous.status_code == 200
            assert "slipway_model_info" in anonymous.text
        for headers in ({"Authorization": "Bearer s3cret"}, {"X-API-Key": "s3cret"}):
            scraped = await client.get("/metrics", headers=headers)
            assert scraped.status_code == 200 and "slipway_model_info" in scraped.text
        for path in ("/health", "/ready", "/v2/health/live", "/v2/health/ready"):
            assert (await client.get(path)).status_code == 200, path
        document = (await client.get("/openapi.json", headers={"X-API-Key": "s3cret"})).json()
    metrics = document["paths"]["/metrics"]["get"]
    assert metrics["security"] == ([{"bearer": []}, {"apiKey": []}] if protect else [])
    assert ("401" in metrics["responses"]) == protect


@pytest.mark.parametrize("value", [None, ""])
async def test_api_key_variable_not_set_or_empty_refuses_to_start(iris_logreg, monkeypatch,
                                                                  value):
    """Told to require a key it cannot read, the server does not serve without one."""
    from slipway_server import StartupError

    if value is None:
        monkeypatch.delenv("IRIS_KEY", raising=False)
    else:
        monkeypatch.setenv("IRIS_KEY", value)
    with pytest.raises(StartupError) as error:
        async with iris_logreg.serve(auth={"api_key_env": "IRIS_KEY"}):
            pass
    state = "is not set" if value is None else "is empty"
    assert str(error.value) == (f"serving.json: 'auth.api_key_env' names IRIS_KEY, which {state}: "
                                "set it to the API key, or make 'auth.api_key_env' null to serve "
                                "without one")


async def test_overload_gives_503_with_retry_after(iris_logreg, gate):
    row = iris_logreg.X[0].tolist()
    async with iris_logreg.serve(limits={"max_concurrency": 2}) as (app, client):
        gate.install(app)
        import anyio

        results = []

        async def predict():
            results.append(await client.post("/predict", json={"features": row}))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(predict)
            tasks.start_soon(predict)
            await gate.wait_for_inferences(app, 2)  # slots are taken once the body is read
            refused = await client.post("/predict", json={"features": row})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json() == {"error": "the server is at its limit of 2 concurrent "
                                               "requests; retry shortly"}
            # Probes are not limited.
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200
            gate.open()
        assert [r.status_code for r in results] == [200, 200]
        assert (await client.post("/predict", json={"features": row})).status_code == 200


async def test_schema_and_reference_routes_give_what_the_server_was_configured_with(iris_logreg):
    reference = {"rows": 3, "features": {"sepal_length": {
        "kind": "numeric", "edges": [5.0, 6.0], "counts": [1, 1, 1]}}}
    async with iris_logreg.serve(reference=reference) as (_app, client):
        schema = (await client.get("/schema")).json()
        assert next(f["name"] for f in schema["features"]) == "sepal_length"
        assert schema == iris_logreg.config["schema"]
        assert (await client.get("/reference")).json() == reference


async def test_reference_route_says_when_the_server_has_no_profile(iris_logreg):
    async with iris_logreg.serve() as (_app, client):
        answer = await client.get("/reference")
        assert answer.status_code == 404
        assert "without a reference profile" in answer.json()["error"]
