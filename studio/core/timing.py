"""In-process latency: the median of many timed calls after a warm-up.

Used by the optimization reports and the benchmarks, so both measure the same way. Sessions are
pinned to one thread: on a shared 2-core machine that is what keeps medians comparable.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
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


def onnx_session(model: str | Path | bytes, threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
