"""The rate sweep against a real HTTP server that refuses work above a known rate: it finds the
knee, says why each step missed, and needs an objective."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from load_servers import HttpServer, RateLimited

from studio.core.loadtest.engine import run
from studio.core.loadtest.plan import LoadPlan, LoadTestError
from studio.core.loadtest.sweep import SweepStep, judge, sweep
from studio.core.tasks import Progress

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server() -> Iterator[HttpServer]:
    """A server answering every request at once with a small JSON body."""
    with HttpServer() as running:
        yield running


def test_sweep_finds_the_knee_of_a_server_that_refuses_work_above_300_per_second():
    steps = []
    with HttpServer(RateLimited(limit=300)) as server:
        # The objective is loose enough that a busy machine's hiccups do not break it: the 503s
        # are what must stop the sweep.
        report = sweep(LoadPlan(server.url, connections=8), slo_p99_ms=200, start_rate=100,
                       growth=2, step_s=1.0, refine=1,
                       progress=Progress(on_partial=lambda part: steps.append(part)
                                         if isinstance(part, SweepStep) else None))
    assert report.knee_rate is not None and 100 <= report.knee_rate <= 600
    rates = [s.rate for s in report.steps]
    assert rates == sorted(rates)
    assert len(steps) == len(report.steps)  # every step was handed out as it was judged
    assert {s.rate for s in steps} == set(rates)
    failed = [s for s in report.steps if not s.met]
    assert failed and all(s.reason for s in failed)
    assert all(not s.reason for s in report.steps if s.met)
    # 400 req/s is over the server's limit: that step was answered with 503s.
    at_400 = next(s for s in report.steps if s.rate == 400)
    assert not at_400.met and at_400.errors > 0 and "error" in at_400.reason
    assert all(s.met for s in report.steps if s.rate <= report.knee_rate)
    assert not report.cancelled
    json.dumps(report.to_dict(), allow_nan=False)


def test_judge_names_why_a_step_missed_the_objective(server):
    report = run(LoadPlan(server.url, mode="open", rate=100, connections=2, duration_s=0.3))
    assert judge(report, 100, slo_p99_ms=1000) == (True, "")
    slow = replace(report, latency=replace(report.latency, p99_ms=80.0))
    assert judge(slow, 100, slo_p99_ms=50) == (False, "p99 80.0 ms > 50 ms")
    assert judge(replace(report, throughput=50.0), 100, 1000) == (False, "served 50 of 100 req/s")
    assert judge(replace(report, errors=3), 100, 1000) == (False, "3 errors")
    assert judge(replace(report, completed=0), 100, 1000) == (False, "no answers")


def test_sweep_needs_a_positive_objective(server):
    with pytest.raises(LoadTestError):
        sweep(LoadPlan(server.url), slo_p99_ms=0, start_rate=100)
    assert server.received == 0


