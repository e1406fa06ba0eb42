"""/metrics: the app's own registry, counters that move, histograms on the agreed buckets, and
feature histograms on the reference profile's own bin edges."""

from __future__ import annotations

import numpy as np
import pytest
from server_helpers import parse_metrics

pytestmark = pytest.mark.anyio

DURATION_LES = ["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "+Inf"]
BATCH_LES = ["1.0", "2.0", "4.0", "8.0", "16.0", "32.0", "64.0", "128.0", "256.0", "512.0",
             "1024.0", "+Inf"]


def _les(samples, metric, **labels):
    found = [dict(key[1])["le"] for key in samples if key[0] == metric
             and all(dict(key[1]).get(k) == v for k, v in labels.items())]
    return sorted(found, key=lambda le: float(le))


def _value(samples, metric, **labels):
    return samples[(metric, frozenset(labels.items()))]


async def test_metrics_names_and_counters(iris_logreg):
    row = iris_logreg.X[0].tolist()
    async with iris_logreg.serve() as (_app, client):
        for _ in range(3):
            assert (await client.post("/predict", json={"features": row})).status_code == 200
        assert (await client.post("/predict", json={"features": [1]})).status_code == 400
        assert (await client.post("/predict/batch",
                                  json={"instances": [row] * 5})).status_code == 200
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = parse_metrics(response.text)

        assert _value(samples, "slipway_requests_total", route="/predict", status="200",
                      version="1") == 3
        assert _value(samples, "slipway_requests_total", route="/predict", status="400",
                      version="1") == 1
        assert _value(samples, "slipway_requests_total", route="/predict/batch",
                      status="200", version="1") == 1
        assert _value(samples, "slipway_request_duration_seconds_count", route="/predict",
                      version="1") == 4
        assert _les(samples, "slipway_request_duration_seconds_bucket",
                    route="/predict", version="1") == DURATION_LES
        assert _les(samples, "slipway_inference_duration_seconds_bucket") == DURATION_LES
        assert _value(samples, "slipway_inference_duration_seconds_count") == 4  # no warm-up
        assert _les(samples, "slipway_batch_size_bucket") == BATCH_LES
        assert _value(samples, "slipway_batch_size_sum") == 3 + 5
        assert _value(samples, "slipway_batch_size_bucket", le="4.0") == 3
        assert _value(samples, "slipway_inflight_requests") == 0
        assert _value(samples, "slipway_model_info", name="iris", version="1",
                      sha256=iris_logreg.config["sha256"]) == 1
        # No reference profile: no drift metrics.
        assert not any(key[0].startswith(("slipway_feature", "slipway_predictions"))
                       for key in samples)

        # The registry is the app's own: a second app starts from zero.
        async with iris_logreg.serve() as (_other, other_client):
            fresh = parse_metrics((await other_client.get("/metrics")).text)
            assert ("slipway_requests_total", frozenset(
                {"route": "/predict", "status": "200", "version": "1"}.items())) not in fresh
        # The scrape itself was counted.
        samples = parse_metrics((await client.get("/metrics")).text)
        assert _value(samples, "slipway_requests_total", route="/metrics", status="200",
                      version="1") == 1


async def test_two_versions_scraped_together_never_add_up(iris_logreg):
    """Two versions of one model side by side: every request series names its version, so a
    Prometheus scraping both keeps them apart (and a sum over the label still gives the total)."""
    row = iris_logreg.X[0].tolist()
    scraped = {}
    for version, requests in (("1", 2), ("2", 3)):
        async with iris_logreg.serve(version=version) as (_app, client):
            for _ in range(requests):
                assert (await client.post("/predict", json={"features": row})).status_code == 200
            scraped[version] = parse_metrics((await client.get("/metrics")).text)
    together = {**scraped["1"], **scraped["2"]}  # one store, as a Prometheus holds both
    for version, requests in (("1", 2), ("2", 3)):
        assert _value(together, "slipway_requests_total", route="/predict", status="200",
                      version=version) == requests
        assert _value(together, "slipway_request_duration_seconds_count", route="/predict",
                      version=version) == requests
        assert _value(together, "slipway_model_info", name="iris", version=version,
                      sha256=iris_logreg.config["sha256"]) == 1
    assert sum(value for (name, labels), value in together.items()
               if name == "slipway_requests_total" and dict(labels)["route"] == "/predict") == 5


async def test_feature_histograms_use_the_reference_edges(iris_logreg):
    reference = {
        "rows": 150,
        "features": {
            "petal_width": {"kind": "numeric", "edges": [0.2, 1.3, 2.0],
                            "counts": [34, 50, 40, 26]},
            "sepal_length": {"kind": "numeric", "edges": [4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5],
                             "counts": [1, 2, 3, 4, 5, 6, 7, 8]},
            "not_a_feature": {"kind": "numeric", "edges": [1.0]},
        },
    }
    rows = [[5.1, 3.5, 1.4, 0.2], [4.9, 3.0, 1.4, 0.2], [5.7, 2.8, 4.1, 1.3],
            [6.3, 2.9, 5.6, 1.8], [7.7, 3.8, 6.7, 2.2]]
    async with iris_logreg.serve(reference=reference) as (_app, client):
        await client.post("/predict", json={"features": rows[0]})
        await client.post("/predict/batch", json={"instances": rows[1:4]})
        await client.post("/v2/models/iris/infer", json={"inputs": [
            {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": rows[4]}]})
        await client.post("/predict", json={"features": [1, 2, 3, "x"]})  # refused: not counted
        samples = parse_metrics((await client.get("/metrics")).text)

    for column, name in ((3, "petal_width"), (0, "sepal_length")):
        edges = reference["features"][name]["edges"]
        assert _les(samples, "slipway_feature_value_bucket", feature=name) == \
            [repr(float(e)) for e in edges] + ["+Inf"]
        values = np.array([r[column] for r in rows])
        for edge in edges:  # Prometheus le: values <= edge, as the studio bins the reference
            assert _value(samples, "slipway_feature_value_bucket", feature=name,
                          le=repr(float(edge))) == np.sum(values <= edge), (name, edge)
        assert _value(samples, "slipway_feature_value_count", feature=name) == len(rows)
        assert _value(samples, "slipway_feature_value_sum", feature=name) == pytest.approx(
            values.sum(), rel=1e-6)
    assert not any(dict(key[1]).get("feature") == "not_a_feature" for key in samples)
    labels = {dict(key[1])["label"]: value for key, value in samples.items()
              if key[0] == "slipway_predictions_total"}
    assert labels == {"setosa": 2, "versicolor": 1, "virginica": 2}


async def test_categories_and_predictions_of_a_mixed_model(mixed_model):
    reference = {"features": {
        "plan": {"kind": "categorical", "categories": ["basic", "plus"], "counts": [10, 12]},
        "age": {"kind": "numeric", "edges": [30, 50], "counts": [3, 4, 5]},
    }}
    rows = [["basic", "north", 25.0, 10.0], ["plus", "east", 50.0, 80.0],
            ["pro", "west", 70.0, 20.0], ["basic", "south", 31.0, 150.0]]
    async with mixed_model.serve(reference=reference) as (_app, client):
        response = await client.post("/predict/batch", json={"instances": rows})
        labels = [p["label"] for p in response.json()["predictions"]]
        samples = parse_metrics((await client.get("/metrics")).text)
    categories = {dict(key[1])["category"]: value for key, value in samples.items()
                  if key[0] == "slipway_feature_category_total"
                  and dict(key[1])["feature"] == "plan"}
    assert categories == {"basic": 2, "plus": 1, "__other__": 1}
    assert _value(samples, "slipway_feature_value_bucket", feature="age", le="30.0") == 1
    assert _value(samples, "slipway_feature_value_bucket", feature="age", le="50.0") == 3
    assert _value(samples, "slipway_feature_value_bucket", feature="age", le="+Inf") == 4
    predicted = {dict(key[1])["label"]: value for key, value in samples.items()
                 if key[0] == "slipway_predictions_total"}
    assert predicted == {"churn": labels.count("churn"), "stay": labels.count("stay")}


async def test_prediction_values_of_a_regressor(regressor):
    reference = {"features": {}, "predictions": {"kind": "numeric", "edges": [0.0, 3.0, 6.0]}}
    rows = regressor.X[:20]
    values = regressor.ort({"input": rows})["variable"][:, 0]
    async with regressor.serve(reference=reference) as (_app, client):
        await client.post("/predict/batch", json={"instances": rows.tolist()})
        samples = parse_metrics((await client.get("/metrics")).text)
    for edge in (0.0, 3.0, 6.0):
        assert _value(samples, "slipway_prediction_value_bucket", le=repr(edge)) == \
            np.sum(values <= np.float32(edge))
    assert _value(samples, "slipway_prediction_value_count") == 20


@pytest.mark.parametrize("reference, message", [
    ({"features": {"petal_width": {"kind": "numeric", "edges": [1.0, 0.5]}}},
     "serving.json: reference edges of feature 'petal_width' must be strictly increasing"),
    ({"features": {"petal_width": {"kind": "histogram"}}},
     ("serving.json: reference of feature 'petal_width' has kind 'histogram'; expected 'numeric' "
     "or 'categorical'")),
])
def test_bad_reference_profiles_stop_the_start(iris_logreg, reference, message):
    from slipway_server import StartupError, create_app, settings_from_dict

    config = iris_logreg.with_config(reference=reference)
    with pytest.raises(StartupError) as error:
        create_app(settings_from_dict(config, iris_logreg.path.parent))
    assert str(error.value) == message
