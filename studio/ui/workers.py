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
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from studio.core.errors import Cancelled, StudioError
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

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any], name: str):
        super().__init__()
        self.setAutoDelete(False)
        self.signals = _Signals()
        self.name = name
        self.progress = Progress(on_update=lambda f, m: self.signals.progress.emit(f, m),
                                 on_partial=self.signals.partial.emit)
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self.done = False

    def cancel(self) -> None:
        self.progress.cancel()

    def run(self) -> None:
        try:
            result = self._fn(*self._args, progress=self.progress, **self._kwargs)
        except Cancelled:
            self.signals.cancelled.emit()
        except StudioError as exc:
            log.info("%s failed: %s%s", self.name, exc, f"\n{exc.detail}" if exc.detail else "")
            self.signals.failed.emit(exc)
        # Anything else is a bug, not a user error: its traceback goes to the log only.
        except Exception as exc:  # noqa: BLE001
            log.error("%s failed unexpectedly:\n%s", self.name, traceback.format_exc())
            self.signals.failed.emit(StudioError(
                f"{self.name} failed unexpectedly ({type(exc).__name__}: {exc}).",
                "This is a bug in Slipway Studio; the details are in the log.",
            ))
        else:
            self.signals.succeeded.emit(result)
        finally:
            self.done = True
            self.signals.finished.emit()


class TaskRunner(QObject):
    def __init__(self, parent: QObject | None = None, max_threads: int = 4):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._running: set[TaskHandle] = set()

    def submit(self, fn: Callable[..., Any], *args: Any, name: str | None = None,
               on_result: Callable[[Any], None] | None = None,
               on_error: Callable[[StudioError], None] | None = None,
               on_progress: Callable[[float | None, str], None] | None = None,
               on_partial: Callable[[Any], None] | None = None,
               on_cancel: Callable[[], None] | None = None,
               on_finish: Callable[[], None] | None = None,
               **kwargs: Any) -> TaskHandle:
        task = TaskHandle(fn, args, kwargs, name or getattr(fn, "__name__", "task"))
        for signal, slot in ((task.signals.succeeded, on_result), (task.signals.failed, on_error),
                             (task.signals.progress, on_progress),
                             (task.signals.partial, on_partial),
                             (task.signals.cancelled, on_cancel), (task.signals.finished, on_finish)):
            if slot is not None:
                signal.connect(slot)
        task.signals.finished.connect(lambda: self._running.discard(task))
        self._running.add(task)
        self.pool.start(task)
        return task

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Cancel everything still running and wait briefly for the threads to stop."""
        for task in list(self._running):
            task.cancel()
        self.pool.waitForDone(wait_ms)
