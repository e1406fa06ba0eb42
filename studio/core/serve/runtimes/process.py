"""The process runtime: the same server as in the image, run as a child of the studio.

The embedded default when no Docker engine answers. It runs the bundle's own copy of the server
with the studio's Python (which has the server's few dependencies), bound to 127.0.0.1. No server
outlives the studio: each is a `PythonChild` (core/children.py), which ends when the studio's
process does, whichever thread deployed it, and an atexit hook stops them gracefully on a normal
exit.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import weakref
from collections.abc import Iterator
from pathlib import Path

from studio.core.children import PythonChild
from studio.core.serve.bundle import Bundle
from studio.core.serve.runtimes.base import (
    DEFAULT_READY_TIMEOUT_S,
    Deployment,
    choose_port,
)
from studio.core.tasks import Progress, quiet

_LIVE: weakref.WeakSet[ProcessDeployment] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for deployment in list(_LIVE):
        deployment.stop(timeout=3)


class ProcessDeployment(Deployment):
    runtime = "process"

    def __init__(self, name: str, url: str, process: PythonChild, log_path: Path):
        super().__init__(name, url)
        self.process = process
        self.log_path = log_path
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_reason(self) -> str | None:
        code = self.process.poll()
        if code is None:
            return None
        return f"exited with status {code}" if code >= 0 else f"was killed by signal {-code}"

    def logs(self, tail: int = 200) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    def follow_logs(self, progress: Progress | None = None) -> Iterator[str]:
        progress = progress or quiet()
        with open(self.log_path, errors="replace") as log:
            while True:
                line = log.readline()
                if line:
                    yield line.rstrip("\n")
                    continue
                if self.process.poll() is not None or progress.cancelled:
                    return
                progress.wait(0.1)

    def _stop(self, timeout: float) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the server drains in-flight requests
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _LIVE.discard(self)


class ProcessRuntime:
    name = "process"

    def run(self, bundle: Bundle, port: int | None = None, *, env: dict[str, str] | None = None,
            ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
            progress: Progress | None = None) -> ProcessDeployment:
        """Start the bundle's server on 127.0.0.1 and wait until it is ready."""
        progress = progress or quiet()
        port = choose_port(port)
        log_path = bundle.path / "server.log"
        progress.update(None, f"Starting {bundle.model_name} as a local process on port {port}")
        with open(log_path, "wb") as log:  # the child keeps its own handle; ours can close
            process = PythonChild(
                "slipway_server",
                ["--config", str(bundle.config_path), "--host", "127.0.0.1", "--port", str(port)],
                cwd=bundle.path, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {}), "PYTHONPATH": str(bundle.server_path),
                     "PYTHONUNBUFFERED": "1"},
            )
        deployment = ProcessDeployment(bundle.model_name, f"http://127.0.0.1:{port}", process,
                                       log_path)
        deployment.bundle_path = bundle.path
        return deployment.started(ready_timeout, progress, stop_timeout=3)
