"""Two versions compared live: both served at once, the same requests sent to each at the same load,
and which is faster said with the spread it has.

    compare_live(A, B, LiveOptions(...)) -> LiveComparison

Both are deployed with the chosen runtime, each labelled with its own version (so their metrics
never mix). The request bodies are rendered once, from the same rows (a reference dataset, or rows
sampled from the schema with a seed), in the same order, for both. The load comes in interleaved
rounds, A then B, each round a closed-loop run of the load tester at the same connections for the
same time: whatever else the machine does drifts slowly, and touches an A round and the B round
right after it alike. So each round gives one paired ratio B / A, and the verdict is the median of
those ratios with their range, not one long run each, which a busy minute could decide.

Then a sample of the same requests is sent to both, one at a time, and their answers are compared
(compare_answers.py), and each server's own metrics are read (what it counted for its version, its
latency at the server, its CPU).

Hands out through `progress.partial`: the deployments' log lines (str), the load tester's
snapshots tagged with their side and round (`LiveSnapshot`, four a second), and each round's
result (`LiveRound`) as soon as it is measured.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from studio.core.errors import StudioError
from studio.core.loadtest.engine import run
from studio.core.loadtest.payloads import RANDOM_ROWS, row_bodies, tensor_bodies
from studio.core.loadtest.plan import LoadPlan
from studio.core.loadtest.results import LoadReport, Snapshot
from studio.core.monitor.promql import increase, quantile
from studio.core.monitor.scrape import Scrape, scrape
from studio.core.serve.bundle import ServingOptions
from studio.core.serve.deploy import DeployOptions, deploy
from studio.core.serve.runtimes.base import Deployment
from studio.core.tasks import Progress, quiet
from studio.core.units import finite_json
from studio.core.versions.compare_answers import compare_answers
from studio.core.versions.compare_inputs import CompareError, Version, open_version, shared_rows
from studio.core.workspace import new_work_dir

PERCENTILES = (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"))
EXAMPLES = 5


@dataclass(frozen=True)
class LiveOptions:
    rounds: int = 5
    round_s: float = 3.0
    """Measured seconds of each version in each round."""
    warmup_s: float = 0.5
    """Load sent before each round's measuring starts (new connections, warm caches)."""
    connections: int = 8
    route: str = "/predict"
    """/predict, /predict/batch or /v2/models/{name}/infer ({name} becomes each one's name)."""
    runtime: str = "auto"
    reference: str | Path | None = None
    seed: int = 0
    answers: int = 50
    """Requests sent to both, one at a time, whose answers are compared."""
    ready_timeout: float = 60.0
    timeout_s: float = 5.0

    def check(self) -> None:
        if self.rounds < 1:
            raise CompareError("A live comparison needs at least one round.")
        if not (math.isfinite(self.round_s) and self.round_s > 0):
            raise CompareError("Each round must last a positive time.")
        if self.connections < 1:
            raise CompareError("A live comparison needs at least one connection.")
        if self.answers < 0:
            raise CompareError("The number of answers to compare cannot be negative.")


@dataclass(frozen=True)
class LiveRound:
    """One version's run in one round."""

    side: str
    round: int
    """1, 2, … of `rounds`."""
    rounds: int
    throughput: float
    """Successful answers per second."""
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    completed: int
    errors: int
    distribution: list[tuple[float, float]]
    """(percentile, latency ms) pairs, for a latency distribution chart."""

    @classmethod
    def of(cls, side: str, number: int, rounds: int, report: LoadReport) -> LiveRound:
        latency = report.latency
        return cls(side, number, rounds, report.throughput, latency.p50_ms, latency.p90_ms,
                   latency.p99_ms, latency.mean_ms, report.completed, report.errors,
                   list(report.distribution))


@dataclass(frozen=True)
class LiveSnapshot:
    """What the load tester saw in the last 250 ms of one side's run in one round."""

    side: str
    round: int
    snapshot: Snapshot


class _Within(Progress):
    """A run's own progress inside the comparison's: the comparison's cancel stops it, and its
    partial results go through `on_partial`."""

    def __init__(self, outer: Progress, on_partial) -> None:
        super().__init__(on_partial=on_partial)
        self._outer = outer

    @property
    def cancelled(self) -> bool:
        return self._outer.cancelled

    def cancel(self) -> None:
        self._outer.cancel()

    def check(self) -> None:
        self._outer.check()

    def wait(self, seconds: float) -> bool:
        return self._outer.wait(seconds)


@dataclass(frozen=True)
class Spread:
    """The median of some per-round figures and their range."""

    median: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        finite = [v for v in values if v is not None and math.isfinite(v)]
        if not finite:
            return cls(None, None, None)
        return cls(statistics.median(finite), min(finite), max(finite))


@dataclass(frozen=True)
class FigureRow:
    """One figure (a percentile, the throughput) for A and B over the rounds, and B / A."""

    name: str
    unit: str
    a: Spread
    b: Spread
    ratio: Spread
    """Of the per-round ratios B / A (each round's A and B run back to back)."""


@dataclass(frozen=True)
class AnswerCheck:
    sampled: int
    agreed: int
    by_kind: dict[str, int]
    examples: list[str]


@dataclass(frozen=True)
class ServerFigures:
    """What one server counted about itself, read from its /metrics before and after the rounds."""

    side: str
    url: str
    version: str | None
    """The version its metrics are labelled with (slipway_model_info)."""
    requests: float | None
    """Requests to the compared route counted under that version."""
    p50_ms: float | None
    p99_ms: float | None
    inference_p50_ms: float | None
    cpu_seconds: float | None
    memory_bytes: float | None
    note: str | None = None


@dataclass
class LiveComparison:
    a_title: str
    b_title: str
    a_url: str
    b_url: str
    runtime: str
    plan: str
    rounds: list[LiveRound] = field(default_factory=list)
    latency: list[FigureRow] = field(default_factory=list)
    throughput: FigureRow | None = None
    verdict: str = ""
    answers: AnswerCheck | None = None
    servers: list[ServerFigures] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return finite_json(asdict(self))


def compare_live(a: str, b: str, options: LiveOptions | None = None, *, trust: bool = False,
                 progress: Progress | None = None) -> LiveComparison:
    """Serve `a` and `b` at once and load them in interleaved rounds; see the module's story."""
    progress = progress or quiet()
    options = options or LiveOptions()
    options.check()
    work_dir = new_work_dir("compare-live")
    side_a = open_version("A", a, work_dir, trust=trust, reference=options.reference,
                          progress=progress)
    side_b = open_version("B", b, work_dir, trust=trust, reference=options.reference,
                          progress=progress)
    bodies = _bodies(side_a, side_b, options)
    deployments: list[Deployment] = []
    try:
        for side in (side_a, side_b):
            progress.update(None, f"Serving {side.title}")
            deployments.append(deploy(side.onnx, _deploy_options(side, options),
                                      progress=progress))
        return _measure(side_a, side_b, deployments, bodies, options, progress)
    finally:
        for deployment in deployments:
            deployment.stop()


def _deploy_options(side: Version, options: LiveOptions) -> DeployOptions:
    # No load balancer waits on these servers: they may stop without the shutdown pause.
    return DeployOptions(runtime=options.runtime, ready_timeout=options.ready_timeout,
                         serving=ServingOptions(version=side.served_version, ready_pause_s=0.0))


def _bodies(side_a: Version, side_b: Version, options: LiveOptions) -> tuple[list, list]:
    """The same rows, in the same order, as each version's request bodies."""
    data = shared_rows(side_a.schema, side_b.schema, reference=options.reference,
                       rows=RANDOM_ROWS, seed=options.seed)
    if data.note:
        raise CompareError(f"A and B cannot be sent the same requests. {data.note}",
                           "Compare them offline to see how their inputs differ.")
    if data.frame is None:
        if not options.route.startswith("/v2/"):
            raise CompareError("These models take tensors: compare them live on "
                               "/v2/models/{name}/infer.")
        same = tensor_bodies(side_a.schema, seed=options.seed)
        return same, same
    route = options.route.replace("{name}", "NAME")  # row_bodies reads only the route's form
    return (row_bodies(data.frame, side_a.schema, route),
            row_bodies(data.frame, side_b.schema, route))


def _route(options: LiveOptions, deployment: Deployment) -> str:
    return options.route.replace("{name}", deployment.name)


def _measure(side_a: Version, side_b: Version, deployments: list[Deployment],
             bodies: tuple[list, list], options: LiveOptions,
             progress: Progress) -> LiveComparison:
    served_a, served_b = deployments
    plan_a = LoadPlan(url=served_a.url, route=_route(options, served_a), payloads=bodies[0],
                      payload_label="the same rows for both", connections=options.connections,
                      duration_s=options.round_s, warmup_s=options.warmup_s,
                      timeout_s=options.timeout_s, seed=options.seed)
    plan_b = LoadPlan(url=served_b.url, route=_route(options, served_b), payloads=bodies[1],
                      payload_label=plan_a.payload_label, connections=options.connections,
                      duration_s=options.round_s, warmup_s=options.warmup_s,
                      timeout_s=options.timeout_s, seed=options.seed)
    comparison = LiveComparison(side_a.title, side_b.title, served_a.url, served_b.url,
                                served_a.runtime,
                                f"{options.rounds} rounds of A then B, each "
                                f"{plan_a.describe()}")
    before = [_scrape_or_none(d) for d in deployments]
    for number in range(1, options.rounds + 1):
        for side, plan in (("A", plan_a), ("B", plan_b)):
            progress.update((number - 1) / options.rounds,
                            f"Round {number} of {options.rounds}: loading {side}")
            report = run(plan, _Within(progress, lambda value, side=side, number=number:
                                       progress.partial(LiveSnapshot(side, number, value))))
            progress.check()
            measured = LiveRound.of(side, number, options.rounds, report)
            comparison.rounds.append(measured)
            progress.partial(measured)
    after = [_scrape_or_none(d) for d in deployments]
    comparison.latency, comparison.throughput = figure_rows(comparison.rounds)
    progress.update(0.95, f"Comparing the answers to {options.answers} requests")
    comparison.answers = check_answers(plan_a, plan_b, options.answers)
    comparison.servers = [
        server_figures(side, deployment, first, last, _route_label(options))
        for side, deployment, first, last in zip(("A", "B"), deployments, before, after)]
    comparison.verdict = verdict(comparison)
    return comparison


def figure_rows(rounds: list[LiveRound]) -> tuple[list[FigureRow], FigureRow]:
    """Each percentile and the throughput, for A and B over the rounds, with the per-round ratio."""
    by_round = {(r.side, r.round): r for r in rounds}
    numbers = sorted({r.round for r in rounds if ("A", r.round) in by_round
                      and ("B", r.round) in by_round})

    def row(name: str, unit: str, attribute: str) -> FigureRow:
        a = [getattr(by_round[("A", n)], attribute) for n in numbers]
        b = [getattr(by_round[("B", n)], attribute) for n in numbers]
        ratios = [y / x for x, y in zip(a, b) if x and math.isfinite(x) and math.isfinite(y)]
        return FigureRow(name, unit, Spread.of(a), Spread.of(b), Spread.of(ratios))

    return ([row(name, "ms", attribute) for name, attribute in PERCENTILES],
            row("throughput", "req/s", "throughput"))


def verdict(comparison: LiveComparison) -> str:
    """Which is faster and by how much, with the spread over rounds; whether answers agree."""
    rounds = len({r.round for r in comparison.rounds})
    median = next((row for row in comparison.latency if row.name == "p50"), None)
    sentences = []
    if median is None or median.ratio.median is None:
        sentences.append("No round measured both versions, so neither is said to be faster.")
    else:
        ratio = median.ratio
        spread = (f"(B / A of the median latency: {ratio.median:.2f}, the median of {rounds} "
                  f"per-round ratios; range {ratio.low:.2f}–{ratio.high:.2f})")
        if ratio.low > 1:
            sentences.append(f"A is faster: B's median latency is {ratio.median - 1:.0%} higher "
                             f"{spread}.")
        elif ratio.high < 1:
            sentences.append(f"B is faster: its median latency is {1 - ratio.median:.0%} lower "
                             f"{spread}.")
        else:
            sentences.append(f"Neither is consistently faster: the rounds disagree {spread}.")
    throughput = comparison.throughput
    if throughput is not None and throughput.ratio.median is not None:
        sentences.append(f"Throughput B / A: {throughput.ratio.median:.2f} (range "
                         f"{throughput.ratio.low:.2f}–{throughput.ratio.high:.2f}).")
    answers = comparison.answers
    if answers is not None and answers.sampled:
        if answers.agreed == answers.sampled:
            sentences.append(f"Their answers agree on all {answers.sampled} sampled requests.")
        else:
            kinds = ", ".join(f"{count} by {kind}" for kind, count in answers.by_kind.items())
            sentences.append(f"Their answers differ on {answers.sampled - answers.agreed} of "
                             f"{answers.sampled} sampled requests ({kinds}).")
    return " ".join(sentences)


def check_answers(plan_a: LoadPlan, plan_b: LoadPlan, count: int) -> AnswerCheck:
    """Send the first `count` bodies to both, one at a time, and compare each pair of answers."""
    count = min(count, len(plan_a.payloads), len(plan_b.payloads))
    agreed, by_kind, examples = 0, {}, []
    headers = {"Content-Type": "application/json", **plan_a.headers}
    with httpx.Client(timeout=plan_a.timeout_s, headers=headers) as client:
        for body_a, body_b in zip(plan_a.payloads[:count], plan_b.payloads[:count]):
            answer_a = _post(client, plan_a.url + plan_a.route, body_a)
            answer_b = _post(client, plan_b.url + plan_b.route, body_b)
            judged = compare_answers(*answer_a, *answer_b)
            if judged.agreed:
                agreed += 1
                continue
            by_kind[judged.kind] = by_kind.get(judged.kind, 0) + 1
            if len(examples) < EXAMPLES:
                examples.append(judged.where)
    return AnswerCheck(count, agreed, by_kind, examples)


def _post(client: httpx.Client, url: str, body: bytes) -> tuple[int, bytes]:
    try:
        response = client.post(url, content=body)
    except httpx.HTTPError as exc:
        return 599, str(exc).encode()  # no answer: a status no server sends
    return response.status_code, response.content


def _route_label(options: LiveOptions) -> str:
    """The route as the server labels its metrics (v2 paths by their template)."""
    return options.route if not options.route.startswith("/v2/") else "/v2/models/{name}/infer"


def _scrape_or_none(deployment: Deployment) -> Scrape | None:
    try:
        return scrape(deployment.url + "/metrics")
    except StudioError:
        return None


def server_figures(side: str, deployment: Deployment, before: Scrape | None,
                   after: Scrape | None, route: str) -> ServerFigures:
    if before is None or after is None:
        return ServerFigures(side, deployment.url, None, None, None, None, None, None, None,
                             note="its /metrics did not answer")
    info = list(after.select("slipway_model_info"))
    version = dict(info[0]).get("version") if info else None
    scrapes = [before, after]
    labels = {"route": route, "version": version}
    requests = sum(increase(scrapes, "slipway_requests_total", labels).values())

    def ms(value: float) -> float | None:
        return value * 1000 if math.isfinite(value) else None

    cpu = increase(scrapes, "process_cpu_seconds_total")
    return ServerFigures(
        side, deployment.url, version, requests,
        ms(quantile(0.5, scrapes, "slipway_request_duration_seconds", labels)),
        ms(quantile(0.99, scrapes, "slipway_request_duration_seconds", labels)),
        ms(quantile(0.5, scrapes, "slipway_inference_duration_seconds")),
        float(np.sum(list(cpu.values()))) if cpu else None,
        after.value("process_resident_memory_bytes"))
