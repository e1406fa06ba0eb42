"""Load plans: what cannot run is refused with a reason before anything is sent."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from load_servers import HttpServer

from studio.core.loadtest.engine import run
from studio.core.loadtest.plan import LoadPlan, LoadTestError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server() -> Iterator[HttpServer]:
    """A server answering every request at once with a small JSON body."""
    with HttpServer() as running:
        yield running


@pytest.mark.parametrize(("changes", "words"), [
    ({"url": "ftp://127.0.0.1:8000"}, "http"),
    ({"url": "127.0.0.1:8000"}, "http"),
    ({"url": "http://"}, "http"),
    ({"mode": "open"}, "rate"),
    ({"mode": "open", "rate": 0}, "rate"),
    ({"mode": "open", "rate": math.inf}, "rate"),
    ({"mode": "burst"}, "mode"),
    ({"connections": 0}, "connection"),
    ({"duration_s": None, "requests": None}, "duration"),
    ({"duration_s": 0}, "duration"),
    ({"requests": 0}, "requests"),
    ({"warmup_s": -1.0}, "warm-up"),
    ({"timeout_s": 0}, "timeout"),
    ({"route": "predict"}, "route"),
])
def test_bad_plans_are_refused_with_a_reason(changes, words):
    plan = LoadPlan(**{"url": "http://127.0.0.1:8000", **changes})
    with pytest.raises(LoadTestError) as caught:
        plan.check()
    assert words in str(caught.value).lower()


def test_run_checks_the_plan_before_sending_anything(server):
    with pytest.raises(LoadTestError):
        run(LoadPlan(server.url, connections=0))
    assert server.received == 0


def test_a_warm_up_that_is_not_a_number_is_refused():
    with pytest.raises(LoadTestError):
        LoadPlan("http://127.0.0.1:8000", warmup_s=math.nan).check()


