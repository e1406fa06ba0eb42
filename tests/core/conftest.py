"""Loading models is the slow part of these tests (a pickle loads in a fresh child process, ~2 s),
so each distinct load happens once per session, and test modules start the loads they need in the
background, a few at a time, the way the GUI's worker pool runs them.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from studio.core.artifacts import ModelArtifact, load

PARALLEL_LOADS = max(2, min(4, (os.cpu_count() or 2)))


class Loads:
    """`loads.get(path, trust=True)` loads once per session and returns the ModelArtifact (or
    raises the error that loading raised); `loads.start(...)` begins loads in the background."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=PARALLEL_LOADS, thread_name_prefix="load")
        self._futures: dict[tuple, Future] = {}
        self._lock = threading.Lock()

    def _future(self, path: Path, options: dict[str, Any]) -> Future:
        key = (str(path), tuple(sorted(options.items())))
        with self._lock:
            if key not in self._futures:
                self._futures[key] = self._pool.submit(load, path, **options)
            return self._futures[key]

    def start(self, path: Path, **options: Any) -> None:
        self._future(path, options)

    def get(self, path: Path, **options: Any) -> ModelArtifact:
        return self._future(path, options).result(timeout=180)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def loads():
    pool = Loads()
    yield pool
    pool.close()
