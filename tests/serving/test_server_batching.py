"""Adaptive micro-batching: concurrent requests share one onnxruntime call and each still gets
its own answer; a lone request on an idle server does not wait; batching can be switched off."""

from __future__ import annotations

import time

import anyio
import numpy as np
import pytest
from server_helpers import parse_metrics

pytestmark = pytest.mark.anyio


def _batch_sizes(text: str) -> tuple[float, float]:
    samples = parse_metrics(text)
    return (samples[("slipway_batch_size_count", frozenset())],
            samples[("slipway_batch_size_sum", frozenset())])


async def _concurrent_predictions(app, client, gate, rows) -> dict[int, dict]:
    """The first request holds the model while the others arrive, as under load."""
    answers: dict[int, dict] = {}

    async def predict(i: int) -> None:
        response = await client.post("/predict", json={"features": rows[i].tolist()})
        assert response.status_code == 200, response.text
        answers[i] = response.json()

    gate.install(app)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(predict, 0)
        await gate.wait_for_calls(1)
        for i in range(1, len(rows)):
            tasks.start_soon(predict, i)
        await gate.wait_for_inflight(app, len(rows))
        gate.open()
    return answers


async def test_concurrent_requests_share_a_batch_and_get_their_own_answers(iris_forest, gate):
    rows = iris_forest.X[::9][:16]  # 16 different rows, all three classes
    expected = iris_forest.ort({"input": rows})
    async with iris_forest.serve(batching={"max_batch_size": 32, "max_wait_ms": 20}) \
            as (app, client):
        answers = await _concurrent_predictions(app, client, gate, rows)
        calls, rows_run = _batch_sizes((await client.get("/metrics")).text)
    assert rows_run == 16
    assert calls < 16, "concurrent requests were not batched"
    assert gate.calls == calls
    for i in range(len(rows)):
        assert answers[i]["label"] == expected["label"][i]
        np.testing.assert_allclose(list(answers[i]["probabilities"].values()),
                                   expected["probabilities"][i], rtol=1e-6)


async def test_batches_never_exceed_max_batch_size(iris_logreg, gate):
    rows = iris_logreg.X[:12]
    async with iris_logreg.serve(batching={"max_batch_size": 4, "max_wait_ms": 20}) \
            as (app, client):
        await _concurrent_predictions(app, client, gate, rows)
        samples = parse_metrics((await client.get("/metrics")).text)
    largest_allowed = samples[("slipway_batch_size_bucket", frozenset({"le": "4.0"}.items()))]
    assert largest_allowed == samples[("slipway_batch_size_count", frozenset())]
    assert samples[("slipway_batch_size_sum", frozenset())] == 12
    assert samples[("slipway_batch_size_count", frozenset())] >= 3


async def test_batching_off_runs_every_request_alone(iris_forest, gate):
    rows = iris_forest.X[::10][:8]
    async with iris_forest.serve(batching={"enabled": False}) as (app, client):
        assert app.batcher is None
        await _concurrent_predictions(app, client, gate, rows)
        calls, rows_run = _batch_sizes((await client.get("/metrics")).text)
    assert (calls, rows_run) == (8, 8)


async def test_a_lone_request_does_not_wait_for_a_batch(iris_logreg):
    async with iris_logreg.serve(batching={"max_wait_ms": 5000}) as (_app, client):
        started = time.perf_counter()
        response = await client.post("/predict", json={"features": iris_logreg.X[0].tolist()})
        assert response.status_code == 200
        assert time.perf_counter() - started < 1.0


async def test_v2_requests_are_batched_when_the_batch_dimension_is_dynamic(iris_logreg, gate):
    rows = iris_logreg.X[:6]

    async def infer(i: int) -> None:
        body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                            "data": rows[i].tolist()}]}
        response = await client.post("/v2/models/iris/infer", json=body)
        assert response.status_code == 200

    async with iris_logreg.serve(batching={"max_wait_ms": 20}) as (app, client):
        assert app.model.batchable
        gate.install(app)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(infer, 0)
            await gate.wait_for_calls(1)
            for i in range(1, len(rows)):
                tasks.start_soon(infer, i)
            await gate.wait_for_inflight(app, len(rows))
            gate.open()
        calls, rows_run = _batch_sizes((await client.get("/metrics")).text)
    assert rows_run == 6 and calls < 6


async def test_fixed_batch_models_are_not_batched(squeezenet):
    async with squeezenet.serve() as (app, _client):
        assert not app.model.batchable
