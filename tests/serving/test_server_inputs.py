"""Bad input never gives a 5xx: each refusal is a 4xx whose message names the problem, and the
server keeps serving afterwards."""

from __future__ import annotations

import json
import random

import pytest

pytestmark = pytest.mark.anyio

NAMES = "sepal_length, sepal_width, petal_length, petal_width"
GOOD = [5.1, 3.5, 1.4, 0.2]

# (body bytes, status, exact error message or a prefix ending in "...")
PREDICT_CASES = {
    "malformed JSON": (b'{"features": [5.1, 3.5', 400,
                       "malformed JSON: unexpected end of data: line 1 column 23 (char 22)"),
    "NaN literal": (b'{"features": [NaN, 3.5, 1.4, 0.2]}', 400,
                    "malformed JSON: NaN and Infinity are not JSON numbers (at character 14)"),
    "Infinity literal": (b'{"features": [-Infinity, 3.5, 1.4, 0.2]}', 400,
                         ("malformed JSON: NaN and Infinity are not JSON numbers (at character "
                         "15)")),
    "number parsing to infinity": (
        b'{"features": [1e400, 3.5, 1.4, 0.2]}', 400,
        ("malformed JSON: a number is too large (number is infinity when parsed as double: line 1 "
        "column 15 (char 14))")),
    "number over float32": (b'{"features": [1e39, 3.5, 1.4, 0.2]}', 400,
                            "feature 'sepal_length' is out of range for float32: 1e+39"),
    "empty body": (b"", 400, "the request body is empty: send a JSON object"),
    "array body": (b"[5.1, 3.5, 1.4, 0.2]", 400, ("the request body must be a JSON object, "
                                                 "got array")),
    "string body": (b'"hello"', 400, "the request body must be a JSON object, got string"),
    "no features field": (b'{"rows": [1]}', 400,
                          ("the body must have a 'features' field: a list of values in feature "
                          "order or an object of feature name to value")),
    "features not a row": (b'{"features": "5.1,3.5"}', 400,
                           ("'features' must be a list of values in feature order or an object of "
                           "feature name to value, got string")),
    "too few values": (b'{"features": [5.1, 3.5, 1.4]}', 400,
                       f"expected 4 feature values ({NAMES}), got 3"),
    "a row of rows": (b'{"features": [[5.1, 3.5, 1.4, 0.2]]}', 400,
                      f"expected 4 feature values ({NAMES}), got 1"),
    "string for a number": (b'{"features": [5.1, "3.5", 1.4, 0.2]}', 400,
                            "feature 'sepal_width' must be a number, got string"),
    "boolean for a number": (b'{"features": [5.1, 3.5, true, 0.2]}', 400,
                             "feature 'petal_length' must be a number, got boolean"),
    "null for a number": (b'{"features": [5.1, 3.5, 1.4, null]}', 400,
                          "feature 'petal_width' must be a number, got null"),
    "missing feature": (
        b'{"features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4}}', 400,
        f"feature 'petal_width' is missing (the model takes: {NAMES})"),
    "misspelt feature": (
        (b'{"features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, '
        b'"petal_widht": 0.2}}'), 400,
        (f"unknown feature 'petal_widht'; feature 'petal_width' is missing (the model takes: "
        f"{NAMES})")),
    "extra feature": (
        (b'{"features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, '
        b'"petal_width": 0.2, "colour": "blue"}}'), 400,
        f"unknown feature 'colour' (the model takes: {NAMES})"),
    "wrong type by name": (
        (b'{"features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, '
        b'"petal_width": [0.2]}}'), 400, "feature 'petal_width' must be a number, got array"),
}


@pytest.fixture
async def iris_client(iris_logreg):
    async with iris_logreg.serve(limits={"max_body_bytes": 4096, "max_batch_rows": 8}) \
            as (app, client):
        yield app, client


async def _expect(response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": message}


@pytest.mark.parametrize("case", list(PREDICT_CASES))
async def test_bad_predict_bodies(iris_client, case):
    _app, client = iris_client
    body, status, message = PREDICT_CASES[case]
    response = await client.post("/predict", content=body,
                                 headers={"content-type": "application/json"})
    await _expect(response, status, message)
    # ... and the server keeps serving.
    assert (await client.post("/predict", json={"features": GOOD})).status_code == 200


async def test_oversized_body_by_content_length(iris_client):
    _app, client = iris_client
    body = b'{"features": [' + b"1.0, " * 1000 + b'1.0]}'
    response = await client.post("/predict", content=body)
    await _expect(response, 413, f"the request body is {len(body)} bytes, over the limit of "
                                 "4096 bytes")


async def test_oversized_body_streamed_without_content_length(iris_client):
    _app, client = iris_client

    async def chunks():
        yield b'{"features": ['
        for _ in range(100):
            yield b"1.0, " * 20

    response = await client.post("/predict", content=chunks())
    assert "content-length" not in response.request.headers
    await _expect(response, 413, "the request body is over the limit of 4096 bytes")


async def test_bad_batches(iris_client):
    _app, client = iris_client
    await _expect(await client.post("/predict/batch", json={"instances": []}), 400,
                  "'instances' is empty: send at least one row")
    await _expect(await client.post("/predict/batch", json={"rows": [GOOD]}), 400,
                  "the body must have an 'instances' field: a list of rows")
    await _expect(await client.post("/predict/batch", json={"instances": {"a": 1}}), 400,
                  "'instances' must be a list of rows, got object")
    await _expect(await client.post("/predict/batch", json={"instances": [GOOD] * 9}), 413,
                  "the batch has 9 instances, over the limit of 8")
    await _expect(await client.post("/predict/batch", json={"instances": [GOOD, [1, 2, "x", 3]]}),
                  400, "instance 1: feature 'petal_length' must be a number, got string")
    await _expect(await client.post("/predict/batch", json={"instances": [GOOD, {"a": 1}]}),
                  400, "instance 1: unknown feature 'a'; features 'sepal_length', 'sepal_width', "
                       f"'petal_length', 'petal_width' are missing (the model takes: {NAMES})")
    assert (await client.post("/predict/batch", json={"instances": [GOOD] * 8})).status_code == 200


GOOD_V2 = [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": GOOD}]
V2_CASES = {
    "no inputs": ({}, "'inputs' must be a non-empty list of tensors"),
    "inputs not a list": ({"inputs": {"name": "input"}},
                          "'inputs' must be a non-empty list of tensors"),
    "input not an object": ({"inputs": [[1, 2]]},
                            ("inputs[0] must be an object with name, shape, datatype and data, "
                            "got array")),
    "unknown input": ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                   "data": GOOD}]}, "unknown input 'x' (the model takes: input)"),
    "wrong datatype": ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64",
                                    "data": GOOD}]},
                       "input 'input' has datatype 'FP64', the model takes FP32"),
    "wrong rank": ({"inputs": [{"name": "input", "shape": [4], "datatype": "FP32",
                                "data": GOOD}]},
                   "input 'input' has shape [4], the model takes [-1, 4] (-1: any size)"),
    "wrong width": ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                                 "data": GOOD[:3]}]},
                    "input 'input' has shape [1, 3], the model takes [-1, 4] (-1: any size)"),
    "bad shape": ({"inputs": [{"name": "input", "shape": [1, -4], "datatype": "FP32",
                               "data": GOOD}]},
                  "input 'input': 'shape' must be a list of non-negative integers, got [1, -4]"),
    "data count": ({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                                "data": GOOD}]},
                   "input 'input' has 4 values, but shape [2, 4] needs 8"),
    "data not a list": ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                     "data": "abc"}]},
                        "input 'input': 'data' must be a list of values, got string"),
    "string in data": ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                    "data": [5.1, "3.5", 1.4, 0.2]}]},
                       "input 'input' is FP32: every value must be a number, got string"),
    "over float32": ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                  "data": [1e39, 3.5, 1.4, 0.2]}]},
                     "input 'input' has values out of range for FP32"),
    "no rows": ({"inputs": [{"name": "input", "shape": [0, 4], "datatype": "FP32", "data": []}]},
                "the inputs hold no rows (first dimension is 0)"),
    "unknown output": ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                    "data": GOOD}], "outputs": [{"name": "scores"}]},
                       "unknown output 'scores' (the model gives: label, probabilities)"),
    "input twice": ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                 "data": GOOD}] * 2}, "input 'input' is given twice"),
    "output name a list": ({"inputs": GOOD_V2, "outputs": [{"name": ["label"]}]},
                           "outputs[0]: 'name' must be the name of an output, got array (the "
                           "model gives: label, probabilities)"),
    "output name an object": ({"inputs": GOOD_V2, "outputs": [{"name": {}}]},
                              "outputs[0]: 'name' must be the name of an output, got object (the "
                              "model gives: label, probabilities)"),
    "output without a name": ({"inputs": GOOD_V2, "outputs": [{"name": "label"}, {}]},
                              "outputs[1]: 'name' must be the name of an output, got null (the "
                              "model gives: label, probabilities)"),
    "output not an object": ({"inputs": GOOD_V2, "outputs": ["label"]},
                             "outputs[0] must be an object with a 'name', got string"),
    "outputs not a list": ({"inputs": GOOD_V2, "outputs": {"name": "label"}},
                           "'outputs' must be a non-empty list of {\"name\": ...}, got object"),
    "outputs empty": ({"inputs": GOOD_V2, "outputs": []},
                      "'outputs' must be a non-empty list of {\"name\": ...}, got array"),
    "output twice": ({"inputs": GOOD_V2, "outputs": [{"name": "label"}, {"name": "label"}]},
                     "output 'label' is asked for twice"),
    "input name not a string": ({"inputs": [{**GOOD_V2[0], "name": ["input"]}]},
                                "unknown input ['input'] (the model takes: input)"),
    "shape of booleans": ({"inputs": [{**GOOD_V2[0], "shape": [True, 4]}]},
                          ("input 'input': 'shape' must be a list of non-negative integers, got "
                           "[True, 4]")),
    "shape not a list": ({"inputs": [{**GOOD_V2[0], "shape": {"rows": 1}}]},
                         ("input 'input': 'shape' must be a list of non-negative integers, got "
                          "{'rows': 1}")),
    "datatype a list": ({"inputs": [{**GOOD_V2[0], "datatype": ["FP32"]}]},
                        "input 'input' has datatype ['FP32'], the model takes FP32"),
    "uneven nested data": ({"inputs": [{**GOOD_V2[0], "data": [[5.1, 3.5], [1.4]]}]},
                           "input 'input' has 3 values, but shape [1, 4] needs 4"),
    "objects in data": ({"inputs": [{**GOOD_V2[0], "data": [{"v": 5.1}, 3.5, 1.4, 0.2]}]},
                        "input 'input' is FP32: every value must be a number, got object"),
    "a huge shape": ({"inputs": [{**GOOD_V2[0], "shape": [10 ** 12, 4]}]},
                     "input 'input' has 4 values, but shape [1000000000000, 4] needs "
                     "4000000000000"),
}


@pytest.mark.parametrize("case", list(V2_CASES))
async def test_bad_v2_requests(iris_client, case):
    _app, client = iris_client
    body, message = V2_CASES[case]
    await _expect(await client.post("/v2/models/iris/infer", json=body), 400, message)


async def test_bad_values_for_a_mixed_model(mixed_model):
    good = {"plan": "pro", "region": "west", "age": 40, "monthly_spend": 20.5}
    async with mixed_model.serve() as (_app, client):
        await _expect(await client.post("/predict", json={"features": {**good, "plan": 3}}),
                      400, "feature 'plan' must be a string, got number")
        await _expect(await client.post("/predict", json={"features": {**good, "age": "forty"}}),
                      400, "feature 'age' must be a number, got string")
        await _expect(await client.post("/v2/models/churn/infer", json={"inputs": [
            {"name": "plan", "shape": [1, 1], "datatype": "BYTES", "data": [3]},
            {"name": "region", "shape": [1, 1], "datatype": "BYTES", "data": ["west"]},
            {"name": "age", "shape": [1, 1], "datatype": "FP32", "data": [40]},
            {"name": "monthly_spend", "shape": [1, 1], "datatype": "FP32", "data": [2.5]}]}),
            400, "input 'plan' is BYTES: every value must be a string, got number")
        await _expect(await client.post("/v2/models/churn/infer", json={"inputs": [
            {"name": "plan", "shape": [1, 1], "datatype": "BYTES", "data": ["pro"]}]}),
            400, "input 'region' is missing (the model takes: plan, region, age, monthly_spend)")
        assert (await client.post("/predict", json={"features": good})).status_code == 200


async def test_onnxruntime_errors_are_422_and_only_hit_their_request(mixed_model, gate):
    """The one-hot encoder refuses an unseen plan: onnxruntime's message comes back as a 422,
    also when the bad row shares a micro-batch with good ones, which still get answers."""
    good = {"plan": "pro", "region": "west", "age": 40, "monthly_spend": 20.5}
    message = ("the model could not run on this input: Non-zero status code returned while "
               "running OneHotEncoder node. Name:'OneHotEncoder' Status Message: Unknown Category "
               "and zeros = 0.")
    async with mixed_model.serve(batching={"max_wait_ms": 50}) as (app, client):
        await _expect(await client.post("/predict", json={"features": {**good, "plan": "gold"}}),
                      422, message)
        import anyio

        gate.install(app)
        responses = {}

        async def predict(key, plan):
            responses[key] = await client.post("/predict",
                                               json={"features": {**good, "plan": plan}})

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(predict, "first", "pro")
            await gate.wait_for_calls(1)  # the first request holds the model; the rest queue
            for key, plan in (("a", "basic"), ("bad", "gold"), ("b", "plus")):
                tasks.start_soon(predict, key, plan)
            await gate.wait_for_inflight(app, 4)
            gate.open()
        assert {k: r.status_code for k, r in responses.items()} == {
            "first": 200, "a": 200, "bad": 422, "b": 200}
        assert responses["bad"].json() == {"error": message}
        assert (await client.post("/predict", json={"features": good})).status_code == 200


HUGE = [3.4e38, 3.4e38, -3.4e38, 3.4e38]  # float32, but far past anything iris was trained on
NOT_FINITE = ("the model's output '{output}' is NaN or infinite {where}, which JSON cannot carry: "
              "the input is probably far outside the values the model was trained on")


async def test_outputs_that_are_not_finite_are_a_422_naming_output_and_row(iris_client, regressor):
    _app, client = iris_client
    message = NOT_FINITE.format(output="probabilities", where="for this input")
    await _expect(await client.post("/predict", json={"features": HUGE}), 422, message)
    await _expect(await client.post("/v2/models/iris/infer", json={"inputs": [
        {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": HUGE}]}), 422, message)
    await _expect(await client.post("/predict/batch", json={"instances": [GOOD, HUGE, GOOD]}),
                  422, NOT_FINITE.format(output="probabilities",
                                         where="for row 1 (counting from 0)"))
    assert (await client.post("/predict/batch", json={"instances": [GOOD] * 3})).status_code == 200
    async with regressor.serve() as (_app, ridge):
        await _expect(await ridge.post("/predict", json={"features": HUGE[:3]}), 422,
                      NOT_FINITE.format(output="variable", where="for this input"))


async def test_a_request_with_non_finite_outputs_does_not_spoil_its_micro_batch(iris_logreg, gate):
    async with iris_logreg.serve(batching={"max_wait_ms": 50}) as (app, client):
        import anyio

        gate.install(app)
        responses = {}

        async def predict(key, row):
            responses[key] = await client.post("/predict", json={"features": row})

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(predict, "first", GOOD)
            await gate.wait_for_calls(1)  # the first request holds the model; the rest queue
            for key, row in (("a", GOOD), ("huge", HUGE), ("b", GOOD)):
                tasks.start_soon(predict, key, row)
            await gate.wait_for_inflight(app, 4)
            gate.open()
        assert {k: r.status_code for k, r in responses.items()} == {
            "first": 200, "a": 200, "huge": 422, "b": 200}
        assert responses["a"].json()["label"] == "setosa"


async def test_an_unexpected_error_is_logged_and_answered_without_its_text(iris_client, caplog):
    """A bug (here, one injected into the answer's formatting) gives a 500 whose body says
    nothing of the server's insides; the traceback goes to the log."""
    app, client = iris_client

    def broken(outputs, rows):
        raise RuntimeError("secret detail at /opt/venv/lib/model.py")

    app.model.predictions = broken
    with caplog.at_level("ERROR", logger="slipway"):
        response = await client.post("/predict", json={"features": GOOD})
    await _expect(response, 500, "internal error: the server could not answer this request; its "
                                 "log says why")
    assert "secret" not in response.text
    assert "error serving POST /predict" in caplog.text
    assert "RuntimeError: secret detail at /opt/venv/lib/model.py" in caplog.text


def _mutations(document, rng, pool):
    """`document` with one node replaced by a value from `pool`, or one key dropped."""
    mutated = json.loads(json.dumps(document))
    parents = [(None, None, mutated)]
    stack = [mutated]
    while stack:
        node = stack.pop()
        children = node.items() if isinstance(node, dict) else enumerate(node) \
            if isinstance(node, list) else ()
        for key, child in children:
            parents.append((node, key, child))
            stack.append(child)
    parent, key, _ = rng.choice(parents[1:])
    if isinstance(parent, dict) and rng.random() < 0.2:
        del parent[key]
    else:
        parent[key] = rng.choice(pool)
    return mutated


async def test_fuzzed_requests_get_4xx_json_never_5xx(iris_client):
    """Valid bodies of every route with one node changed at random: each answer is a 200 or a
    4xx with {"error": "..."}, and the server keeps serving."""
    _app, client = iris_client
    rng = random.Random(20261201)
    pool = [None, True, False, 0, -1, 1.5, 3.4e38, -3.4e38, 2 ** 64, -2 ** 63, 1e-45, "", "x",
            "FP32", "input", "label", [], {}, [[]], [[[[1.0]]]], [None], {"name": []},
            {"name": {}}, [{"name": "label"}], [1.0] * 5, ["a"] * 4, {"a": {"b": [1, {"c": 2}]}},
            "\u0000\ud7ff", -0.0, [True, 4], [1, -4]]
    documents = {
        "/predict": {"features": dict(zip(("sepal_length", "sepal_width", "petal_length",
                                           "petal_width"), GOOD))},
        "/predict/batch": {"instances": [GOOD, GOOD]},
        "/v2/models/iris/infer": {"id": "r1", "inputs": GOOD_V2,
                                  "outputs": [{"name": "label"}, {"name": "probabilities"}],
                                  "parameters": {}},
    }
    for _ in range(400):
        route = rng.choice(list(documents))
        body = _mutations(documents[route], rng, pool)
        response = await client.post(route, json=body)
        assert response.status_code < 500, (route, body, response.text)
        if response.status_code != 200:
            assert 400 <= response.status_code < 500, (route, body, response.text)
            error = response.json()["error"]
            assert isinstance(error, str) and error, (route, body, response.text)
    assert (await client.post("/predict", json={"features": GOOD})).status_code == 200
