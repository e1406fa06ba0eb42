"""The rate sweep: step an open-loop arrival rate up until p99 breaks an objective or errors
appear, then bisect, to find the highest rate a server sustains (the knee)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from studio.core.loadtest import engine
from studio.core.loadtest.plan import LoadPlan, LoadTestError
from studio.core.loadtest.results import LoadReport
from studio.core.tasks import Progress, quiet
from studio.core.units import finite_json


@dataclass
class SweepStep:
    rate: float
    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int
    late_sends: int
    met: bool
    reason: str
    """Why the step failed the objective ('' when it met it)."""


@dataclass
class SweepReport:
    slo_p99_ms: float
    steps: list[SweepStep]
    knee_rate: float | None
    """The highest arrival rate that met the objective, None when even the first step failed."""
    capacity_estimate: float
    cancelled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return finite_json(asdict(self))


def judge(report: LoadReport, rate: float, slo_p99_ms: float) -> tuple[bool, str]:
    if report.errors:
        return False, f"{report.errors} errors"
    if not report.completed:
        return False, "no answers"
    if not report.p99_ms <= slo_p99_ms:
        return False, f"p99 {report.p99_ms:.1f} ms > {slo_p99_ms:g} ms"
    if report.throughput < 0.9 * rate:
        return False, f"served {report.throughput:.0f} of {rate:.0f} req/s"
    return True, ""


def sweep(plan: LoadPlan, slo_p99_ms: float, start_rate: float | None = None,
          growth: float = 1.5, step_s: float = 3.0, refine: int = 2, max_steps: int = 16,
          progress: Progress | None = None) -> SweepReport:
    """Step an open-loop arrival rate up until p99 breaks `slo_p99_ms` or errors appear, then
    bisect between the last rate that met the objective and the first that did not.

    Without `start_rate`, a 1.5 s closed-loop burst estimates the capacity and the sweep starts at
    a quarter of it. Hands out through `progress.partial` each step's Snapshots as it runs and each
    SweepStep once judged.
    """
    progress = progress or quiet()
    if not slo_p99_ms > 0:
        raise LoadTestError("The latency objective must be positive, e.g. --slo-p99 50ms.")
    probe = replace(plan, mode="closed", duration_s=1.5, requests=None, warmup_s=0.25)
    capacity = (engine.run(probe, progress, publish=False).throughput if start_rate is None
                else start_rate * 4)
    rate = start_rate or max(1.0, capacity / 4)
    steps: list[SweepStep] = []
    good: float | None = None
    bad: float | None = None

    def step(at: float) -> bool:
        step_plan = replace(plan, mode="open", rate=at, duration_s=step_s, requests=None,
                            warmup_s=min(0.5, step_s / 4))
        report = engine.run(step_plan, progress)
        met, reason = judge(report, at, slo_p99_ms)
        steps.append(SweepStep(at, report.throughput, report.p50_ms, report.p99_ms,
                               report.errors, report.late_sends, met, reason))
        progress.partial(steps[-1])
        return met

    while len(steps) < max_steps and not progress.cancelled:
        if step(rate):
            good = rate
            rate *= growth
        else:
            bad = rate
            break
    for _ in range(refine):
        if good is None or bad is None or progress.cancelled:
            break
        middle = (good + bad) / 2
        if step(middle):
            good = middle
        else:
            bad = middle
    return SweepReport(slo_p99_ms, sorted(steps, key=lambda s: s.rate), good, capacity,
                       progress.cancelled)

