"""The one place that runs core work off the GUI thread.

`TaskRunner.submit(fn, *args, on_result=..., on_error=..., on_progress=..., on_partial=...,
**kwargs)` runs `fn(*args, progress=handle, **kwargs)` on a thread pool and delivers its outcome
back on the GUI thread through queued signals. Callbacks are connected before the work starts, so
no signal is lost.

Partial results are the core's one streaming channel (`Progress.partial`, see core/tasks.py): a
build log line, a load test's 250 ms snapshot, a sweep step. Each reaches `on_partial` on the GUI
thread, in the order it was handed out and before the task's result, so a page needs no relay of
its own to follow a long task.

A StudioError reaches `on_error` as it is. Anything else is a bug: its traceback goes to the log
and `on_error` gets a StudioError that says so in plain words.

Each task's start and outcome go to the log under its name (a file waiting for the user's trust is
waiting, not failed), so the Log reads as the list of what each stage did; tasks that repeat in
the background are submitted with `logged=False`.

A task may outlive the window it reports to (quitting during a long run): once its signals'
object is gone, what it would report is dropped instead of raising in its thread.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from studio.core.errors import Cancelled, StudioError, TrustRequired
from studio.core.tasks import Progress

log = logging.getLogger("studio.ui.workers")


class _Signals(QObject):
    progress = Signal(object, str)
    partial = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    finished = Signal()


class TaskHandle(QRunnable):
    """One piece of core work. `cancel()` asks it to stop at its next safe point."""

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any], name: str,
                 logged: bool = True):
        super().__init__()
        self.setAutoDelete(False)
        self.signals = _Signals()
        self.name = name
        self.logged = logged
        self.progress = Progress(on_update=lambda f, m: self._emit("progress", f, m),
                                 on_partial=lambda value: self._emit("partial", value))
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self.done = False

    def _emit(self, signal: str, *args: Any) -> None:
        try:
            getattr(self.signals, signal).emit(*args)
        except RuntimeError:  # the signals went with the window (the studio is closing)
            log.debug("%s: %s dropped, nobody listens any more", self.name, signal)

    def _log(self, message: str, *args: Any) -> None:
        if self.logged:
            log.info(message, *args)

    def cancel(self) -> None:
        self.progress.cancel()

    def run(self) -> None:
        self._log("%s…", self.name)
        try:
            result = self._fn(*self._args, progress=self.progress, **self._kwargs)
        except Cancelled:
            self._log("%s: cancelled", self.name)
            self._emit("cancelled")
        except TrustRequired as exc:
            self._log("%s: waiting for the user to trust the file (%s)", self.name, exc)
            self._emit("failed", exc)
        except StudioError as exc:
            log.info("%s failed: %s%s", self.name, exc, f"\n{exc.detail}" if exc.detail else "")
            self._emit("failed", exc)
        # Anything else is a bug, not a user error: its traceback goes to the log only.
        except Exception as exc:  # noqa: BLE001
            log.error("%s failed unexpectedly:\n%s", self.name, traceback.format_exc())
            self._emit("failed", StudioError(
                f"{self.name} failed unexpectedly ({type(exc).__name__}: {exc}).",
                "This is a bug in Slipway Studio; the details are in the log.",
            ))
        else:
            self._log("%s: done", self.name)
            self._emit("succeeded", result)
        finally:
            self.done = True
            self._emit("finished")


class TaskRunner(QObject):
    def __init__(self, parent: QObject | None = None, max_threads: int = 4):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._running: set[TaskHandle] = set()
        self.closed = False
        """Set by shutdown(): what tasks report from then on reaches no page (being torn down)."""

    def submit(self, fn: Callable[..., Any], *args: Any, name: str | None = None,
               on_result: Callable[[Any], None] | None = None,
               on_error: Callable[[StudioError], None] | None = None,
               on_progress: Callable[[float | None, str], None] | None = None,
               on_partial: Callable[[Any], None] | None = None,
               on_cancel: Callable[[], None] | None = None,
               on_finish: Callable[[], None] | None = None,
               logged: bool = True,
               **kwargs: Any) -> TaskHandle:
        task = TaskHandle(fn, args, kwargs, name or getattr(fn, "__name__", "task"), logged)
        for signal, slot in ((task.signals.succeeded, on_result), (task.signals.failed, on_error),
                             (task.signals.progress, on_progress),
                             (task.signals.partial, on_partial),
                             (task.signals.cancelled, on_cancel), (task.signals.finished, on_finish)):
            if slot is not None:
                signal.connect(self._unless_closed(slot))
        task.signals.finished.connect(lambda: self._running.discard(task))
        self._running.add(task)
        self.pool.start(task)
        return task

    def _unless_closed(self, slot: Callable[..., None]) -> Callable[..., None]:
        def deliver(*args: Any) -> None:
            if not self.closed:
                slot(*args)
        return deliver

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def shutdown(self, wait_ms: int = 5000) -> bool:
        """Cancel everything still running and wait briefly for the threads to stop; False when
        some did not stop in time. Nothing they report reaches a page afterwards."""
        self.closed = True
        for task in list(self._running):
            task.cancel()
        stopped = self.pool.waitForDone(wait_ms)
        if not stopped:
            log.warning("Still running when the studio closed: %s",
                        ", ".join(sorted(t.name for t in self._running if not t.done)))
        return stopped
