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

from studio.core.model.artifact import ModelArtifact, load

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


PARALLEL_CONVERSIONS = 3


class Conversions:
    """`conversions.get(path, trust=True, opset=15, ...)` loads the model (through `loads`) and
    converts it once per session, returning the Conversion (or raising what converting raised);
    `conversions.start(...)` begins in the background. The work happens in child processes, so a
    few threads keep both cores busy."""

    def __init__(self, loads: Loads, folder: Path) -> None:
        self._loads = loads
        self.folder = folder
        """Where the ONNX files are written: <model file stem>-<n>.onnx."""
        self._pool = ThreadPoolExecutor(max_workers=PARALLEL_CONVERSIONS,
                                        thread_name_prefix="convert")
        self._futures: dict[tuple, Future] = {}
        self._lock = threading.Lock()

    def _convert(self, path: Path, trust: bool, options: dict[str, Any], output: Path):
        from studio.core.optimize.convert import convert

        artifact = self._loads.get(path, **({"trust": True} if trust else {}))
        return convert(artifact, output, **options)

    def _future(self, path: Path, trust: bool, options: dict[str, Any]) -> Future:
        key = (str(path), trust, tuple(sorted((k, repr(v)) for k, v in options.items())))
        with self._lock:
            if key not in self._futures:
                output = self.folder / f"{path.stem}-{len(self._futures)}.onnx"
                self._futures[key] = self._pool.submit(self._convert, path, trust, options,
                                                       output)
            return self._futures[key]

    def start(self, path: Path, *, trust: bool = False, **options: Any) -> None:
        self._future(path, trust, options)

    def get(self, path: Path, *, trust: bool = False, **options: Any):
        return self._future(path, trust, options).result(timeout=300)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def conversions(loads, tmp_path_factory):
    pool = Conversions(loads, tmp_path_factory.mktemp("conversions"))
    yield pool
    pool.close()
