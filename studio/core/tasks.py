"""The progress and cancel handle that every long core function takes.

Core functions report progress through it, call `check()` at safe points, and hand out partial
results through `partial()` as they go: a build log line, a load test's 250 ms snapshot, a sweep
step. Each long function's docstring says what it hands out. The GUI (through `ui/workers.py`) or
the command line (through a terminal printer) decides how to show all of it: this handle is the
one streaming channel from core to either face.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from studio.core.errors import Cancelled

ProgressCallback = Callable[[float | None, str], None]
PartialCallback = Callable[[Any], None]


class Progress:
    """Thread-safe progress reporting and cooperative cancellation.

    `fraction` is 0..1, or None when the amount of remaining work is unknown.
    """

    def __init__(self, on_update: ProgressCallback | None = None,
                 on_partial: PartialCallback | None = None):
        self._on_update = on_update
        self._on_partial = on_partial
        self._cancelled = threading.Event()

    def update(self, fraction: float | None, message: str) -> None:
        self.check()
        if self._on_update is not None:
            self._on_update(fraction, message)

    def partial(self, value: Any) -> None:
        """Hand out a piece of the result before the whole is done. Never raises Cancelled: it is
        called from inside loops (an event loop, a log stream) that must wind down themselves."""
        if self._on_partial is not None:
            self._on_partial(value)

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        """Raise Cancelled if someone asked to stop."""
        if self._cancelled.is_set():
            raise Cancelled()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on cancel. Returns True when cancelled."""
        return self._cancelled.wait(seconds)


def quiet() -> Progress:
    """A handle for callers that neither show progress nor cancel."""
    return Progress()
