"""The rate sweep: step an open-loop arrival rate up until p99 breaks an objective or errors
appear, then bisect, to find the highest rate a server sustains (the knee).

Like a single run, the whole sweep runs in the tester's own process (tester.py); its steps and
report are the plain data of results.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from studio.core.loadtest import engine, tester
from studio.core.loadtest.plan import LoadPlan, LoadTestError
from studio.core.loadtest.results import LoadReport, SweepReport, SweepStep
from studio.core.tasks import Progress, quiet

__all__ = ["SweepReport", "SweepStep", "judge", "sweep", "sweep_in_this_process"]


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
    bisect between the last rate that met the objective and the first that did not; in the
    tester's own process.

    Without `start_rate`, a 1.5 s closed-loop burst estimates the capacity and the sweep starts at
    a quarter of it. Hands out through `progress.partial`, from this thread, each step's Snapshots
    as it runs and each SweepStep once judged. Cancelling ends it within about 100 ms with the
    steps judged so far.
    """
    _check_objective(slo_p99_ms)
    plan.check()
    return tester.in_tester_process(
        {"job": "sweep", "plan": tester.plan_to_wire(plan),
         "options": {"slo_p99_ms": slo_p99_ms, "start_rate": start_rate, "growth": growth,
                     "step_s": step_s, "refine": refine, "max_steps": max_steps}},
        progress or quiet())


def _check_objective(slo_p99_ms: float) -> None:
    if not slo_p99_ms > 0:
        raise LoadTestError("The latency objective must be positive, e.g. --slo-p99 50ms.")


def sweep_in_this_process(plan: LoadPlan, slo_p99_ms: float, start_rate: float | None = None,
                          growth: float = 1.5, step_s: float = 3.0, refine: int = 2,
                          max_steps: int = 16, progress: Progress | None = None) -> SweepReport:
    """The sweep itself, on the engine in this process: what the tester's process runs."""
    progress = progress or quiet()
    _check_objective(slo_p99_ms)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    probe = replace(plan, mode="closed", duration_s=1.5, requests=None, warmup_s=0.25)
    capacity = (engine.run_in_this_process(probe, progress, publish=False).throughput
                if start_rate is None else start_rate * 4)
    rate = start_rate or max(1.0, capacity / 4)
    steps: list[SweepStep] = []
    good: float | None = None
    bad: float | None = None

    def step(at: float) -> bool:
        step_plan = replace(plan, mode="open", rate=at, duration_s=step_s, requests=None,
                            warmup_s=min(0.5, step_s / 4))
        report = engine.run_in_this_process(step_plan, progress)
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
                       progress.cancelled, plan=(f"{plan.connections} connections, {step_s:g} s "
                                                 f"a step, {plan.route}, {plan.payload_label}"),
                       url=plan.url, model=plan.model, started_at=started_at)

