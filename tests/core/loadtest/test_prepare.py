"""Preparing a load test against real servers: the schema is asked of the server (with the API
key), bodies are made for it, a payload file is sent as it is, and a bad plan is refused before
anything is sent."""

from __future__ import annotations

import orjson
import pytest
from load_servers import Answer, HttpServer, Request, refused_address
from served_models import DEMO_MODEL, WINE_REFERENCE

from studio.core.errors import StudioError
from studio.core.loadtest.engine import run
from studio.core.loadtest.payloads import RANDOM_ROWS, PayloadError, fetch_schema, parse_drift
from studio.core.loadtest.plan import LoadPlan, LoadTestError
from studio.core.loadtest.prepare import PayloadChoice, prepare
from studio.core.model.artifact import load
from studio.core.serve.client import ServerUnreachable

pytestmark = pytest.mark.timeout(120)


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


def test_prepare_builds_rows_for_the_model_the_server_describes(wine_server, tmp_path):
    plan = prepare(LoadPlan(wine_server.url, route="/predict/batch"),
                   PayloadChoice("random", seed=4))
    assert len(plan.payloads) == RANDOM_ROWS
    assert plan.payload_label == "random valid rows from the schema"
    assert len(orjson.loads(plan.payloads[0])["instances"][0]) == 13
    plan = prepare(LoadPlan(wine_server.url),
                   PayloadChoice("reference", WINE_REFERENCE, (parse_drift("alcohol=+1sd"),)))
    assert len(plan.payloads) == 178 and plan.payload_label.startswith(
        "rows of wine_reference.csv, drifted")
    path = tmp_path / "one.json"
    path.write_text('{"features": [1, 2, 3]}')
    plan = prepare(LoadPlan(wine_server.url), PayloadChoice("file", path))
    assert (plan.payloads, plan.payload_label) == (
        [b'{"features": [1, 2, 3]}'], "the body in one.json")
    assert plan.headers == {}


def test_prepare_sends_a_payload_file_without_asking_the_server(tmp_path):
    path = tmp_path / "one.json"
    path.write_text('{"features": [1, 2, 3]}')
    sock, url = refused_address()
    try:
        plan = prepare(LoadPlan(url), PayloadChoice("file", path))
        assert plan.payloads == [b'{"features": [1, 2, 3]}']
        with pytest.raises(PayloadError, match="cannot be combined"):
            prepare(LoadPlan(url), PayloadChoice("file", path, (parse_drift("a=+1sd"),)))
        with pytest.raises(StudioError):
            prepare(LoadPlan(url), PayloadChoice())  # the schema is needed, and nobody answers
    finally:
        sock.close()


def test_prepare_refuses_a_bad_plan_before_asking_the_server():
    with pytest.raises(LoadTestError, match="not an http"):
        prepare(LoadPlan("ftp://example.org"), PayloadChoice())
    with pytest.raises(LoadTestError, match="at least one connection"):
        prepare(LoadPlan("http://127.0.0.1:1", connections=0), PayloadChoice())


def test_prepare_carries_the_api_key_to_the_schema_and_to_every_request(monkeypatch):
    """A server that wants a key: the schema is fetched with it, and the test sends it."""
    from studio.core.serve.bundle import ServingOptions
    from studio.core.serve.deploy import DeployOptions, deploy

    monkeypatch.setenv("SLIPWAY_TEST_LOAD_KEY", "s3cret-key")
    deployment = deploy(load(DEMO_MODEL), DeployOptions(
        runtime="process", serving=ServingOptions(api_key_env="SLIPWAY_TEST_LOAD_KEY")))
    try:
        with pytest.raises(PayloadError, match="401"):
            prepare(LoadPlan(deployment.url), PayloadChoice())  # no key: /schema is refused
        plan = prepare(LoadPlan(deployment.url, requests=40, duration_s=None),
                       PayloadChoice(), api_key="s3cret-key")
        assert plan.headers == {"Authorization": "Bearer s3cret-key"}
        assert plan.payload_label == "random valid rows from the schema"
        report = run(plan)
        assert report.completed == 40 and report.errors == 0
        keyless = run(LoadPlan(deployment.url, payloads=plan.payloads, requests=5,
                               duration_s=None))
        assert keyless.errors_by_kind == {"HTTP 401": 5}
    finally:
        deployment.stop()
