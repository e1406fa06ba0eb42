"""Adaptive micro-batching: concurrent requests share one onnxruntime call.

A request joins the queue and gets a future. When no batch is running, the queue is flushed at the
end of the current event-loop iteration, so a lone request on an idle server waits for nothing,
and requests that arrived together go together. While a batch runs, new requests collect; when it
finishes they run at once as the next batch (up to `max_batch_size` rows each). When several
inference threads are allowed and one is busy, a free thread waits up to `max_wait` after the
first queued request for the batch to fill before it starts a partial one.

Fast models run inline: when recent batches took less than `inline_below` (a tree ensemble or a
small MLP answers in microseconds), handing the batch to a thread and waking the loop again costs
more than the inference itself, so the batch runs on the event loop. Requests that arrive meanwhile
queue as usual and form the next batch. Slower models always run in the inference threads.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np

Item = tuple[dict[str, np.ndarray], int, asyncio.Future]
RunItems = Callable[[Sequence[tuple[dict[str, np.ndarray], int]]], list[Any]]


class MicroBatcher:
    def __init__(self, run_items: RunItems, executor: Executor, *, max_batch_size: int,
                 max_wait_s: float, parallel: int = 1, inline_below_s: float = 0.0005) -> None:
        self._run_items = run_items
        self.inline_below_s = inline_below_s
        self._recent_s: float | None = None  # moving average of batch durations
        self._executor = executor
        self._max_rows = max_batch_size
        self._max_wait = max_wait_s
        self._parallel = max(1, parallel)
        self._pending: deque[Item] = deque()
        self._pending_rows = 0
        self._running = 0
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, feeds: dict[str, np.ndarray], rows: int) -> asyncio.Future:
        """Queue one request's feeds ([rows, ...] each); the future gets its outputs or error."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((feeds, rows, future))
        self._pending_rows += rows
        if not self._scheduled and self._running < self._parallel:
            if self._running == 0 or self._pending_rows >= self._max_rows:
                self._scheduled = True
                loop.call_soon(self._flush)
            elif self._timer is None:
                self._timer = loop.call_later(self._max_wait, self._on_timer)
        return future

    def _on_timer(self) -> None:
        self._timer = None
        if not self._scheduled:
            self._flush()

    def _flush(self) -> None:
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = self._pending
        while pending and self._running < self._parallel:
            batch = [pending.popleft()]
            rows = batch[0][1]
            while pending and rows + pending[0][1] <= self._max_rows:
                item = pending.popleft()
                batch.append(item)
                rows += item[1]
            self._pending_rows -= rows
            items = [(feeds, n) for feeds, n, _ in batch]
            if self._recent_s is not None and self._recent_s < self.inline_below_s:
                self._resolve(batch, self._timed(items))
                continue
            self._running += 1
            work = self._loop.run_in_executor(self._executor, self._timed, items)
            work.add_done_callback(lambda done, batch=batch: self._finished(batch, done))
            if pending and self._pending_rows < self._max_rows:
                # Another thread is free but the queue holds a partial batch: let it fill.
                if self._timer is None and self._running < self._parallel:
                    self._timer = self._loop.call_later(self._max_wait, self._on_timer)
                break

    def _timed(self, items: Sequence[tuple[dict[str, np.ndarray], int]]) -> list[Any]:
        started = time.perf_counter()
        try:
            return self._run_items(items)
        except BaseException as exc:  # noqa: BLE001 - the batch failed: every request gets it
            return [exc] * len(items)
        finally:
            took = time.perf_counter() - started
            self._recent_s = took if self._recent_s is None else 0.8 * self._recent_s + 0.2 * took

    @staticmethod
    def _resolve(batch: list[Item], results: list[Any]) -> None:
        for (_, _, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)

    def _finished(self, batch: list[Item], done: asyncio.Future) -> None:
        self._running -= 1
        try:
            results = done.result()
        except BaseException as exc:  # noqa: BLE001 - the worker failed: every request gets it
            results = [exc] * len(batch)
        self._resolve(batch, results)
        if self._pending and not self._scheduled:
            if self._running == 0 or self._pending_rows >= self._max_rows:
                self._flush()
            elif self._timer is None:
                self._timer = self._loop.call_later(self._max_wait, self._on_timer)
