"""Serving benchmark: Slipway's server against the tutorial server, MLServer and the HTTP ceiling.

    .venv/bin/python benchmarks/serve.py            # measure, print the tables and verdicts
    .venv/bin/python benchmarks/serve.py --write    # and update the serve section of
                                                    # docs/benchmarks.md
    .venv/bin/python benchmarks/serve.py --guards --write   # only what the connection guards
                                                            # cost, and only that part of it
    .venv/bin/python benchmarks/serve.py --peers --write    # only the load tests, with the
                                                            # ONNX Runtime peers beside them
    .venv/bin/python benchmarks/serve.py --v2-binary --write   # squeezenet over v2: JSON
                                                               # against binary tensor data

Everything is measured in one run on this machine, side by side, and reported as ratios (the
machines are shared: absolute numbers move from run to run, ratios taken in the same minute do not
move much). Two models are trained here on synthetic data (make_classification): a 100-tree
RandomForestClassifier on 20 features and an MLPClassifier (256, 256) on 64 features, saved with
joblib. For each, these servers run as child processes on 127.0.0.1, one process each:

  (a) tutorial  benchmarks/tutorial_server.py: FastAPI + pydantic + joblib, predict and
                predict_proba per request, uvicorn with default options (access log on)
  (b) Slipway   the product's path: artifact.load(trust=True) -> deploy.deploy(process runtime),
                which converts to ONNX (parity-checked) and runs slipway_server
  (c) bare ASGI benchmarks/bare_asgi.py: a constant JSON under Slipway's uvicorn options; the
                ceiling of HTTP on this machine, whatever the model
  (d) MLServer  Seldon MLServer + mlserver-sklearn serving the same joblib file over the Open
                Inference Protocol v2 (one process: parallel_workers 0), in its own venv
                (benchmarks/.venv-mlserver, created on first use; skipped with a note if that fails)

and wrk loads each with single-row POSTs at 1, 16 and 64 connections. Then Docker: the size of
Slipway's image for the forest against a tutorial-style image (benchmarks/tutorial_image) built
FROM the same base, and the time from `containers.run` to /ready answering 200 for an iris model.

With --peers, the alternatives a user would pick today for the same ONNX file (the model.onnx of
Slipway's bundle) with ONNX Runtime join them, each tuned as its own docs advise
(benchmarks/peers/), each with Slipway's ONNX Runtime session options (peers/onnx_session.py):

  (e) FastAPI   an `async def` route over one ONNX Runtime session, uvicorn (uvloop, httptools),
                access log off
  (f) LitServe  its dynamic batching (max_batch_size 32, batch_timeout 2 ms), one inference
                worker, one API server, the ZeroMQ queue; in its own venv
                (benchmarks/.venv-litserve, created on first use)
  (g) BentoML   a batchable API (adaptive batching, max_batch_size 32, max_latency_ms 1000),
                one worker, concurrency set to the batch size, access log off; in its own venv
                (benchmarks/.venv-bentoml, created on first use)

A peer that cannot be installed is reported as not run, with the reason, never left out
silently; one that installs but does not start stops the run with its log.

With --v2-binary, the squeezenet image model (onnx's light_squeezenet, [1, 3, 224, 224] FP32)
deployed as the studio deploys it, called over the Open Inference Protocol v2 with the bodies
tritonclient builds: JSON both ways, against its defaults (binary tensor data both ways).

What the connection guards cost (slipway_server/connections.py: connection limit, head and body
deadlines, head size cap): the forest's bundle served by `python -m slipway_server`, against the
same command with uvicorn's stock httptools protocol in place of the guarded one
(UNGUARDED_SERVER), on the forest's POST /predict and on GET /health, the cheapest route and so
the largest share the guards can take. Both are loaded at once, each by its own wrk, in short rounds: whatever
else the shared machine does slows both alike, and the scheduler gives them the same CPU, so the
ratio of their throughputs is the ratio of what a request costs each.

Raw results go to benchmarks/results/serve-<date>.json (serve-peers-<date>.json,
serve-v2-binary-<date>.json, serve-guards-<date>.json for the parts run alone).

Longer than 500 lines because it is one script a reader runs and checks top to bottom: how each
server is started, how wrk loads it, how the image is measured and how the tables are written
are sections of one procedure, and a figure in docs/benchmarks.md is traced to it in one file.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import http.server
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from studio.core.children import die_with_parent
from studio.core.model.artifact import load
from studio.core.serve.bundle import ImageOptions, manylinux_platforms
from studio.core.serve.deploy import DeployOptions, deploy
from studio.core.serve.runtimes.base import free_port
from studio.core.tasks import Progress

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = HERE / "results"
SECTION = "serve"
COMMAND = ".venv/bin/python benchmarks/serve.py --write"

BASE_IMAGE = "slipway/python:3.11-bookworm"
MLSERVER_VENV = HERE / ".venv-mlserver"
TUTORIAL_WHEELS = HERE / ".cache" / "tutorial-wheels"
IMAGE_PREFIX = "slipway-bench"
CONNECTIONS = (1, 16, 64)
TARGET_CONNECTIONS = 16
READY_TIMEOUT_S = 90.0
SERVERS = ("tutorial", "slipway", "fastapi", "litserve", "bentoml", "mlserver", "bare")
PEERS = ("fastapi", "litserve", "bentoml")
PEERS_SECTION = "serve-peers"
PEERS_COMMAND = ".venv/bin/python benchmarks/serve.py --peers --write"
PEER_VENVS = {
    # name: (venv, what to install, the module whose __version__ is reported)
    "litserve": (HERE / ".venv-litserve", ["litserve", "pyzmq", "onnxruntime", "numpy"],
                 "litserve"),
    "bentoml": (HERE / ".venv-bentoml", ["bentoml", "onnxruntime", "numpy"], "bentoml"),
}
"""Peers whose pins clash with the studio's run from venvs of their own."""
BINARY_SECTION = "serve-v2-binary"
BINARY_COMMAND = ".venv/bin/python benchmarks/serve.py --v2-binary --write"
BINARY_CONNECTIONS = (1, 4)
BINARY_CLIENT_CALLS = 30
IMAGE_VALUES = 3 * 224 * 224
GUARDS_SECTION = "serve-guards"
GUARDS_COMMAND = ".venv/bin/python benchmarks/serve.py --guards --write"
GUARD_CONNECTIONS = (16, 64)
GUARD_ROUNDS = 30
GUARD_SECONDS = 2
GUARD_BUDGET = 0.05
"""The guards may cost at most this share of throughput on GUARD_ROUTE."""
GUARD_ROUTE = "forest POST /predict"
LABELS = {"tutorial": "(a) tutorial: FastAPI + scikit-learn",
          "slipway": "(b) Slipway (process runtime)",
          "mlserver": "(d) MLServer + mlserver-sklearn",
          "bare": "(c) bare ASGI (HTTP ceiling)",
          "fastapi": "(e) FastAPI async def + ONNX Runtime",
          "litserve": "(f) LitServe, batching, + ONNX Runtime",
          "bentoml": "(g) BentoML, adaptive batching, + ONNX Runtime"}
SHORT = {"tutorial": "tutorial", "slipway": "Slipway", "mlserver": "MLServer", "bare": "bare ASGI",
         "fastapi": "FastAPI (async)", "litserve": "LitServe", "bentoml": "BentoML"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- models ------------------------------------------------------------------------------------

@dataclass
class BenchModel:
    key: str
    short: str
    title: str
    features: int
    path: Path
    row: list[float]
    expected_label: int


def train_models(work: Path, keys: tuple[str, ...] = ("forest", "mlp")) -> list[BenchModel]:
    """The benchmark models named in `keys` ("forest", "mlp"), trained and saved under `work`."""
    specs = [
        ("forest", "RandomForest", "RandomForest, 100 trees, 20 features", 20,
         RandomForestClassifier(n_estimators=100, random_state=0)),
        ("mlp", "MLP (256, 256)", "MLP (256, 256), 64 features", 64,
         MLPClassifier(hidden_layer_sizes=(256, 256), random_state=0)),
    ]
    models = []
    for key, short, title, n_features, estimator in specs:
        if key not in keys:
            continue
        X, y = make_classification(n_samples=2000, n_features=n_features,
                                   n_informative=n_features // 2, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(X[:1500], y[:1500])
        path = work / key / "model.joblib"
        path.parent.mkdir(parents=True)
        joblib.dump(estimator, path)
        row = [float(v) for v in X[1500]]
        models.append(BenchModel(key, short, title, n_features, path, row,
                                 int(estimator.predict(X[1500:1501])[0])))
    return models


# --- servers -----------------------------------------------------------------------------------

@dataclass
class Server:
    name: str
    url: str
    """The URL wrk loads (the predict endpoint)."""
    body: bytes
    stop: Any
    note: str = ""
    pid: int | None = None
    """The server's process, when it runs as one on this machine (for its CPU use)."""
    bundle: Path | None = None
    """The build context Slipway's server runs from (serving.json, server/)."""


def _get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return 0


def _post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:500]


def start_process(command: list[str], *, cwd: Path, log_path: Path, ready_url: str,
                  env: dict[str, str] | None = None) -> subprocess.Popen:
    """A child server in its own process group (so stop() ends it and anything it forked),
    which also dies with this script; returns once `ready_url` answers 200."""
    with open(log_path, "wb") as log_file:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                   start_new_session=True, preexec_fn=die_with_parent)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while _get(ready_url, timeout=1.0) != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{command[:3]} did not become ready ({ready_url}):\n{tail}")
        time.sleep(0.05)
    return process


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def features_body(model: BenchModel) -> bytes:
    return json.dumps({"features": model.row}).encode()


def start_tutorial(model: BenchModel, logs: Path) -> Server:
    port = free_port()
    process = start_process(
        [sys.executable, "-m", "uvicorn", "tutorial_server:app", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=HERE, log_path=logs / f"tutorial-{model.key}.log",
        ready_url=f"http://127.0.0.1:{port}/docs", env={"MODEL_PATH": str(model.path)})
    return Server("tutorial", f"http://127.0.0.1:{port}/predict", features_body(model),
                  lambda: stop_process(process),
                  "uvicorn defaults: access log on (to a file), one worker")


def start_slipway(model: BenchModel, logs: Path) -> Server:
    artifact = load(model.path, trust=True)
    deployment = deploy(artifact, DeployOptions(runtime="process"), progress=Progress(on_partial=log))
    return Server("slipway", f"{deployment.url}/predict", features_body(model),
                  deployment.stop, "deploy(runtime='process'): ONNX Runtime, default options",
                  pid=getattr(deployment, "pid", None), bundle=deployment.bundle_path)


def start_bare(logs: Path) -> Server:
    port = free_port()
    process = start_process(
        [sys.executable, str(HERE / "bare_asgi.py"), "--host", "127.0.0.1", "--port", str(port)],
        cwd=HERE, log_path=logs / "bare.log", ready_url=f"http://127.0.0.1:{port}/")
    return Server("bare", f"http://127.0.0.1:{port}/predict", b"", lambda: stop_process(process),
                  "Slipway's uvicorn options", pid=process.pid)


def mlserver_version() -> str | None:
    python = MLSERVER_VENV / "bin" / "python"
    if not python.exists():
        return None
    result = subprocess.run([str(python), "-c", "import mlserver; print(mlserver.__version__)"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_mlserver() -> tuple[bool, str]:
    """MLServer in its own venv (its pins clash with the studio's); created on first use."""
    if mlserver_version():
        return True, f"MLServer {mlserver_version()}"
    log(f"Installing MLServer into {MLSERVER_VENV} (first use, about 2 min)")
    shutil.rmtree(MLSERVER_VENV, ignore_errors=True)
    base_python = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
    import sklearn
    steps = [
        [base_python, "-m", "venv", str(MLSERVER_VENV)],
        # the same scikit-learn as here, so the joblib files load as they were saved;
        # uvloop 0.22 does not work with MLServer 1.7 on this machine
        [str(MLSERVER_VENV / "bin" / "pip"), "install", "--disable-pip-version-check", "-q",
         "mlserver", "mlserver-sklearn", "uvloop<0.22", f"scikit-learn=={sklearn.__version__}"],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            return False, f"MLServer could not be installed ({' / '.join(tail)})"
    version = mlserver_version()
    return (True, f"MLServer {version}") if version else (False, "MLServer does not import")


def start_mlserver(model: BenchModel, logs: Path, work: Path) -> Server:
    folder = work / f"mlserver-{model.key}"
    (folder / model.key).mkdir(parents=True)
    shutil.copyfile(model.path, folder / model.key / "model.joblib")
    port = free_port()
    settings = {"debug": False, "parallel_workers": 0, "host": "127.0.0.1", "http_port": port,
                "grpc_port": free_port(), "metrics_port": free_port(),
                "load_models_at_startup": True}
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    (folder / model.key / "model-settings.json").write_text(json.dumps({
        "name": model.key, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"}}, indent=2))
    process = start_process(
        [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(folder)], cwd=folder,
        log_path=logs / f"mlserver-{model.key}.log",
        ready_url=f"http://127.0.0.1:{port}/v2/models/{model.key}/ready")
    body = json.dumps({
        "inputs": [{"name": "input-0", "shape": [1, model.features], "datatype": "FP64",
                    "data": model.row}],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}).encode()
    return Server("mlserver", f"http://127.0.0.1:{port}/v2/models/{model.key}/infer", body,
                  lambda: stop_process(process),
                  "v2 REST, parallel_workers 0 (one process), debug off (no access log), "
                  "outputs predict + predict_proba")


def peer_version(name: str) -> str | None:
    """The installed version of a peer (None: not installed)."""
    if name == "fastapi":
        import fastapi
        return fastapi.__version__
    venv, _packages, module = PEER_VENVS[name]
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    result = subprocess.run([str(python), "-c", f"import {module}; print({module}.__version__)"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_peer(name: str) -> tuple[bool, str]:
    """A peer ready to start (its venv created on first use), or why it cannot be."""
    version = peer_version(name)
    if version:
        return True, f"{SHORT[name]} {version}"
    venv, packages, _module = PEER_VENVS[name]
    log(f"Installing {SHORT[name]} into {venv} (first use)")
    shutil.rmtree(venv, ignore_errors=True)
    base_python = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
    for step in ([base_python, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q",
                  *packages]):
        result = subprocess.run(step, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            return False, f"{SHORT[name]} could not be installed ({' / '.join(tail)})"
    version = peer_version(name)
    return (True, f"{SHORT[name]} {version}") if version else (
        False, f"{SHORT[name]} does not import")


PEER_NOTES = {
    "fastapi": "`async def` route, one ONNX Runtime session, uvicorn with uvloop and httptools, "
               "access log off, one worker",
    "litserve": "dynamic batching (max_batch_size 32, batch_timeout 2 ms), one inference worker, "
                "one API server process, ZeroMQ queue (fast_queue), log level warning",
    "bentoml": "batchable API: adaptive batching (max_batch_size 32, max_latency_ms 1000), one "
               "worker, traffic concurrency 32, access log off; body {\"features\": [[...]]}",
}
"""Each peer also runs ONNX Runtime with Slipway's session options (peers/onnx_session.py)."""


def start_peer(name: str, model: BenchModel, onnx_path: Path, logs: Path) -> Server:
    """One of the ONNX Runtime peers (benchmarks/peers/) serving `onnx_path`."""
    port = free_port()
    env = {"MODEL_PATH": str(onnx_path)}
    log_path = logs / f"{name}-{model.key}.log"
    body = features_body(model)
    if name == "fastapi":
        process = start_process(
            [sys.executable, "-m", "uvicorn", "fastapi_onnx:app", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log"], cwd=HERE / "peers", log_path=log_path,
            ready_url=f"http://127.0.0.1:{port}/docs", env=env)
    elif name == "litserve":
        python = PEER_VENVS["litserve"][0] / "bin" / "python"
        process = start_process([str(python), "litserve_onnx.py", "--port", str(port)],
                                cwd=HERE / "peers", log_path=log_path,
                                ready_url=f"http://127.0.0.1:{port}/health", env=env)
    else:
        bentoml = PEER_VENVS["bentoml"][0] / "bin" / "bentoml"
        process = start_process(
            [str(bentoml), "serve", "bentoml_onnx:OnnxModel", "--host", "127.0.0.1", "--port",
             str(port)], cwd=HERE / "peers", log_path=log_path,
            ready_url=f"http://127.0.0.1:{port}/readyz", env=env)
        body = json.dumps({"features": [model.row]}).encode()
    return Server(name, f"http://127.0.0.1:{port}/predict", body,
                  functools.partial(stop_process, process), PEER_NOTES[name], pid=process.pid)


def check_answer(server: Server, model: BenchModel | None) -> None:
    """One request before the load: a 200 with the right label, or the run stops here."""
    status, answer = _post(server.url, server.body)
    if status != 200:
        raise RuntimeError(f"{server.name} answered {status} to {server.url}: {answer!r}")
    if model is None or server.name == "bare":
        return
    if server.name == "mlserver":
        label = answer["outputs"][0]["data"][0]
    elif server.name == "bentoml":
        label = answer[0][0]  # each row: the label, then the probabilities
    elif server.name == "tutorial":
        label = answer["prediction"]
    else:
        label = answer["label"]
    if int(label) != model.expected_label:
        raise RuntimeError(f"{server.name} predicted {label!r}, scikit-learn {model.expected_label}")


# --- wrk ---------------------------------------------------------------------------------------

@dataclass
class WrkResult:
    server: str
    model: str
    connections: int
    threads: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    """The interleaved wrk runs this result averages (empty for a single run)."""
    server_cpu_s: float | None = None
    """CPU seconds the server's process used during the run, where measured."""

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def combine(runs: list[WrkResult]) -> WrkResult:
    """Interleaved rounds as one result: mean req/s and mean percentiles, summed counts."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    errors: dict[str, int] = {}
    for run in runs:
        for kind, count in run.socket_errors.items():
            errors[kind] = errors.get(kind, 0) + count
    return WrkResult(
        server=first.server, model=first.model, connections=first.connections,
        threads=first.threads, seconds=sum(r.seconds for r in runs),
        requests=sum(r.requests for r in runs),
        rps=statistics.fmean(r.rps for r in runs),
        p50_ms=statistics.fmean(r.p50_ms for r in runs),
        p90_ms=statistics.fmean(r.p90_ms for r in runs),
        p99_ms=statistics.fmean(r.p99_ms for r in runs),
        non_2xx=sum(r.non_2xx for r in runs), socket_errors=errors,
        rounds=[{k: v for k, v in asdict(r).items() if k not in ("server", "model", "rounds")}
                for r in runs])


UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/sec, the 50/90/99% lines of --latency, request count and errors."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    if not rps or not total:
        raise ValueError(f"unexpected wrk output:\n{output}")
    parsed: dict[str, Any] = {"rps": float(rps.group(1)), "requests": int(total.group(1))}
    for percent in (50, 90, 99):
        line = re.search(rf"^\s+{percent}%\s+(\S+)", output, re.MULTILINE)
        if not line:
            raise ValueError(f"no {percent}% line in wrk output:\n{output}")
        parsed[f"p{percent}_ms"] = _duration_ms(line.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    parsed["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        output)
    parsed["socket_errors"] = ({k: int(v) for k, v in zip(
        ("connect", "read", "write", "timeout"), sockets.groups()) if int(v)} if sockets else {})
    return parsed


def lua_script(body: bytes, folder: Path) -> Path:
    path = folder / f"post-{hashlib.sha256(body).hexdigest()[:12]}.lua"
    if not path.exists():  # never rewritten: a wrk already running may be reading it
        path.write_text('wrk.method = "POST"\n'
                        f"wrk.body = {json.dumps(body.decode())}\n"
                        'wrk.headers["Content-Type"] = "application/json"\n')
    return path


def _wrk(server: Server, connections: int, seconds: float, folder: Path,
         own_session: bool = False) -> subprocess.Popen:
    threads = min(2, connections)  # wrk needs at least one connection per thread
    # A server without a body is loaded with wrk's own GET.
    script = ["-s", str(lua_script(server.body, folder))] if server.body else []
    return subprocess.Popen(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
                             "--latency", "--timeout", "10s", *script, server.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=own_session)


def _wrk_result(process: subprocess.Popen, server: Server, model_key: str, connections: int,
                seconds: float) -> WrkResult:
    try:
        stdout, stderr = process.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise RuntimeError(f"wrk did not finish loading {server.url}") from None
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed: {stderr or stdout}")
    return WrkResult(server=server.name, model=model_key, connections=connections,
                     threads=min(2, connections), seconds=seconds, **parse_wrk(stdout))


def run_wrk(server: Server, model_key: str, connections: int, seconds: float,
            folder: Path) -> WrkResult:
    seconds = max(1, round(seconds))  # wrk takes whole seconds
    return _wrk_result(_wrk(server, connections, seconds, folder), server, model_key,
                       connections, seconds)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, all its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk_together(servers: list[Server], model_key: str, connections: int, seconds: float,
                     folder: Path) -> list[WrkResult]:
    """One wrk per server, all loading at the same time, with each server's CPU time. Each wrk,
    like each server started by start_process, runs in a session of its own: Linux shares CPU
    fairly between sessions (autogroups), so none is favoured by where it was started from."""
    seconds = max(1, round(seconds))
    cpu_before = [process_cpu_seconds(server.pid) for server in servers]
    running = [_wrk(server, connections, seconds, folder, own_session=True) for server in servers]
    results = [_wrk_result(process, server, model_key, connections, seconds)
               for process, server in zip(running, servers)]
    for result, server, before in zip(results, servers, cpu_before):
        result.server_cpu_s = process_cpu_seconds(server.pid) - before
    return results


# --- what the connection guards cost -----------------------------------------------------------

UNGUARDED_SERVER = """
import sys
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
import slipway_server.__main__ as server
import slipway_server.connections as connections
connections.guarded_protocol = lambda *limits: HttpToolsProtocol
sys.exit(server.main(sys.argv[1:]))
"""
"""`python -m slipway_server` with uvicorn's stock httptools protocol in place of the guarded one:
the server with everything but its connection guards (same arguments)."""


@dataclass
class GuardPair:
    target: str
    connections: int
    guarded: list[WrkResult]
    unguarded: list[WrkResult]

    @property
    def ratios(self) -> list[float]:
        """Guarded ÷ unguarded throughput, round by round."""
        return [g.rps / u.rps for g, u in zip(self.guarded, self.unguarded)]

    @property
    def ratio(self) -> float:
        """The geometric mean of the rounds' ratios."""
        return statistics.geometric_mean(self.ratios)

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% confidence interval of `ratio` (normal, on the logarithms of the ratios)."""
        logs = [math.log(r) for r in self.ratios]
        half = 1.96 * statistics.stdev(logs) / math.sqrt(len(logs))
        centre = statistics.fmean(logs)
        return math.exp(centre - half), math.exp(centre + half)

    @property
    def cpu_ratio(self) -> float:
        """Server CPU per request, unguarded ÷ guarded, over all rounds: the throughput each
        would reach on the same CPU, as a ratio (below 1: the guards cost CPU)."""
        def per_request(runs: list[WrkResult]) -> float:
            return sum(r.server_cpu_s or 0.0 for r in runs) / sum(r.requests for r in runs)
        return per_request(self.unguarded) / per_request(self.guarded)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.guarded + self.unguarded)


def guard_runs(model: BenchModel, rounds: int, seconds: float, warmup: float,
               work: Path) -> list[GuardPair]:
    """The forest's server with and without the guards, loaded together, on /predict and
    /health."""
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    deployed = start_slipway(model, logs)  # for its bundle: what deploy builds
    deployed.stop()
    bundle = deployed.bundle
    config = str(bundle / "serving.json")
    # Both started alike: the guarded one with the command the process runtime runs.
    arguments = ["--config", config, "--host", "127.0.0.1", "--port"]
    commands = {"slipway": [sys.executable, "-P", "-m", "slipway_server", *arguments],
                "unguarded": [sys.executable, "-P", "-c", UNGUARDED_SERVER, *arguments]}
    servers: dict[str, Server] = {}
    try:
        for name, command in commands.items():
            port = free_port()
            process = start_process(command + [str(port)], cwd=bundle,
                                    log_path=logs / f"guards-{name}.log",
                                    ready_url=f"http://127.0.0.1:{port}/ready",
                                    env={"PYTHONPATH": str(bundle / "server")})
            servers[name] = Server(name, f"http://127.0.0.1:{port}/predict", deployed.body,
                                   functools.partial(stop_process, process), pid=process.pid)
            check_answer(servers[name], model)
        guarded, unguarded = servers["slipway"], servers["unguarded"]
        targets = [(GUARD_ROUTE, guarded, unguarded),
                   ("GET /health", *(Server(s.name, s.url.replace("/predict", "/health"),
                                            b"", None, pid=s.pid) for s in (guarded, unguarded)))]
        pairs = []
        for title, with_guards, without in targets:
            if warmup:
                run_wrk_together([with_guards, without], model.key, 16, warmup, work)
            for connections in GUARD_CONNECTIONS:
                pair = GuardPair(title, connections, [], [])
                for _ in range(rounds):
                    guarded_run, unguarded_run = run_wrk_together(
                        [with_guards, without], model.key, connections, seconds, work)
                    pair.guarded.append(guarded_run)
                    pair.unguarded.append(unguarded_run)
                log(f"guards: {title} c={connections}: "
                    + ", ".join(f"{r:.0%}" for r in pair.ratios)
                    + f" -> {pair.ratio:.1%} ({pair.interval[0]:.1%} to {pair.interval[1]:.1%}); "
                    f"by CPU per request {pair.cpu_ratio:.1%}")
                pairs.append(pair)
        return pairs
    finally:
        for server in servers.values():
            server.stop()


def measure_guards(model: BenchModel, work: Path, warmup: float) -> tuple[dict[str, Any],
                                                                           list[GuardPair]]:
    """guard_runs with what the report says about them."""
    import httptools
    import onnxruntime
    import uvicorn
    import uvloop

    versions = {"Python": platform.python_version(), "ONNX Runtime": onnxruntime.__version__,
                "uvicorn": uvicorn.__version__, "httptools": httptools.__version__,
                "uvloop": uvloop.__version__, "wrk": wrk_version()}
    facts: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": machine_facts(versions),
                             "rounds": GUARD_ROUNDS, "seconds": GUARD_SECONDS,
                             "load_average_before": os.getloadavg()}
    log("Connection guards: the forest's server with and without them")
    pairs = guard_runs(model, GUARD_ROUNDS, GUARD_SECONDS, warmup, work)
    facts["load_average_after"] = os.getloadavg()
    facts["pairs"] = [{"target": p.target, "connections": p.connections, "ratio": p.ratio,
                       "interval": p.interval, "cpu_ratio": p.cpu_ratio,
                       "ratios": p.ratios, "guarded": [asdict(r) for r in p.guarded],
                       "unguarded": [asdict(r) for r in p.unguarded]} for p in pairs]
    return facts, pairs


def write_guards_doc(text: str) -> None:
    """Replace the guards part of the serve section, or put it at the end of that section."""
    current = DOC.read_text()
    if f"<!-- {GUARDS_SECTION}:start -->" in current:
        write_doc(text, GUARDS_SECTION)
        return
    DOC.write_text(current.replace(f"<!-- {SECTION}:end -->",
                                   f"\n{text}\n<!-- {SECTION}:end -->", 1))


def guards_main(args: argparse.Namespace) -> int:
    """--guards: only what the connection guards cost."""
    with tempfile.TemporaryDirectory(prefix="slipway-bench-") as tmp:
        work = Path(tmp)
        log("Training the forest")
        (model,) = train_models(work, ("forest",))
        facts, pairs = measure_guards(model, work, args.warmup)
    report = {"guards": facts}
    text = guards_section(report, pairs)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"serve-guards-{facts['date']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"Raw results: {out.relative_to(ROOT)}")
    if args.write:
        write_guards_doc(text)
        log(f"Updated the {GUARDS_SECTION} part of {DOC.relative_to(ROOT)}")
    return 0


def guard_verdict(pairs: list[GuardPair]) -> Verdict:
    """Judged on the model's route, where throughput is what a model server is for; /health,
    which does nothing but answer, bounds the guards' share from above and is reported beside."""
    judged = [p for p in pairs if p.target == GUARD_ROUTE]
    worst = min(judged, key=lambda p: p.ratio)
    low, high = worst.interval
    return Verdict(f"The connection guards cost under {GUARD_BUDGET:.0%} of throughput on "
                   f"{GUARD_ROUTE}", all(p.ratio >= 1 - GUARD_BUDGET for p in judged),
                   f"lowest ratio {worst.ratio:.1%} (95% interval {low:.1%} to {high:.1%}) at "
                   f"{worst.connections} connections")


def guards_section(report: dict[str, Any], pairs: list[GuardPair]) -> str:
    rows = ["| route | connections | with guards, req/s | without, req/s | throughput, with ÷ "
            "without | 95% interval | rounds: median (range) | by server CPU per request | "
            "errors |", "|---|---|---|---|---|---|---|---|---|"]
    for pair in pairs:
        with_rps = statistics.fmean(r.rps for r in pair.guarded)
        without_rps = statistics.fmean(r.rps for r in pair.unguarded)
        low, high = pair.interval
        rows.append(f"| {pair.target} | {pair.connections} | {with_rps:,.0f} | "
                    f"{without_rps:,.0f} | **{pair.ratio:.1%}** | {low:.1%} to {high:.1%} | "
                    f"{statistics.median(pair.ratios):.0%} ({min(pair.ratios):.0%} to "
                    f"{max(pair.ratios):.0%}) | {pair.cpu_ratio:.1%} | {pair.errors or ''} |")
    verdict = guard_verdict(pairs)
    guards = report["guards"]
    lowest = min((p for p in pairs if p.target != GUARD_ROUTE), key=lambda p: p.ratio)
    judged_lowest = min((p for p in pairs if p.target == GUARD_ROUTE), key=lambda p: p.ratio)
    return "\n".join([
        f"<!-- {GUARDS_SECTION}:start -->",
        "### What the connection guards cost",
        "",
        "```sh",
        GUARDS_COMMAND,
        "```",
        "",
        f"Measured {guards['date']} on {guards['machine']}; load average "
        f"{guards['load_average_before'][0]:.1f} before and {guards['load_average_after'][0]:.1f} "
        "after. The forest's bundle as `deploy` builds it, served by `python -m slipway_server` "
        "as the process runtime runs it (connection limit, head and body deadlines, head size "
        "cap: `slipway_server/connections.py`), against the same command with uvicorn's stock "
        "httptools protocol in place of the guarded one (`UNGUARDED_SERVER` in the script), so "
        "the guards are the only difference. Both are loaded at once, "
        f"each by its own `wrk -t2 -cN`, {guards['rounds']} rounds of {guards['seconds']:g} s; "
        "each server and each wrk runs in a session of its own, among which Linux shares the "
        "CPU fairly, so the rest of the machine slows both alike and a round's ratio of "
        "throughputs is the ratio of what a request costs each. The ratio shown is the geometric "
        "mean of the rounds' ratios, with its 95% confidence interval. /health is the cheapest "
        "route, so there the guards' share of a request is largest.",
        "",
        *rows,
        "",
        f"- {verdict.line()}",
        "",
        "Reading it: a request that arrives in one read, as nearly all do, arms no timer; the "
        "guards add a few attribute checks per read and per request (about a microsecond of "
        "Python here), and a timer only for a head or body that is still incomplete after a "
        f"read. On the model's route the guards kept {judged_lowest.ratio:.1%} of the "
        "throughput or more; on /health, which does nothing but answer, their share shows most "
        f"({lowest.ratio:.1%} at {lowest.connections} connections): an upper bound for any "
        "route. Single rounds move by tens of percent on "
        "this shared machine (the range column); the mean over many rounds is the result, and "
        "its interval says how far it can be trusted.",
        f"<!-- {GUARDS_SECTION}:end -->",
    ])


# --- the ONNX Runtime peers (--peers) ----------------------------------------------------------

def peer_ratio_table(results: list[WrkResult], models: list[BenchModel], ran: list[str]) -> str:
    others = [name for name in (*PEERS, "tutorial", "mlserver") if name in ran]
    lines = ["| model | connections | " + " | ".join(f"Slipway ÷ {SHORT[n]}" for n in others)
             + " | p99: Slipway / " + " / ".join(SHORT[n] for n in PEERS if n in ran) + " |",
             "|---|---|" + "---|" * (len(others) + 1)]
    for model in models:
        for connections in CONNECTIONS:
            b = find(results, model.key, "slipway", connections)
            cells = []
            for name in others:
                r = find(results, model.key, name, connections)
                cells.append(f"**{b.rps / r.rps:.1f}×**" if r and r.rps else "–")
            p99 = " / ".join(_ms(r.p99_ms) for n in PEERS if n in ran
                             for r in [find(results, model.key, n, connections)] if r)
            lines.append(f"| {model.short} | {connections} | " + " | ".join(cells)
                         + f" | {_ms(b.p99_ms)} / {p99} |")
    return "\n".join(lines)


def peers_section(report: dict[str, Any], results: list[WrkResult],
                  models: list[BenchModel]) -> str:
    notes, skipped = report["notes"], report["peers_skipped"]
    ran = sorted({r.server for r in results}, key=SERVERS.index)
    errors = [r for r in results if r.errors]
    c = TARGET_CONNECTIONS
    summary = []
    for model in models:
        b = find(results, model.key, "slipway", c)
        parts = [f"{b.rps / r.rps:.1f}× {SHORT[n]}'s" for n in PEERS
                 for r in [find(results, model.key, n, c)] if r]
        if parts:
            summary.append(f"{model.short}: " + ", ".join(parts))
    described = {
        "fastapi": "- **FastAPI (async)** (`benchmarks/peers/fastapi_onnx.py`, the studio's "
                   "venv): ",
        "litserve": "- **LitServe** (`benchmarks/peers/litserve_onnx.py`, "
                    "`benchmarks/.venv-litserve`): ",
        "bentoml": "- **BentoML** (`benchmarks/peers/bentoml_onnx.py`, "
                   "`benchmarks/.venv-bentoml`): "}
    peer_lines = [described[n] + notes[n] + "." for n in PEERS if n in notes]
    peer_lines += [f"- **{SHORT[n]}**: **not run**: {why}." for n, why in skipped.items()]
    return "\n".join([
        f"<!-- {PEERS_SECTION}:start -->",
        "## Serving: Slipway against the ONNX Runtime servers a user would pick",
        "",
        "```sh",
        PEERS_COMMAND,
        "```",
        "",
        f"Measured {report['date']} on {report['machine']}; load average "
        f"{report['load_average_before'][0]:.1f} when the load tests began and "
        f"{report['load_average_after'][0]:.1f} when they ended (the machine is shared, so "
        "compare the ratios, not the absolute figures). The procedure of the serving benchmark "
        "above: per model, every server up at once, each one process on 127.0.0.1; "
        f"`wrk -t2 -cN --latency --timeout 10s`, {report['rounds']} interleaved runs of "
        f"{report['seconds'] / report['rounds']:g} s per server and connection count after a "
        f"{report['warmup']:g} s warm-up, one JSON row per request. The peers serve the same "
        "ONNX file with ONNX Runtime: the `model.onnx` of the bundle Slipway's `deploy` built "
        "from the joblib model, and each answers the row's label and class probabilities. "
        "Each is tuned as its own documentation advises for throughput; all run one process "
        "for the model (one worker), as Slipway does, and ONNX Runtime with Slipway's session "
        "options (`benchmarks/peers/onnx_session.py`: one intra-op thread, no spinning), so "
        "they differ in how they take, batch and answer requests, not in how the model runs.",
        "",
        *peer_lines,
        "- **Slipway**, **tutorial**, **MLServer** and **bare ASGI**: as in the serving "
        "benchmark above"
        + ("" if "mlserver" in ran else f" (MLServer **not run**: {report['mlserver_note']})")
        + ".",
        "",
        "### Throughput and latency",
        "",
        load_table(results, models),
        "",
        "### Ratios: Slipway's throughput over each server's",
        "",
        peer_ratio_table(results, models, ran),
        "",
        f"- No errors in the measured runs: {'met' if not errors else 'NOT met'} ("
        + (f"{sum(r.requests for r in results):,} requests, none failed" if not errors else
           "; ".join(f"{SHORT[r.server]} {r.model} c={r.connections}: {r.errors}"
                     for r in errors)) + ").",
        "",
        f"Reading it: at {c} connections Slipway served " + "; ".join(summary) + " throughput. "
        "FastAPI runs `session.run` once per request on its event loop: no batching, so its "
        "throughput grows little with concurrency. LitServe and BentoML batch, but each "
        "request pays for their machinery first: LitServe passes it from its API server "
        "process to its inference worker and back (pickled, over ZeroMQ); BentoML validates "
        "each body into a numpy array through its typed IO layer and runs the batched method "
        "in a thread behind its dispatcher, which holds a request for its batch window even "
        "when it is the only one (BentoML's p50 at one connection: "
        + ", ".join(f"{_ms(r.p50_ms)} ({m.short})" for m in models
                    for r in [find(results, m.key, "bentoml", 1)] if r)
        + "). Slipway parses, validates, batches and infers in one process, with its parsing "
        "and checks written for the model's schema.",
        f"<!-- {PEERS_SECTION}:end -->",
    ])


def write_section_after(text: str, name: str, after: str) -> None:
    """Replace the section `name` in docs/benchmarks.md, or put it after the section `after` and
    the notes that follow it (before the next section)."""
    current = DOC.read_text()
    end = current.find(f"<!-- {after}:end -->")
    if f"<!-- {name}:start -->" in current or end < 0:
        write_doc(text, name)
        return
    following = re.compile(r"<!-- [\w-]+:start -->").search(current, end)
    if following is None:
        write_doc(text, name)
        return
    at = following.start()
    DOC.write_text(current[:at] + text + "\n\n" + current[at:])


def peers_main(args: argparse.Namespace) -> int:
    """--peers: the load tests only, with the ONNX Runtime peers."""
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "seconds": args.seconds,
                              "rounds": args.rounds, "warmup": args.warmup,
                              "connections": list(CONNECTIONS)}
    peers, skipped = [], {}
    for name in PEERS:
        ready, note = (True, "") if name == "fastapi" else ensure_peer(name)
        if ready:
            peers.append(name)
        else:
            skipped[name] = note
            log(f"NOTE: {SHORT[name]} is skipped: {note}")
    use_mlserver, mlserver_note = (False, "skipped (--no-mlserver)")
    if not args.no_mlserver:
        use_mlserver, mlserver_note = ensure_mlserver()
    report["mlserver_note"], report["peers_skipped"] = mlserver_note, skipped
    with tempfile.TemporaryDirectory(prefix="slipway-bench-") as tmp:
        work = Path(tmp)
        log("Training the models")
        models = train_models(work)
        report["load_average_before"] = os.getloadavg()
        results, notes = load_runs(models, args.seconds, args.rounds, args.warmup, use_mlserver,
                                   work, tuple(peers))
        report["load_average_after"] = os.getloadavg()
    report["notes"] = notes
    versions = collect_versions(mlserver_note, None)
    versions |= {SHORT[n]: peer_version(n) for n in peers if n != "fastapi"}
    report["versions"], report["machine"] = versions, machine_facts(versions)
    report["load"] = [{**asdict(r), "errors": r.errors} for r in results]
    text = peers_section(report, results, models)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"serve-peers-{report['date']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"Raw results: {out.relative_to(ROOT)}")
    if args.write:
        write_section_after(text, PEERS_SECTION, SECTION)
        log(f"Updated the {PEERS_SECTION} section of {DOC.relative_to(ROOT)}")
    return 0


# --- v2 JSON against binary tensor data (--v2-binary) ------------------------------------------

def binary_lua(body: bytes, headers: dict[str, str], folder: Path) -> Path:
    """A wrk script that POSTs `body` (read from a file: it is not text) with `headers`."""
    digest = hashlib.sha256(body + json.dumps(headers).encode()).hexdigest()[:12]
    data = folder / f"body-{digest}.bin"
    data.write_bytes(body)
    path = folder / f"post-{digest}.lua"
    path.write_text('wrk.method = "POST"\n'
                    f'local file = io.open({json.dumps(str(data))}, "rb")\n'
                    'wrk.body = file:read("*a")\nfile:close()\n'
                    + "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n"
                              for k, v in headers.items()))
    return path


def binary_main(args: argparse.Namespace) -> int:
    """--v2-binary: squeezenet over v2 with tritonclient's bodies, JSON against binary."""
    import onnx
    import onnxruntime
    import tritonclient
    import tritonclient.http as triton

    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / \
        "light_squeezenet.onnx"
    image = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    expected = onnxruntime.InferenceSession(str(path)).run(None, {"data_0": image})[0]
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "seconds": args.seconds,
                              "rounds": args.rounds, "warmup": args.warmup,
                              "connections": list(BINARY_CONNECTIONS)}

    def body(binary: bool) -> tuple[bytes, dict[str, str]]:
        tensor = triton.InferInput("data_0", [1, 3, 224, 224], "FP32")
        if binary:  # the client's defaults: binary input, no output named
            tensor.set_data_from_numpy(image)
            outputs = None
        else:
            tensor.set_data_from_numpy(image, binary_data=False)
            outputs = [triton.InferRequestedOutput("softmaxout_1", binary_data=False)]
        data, json_size = triton.InferenceServerClient.generate_request_body([tensor], outputs)
        headers = {"Content-Type": "application/octet-stream" if json_size else
                   "application/json"}
        if json_size:
            headers["Inference-Header-Content-Length"] = str(json_size)
        return data, headers

    deployment = deploy(load(path, trust=True), DeployOptions(runtime="process"),
                        progress=Progress(on_partial=log))
    results: dict[str, list[WrkResult]] = {}
    modes: dict[str, dict[str, Any]] = {}
    try:
        url = f"{deployment.url}/v2/models/light_squeezenet/infer"
        with tempfile.TemporaryDirectory(prefix="slipway-bench-") as tmp:
            work = Path(tmp)
            client = triton.InferenceServerClient(url.split("//")[1].split("/")[0],
                                                  network_timeout=60)
            for mode in ("json", "binary"):
                data, headers = body(mode == "binary")
                request = urllib.request.Request(url, data=data, method="POST", headers=headers)
                with urllib.request.urlopen(request, timeout=60) as response:
                    answer = response.read()
                    length = response.headers.get("Inference-Header-Content-Length")
                decoded = triton.InferenceServerClient.parse_response_body(
                    answer, header_length=int(length) if length else None)
                if not np.array_equal(decoded.as_numpy("softmaxout_1"), expected):
                    raise RuntimeError(f"{mode}: the answer is not what onnxruntime gives")
                modes[mode] = {"request_bytes": len(data), "answer_bytes": len(answer),
                               "server": Server(mode, url, data, None)}
                modes[mode]["script"] = binary_lua(data, headers, work)
            # tritonclient end to end (encode, send, infer, receive, decode), modes interleaved
            times: dict[str, list[float]] = {"json": [], "binary": []}
            for _ in range(BINARY_CLIENT_CALLS):
                for mode in times:
                    tensor = triton.InferInput("data_0", [1, 3, 224, 224], "FP32")
                    started = time.perf_counter()
                    if mode == "binary":
                        tensor.set_data_from_numpy(image)
                        result = client.infer("light_squeezenet", [tensor])
                    else:
                        tensor.set_data_from_numpy(image, binary_data=False)
                        result = client.infer("light_squeezenet", [tensor], outputs=[
                            triton.InferRequestedOutput("softmaxout_1", binary_data=False)])
                    result.as_numpy("softmaxout_1")
                    times[mode].append((time.perf_counter() - started) * 1000)
            client.close()
            for mode in times:
                modes[mode]["client_ms"] = statistics.median(times[mode])
            report["load_average_before"] = os.getloadavg()
            for connections in BINARY_CONNECTIONS:
                runs: dict[str, list[WrkResult]] = {"json": [], "binary": []}
                for _ in range(args.rounds):
                    for mode, run in runs.items():
                        run.append(run_binary_wrk(modes[mode], connections,
                                                  args.seconds / args.rounds))
                for mode, run in runs.items():
                    result = combine(run)
                    results.setdefault(mode, []).append(result)
                    log(f"squeezenet {mode:6} c={connections} {result.rps:8.1f} req/s  "
                        f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
                        + (f"  ERRORS {result.errors}" if result.errors else ""))
            report["load_average_after"] = os.getloadavg()
    finally:
        deployment.stop()
    versions = {"Python": platform.python_version(), "ONNX Runtime": onnxruntime.__version__,
                "tritonclient": tritonclient.__version__ if hasattr(tritonclient, "__version__")
                else _distribution_version("tritonclient"), "wrk": wrk_version()}
    report["machine"] = machine_facts(versions)
    report["modes"] = {mode: {k: v for k, v in facts.items() if k not in ("server", "script")}
                       for mode, facts in modes.items()}
    report["load"] = {mode: [asdict(r) for r in runs] for mode, runs in results.items()}
    text = binary_section(report, results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"serve-v2-binary-{report['date']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"Raw results: {out.relative_to(ROOT)}")
    if args.write:
        write_section_after(text, BINARY_SECTION, PEERS_SECTION)
        log(f"Updated the {BINARY_SECTION} section of {DOC.relative_to(ROOT)}")
    return 0


def _distribution_version(name: str) -> str:
    from importlib.metadata import version
    return version(name)


def run_binary_wrk(mode: dict[str, Any], connections: int, seconds: float) -> WrkResult:
    seconds = max(1, round(seconds))
    server = mode["server"]
    process = subprocess.Popen(
        ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "--timeout", "10s", "-s", str(mode["script"]), server.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return _wrk_result(process, server, "squeezenet", connections, seconds)


def binary_section(report: dict[str, Any], results: dict[str, list[WrkResult]]) -> str:
    modes = report["modes"]
    titles = {"json": "JSON both ways (`binary_data=False`)",
              "binary": "binary tensor data both ways (tritonclient's defaults)"}
    rows = ["| mode | request body | answer body | connections | req/s | p50 | p99 | errors |",
            "|---|---|---|---|---|---|---|---|"]
    for mode in ("json", "binary"):
        for r in results[mode]:
            rows.append(f"| {titles[mode]} | {modes[mode]['request_bytes']:,} B | "
                        f"{modes[mode]['answer_bytes']:,} B | {r.connections} | {r.rps:,.1f} | "
                        f"{_ms(r.p50_ms)} | {_ms(r.p99_ms)} | {r.errors or ''} |")
    ratios = ["| connections | throughput, binary ÷ JSON | p50, JSON ÷ binary |",
              "|---|---|---|"]
    for j, b in zip(results["json"], results["binary"]):
        ratios.append(f"| {j.connections} | **{b.rps / j.rps:.1f}×** | "
                      f"{j.p50_ms / b.p50_ms:.1f}× |")
    client = modes["json"]["client_ms"] / modes["binary"]["client_ms"]
    size = modes["json"]["request_bytes"] / modes["binary"]["request_bytes"]
    return "\n".join([
        f"<!-- {BINARY_SECTION}:start -->",
        "## Open Inference Protocol v2: JSON against binary tensor data (squeezenet)",
        "",
        "```sh",
        BINARY_COMMAND,
        "```",
        "",
        f"Measured {report['date']} on {report['machine']}; load average "
        f"{report['load_average_before'][0]:.1f} before the load and "
        f"{report['load_average_after'][0]:.1f} after (the machine is shared: compare the "
        "ratios). The model is onnx's `light_squeezenet` test model, deployed as the studio "
        "deploys it (`deploy(load(path), DeployOptions(runtime=\"process\"))`): one request is "
        "one [1, 3, 224, 224] FP32 image (150,528 values) to `POST /v2/models/light_squeezenet/"
        "infer`, one answer is `softmaxout_1` ([1, 1000, 1, 1] FP32). The bodies are the ones "
        "tritonclient.http builds (`generate_request_body`): in JSON mode "
        "(`set_data_from_numpy(image, binary_data=False)` and the output asked for with "
        "`binary_data=False`), and with its defaults (`set_data_from_numpy(image)`, no output "
        "named, so the answer comes as binary too). Each answer was checked against "
        "onnxruntime in this process before the load. "
        f"`wrk --latency --timeout 10s`, {report['rounds']} interleaved runs of "
        f"{report['seconds'] / report['rounds']:g} s per mode and connection count.",
        "",
        *rows,
        "",
        *ratios,
        "",
        f"tritonclient end to end (build the request, send it, infer, read and decode the "
        f"answer), {BINARY_CLIENT_CALLS} sequential calls per mode, interleaved: median "
        f"**{_ms(modes['json']['client_ms'])}** in JSON against "
        f"**{_ms(modes['binary']['client_ms'])}** with its binary defaults: "
        f"**{client:.1f}×** faster per call.",
        "",
        f"Reading it: the JSON body is {size:.1f}× the binary one (about "
        f"{modes['json']['request_bytes'] / IMAGE_VALUES:.0f} characters of decimal text per "
        "FP32 value, as tritonclient writes them, against four bytes), and both ends pay to "
        "write and parse that text; in binary the server takes the image's bytes as they come "
        "(`numpy.frombuffer`, after checking the size against the shape) and sends the scores "
        "back the same way.",
        "",
        "The clients themselves are tested end to end in `tests/serving/test_v2_clients.py`: "
        "tritonclient.http, blocking and asyncio, in every mode (JSON or binary inputs, JSON or "
        "binary outputs, its defaults); and KServe's `InferenceRESTClient` in JSON, binary and "
        "its defaults. The `kserve` package installs, but not beside the studio: it pins "
        "pandas below 3 and protobuf below 7 (the studio's environment has pandas 3 and "
        "protobuf 7), so its test runs it from a venv of its own named by "
        "`SLIPWAY_KSERVE_PYTHON` and is skipped without one.",
        f"<!-- {BINARY_SECTION}:end -->",
    ])


# --- Docker ------------------------------------------------------------------------------------

def fill_tutorial_wheelhouse() -> Path:
    import sklearn

    marker = TUTORIAL_WHEELS / "complete"
    requirements = [f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}",
                    f"joblib=={joblib.__version__}", "flask", "gunicorn"]
    if marker.exists() and marker.read_text().split() == requirements:
        return TUTORIAL_WHEELS
    shutil.rmtree(TUTORIAL_WHEELS, ignore_errors=True)
    TUTORIAL_WHEELS.mkdir(parents=True)
    log("Downloading the tutorial image's wheels (cached in benchmarks/.cache)")
    subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
                    "--only-binary=:all:", *(f"--platform={p}" for p in manylinux_platforms()),
                    "--python-version", "3.11", "--implementation", "cp",
                    "-d", str(TUTORIAL_WHEELS), *requirements], check=True)
    marker.write_text("\n".join(requirements) + "\n")
    return TUTORIAL_WHEELS


@contextlib.contextmanager
def serve_folder(folder: Path):
    """An HTTP file server on 127.0.0.1 for the build to pip install from (like an index)."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def build_tutorial_image(client, model_path: Path, work: Path) -> str:
    wheels = fill_tutorial_wheelhouse()
    context = work / "tutorial-image"
    shutil.copytree(HERE / "tutorial_image", context)
    shutil.copyfile(model_path, context / "model.joblib")
    tag = f"{IMAGE_PREFIX}/tutorial-forest:1"
    log(f"Building {tag}")
    with serve_folder(wheels) as url:
        client.images.build(path=str(context), tag=tag, rm=True, forcerm=True, pull=False,
                            network_mode="host",
                            buildargs={"BASE_IMAGE": BASE_IMAGE, "WHEELS_URL": url})
    return tag


def wait_http_200(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if _get(url, timeout=0.5) == 200:
            return True
        time.sleep(0.01)
    return False


def start_to_ready(client, tag: str, runs: int = 3) -> list[float]:
    """Seconds from containers.run to /ready answering 200, `runs` times."""
    times = []
    for _ in range(runs):
        port = free_port()
        started = time.perf_counter()
        container = client.containers.run(tag, detach=True,
                                          ports={"8000/tcp": ("127.0.0.1", port)},
                                          labels={"io.slipway.benchmark": "serve"})
        try:
            if not wait_http_200(f"http://127.0.0.1:{port}/ready", time.monotonic() + 60):
                raise RuntimeError(f"{tag} was not ready within 60 s:\n"
                                   f"{container.logs(tail=30).decode(errors='replace')}")
            times.append(time.perf_counter() - started)
        finally:
            container.remove(force=True)
    return times


def site_packages_report(client, tag: str) -> dict[str, list[tuple[str, int]]]:
    """What takes space in the image's venv (KiB): the biggest top-level items, the biggest
    files, and all bytecode caches and test suites together."""
    script = ("cd /opt/venv/lib/python3.11/site-packages && du -sk * | sort -rn | head -12; "
              "echo FILES; find . -type f -size +2M -exec du -k {} + | sort -rn | head -8; "
              "echo TOTALS; echo __pycache__ $(find /opt/venv -name __pycache__ -type d -prune "
              "-exec du -sk {} + | awk '{s+=$1} END {print s+0}'); "
              "echo tests $(find /opt/venv -type d -name tests -prune "
              "-exec du -sk {} + | awk '{s+=$1} END {print s+0}')")
    output = client.containers.run(tag, entrypoint=["sh", "-c", script], remove=True,
                                   user="0").decode()
    report: dict[str, list[tuple[str, int]]] = {"items": [], "files": [], "totals": []}
    key = "items"
    for line in output.splitlines():
        if line in ("FILES", "TOTALS"):
            key = line.lower()
            continue
        parts = line.split()
        if len(parts) != 2:
            continue
        if key == "totals":
            report[key].append((f"all {parts[0]} folders", int(parts[1])))
        else:
            report[key].append((parts[1].removeprefix("./"), int(parts[0])))
    return report


def docker_benchmarks(models: list[BenchModel], work: Path) -> dict[str, Any]:
    import docker

    client = docker.from_env(timeout=600)
    result: dict[str, Any] = {"base_image": BASE_IMAGE}
    base = client.images.get(BASE_IMAGE)
    result["base_bytes"] = base.attrs["Size"]
    forest = next(m for m in models if m.key == "forest")
    image = ImageOptions(base_image=BASE_IMAGE)

    log("Building Slipway's image for the forest (deploy, Docker runtime)")
    slipway_tag = f"{IMAGE_PREFIX}/slipway-forest:1"
    deployment = deploy(load(forest.path, trust=True),
                        DeployOptions(runtime="docker", tag=slipway_tag, image=image))
    try:
        status, answer = _post(f"{deployment.url}/predict", features_body(forest))
        if status != 200 or int(answer["label"]) != forest.expected_label:
            raise RuntimeError(f"Slipway's container answered {status}: {answer!r}")
    finally:
        deployment.stop()
    tutorial_tag = build_tutorial_image(client, forest.path, work)
    slipway_bytes = client.images.get(slipway_tag).attrs["Size"]
    tutorial_bytes = client.images.get(tutorial_tag).attrs["Size"]
    result["images"] = {"slipway": {"tag": slipway_tag, "bytes": slipway_bytes},
                        "tutorial": {"tag": tutorial_tag, "bytes": tutorial_bytes}}
    result["image_ratio"] = slipway_bytes / tutorial_bytes
    result["added_ratio"] = (slipway_bytes - result["base_bytes"]) / (
        tutorial_bytes - result["base_bytes"])
    result["slipway_site_packages_kib"] = site_packages_report(client, slipway_tag)
    result["tutorial_site_packages_kib"] = site_packages_report(client, tutorial_tag)

    log("Building Slipway's image for iris (LogisticRegression) and timing start to ready")
    X, y = load_iris(return_X_y=True)
    iris_path = work / "iris" / "iris.joblib"
    iris_path.parent.mkdir()
    joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), iris_path)
    iris_tag = f"{IMAGE_PREFIX}/slipway-iris:1"
    deployment = deploy(load(iris_path, trust=True),
                        DeployOptions(runtime="docker", tag=iris_tag, image=image))
    deployment.stop()
    times = start_to_ready(client, iris_tag)
    result["start_to_ready_s"] = times
    result["start_to_ready_median_s"] = statistics.median(times)
    result["docker_version"] = client.version().get("Version")
    return result


def remove_images(tags: list[str]) -> None:
    import docker

    client = docker.from_env()
    for tag in tags:
        with contextlib.suppress(Exception):
            client.images.remove(tag, force=True)


# --- the run -----------------------------------------------------------------------------------

def load_runs(models: list[BenchModel], seconds: float, rounds: int, warmup: float,
              use_mlserver: bool, work: Path, peers: tuple[str, ...] = ()
              ) -> tuple[list[WrkResult], dict[str, str]]:
    """Every server of a model is up at once; at each connection count they take turns, `rounds`
    times (a, b, d, c, a, b, d, c...), so a burst of load from elsewhere on the machine hits
    them alike instead of one of them. `peers` (of PEERS) serve the ONNX file of Slipway's
    bundle."""
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    results: list[WrkResult] = []
    notes: dict[str, str] = {}
    for model in models:
        servers: list[Server] = []
        try:
            log(f"{model.title}: starting the servers")
            servers.append(start_tutorial(model, logs))
            servers.append(start_slipway(model, logs))
            onnx_path = servers[-1].bundle / "model.onnx"
            for peer in peers:
                servers.append(start_peer(peer, model, onnx_path, logs))
            if use_mlserver:
                servers.append(start_mlserver(model, logs, work))
            servers.append(start_bare(logs))
            for server in servers:
                notes.setdefault(server.name, server.note)
                if server.name == "bare":
                    server.body = features_body(model)
                check_answer(server, model)
                if warmup:
                    run_wrk(server, model.key, 16, warmup, work)
            for connections in CONNECTIONS:
                loaded = [s for s in servers if not (connections == 1 and s.name == "bare")]
                # (the ceiling is compared at 16 and 64 connections; this saves time)
                runs: dict[str, list[WrkResult]] = {s.name: [] for s in loaded}
                for _ in range(rounds):
                    for server in loaded:
                        runs[server.name].append(
                            run_wrk(server, model.key, connections, seconds / rounds, work))
                for server in loaded:
                    result = combine(runs[server.name])
                    log(f"{model.key:6} {server.name:8} c={connections:<3} "
                        f"{result.rps:9.1f} req/s  p50 {result.p50_ms:8.2f} ms  "
                        f"p99 {result.p99_ms:8.2f} ms" +
                        (f"  ERRORS {result.errors}" if result.errors else ""))
                    results.append(result)
        finally:
            for server in servers:
                with contextlib.suppress(Exception):
                    server.stop()
    return results, notes


def find(results: list[WrkResult], model: str, server: str, connections: int) -> WrkResult | None:
    return next((r for r in results if (r.model, r.server, r.connections)
                 == (model, server, connections)), None)


@dataclass
class Verdict:
    target: str
    met: bool | None
    detail: str

    def line(self) -> str:
        state = {True: "met", False: "NOT met", None: "not measured"}[self.met]
        return f"{self.target}: {state} ({self.detail})"


def verdicts(results: list[WrkResult], docker_result: dict[str, Any] | None,
             models: list[BenchModel]) -> list[Verdict]:
    c = TARGET_CONNECTIONS
    out = []
    titles = {m.key: m.short for m in models}
    for model, factor, p99 in (("forest", 25, False), ("mlp", 3, True)):
        a, b = find(results, model, "tutorial", c), find(results, model, "slipway", c)
        ratio = b.rps / a.rps
        met = ratio >= factor and (not p99 or b.p99_ms < a.p99_ms)
        detail = (f"{b.rps:,.0f} vs {a.rps:,.0f} req/s = {ratio:.1f}×"
                  + (f"; p99 {_ms(b.p99_ms)} vs {_ms(a.p99_ms)}" if p99 else ""))
        out.append(Verdict(f"{titles[model]}: Slipway ≥ {factor}× tutorial at {c} connections"
                           + (" with a lower p99" if p99 else ""), met, detail))
    for model in ("forest", "mlp"):
        b, d = find(results, model, "slipway", c), find(results, model, "mlserver", c)
        if d is None:
            out.append(Verdict(f"{titles[model]}: Slipway ahead of MLServer at {c} connections",
                               None, "MLServer was not run"))
            continue
        out.append(Verdict(f"{titles[model]}: Slipway ahead of MLServer at {c} connections",
                           b.rps > d.rps,
                           f"{b.rps:,.0f} vs {d.rps:,.0f} req/s = {b.rps / d.rps:.1f}×"))
    for model in ("forest", "mlp"):
        b, bare = find(results, model, "slipway", c), find(results, model, "bare", c)
        out.append(Verdict(f"{titles[model]}: Slipway ≥ 40% of the bare ASGI ceiling at {c} "
                           "connections", b.rps >= 0.4 * bare.rps,
                           f"{b.rps:,.0f} vs {bare.rps:,.0f} req/s = {b.rps / bare.rps:.0%}"))
    if docker_result and "images" in docker_result:
        images = docker_result["images"]
        out.append(Verdict(
            "Slipway's image ≤ 60% of the tutorial image", docker_result["image_ratio"] <= 0.6,
            f"{_mb(images['slipway']['bytes'])} vs {_mb(images['tutorial']['bytes'])} = "
            f"{docker_result['image_ratio']:.0%}; above the {_mb(docker_result['base_bytes'])} "
            f"base: {docker_result['added_ratio']:.0%}"))
        median = docker_result["start_to_ready_median_s"]
        out.append(Verdict("Container start to ready (iris) under 3 s", median < 3.0,
                           f"median {median:.2f} s of " + ", ".join(
                               f"{t:.2f}" for t in docker_result["start_to_ready_s"]) + " s"))
    else:
        why = (docker_result or {}).get("error") or "skipped with --no-docker"
        out.append(Verdict("Slipway's image ≤ 60% of the tutorial image", None, why))
        out.append(Verdict("Container start to ready (iris) under 3 s", None, why))
    return out


# --- report ------------------------------------------------------------------------------------

def _ms(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} µs"
    if value < 100:
        return f"{value:.2f} ms"
    return f"{value:,.0f} ms"


def _mb(value: int) -> str:
    return f"{value / 1e6:.0f} MB"


def load_table(results: list[WrkResult], models: list[BenchModel]) -> str:
    lines = ["| model | server | connections | req/s | p50 | p90 | p99 | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for model in models:
        for connections in CONNECTIONS:
            for server in SERVERS:
                r = find(results, model.key, server, connections)
                if r is None:
                    continue
                lines.append(f"| {model.short} | {SHORT[server]} | {connections} | "
                             f"{r.rps:,.0f} | {_ms(r.p50_ms)} | {_ms(r.p90_ms)} | "
                             f"{_ms(r.p99_ms)} | {r.errors or ''} |")
    return "\n".join(lines)


def ratio_table(results: list[WrkResult], models: list[BenchModel]) -> str:
    lines = ["| model | connections | Slipway ÷ tutorial | Slipway ÷ MLServer "
             "| Slipway ÷ bare ASGI | p99: Slipway / tutorial |",
             "|---|---|---|---|---|---|"]
    for model in models:
        for connections in CONNECTIONS:
            b = find(results, model.key, "slipway", connections)
            a = find(results, model.key, "tutorial", connections)
            d = find(results, model.key, "mlserver", connections)
            c = find(results, model.key, "bare", connections)
            times = f"{b.rps / a.rps:.1f}×"
            over_peer = f"{b.rps / d.rps:.1f}×" if d else "–"
            of_ceiling = f"{b.rps / c.rps:.0%}" if c else "–"
            lines.append(
                f"| {model.short} | {connections} | **{times}** | {over_peer} | {of_ceiling} | "
                f"{_ms(b.p99_ms)} / {_ms(a.p99_ms)} |")
    return "\n".join(lines)


def docker_table(docker_result: dict[str, Any]) -> str:
    images = docker_result["images"]
    base = docker_result["base_bytes"]
    lines = ["| image (forest model) | size | above the base image |", "|---|---|---|",
             f"| Slipway (`deploy`, Docker runtime) | {_mb(images['slipway']['bytes'])} | "
             f"{_mb(images['slipway']['bytes'] - base)} |",
             f"| tutorial (benchmarks/tutorial_image) | {_mb(images['tutorial']['bytes'])} | "
             f"{_mb(images['tutorial']['bytes'] - base)} |",
             f"| ratio | **{docker_result['image_ratio']:.0%}** | "
             f"{docker_result['added_ratio']:.0%} |"]
    return "\n".join(lines)


def machine_facts(versions: dict[str, str]) -> str:
    cpu = platform.processor() or "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name")), cpu)
    return f"{os.cpu_count()} cores ({cpu}), " + ", ".join(f"{k} {v}" for k, v in versions.items())


def wrk_version() -> str:
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    version = re.search(r"wrk (\S+)", wrk.stdout + wrk.stderr)
    return version.group(1) if version else "?"


def collect_versions(mlserver_note: str, docker_result: dict[str, Any] | None) -> dict[str, str]:
    import fastapi
    import onnxruntime
    import sklearn
    import uvicorn

    versions = {"Python": platform.python_version(), "scikit-learn": sklearn.__version__,
                "ONNX Runtime": onnxruntime.__version__, "uvicorn": uvicorn.__version__,
                "FastAPI": fastapi.__version__}
    version = mlserver_version()
    if version:
        versions["MLServer"] = version
    versions["wrk"] = wrk_version()
    if docker_result and "docker_version" in docker_result:
        versions["Docker"] = docker_result["docker_version"]
    return versions


def section(report: dict[str, Any], results: list[WrkResult], models: list[BenchModel],
            verdict_list: list[Verdict], guard_pairs: list[GuardPair]) -> str:
    seconds, rounds = report["seconds"], report["rounds"]
    notes = report["notes"]
    docker_result = report.get("docker")
    parts = [
        f"<!-- {SECTION}:start -->",
        "## Serving: Slipway's server against the tutorial server, MLServer and bare HTTP",
        "",
        "```sh",
        COMMAND,
        "```",
        "",
        f"Measured {report['date']} on {machine_facts(report['versions'])}; load average "
        f"{report['load_average_before'][0]:.1f} when the load tests began and "
        f"{report['load_average_after'][0]:.1f} when they ended (the machine is shared). One run, "
        "all servers of a model up at once, each a single uvicorn process on 127.0.0.1 started "
        "and stopped by the script. `wrk -t2 -cN --latency --timeout 10s` (`-t1` at one "
        "connection) POSTs one JSON row per request; each figure below is the mean of "
        f"{rounds} runs of {seconds / rounds:g} s per server, the servers taking turns "
        f"(a, b, d, c, a, b, d, c), after a {report['warmup']:g} s warm-up each. Models trained "
        "in the script on synthetic data (make_classification) and saved with joblib: "
        + "; ".join(m.title for m in models) + ".",
        "",
        "- **tutorial** (`benchmarks/tutorial_server.py`): FastAPI, a pydantic body "
        "`features: list[float]`, the joblib model's `predict` and `predict_proba`; "
        f"{notes.get('tutorial', '')}.",
        "- **Slipway**: `artifact.load(path, trust=True)` then `deploy(artifact, "
        "DeployOptions(runtime=\"process\"))`, which converts to ONNX (parity-checked) and runs "
        "`slipway_server` with its defaults (micro-batching on, access log off); body "
        "`{\"features\": [...]}` to `POST /predict`.",
        "- **MLServer** (the peer): Seldon MLServer with mlserver-sklearn on the same joblib file, "
        "`POST /v2/models/<name>/infer` with one row; "
        + (notes.get("mlserver", "") + "." if "mlserver" in notes else
           f"**not run**: {report.get('mlserver_note', '')}."),
        "- **bare ASGI** (`benchmarks/bare_asgi.py`): reads the body and returns a constant JSON "
        "under Slipway's uvicorn options; the HTTP ceiling of this machine. Not run at one "
        "connection, to keep the run short.",
        "",
        "### Throughput and latency",
        "",
        load_table(results, models),
        "",
        "### Ratios (the numbers that carry over to other machines)",
        "",
        ratio_table(results, models),
        "",
    ]
    if docker_result and "images" in docker_result:
        parts += [
            "### Image size and start-up (Docker runtime)",
            "",
            f"Both images are built FROM `{docker_result['base_image']}` "
            f"({_mb(docker_result['base_bytes'])}, Debian bookworm minbase with Python 3.11). "
            "The tutorial image (`benchmarks/tutorial_image/`) is one stage: a venv with "
            "scikit-learn, flask, gunicorn, joblib and numpy (pip `--no-cache-dir`), the "
            "joblib file and a Flask app. Slipway's is what `deploy(..., "
            "DeployOptions(runtime=\"docker\"))` builds: ONNX Runtime, numpy, Starlette, uvicorn, "
            "the server and the ONNX file. Sizes are `docker image inspect .Size`.",
            "",
            docker_table(docker_result),
            "",
            "What takes space in Slipway's venv (site-packages): " + ", ".join(
                f"{name} {kib / 1024:.1f} MiB"
                for name, kib in docker_result["slipway_site_packages_kib"]["items"][:6])
            + "; its biggest files: " + ", ".join(
                f"`{name}` {kib / 1024:.1f} MiB"
                for name, kib in docker_result["slipway_site_packages_kib"]["files"][:5]) + ".",
            "",
            "Container start to ready, iris LogisticRegression: median "
            f"**{docker_result['start_to_ready_median_s']:.2f} s** of three "
            f"({', '.join(f'{t:.2f}' for t in docker_result['start_to_ready_s'])} s), timed from "
            "`containers.run` until `GET /ready` answers 200 (the server warms the model up "
            "before it says ready).",
            "",
        ]
    parts += ["### Targets", ""]
    parts += [f"- {v.line()}" for v in verdict_list]
    parts += ["", reading(report, results, docker_result), "",
              guards_section(report, guard_pairs), f"<!-- {SECTION}:end -->"]
    return "\n".join(parts)


def reading(report: dict[str, Any], results: list[WrkResult],
            docker_result: dict[str, Any] | None) -> str:
    c = TARGET_CONNECTIONS
    rps = {(m, n): find(results, m, n, c).rps if find(results, m, n, c) else None
           for m in ("forest", "mlp") for n in SERVERS}
    ceiling = [rps[(m, "slipway")] / rps[(m, "bare")] for m in ("forest", "mlp")]
    peer = ("MLServer runs the same scikit-learn calls behind the v2 protocol and lands "
            "where the tutorial does. " if rps[("forest", "mlserver")] else "")
    text = (
        "Reading it: the tutorial server pays scikit-learn's per-call overhead (input "
        "validation and Python dispatch, twice per request: `predict` then `predict_proba`) on "
        f"every request, so the 100-tree forest holds it near {rps[('forest', 'tutorial')]:,.0f} "
        f"req/s at any concurrency and the MLP near {rps[('mlp', 'tutorial')]:,.0f}. " + peer +
        "Slipway serves the same models converted to ONNX, through a lean route, and "
        "concurrent requests share one inference call (micro-batching), so its throughput grows "
        "with concurrency while its p99 stays in milliseconds. At "
        f"{c} connections it reaches {ceiling[0]:.0%} (forest) and {ceiling[1]:.0%} (MLP) of a "
        "bare ASGI app that only answers; the rest is JSON parsing, input checks, inference and "
        "metrics. wrk shares the two cores with the servers and other work shares the machine, "
        "so absolute numbers are low and move from run to run (the bare ceiling most of all); "
        "compare the ratios.")
    if docker_result and "images" in docker_result:
        text += (
            f" Slipway's image is {docker_result['image_ratio']:.0%} of the tutorial's "
            f"({docker_result['added_ratio']:.0%} counting only what each adds to the base): it "
            "carries ONNX Runtime instead of scikit-learn and SciPy.")
    return text


def write_doc(text: str, name: str = SECTION) -> None:
    """Replace the section between `<!-- name:start -->` and `<!-- name:end -->` in
    docs/benchmarks.md with `text`, or append it."""
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text, current)
    else:
        updated = current.rstrip() + "\n\n" + text + "\n"
    DOC.write_text(updated)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    parser.add_argument("--seconds", type=int, default=8,
                        help="wrk time per server, model and connection count")
    parser.add_argument("--rounds", type=int, default=2,
                        help="split that time into this many interleaved runs")
    parser.add_argument("--warmup", type=int, default=2,
                        help="wrk warm-up per server before measuring (0: none)")
    parser.add_argument("--no-mlserver", action="store_true", help="skip MLServer")
    parser.add_argument("--no-docker", action="store_true",
                        help="skip the image size and start-up measurements")
    parser.add_argument("--keep-images", action="store_true",
                        help=f"keep the {IMAGE_PREFIX}/* images (removed by default)")
    parser.add_argument("--peers", action="store_true",
                        help="only the load tests, with the ONNX Runtime peers (FastAPI, "
                             "LitServe, BentoML); --write: only that section of the doc")
    parser.add_argument("--v2-binary", action="store_true",
                        help="only squeezenet over v2, JSON against binary tensor data "
                             "(--write: only that section of the doc)")
    parser.add_argument("--guards", action="store_true",
                        help="measure only what the connection guards cost (--write: update "
                             "only that part of the doc)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.guards:
        return guards_main(args)
    if args.peers:
        return peers_main(args)
    if args.v2_binary:
        return binary_main(args)
    started = time.monotonic()
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "seconds": args.seconds,
                              "rounds": args.rounds,
                              "warmup": args.warmup, "connections": list(CONNECTIONS),
                              "target_connections": TARGET_CONNECTIONS}
    use_mlserver, mlserver_note = (False, "skipped (--no-mlserver)")
    if not args.no_mlserver:
        use_mlserver, mlserver_note = ensure_mlserver()
        if not use_mlserver:
            log(f"NOTE: MLServer is skipped: {mlserver_note}")
    report["mlserver_note"] = mlserver_note
    started_load = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="slipway-bench-") as tmp:
        work = Path(tmp)
        log("Training the models")
        models = train_models(work)
        report["load_average_before"] = os.getloadavg()
        results, notes = load_runs(models, args.seconds, args.rounds, args.warmup, use_mlserver,
                                   work)
        report["load_average_after"] = os.getloadavg()
        report["notes"] = notes
        report["guards"], guard_pairs = measure_guards(
            next(m for m in models if m.key == "forest"), work, args.warmup)
        docker_result = None
        if not args.no_docker:
            try:
                docker_result = docker_benchmarks(models, work)
            except Exception as exc:  # keep the load results; say what failed
                log(f"NOTE: the Docker measurements failed: {exc}")
                docker_result = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            finally:
                if not args.keep_images:
                    remove_images([f"{IMAGE_PREFIX}/slipway-forest:1",
                                   f"{IMAGE_PREFIX}/tutorial-forest:1",
                                   f"{IMAGE_PREFIX}/slipway-iris:1"])
        report["docker"] = docker_result
    report["versions"] = collect_versions(mlserver_note, docker_result)
    report["machine"] = machine_facts(report["versions"])
    report["models"] = [{"key": m.key, "title": m.title, "features": m.features} for m in models]
    report["load"] = [{**asdict(r), "errors": r.errors} for r in results]
    verdict_list = verdicts(results, docker_result, models) + [guard_verdict(guard_pairs)]
    report["verdicts"] = [asdict(v) for v in verdict_list]
    report["run_seconds"] = {"total": time.monotonic() - started,
                             "without_mlserver_install": time.monotonic() - started_load}

    print(load_table(results, models))
    print()
    print(ratio_table(results, models))
    if docker_result and "images" in docker_result:
        print()
        print(docker_table(docker_result))
        print("Slipway site-packages (KiB):", docker_result["slipway_site_packages_kib"])
        print("tutorial site-packages (KiB):", docker_result["tutorial_site_packages_kib"])
        print(f"start to ready: {docker_result['start_to_ready_s']}")
    print()
    for verdict in verdict_list:
        print(verdict.line())
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"serve-{report['date']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"Raw results: {out.relative_to(ROOT)} (run took {report['run_seconds']['total']:.0f} s)")
    if args.write:
        write_doc(section(report, results, models, verdict_list, guard_pairs))
        log(f"Updated the {SECTION} section of {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
