"""What a load test is asked to do: the LoadPlan, checked before anything is sent.

The plan carries the request bodies already rendered (see payloads.py and prepare.py): turning
rows into JSON while the test runs would cost the tester the CPU it needs to keep up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from studio.core.errors import ExitStatus, StudioError


class LoadTestError(StudioError):
    """A load test that cannot start: a bad plan or an unusable URL."""

    exit_status = ExitStatus.USAGE


@dataclass
class LoadPlan:
    url: str
    """The server's base URL, e.g. http://127.0.0.1:8000."""
    route: str = "/predict"
    payloads: list[bytes] = field(default_factory=list)
    """Request bodies, sent in turn. Empty means GET requests without a body."""
    payload_label: str = "the model's sample request"
    mode: Literal["closed", "open"] = "closed"
    connections: int = 16
    """Closed loop: the number of workers. Open loop: the connections requests are sent on."""
    rate: float | None = None
    """Open loop: requests per second."""
    arrival: Literal["constant", "poisson"] = "constant"
    duration_s: float | None = 10.0
    requests: int | None = None
    """Stop after this many measured requests instead of after `duration_s`."""
    warmup_s: float = 0.0
    """Load sent before measuring starts: connections open, caches and batchers settle."""
    timeout_s: float = 5.0
    headers: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    model: str = ""
    """The served model's name, for the report ('' when it was not asked: a payload file)."""

    def check(self) -> None:
        """Raise LoadTestError naming the first thing wrong with the plan."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LoadTestError(f"'{self.url}' is not an http:// or https:// URL.",
                                "Give the server's address, e.g. http://127.0.0.1:8000.")
        if not self.route.startswith("/"):
            raise LoadTestError(f"The route '{self.route}' must start with '/'.")
        if self.connections < 1:
            raise LoadTestError("A load test needs at least one connection.")
        if self.mode == "open":
            if self.rate is None or not self.rate > 0 or not math.isfinite(self.rate):
                raise LoadTestError("An open-loop test needs a positive arrival rate.",
                                    "Give requests per second, e.g. --rate 500.")
        elif self.mode != "closed":
            raise LoadTestError(f"'{self.mode}' is not a load mode: use closed or open.")
        if self.duration_s is None and self.requests is None:
            raise LoadTestError("Give a duration or a number of requests.")
        if self.duration_s is not None and not (math.isfinite(self.duration_s)
                                                and self.duration_s > 0):
            raise LoadTestError("The duration must be positive.")
        if self.requests is not None and self.requests < 1:
            raise LoadTestError("The number of requests must be at least 1.")
        if not (math.isfinite(self.warmup_s) and self.warmup_s >= 0):
            raise LoadTestError("The warm-up must be zero or more seconds.")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise LoadTestError("The timeout must be a positive number of seconds.")

    def describe(self) -> str:
        load = (f"{self.connections} connections, closed loop" if self.mode == "closed" else
                f"{self.rate:g} req/s {self.arrival} arrivals on {self.connections} connections")
        length = (f"{self.duration_s:g} s" if self.requests is None
                  else f"{self.requests} requests")
        return f"{load}, {length}, {self.route}, {self.payload_label}"

    def rendered_requests(self) -> list[bytes]:
        """Every request as the bytes sent, in turn. The URL's own path is kept: a server mounted
        under /models/iris is loaded at /models/iris/predict."""
        parts = urlsplit(self.url)
        target = parts.path.rstrip("/") + self.route
        headers = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
        if not self.payloads:
            return [f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{headers}\r\n".encode()]
        head = (f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Content-Type: application/json\r\n")
        return [f"{head}{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body
                for body in self.payloads]
