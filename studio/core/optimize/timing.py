"""In-process latency: the median of many timed calls after a warm-up.

Used by the optimization reports and the benchmarks, so both measure the same way; the sessions
timed are `studio.core.model.session.onnx_session`s, pinned to one thread.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

WARMUP_CALLS = 10
MIN_CALLS = 30
MIN_SECONDS = 0.25
MAX_CALLS = 20_000


def median_ms(call: Callable[[], Any], *, min_calls: int = MIN_CALLS,
              min_seconds: float = MIN_SECONDS, max_calls: int = MAX_CALLS) -> float:
    """Median wall time of `call()` in milliseconds, after WARMUP_CALLS untimed calls."""
    for _ in range(WARMUP_CALLS):
        call()
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < max_calls and (len(samples) < min_calls
                                        or time.perf_counter() - started < min_seconds):
        t0 = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return statistics.median(samples)
