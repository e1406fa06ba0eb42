"""Load generator benchmark: Slipway's load tester (studio.core.loadtest.engine) against wrk.

    .venv/bin/python benchmarks/loadgen.py            # measure, print the table and verdicts
    .venv/bin/python benchmarks/loadgen.py --write    # and update the loadgen section of
                                                      # docs/benchmarks.md

Both clients load the same server at the same concurrency (64 connections, closed loop) with the
same POST body, one JSON row of the 100-tree random forest's 20 features. Two targets, started as
benchmarks/serve.py starts them, as child processes on 127.0.0.1:

  bare ASGI  benchmarks/bare_asgi.py under uvicorn (uvloop + httptools, access log off): it answers
             a constant JSON, so a request costs the client about what it costs the server and
             the client's own speed shows most
  forest     Slipway's server on the random forest, deployed through the process runtime: the
             server, not the client, is the bottleneck, so latencies must agree with wrk's

Each client runs as its own child process (wrk; and `python -c` running `loadtest.run(plan)` and
printing the report as JSON), so both are measured the same way and this script stays idle while
they run. The clients take turns, wrk then the tester, `--rounds` times per target, so noise from
elsewhere on the machine hits both; each measured run is preceded by `--warmup` seconds of load from
the same client (wrk: a separate run; the tester: the plan's warm-up). Figures are medians over the
rounds. Client CPU: wrk's from getrusage(RUSAGE_CHILDREN) around its run, the tester's its own
LoadReport.client_cpu_percent (also measured with getrusage, whole process, for comparison); the
server's from /proc/<pid>/stat over the seconds it is loaded, and what other processes on the
machine used meanwhile (/proc/stat user and system time less client and server): the noise both
clients share.

Targets: throughput at least 60% of wrk's on the bare app and 90% on the forest; on the forest
(server-bound) p50 and p99 within 25% of wrk's.

Raw results go to benchmarks/results/loadgen-<date>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serve import (
    DOC,
    RESULTS,
    ROOT,
    Server,
    Verdict,
    _ms,
    check_answer,
    features_body,
    log,
    machine_facts,
    run_wrk,
    start_bare,
    start_slipway,
    train_models,
    write_doc,
    wrk_version,
)

SECTION = "loadgen"
COMMAND = ".venv/bin/python benchmarks/loadgen.py --write"
CONNECTIONS = 64
TIMEOUT_S = 10.0
"""Per request, for both clients (wrk --timeout 10s, LoadPlan.timeout_s)."""
TARGETS = ("bare", "slipway")
LABELS = {"bare": "bare ASGI", "slipway": "Slipway, RandomForest"}
THROUGHPUT_TARGET = {"bare": 0.60, "slipway": 0.90}
LATENCY_TOLERANCE = 0.25
SERVER_BOUND = "slipway"
"""The target whose server, not the client, limits the throughput (see the docstring)."""

TESTER = """\
import json, sys
from studio.core.loadtest.engine import run
from studio.core.loadtest.plan import LoadPlan
spec = json.loads(sys.argv[1])
spec["payloads"] = [body.encode() for body in spec["payloads"]]
print(json.dumps(run(LoadPlan(**spec)).to_dict()))
"""
"""The tester's child process: run the plan given as JSON, print the LoadReport as JSON."""


# --- measuring a child -----------------------------------------------------------------------------

def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a live process (all its threads), from /proc."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu_s() -> tuple[float, float] | None:
    """CPU seconds since boot that all processes on the machine used (user and system time), and
    that the kernel spent in interrupts (on loopback, most of the TCP work of client and server
    alike, charged to no process)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system) / tick, (irq + softirq) / tick


def measured(call: Callable[[], Any], server: Server) -> tuple[Any, dict[str, float | None]]:
    """Run `call` (which runs one client child process and waits for it); return its result, the
    wall time, and the CPU seconds over the call of the finished child, of the server, of other
    processes (other work on a shared machine: the noise) and of the kernel's interrupts."""
    machine_before = _machine_cpu_s()
    server_before = _process_cpu_s(server.pid)
    children_before = _children_cpu_s()
    started = time.perf_counter()
    result = call()
    wall = time.perf_counter() - started
    client = _children_cpu_s() - children_before
    server_after = _process_cpu_s(server.pid)
    machine_after = _machine_cpu_s()
    server_cpu = (None if server_before is None or server_after is None
                  else server_after - server_before)
    others = interrupts = None
    if machine_before is not None and machine_after is not None and server_cpu is not None:
        others = max(0.0, machine_after[0] - machine_before[0] - client - server_cpu)
        interrupts = machine_after[1] - machine_before[1]
    return result, {"wall_s": wall, "client_cpu_s": client, "server_cpu_s": server_cpu,
                    "others_cpu_s": others, "interrupts_cpu_s": interrupts}


def _share(cpu_s: float | None, seconds: float) -> float | None:
    """CPU seconds over `seconds` of wall time, in percent of one core."""
    return None if cpu_s is None else cpu_s / seconds * 100


def _shares(cpu: dict[str, float | None], loaded_s: float) -> dict[str, float | None]:
    """The CPU figures of one run in percent of one core: the server's over the seconds it was
    loaded, the rest over the whole call."""
    return {"client_process_cpu_percent": _share(cpu["client_cpu_s"], cpu["wall_s"]),
            "server_cpu_percent": _share(cpu["server_cpu_s"], loaded_s),
            "others_cpu_percent": _share(cpu["others_cpu_s"], cpu["wall_s"]),
            "interrupts_cpu_percent": _share(cpu["interrupts_cpu_s"], cpu["wall_s"]), **cpu}


def run_tester(server: Server, seconds: float, warmup: float) -> dict[str, Any]:
    """LoadReport.to_dict() of one closed-loop run of Slipway's tester, in a child process."""
    url, route = server.url.rsplit("/", 1)
    spec = {"url": url, "route": f"/{route}", "payloads": [server.body.decode()],
            "mode": "closed", "connections": CONNECTIONS, "duration_s": seconds,
            "warmup_s": warmup, "timeout_s": TIMEOUT_S}
    result = subprocess.run([sys.executable, "-c", TESTER, json.dumps(spec)], capture_output=True,
                            text=True, timeout=seconds + warmup + TIMEOUT_S + 60, check=False,
                            cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"the load tester failed:\n{result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    for bulky in ("timeline", "distribution"):
        report.pop(bulky, None)
    return report


def wrk_round(server: Server, seconds: float, warmup: float, work: Path) -> dict[str, Any]:
    if warmup:
        run_wrk(server, server.name, CONNECTIONS, warmup, work)
    result, cpu = measured(lambda: run_wrk(server, server.name, CONNECTIONS, seconds, work),
                           server)
    return {"throughput": result.rps, "p50_ms": result.p50_ms, "p90_ms": result.p90_ms,
            "p99_ms": result.p99_ms, "requests": result.requests, "errors": result.errors,
            "client_cpu_percent": _share(cpu["client_cpu_s"], cpu["wall_s"]),
            **_shares(cpu, loaded_s=cpu["wall_s"])}


def tester_round(server: Server, seconds: float, warmup: float) -> dict[str, Any]:
    report, cpu = measured(lambda: run_tester(server, seconds, warmup), server)
    latency = report["latency"]
    return {"throughput": report["throughput"], "p50_ms": latency["p50_ms"],
            "p90_ms": latency["p90_ms"], "p99_ms": latency["p99_ms"],
            "requests": report["completed"], "errors": report["errors"],
            "client_cpu_percent": report["client_cpu_percent"],
            # the server is loaded while the plan runs, not while the interpreter starts
            **_shares(cpu, loaded_s=warmup + report["duration_s"]), "report": report}


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("throughput", "p50_ms", "p90_ms", "p99_ms", "client_cpu_percent",
            "client_process_cpu_percent", "server_cpu_percent", "others_cpu_percent",
            "interrupts_cpu_percent")
    out: dict[str, Any] = {key: statistics.median(r[key] for r in rounds
                                                  if r.get(key) is not None)
                           for key in keys if any(r.get(key) is not None for r in rounds)}
    out["errors"] = sum(r["errors"] for r in rounds)
    return out


def measure_target(server: Server, rounds: int, seconds: float, warmup: float,
                   work: Path) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"wrk": [], "tester": []}
    for number in range(1, rounds + 1):
        runs["wrk"].append(wrk_round(server, seconds, warmup, work))
        runs["tester"].append(tester_round(server, seconds, warmup))
        w, t = runs["wrk"][-1], runs["tester"][-1]
        log(f"{server.name:7} round {number}: wrk {w['throughput']:8.0f} req/s "
            f"p50 {w['p50_ms']:6.2f} p99 {w['p99_ms']:6.2f} ms cpu {w['client_cpu_percent']:3.0f}%"
            f" | tester {t['throughput']:8.0f} req/s p50 {t['p50_ms']:6.2f} "
            f"p99 {t['p99_ms']:6.2f} ms cpu {t['client_cpu_percent']:3.0f}%")
    wrk, tester = medians(runs["wrk"]), medians(runs["tester"])
    return {"target": server.name, "url": server.url, "note": server.note,
            "wrk": wrk, "tester": tester,
            "ratios": {key: tester[key] / wrk[key] for key in ("throughput", "p50_ms", "p99_ms")},
            "round_ratios": [t["throughput"] / w["throughput"]
                             for w, t in zip(runs["wrk"], runs["tester"])],
            "rounds": runs}


def run_targets(rounds: int, seconds: float, warmup: float, work: Path) -> dict[str, Any]:
    logs = work / "logs"
    logs.mkdir()
    log("Training the random forest")
    forest = train_models(work, keys=("forest",))[0]
    body = features_body(forest)
    results: dict[str, Any] = {}
    for name in TARGETS:
        server = start_bare(logs) if name == "bare" else start_slipway(forest, logs)
        try:
            server.body = body  # the same request for both targets and both clients
            check_answer(server, forest)
            if warmup:  # the server's own warm-up, once, before the first round
                run_wrk(server, name, CONNECTIONS, 2 * warmup, work)
            results[name] = measure_target(server, rounds, seconds, warmup, work)
        finally:
            with contextlib.suppress(Exception):
                server.stop()
    return results


# --- verdicts and report ---------------------------------------------------------------------------

def verdicts(results: dict[str, Any]) -> list[Verdict]:
    out = []
    for name in TARGETS:
        r = results[name]
        share = THROUGHPUT_TARGET[name]
        ratio = r["ratios"]["throughput"]
        out.append(Verdict(
            f"{LABELS[name]}: tester throughput ≥ {share:.0%} of wrk's at {CONNECTIONS} "
            "connections", ratio >= share,
            f"{r['tester']['throughput']:,.0f} vs {r['wrk']['throughput']:,.0f} req/s = "
            f"{ratio:.0%}"))
    r = results[SERVER_BOUND]
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
        ratio = r["ratios"][key]
        out.append(Verdict(
            f"{LABELS[SERVER_BOUND]} (server-bound): tester {label} within "
            f"{LATENCY_TOLERANCE:.0%} of wrk's", abs(ratio - 1) <= LATENCY_TOLERANCE,
            f"{_ms(r['tester'][key])} vs {_ms(r['wrk'][key])} = {ratio:.2f}×"))
    return out


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


def table(results: dict[str, Any]) -> str:
    lines = [("| target | client | req/s | p50 | p90 | p99 | client CPU | server CPU "
              "| other processes' CPU | errors |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for name in TARGETS:
        for client, label in (("wrk", "wrk -t2"), ("tester", "Slipway tester")):
            m = results[name][client]
            lines.append(f"| {LABELS[name]} | {label} | {m['throughput']:,.0f} | "
                         f"{_ms(m['p50_ms'])} | {_ms(m['p90_ms'])} | {_ms(m['p99_ms'])} | "
                         f"{_percent(m['client_cpu_percent'])} | "
                         f"{_percent(m.get('server_cpu_percent'))} | "
                         f"{_percent(m.get('others_cpu_percent'))} | {m['errors'] or ''} |")
    return "\n".join(lines)


def ratio_table(results: dict[str, Any]) -> str:
    lines = [("| target | throughput: tester ÷ wrk | per round | p50: tester ÷ wrk "
              "| p99: tester ÷ wrk | judged on |"), "|---|---|---|---|---|---|"]
    for name in TARGETS:
        r = results[name]
        rounds = ", ".join(f"{x:.0%}" for x in r["round_ratios"])
        lines.append(f"| {LABELS[name]} | **{r['ratios']['throughput']:.0%}** | {rounds} | "
                     f"{r['ratios']['p50_ms']:.2f}× | {r['ratios']['p99_ms']:.2f}× | "
                     f"{'throughput, p50, p99' if name == SERVER_BOUND else 'throughput'} |")
    return "\n".join(lines)


def reading(results: dict[str, Any]) -> str:
    bare, forest = results["bare"], results[SERVER_BOUND]
    forest_clients = max(forest["wrk"]["client_cpu_percent"],
                         forest["tester"]["client_cpu_percent"])
    headroom = (min(bare["wrk"]["throughput"], bare["tester"]["throughput"])
                / max(forest["wrk"]["throughput"], forest["tester"]["throughput"]))
    return (
        "Reading it: the bare app answers a constant, so a request costs the client about as "
        "much as it costs the server, and the clients and uvicorn share the machine's two cores: "
        f"uvicorn used {_percent(bare['wrk'].get('server_cpu_percent'))} of a core under wrk and "
        f"{_percent(bare['tester'].get('server_cpu_percent'))} under the tester, wrk (C, two "
        f"threads) {_percent(bare['wrk']['client_cpu_percent'])} and the tester (Python, one "
        f"event loop) {_percent(bare['tester']['client_cpu_percent'])}. This is where the "
        "client's own cost shows most, so its latencies are shown but not judged. On the "
        f"random forest each client used at most {_percent(forest_clients)} of a core, and both "
        f"reach {headroom:.1f}× that rate on the bare app, while Slipway's server used "
        f"{_percent(forest['wrk'].get('server_cpu_percent'))} of a core under wrk and "
        f"{_percent(forest['tester'].get('server_cpu_percent'))} under the tester: the server "
        "sets the pace there, the latencies are the server's, and the two clients must agree "
        "on them.")


def section(report: dict[str, Any], results: dict[str, Any],
            verdict_list: list[Verdict]) -> str:
    tester_process = {name: _percent(results[name]["tester"]["client_process_cpu_percent"])
                      for name in TARGETS}
    irq = {name: _percent(statistics.median(
        results[name][client].get("interrupts_cpu_percent") or 0.0 for client in ("wrk", "tester")))
        for name in TARGETS}
    parts = [
        f"<!-- {SECTION}:start -->",
        "## Load generator: Slipway's load tester against wrk",
        "",
        "```sh",
        COMMAND,
        "```",
        "",
        (f"Measured {report['date']} on {report['machine']}; load average "
         f"{report['load_average_before'][0]:.1f} when the runs began and "
         f"{report['load_average_after'][0]:.1f} when they ended (the machine is shared). Both "
         f"clients load the same server at {CONNECTIONS} connections, closed loop, with the same "
         "POST body (one row of 20 features, `{\"features\": [...]}`), each as its own child "
         "process of the script: `wrk -t2 -c64 --latency --timeout 10s` with a Lua script, and "
         "`studio.core.loadtest.engine.run(LoadPlan(mode=\"closed\", connections=64))` in `python -c`. "
         f"They take turns (wrk, tester, wrk, tester, ...), {report['rounds']} rounds of "
         f"{report['seconds']:g} s each per target, every measured run preceded by "
         f"{report['warmup']:g} s of load from the same client; figures are medians over the "
         "rounds, ratios are ratios of those medians."),
        "",
        ("- **bare ASGI** (`benchmarks/bare_asgi.py`): uvicorn (uvloop, httptools, access log off) "
         "answering a constant JSON: the client's own cost shows most."),
        ("- **Slipway, RandomForest**: the 100-tree forest of the serving benchmark, deployed as "
         "`benchmarks/serve.py` deploys it (`deploy(..., DeployOptions(runtime=\"process\"))`, "
         "ONNX Runtime), `POST /predict`. The server is the bottleneck."),
        "",
        ("Client CPU is in percent of one core: wrk's from `getrusage(RUSAGE_CHILDREN)` around its "
         "run, the tester's as it reports it (`LoadReport.client_cpu_percent`, over its warm-up and "
         "measured time). Measured from outside like wrk's, the tester's whole process including "
         f"interpreter start-up used {tester_process['bare']} (bare) and "
         f"{tester_process[SERVER_BOUND]} (forest). Server CPU is the server process's, from "
         "`/proc/<pid>/stat` over the seconds it is loaded. Other processes' CPU is what the rest "
         "of the machine used meanwhile (user and system time in `/proc/stat`, less client and "
         "server), the noise both clients share; the kernel's interrupt time, where loopback TCP "
         f"work lands, charged to no process, came to {irq['bare']} (bare) and "
         f"{irq[SERVER_BOUND]} (forest) of a core besides."),
        "",
        table(results),
        "",
        ratio_table(results),
        "",
        "### Targets",
        "",
        *[f"- {v.line()}" for v in verdict_list],
        "",
        reading(results),
        f"<!-- {SECTION}:end -->",
    ]
    return "\n".join(parts)


def collect_versions() -> dict[str, str]:
    import httptools
    import uvicorn
    import uvloop

    return {"Python": platform.python_version(), "uvicorn": uvicorn.__version__,
            "uvloop": uvloop.__version__, "httptools": httptools.__version__,
            "wrk": wrk_version()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved runs per client and target")
    parser.add_argument("--seconds", type=int, default=5, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=1,
                        help="seconds of load before each measured run (0: none)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    started = time.monotonic()
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "rounds": args.rounds,
                              "seconds": args.seconds, "warmup": args.warmup,
                              "connections": CONNECTIONS}
    report["versions"] = collect_versions()
    report["machine"] = machine_facts(report["versions"])
    with tempfile.TemporaryDirectory(prefix="slipway-loadgen-") as tmp:
        report["load_average_before"] = os.getloadavg()
        results = run_targets(args.rounds, args.seconds, args.warmup, Path(tmp))
        report["load_average_after"] = os.getloadavg()
    verdict_list = verdicts(results)
    report["results"] = results
    report["verdicts"] = [vars(v) for v in verdict_list]
    report["run_seconds"] = time.monotonic() - started

    print(table(results))
    print()
    print(ratio_table(results))
    print()
    for verdict in verdict_list:
        print(verdict.line())
    print()
    print(reading(results))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{SECTION}-{report['date']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"Raw results: {out.relative_to(ROOT)} (run took {report['run_seconds']:.0f} s)")
    if args.write:
        write_doc(section(report, results, verdict_list), SECTION)
        log(f"Updated the {SECTION} section of {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
