"""Loading that runs model code happens in a child process: it can hang, crash, raise, print, or be
cancelled, and the studio stays in control and says what happened."""

from __future__ import annotations

import operator
import os
import pickle
import threading
import time
from pathlib import Path

import pytest

from studio.core.errors import Cancelled, ModelLoadError, StudioError, TrustRequired
from studio.core.model.artifact import load
from studio.core.tasks import Progress

MISSING_MODULE = "slipway_test_no_such_module"


class Sleeps:
    """Unpickling this sleeps for 30 s: a file that never finishes loading."""

    def __reduce__(self):
        return (time.sleep, (30,))


class Divides:
    """Unpickling this raises ZeroDivisionError inside the loader."""

    def __reduce__(self):
        return (operator.truediv, (1, 0))


class Exits:
    """Unpickling this ends the loader process with exit status 3."""

    def __reduce__(self):
        return (os._exit, (3,))


class Prints:
    """Unpickling this writes to stdout (as LightGBM does) and returns None."""

    def __reduce__(self):
        return (print, ("noise from the model's library",))


def write_pickle(folder: Path, name: str, obj) -> Path:
    path = folder / name
    path.write_bytes(pickle.dumps(obj))
    return path


@pytest.fixture(scope="module")
def slow_pickle(tmp_path_factory) -> Path:
    return write_pickle(tmp_path_factory.mktemp("slow"), "sleeps.pkl", Sleeps())


def loader_children_holding(path: Path) -> list[int]:
    """Child processes of this process that have `path` open (the loader reading the pickle)."""
    found = []
    target = os.path.realpath(path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != os.getpid():
                continue
            if any(os.readlink(fd) == target for fd in (entry / "fd").iterdir()):
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def test_a_pickle_naming_a_missing_module_says_which_module(tmp_path):
    # GLOBAL slipway_test_no_such_module.model, called with no arguments: written opcode by opcode.
    path = tmp_path / "needs_module.pkl"
    path.write_bytes(b"\x80\x04c" + MISSING_MODULE.encode() + b"\nmodel\n)R.")
    with pytest.raises(TrustRequired) as untrusted:
        load(path)
    assert untrusted.value.reasons == [f"{MISSING_MODULE}.model"]
    with pytest.raises(ModelLoadError) as caught:
        load(path, trust=True)
    assert caught.value.message == (f"The model needs the Python module '{MISSING_MODULE}', "
                                    "which is not installed here.")
    assert f"Install the package that provides '{MISSING_MODULE}'" in caught.value.hint


def test_a_pickle_importing_a_deleted_module_says_which_module(tmp_path, monkeypatch):
    """The realistic case: the model was pickled with a helper module that is gone now."""
    import importlib
    import sys

    module_dir = tmp_path / "code"
    module_dir.mkdir()
    (module_dir / "slipway_gone_helpers.py").write_text("def make():\n    return 1\n")
    monkeypatch.syspath_prepend(str(module_dir))
    helpers = importlib.import_module("slipway_gone_helpers")
    path = tmp_path / "uses_helpers.pkl"

    class UsesHelpers:
        def __reduce__(self):
            return (helpers.make, ())

    path.write_bytes(pickle.dumps(UsesHelpers()))
    (module_dir / "slipway_gone_helpers.py").unlink()
    del sys.modules["slipway_gone_helpers"]
    with pytest.raises(ModelLoadError, match="needs the Python module 'slipway_gone_helpers', "
                                             "which is not installed here"):
        load(path, trust=True)


def test_an_exception_while_loading_is_reported_with_its_type_and_text(tmp_path):
    path = write_pickle(tmp_path, "divides.pkl", Divides())
    with pytest.raises(ModelLoadError) as caught:
        load(path, trust=True)
    assert caught.value.message == ("Loading failed inside the model's own code: "
                                    "ZeroDivisionError: division by zero")
    assert "Traceback" in caught.value.detail  # the full story goes to the log


def test_a_loader_that_exits_is_reported_as_a_crash(tmp_path):
    path = write_pickle(tmp_path, "exits.pkl", Exits())
    with pytest.raises(ModelLoadError) as caught:
        load(path, trust=True)
    assert caught.value.message == "Loading the model crashed the loader process (exit status 3)."


def test_what_the_model_prints_does_not_corrupt_the_reply(tmp_path):
    path = write_pickle(tmp_path, "prints.pkl", Prints())
    with pytest.raises(ModelLoadError) as caught:
        load(path, trust=True)
    assert caught.value.message == ("The file holds a builtins.NoneType, not a model: it has no "
                                    "predict or transform method.")
    assert "noise from the model's library" in caught.value.detail


@needs_proc
def test_a_hanging_pickle_is_stopped_at_the_time_limit(slow_pickle):
    started = time.monotonic()
    with pytest.raises(StudioError) as caught:
        load(slow_pickle, trust=True, timeout=2)
    elapsed = time.monotonic() - started
    assert caught.value.message == "Loading the model took longer than 2 s and was stopped."
    assert "time limit" in caught.value.hint
    assert 2 <= elapsed < 6
    assert loader_children_holding(slow_pickle) == []


@needs_proc
def test_cancel_from_another_thread_stops_the_load_and_its_child(slow_pickle):
    progress = Progress()
    outcome: dict = {}

    def run():
        try:
            load(slow_pickle, trust=True, progress=progress)
        except BaseException as exc:  # noqa: BLE001 - the test inspects whatever came out
            outcome["error"] = exc
        outcome["finished"] = time.monotonic()

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 20
    children: list[int] = []
    while not children and time.monotonic() < deadline:
        children = loader_children_holding(slow_pickle)
        time.sleep(0.05)
    assert children, "the loader child never opened the pickle"
    cancelled_at = time.monotonic()
    progress.cancel()
    worker.join(10)
    assert not worker.is_alive()
    assert isinstance(outcome.get("error"), Cancelled)
    assert outcome["finished"] - cancelled_at < 1.5
    assert not any(Path(f"/proc/{pid}").exists() for pid in children), "the child outlived cancel"


def test_a_load_cancelled_before_it_starts_does_nothing(slow_pickle):
    progress = Progress()
    progress.cancel()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        load(slow_pickle, trust=True, progress=progress)
    assert time.monotonic() - started < 0.5


def test_progress_reports_the_stages_in_order(squeezenet_onnx):
    updates: list[tuple[float | None, str]] = []
    progress = Progress(lambda fraction, text: updates.append((fraction, text)))
    load(squeezenet_onnx, progress=progress)
    fractions = [f for f, _ in updates]
    assert fractions == sorted(fractions)
    assert fractions[0] == 0.0 and updates[-1] == (1.0, "Loaded")
    assert "light_squeezenet.onnx" in updates[0][1]


SHADOW = """
from pathlib import Path
Path({marker!r}).write_text("code next to the model ran")
raise ImportError("a shadowing module")
"""


def test_files_next_to_the_model_cannot_shadow_the_loaders_libraries(tmp_path, monkeypatch,
                                                                     skops_iris_pipeline):
    """A skops file loads without trust; modules that sit in the current folder (a downloaded
    model's folder) must not be imported in place of skops, numpy or json by the loader."""
    folder = tmp_path / "downloaded"
    folder.mkdir()
    marker = tmp_path / "shadow_ran.txt"
    for name in ("skops", "numpy", "json", "sklearn"):
        (folder / f"{name}.py").write_text(SHADOW.format(marker=str(marker)))
    model = folder / "model.skops"
    model.write_bytes(skops_iris_pipeline.path.read_bytes())
    monkeypatch.chdir(folder)
    schema = load("model.skops").schema
    assert not marker.exists(), "the loader imported code from the current folder"
    assert schema.task == "classification"
