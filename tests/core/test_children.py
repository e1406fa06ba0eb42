"""PythonChild: `python -m module` as a child that lives as long as this process, whichever thread
started it, and leaves nothing open behind it."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest
from child_processes import wait_until_thread_gone

from studio.core.children import PythonChild

needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")

REPORTS_HOW_IT_RUNS = """
import json, os, sys
print(json.dumps({"name": __name__, "argv": sys.argv[1:], "path": sys.path,
                  "cwd": os.getcwd()}))
"""


def test_a_child_runs_its_module_as_python_m_would_without_the_working_folder_on_its_path(
        tmp_path):
    (tmp_path / "reports_how_it_runs.py").write_text(REPORTS_HOW_IT_RUNS)
    working = tmp_path / "working"
    working.mkdir()
    child = PythonChild("reports_how_it_runs", ["--flag", "value"], sys_path=[str(tmp_path)],
                        cwd=working, stdout=subprocess.PIPE, text=True)
    output, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    report = json.loads(output)
    assert report["name"] == "__main__"
    assert report["argv"] == ["--flag", "value"]
    assert report["path"][-1] == str(tmp_path)  # appended: it shadows no installed package
    assert str(working) not in report["path"] and "" not in report["path"]


@needs_proc
def test_a_child_started_from_a_thread_that_ends_keeps_running():
    started: dict = {}
    worker = threading.Thread(target=lambda: started.setdefault(
        "child", PythonChild("http.server", ["0", "--bind", "127.0.0.1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    worker.start()
    worker.join(60)
    child = started["child"]
    try:
        wait_until_thread_gone(worker.native_id)
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=2)
    finally:
        child.kill_group()


def pipes_held_by(pid: int | str, skip: tuple[str, ...] = ()) -> set[str]:
    """The pipes (as 'pipe:[inode]') that a process has open, except on the descriptors skipped."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed while we looked
            continue
        if target.startswith("pipe:") and fd.name not in skip:
            held.add(target)
    return held


@needs_proc
def test_a_child_that_has_ended_leaves_no_descriptor_open():
    child = PythonChild("json.tool", stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    lifeline = pipes_held_by(child.pid, skip=("0",))  # its stdin is the other pipe it holds
    assert len(lifeline) == 1
    assert lifeline <= pipes_held_by("self")  # this process holds the other end while it runs
    child.communicate(b"{}", timeout=60)  # json.tool reads its input to the end, then exits
    assert child.returncode == 0
    assert not lifeline & pipes_held_by("self")
