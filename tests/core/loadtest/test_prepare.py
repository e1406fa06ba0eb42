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
from studio.core.loadtest.payloads import (
    PROFILE_LABEL,
    RANDOM_LABEL,
    RANDOM_ROWS,
    PayloadError,
    fetch_reference,
    fetch_schema,
    parse_drift,
)
from studio.core.loadtest.plan import LoadPlan, LoadTestError
from studio.core.loadtest.prepare import PayloadChoice, prepare
from studio.core.model.artifact import load
from studio.core.monitor.drift import Thresholds, compare_profile
from studio.core.monitor.live_counts import live_counts
from studio.core.monitor.reference import ReferenceProfile
from studio.core.monitor.scrape import scrape
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


# --- the default bodies and drift ----------------------------------------------------------------

def _psi_while_sending(plan: LoadPlan, reference: ReferenceProfile) -> dict[str, float]:
    """Each feature's PSI over what the server counted while `plan` ran, as the Monitor computes
    it: the server's own bins, from its /metrics before and after."""
    before = scrape(f"{plan.url}/metrics")
    report = run(plan)
    after = scrape(f"{plan.url}/metrics")
    assert report.errors == 0 and report.completed == plan.requests
    counted = live_counts([before, after])
    assert counted.rows == plan.requests
    return {row.feature: row.psi for row in compare_profile(reference, counted.counts())}


def test_a_default_load_test_against_a_server_with_a_reference_is_not_drift(
        wine_server_with_reference):
    """Rows like the server's reference data are the default: every feature stays below the warn
    threshold. Random rows stay available, labelled as such, and they are what would look like
    drift."""
    url = wine_server_with_reference.url
    reference = fetch_reference(url)
    assert reference is not None and reference.source == "dataset"
    plan = LoadPlan(url, connections=4, requests=1500, duration_s=None)
    warn = Thresholds().psi_warn

    default = prepare(plan, PayloadChoice())
    assert default.payload_label == PROFILE_LABEL
    assert PROFILE_LABEL in default.describe()
    psi = _psi_while_sending(default, reference)
    assert set(psi) == set(reference.features) and len(psi) == 13
    assert max(psi.values()) < warn, psi

    random = prepare(plan, PayloadChoice("random"))
    assert random.payload_label == RANDOM_LABEL
    psi = _psi_while_sending(random, reference)
    assert max(psi.values()) >= warn, psi


def test_without_reference_data_the_default_is_random_rows_and_says_so(wine_server):
    """The demo model bundled without data has only provisional bins from its schema: nothing to
    make rows like, so the default is random rows, labelled."""
    assert fetch_reference(wine_server.url) is None
    plan = prepare(LoadPlan(wine_server.url), PayloadChoice())
    assert plan.payload_label == RANDOM_LABEL and len(plan.payloads) == RANDOM_ROWS
    with pytest.raises(PayloadError, match="no reference data"):
        prepare(LoadPlan(wine_server.url), PayloadChoice("profile"))
