"""The progress and cancel handle that every long core function takes.

Core functions report progress through it and call `check()` at safe points; the GUI (through
`ui/workers.py`) or the command line (through a terminal printer) decides how to show it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from studio.core.errors import Cancelled

ProgressCallback = Callable[[float | None, str], None]


class Progress:
    """Thread-safe progress reporting and cooperative cancellation.

    `fraction` is 0..1, or None when the amount of remaining work is unknown.
    """

    def __init__(self, on_update: ProgressCallback | None = None):
        self._on_update = on_update
        self._cancelled = threading.Event()

    def update(self, fraction: float | None, message: str) -> None:
        self.check()
        if self._on_update is not None:
            self._on_update(fraction, message)

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
