"""Loading that runs model code happens in a child process: it can hang, crash, raise, print, or be
cancelled, and the studio stays in control and says what happened."""

from __future__ import annotations

import json
import operator
import os
import pickle
import threading
import time
from pathlib import Path

import pytest
from child_processes import StandInStudio, kill_if_alive, parent_of, wait_until_gone

from studio.core.errors import Cancelled, ModelLoadError, StudioError, TrustRequired
from studio.core.model.artifact import load
from studio.core.model.isolation import DEFAULT_FILE_SIZE_LIMIT, machine_memory, run_isolated
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


# --- the child is kept apart: environment, folder, limits, session, lifetime ---------------------

class RunsCode:
    """Unpickling this runs `source` with exec (a builtin): the test's own code, trusted."""

    def __init__(self, source: str):
        self.source = source

    def __reduce__(self):
        return (exec, (self.source,))


NOT_A_MODEL = "The file holds a builtins.NoneType, not a model: it has no predict or transform method."
SECRETS = {"AWS_SECRET_ACCESS_KEY": "aws-secret", "GITHUB_TOKEN": "gh-token",
           "OPENAI_API_KEY": "sk-key", "SLIPWAY_API_KEY": "served-key"}

RECORDS_ITS_SURROUNDINGS = """
import json, os, resource
json.dump({{
    "environment": dict(os.environ),
    "cwd": os.getcwd(),
    "cwd_entries": os.listdir("."),
    "memory": resource.getrlimit(resource.RLIMIT_DATA),
    "file_size": resource.getrlimit(resource.RLIMIT_FSIZE),
    "core": resource.getrlimit(resource.RLIMIT_CORE),
    "leads_its_session": os.getsid(0) == os.getpid(),
}}, open({record!r}, "w"))
"""


@pytest.fixture(scope="module")
def surroundings(tmp_path_factory) -> dict:
    """What model code saw while the studio, holding secrets in its environment, loaded it."""
    folder = tmp_path_factory.mktemp("surroundings")
    record = folder / "record.json"
    path = write_pickle(folder, "records.pkl", RunsCode(RECORDS_ITS_SURROUNDINGS.format(
        record=str(record))))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SECRETS.items():
            patch.setenv(name, value)
        with pytest.raises(ModelLoadError) as caught:
            load(path, trust=True)
    assert caught.value.message == NOT_A_MODEL
    return json.loads(record.read_text())


def test_model_code_sees_no_secrets_of_the_studios_environment(surroundings):
    environment = surroundings["environment"]
    assert not set(SECRETS) & set(environment)
    assert not set(SECRETS.values()) & set(environment.values())
    assert environment["PATH"] == os.environ["PATH"]
    assert environment["HOME"] != os.environ.get("HOME")


def test_model_code_runs_in_an_empty_folder_of_its_own_that_is_removed_afterwards(surroundings):
    cwd = Path(surroundings["cwd"])
    assert surroundings["cwd_entries"] == []
    assert cwd != Path.cwd()
    home, tmp = Path(surroundings["environment"]["HOME"]), Path(surroundings["environment"]["TMPDIR"])
    assert not cwd.exists() and not home.exists() and not tmp.exists()


def test_model_code_runs_under_limits_in_a_session_of_its_own(surroundings):
    assert surroundings["memory"] == [machine_memory()] * 2
    assert surroundings["file_size"] == [DEFAULT_FILE_SIZE_LIMIT] * 2
    assert DEFAULT_FILE_SIZE_LIMIT >= 2 * 2**30  # what an ONNX file can hold: conversions write it
    assert surroundings["core"] == [0, 0]
    assert surroundings["leads_its_session"]


def test_a_pickle_that_allocates_far_beyond_the_memory_limit_is_a_clear_error(tmp_path):
    path = write_pickle(tmp_path, "greedy.pkl", RunsCode("b'x' * (4 << 30)"))
    with pytest.raises(ModelLoadError) as caught:
        run_isolated("inspect", {"path": str(path), "loader": "pickle"}, memory_limit=1 << 30)
    assert caught.value.message == ("Loading the model needed more memory than the loader may use "
                                    "(1.0 GiB).")
    assert "more memory" in caught.value.hint
    assert "MemoryError" in caught.value.detail


STARTS_A_HELPER_AND_WAITS = """
import subprocess, sys, time
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
open({record!r}, "w").write(str(helper.pid))
time.sleep(300)
"""


def helper_pickle(folder: Path) -> tuple[Path, Path]:
    """A pickle whose loading starts a helper process (its pid written to the second path) and
    then never finishes."""
    record = folder / "helper.pid"
    return write_pickle(folder, "starts_helper.pkl", RunsCode(
        STARTS_A_HELPER_AND_WAITS.format(record=str(record)))), record


@needs_proc
def test_what_the_model_started_is_killed_with_it_at_the_time_limit(tmp_path):
    path, record = helper_pickle(tmp_path)
    with pytest.raises(ModelLoadError, match="took longer than 10 s"):
        load(path, trust=True, timeout=10)
    assert record.exists(), "the loader never started its helper within the time limit"
    helper = int(record.read_text())
    try:
        assert wait_until_gone(helper), "the model's helper process outlived the time-limit kill"
    finally:
        kill_if_alive(helper)


def test_a_long_load_from_a_thread_that_ends_runs_to_its_end(tmp_path):
    path = write_pickle(tmp_path, "slow_nothing.pkl", RunsCode("import time; time.sleep(3)"))
    outcome: dict = {}

    def load_and_end():
        try:
            load(path, trust=True)
        except ModelLoadError as exc:
            outcome["message"] = exc.message

    worker = threading.Thread(target=load_and_end)
    worker.start()
    worker.join(120)
    assert outcome["message"] == NOT_A_MODEL  # the loader answered: it was not killed


LOADS_IN_A_STAND_IN_STUDIO = """
import sys
from studio.core.model.artifact import load
load(sys.argv[1], trust=True)
"""


@needs_proc
def test_the_loader_and_what_it_started_die_with_a_studio_killed_with_sigkill(tmp_path):
    path, record = helper_pickle(tmp_path)
    studio = StandInStudio(LOADS_IN_A_STAND_IN_STUDIO, str(path))
    loader = helper = None
    try:
        deadline = time.monotonic() + 120
        while not record.exists() or not record.read_text():
            assert studio.process.poll() is None, studio.process.stderr.read()
            assert time.monotonic() < deadline, "the loader never started its helper"
            time.sleep(0.05)
        helper = int(record.read_text())
        loader = parent_of(helper)
        studio.kill()
        assert wait_until_gone(loader), "the loader outlived the studio"
        assert wait_until_gone(helper), "the model's helper process outlived the studio"
    finally:
        studio.close()
        for pid in (loader, helper):
            if pid:
                kill_if_alive(pid)
