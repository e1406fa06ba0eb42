"""What every runtime gives back: a Deployment with a URL, a state, logs, and a way to stop it."""

from __future__ import annotations

import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Self

from studio.core.errors import ExitStatus, StudioError
from studio.core.serve.client import ModelClient
from studio.core.tasks import Progress, quiet

READY_POLL_S = 0.1
DEFAULT_READY_TIMEOUT_S = 60.0
DEFAULT_STOP_TIMEOUT_S = 10.0
CONTAINER_PORT = 8000


class DeploymentState(StrEnum):
    BUILDING = "building"
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


class DeploymentError(StudioError):
    """A model that could not be built, started or kept running."""

    exit_status = ExitStatus.FAILED


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def choose_port(port: int | None) -> int:
    """The port asked for, checked to be free on 127.0.0.1; or any free one."""
    if port is None:
        return free_port()
    check_port_free(port)
    return port


def port_in_use(port: int) -> OSError | None:
    """Why `port` on 127.0.0.1 cannot be bound now, or None when it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc
    return None


def check_port_free(port: int) -> None:
    busy = port_in_use(port)
    if busy is not None:
        raise DeploymentError(
            f"Port {port} on 127.0.0.1 is already in use by another program.",
            "Choose another port, or leave the port empty to use a free one.",
            detail=repr(busy))


@dataclass(frozen=True)
class ResourceUsage:
    cpu_seconds: float
    """CPU time used since the start: a counter, so a rate of it is cores in use."""
    memory_bytes: float
    memory_limit_bytes: float | None


class Deployment(ABC):
    """A served model. `url` answers the serving contract once `state` is READY."""

    runtime: str

    def __init__(self, name: str, url: str):
        self.name = name
        self.url = url
        self.state = DeploymentState.STARTING
        self.bundle_path: Path | None = None
        """The build context it was made from (model.onnx, serving.json), when known."""
        self.stop_timeout = DEFAULT_STOP_TIMEOUT_S
        """How long stop() lets the server drain before it is killed, unless told otherwise:
        `deploy` sets it from the serving options, so in-flight requests may finish."""

    @abstractmethod
    def exit_reason(self) -> str | None:
        """Why the server is gone (exit status), or None while it runs."""

    @abstractmethod
    def logs(self, tail: int = 200) -> str:
        ...

    @abstractmethod
    def follow_logs(self, progress: Progress | None = None) -> Iterator[str]:
        """Log lines as they come, until the server stops or `progress` is cancelled."""

    @abstractmethod
    def _stop(self, timeout: float) -> None:
        ...

    def usage(self) -> ResourceUsage | None:
        """What the runtime itself measures of the server's CPU and memory (None: nothing beyond
        the server's own process metrics)."""
        return None

    def stop(self, timeout: float | None = None) -> None:
        if self.state != DeploymentState.STOPPED:
            self._stop(self.stop_timeout if timeout is None else timeout)
            self.state = DeploymentState.STOPPED

    def started(self, timeout: float, progress: Progress | None,
                stop_timeout: float) -> Self:
        """This deployment once it is ready; one that fails to get ready (or is cancelled) is
        stopped and marked failed, never left running behind the error."""
        try:
            self.wait_ready(timeout, progress)
        except BaseException:
            self.stop(timeout=stop_timeout)
            self.state = DeploymentState.FAILED
            raise
        return self

    def wait_ready(self, timeout: float = DEFAULT_READY_TIMEOUT_S,
                   progress: Progress | None = None) -> None:
        """Poll /ready until it answers 200; fail early when the server exits."""
        progress = progress or quiet()
        deadline = time.monotonic() + timeout
        with ModelClient(self.url, timeout=2.0) as client:
            while True:
                progress.check()
                if client.ready():
                    self.state = DeploymentState.READY
                    return
                reason = self.exit_reason()
                if reason is not None:
                    self.state = DeploymentState.FAILED
                    raise DeploymentError(
                        f"The model server for '{self.name}' {reason} before it was ready.",
                        "Its last log lines are in the log view; fix the cause and start it again.",
                        detail=self.logs(tail=40))
                if time.monotonic() > deadline:
                    self.state = DeploymentState.FAILED
                    raise DeploymentError(
                        f"The model server for '{self.name}' was not ready after {timeout:g} s.",
                        "A large model may need longer (raise the limit); otherwise see its log.",
                        detail=self.logs(tail=40))
                progress.wait(READY_POLL_S)
