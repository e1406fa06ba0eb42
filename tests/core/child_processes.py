"""Checks on real processes shared by the tests of children that must live exactly as long as the
studio: whether a process or a thread is gone, and a stand-in studio to kill -9."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GONE_WITHIN_S = 30.0
"""How long a child may take to follow its parent; generous, since the machine is shared."""


def _status_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces): state, parent, …"""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def is_gone(pid: int) -> bool:
    """No such process, or only its exit status is left (a zombie nobody has reaped yet)."""
    try:
        return _status_fields(pid)[0] == "Z"
    except OSError:
        return True


def parent_of(pid: int) -> int:
    return int(_status_fields(pid)[1])


def wait_until_gone(pid: int, within: float = GONE_WITHIN_S) -> bool:
    deadline = time.monotonic() + within
    while not is_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_until_thread_gone(native_id: int, within: float = GONE_WITHIN_S) -> None:
    """Until the operating system's thread has ended: what a child bound to it would die with."""
    task = Path(f"/proc/self/task/{native_id}")
    deadline = time.monotonic() + within
    while task.exists():
        assert time.monotonic() < deadline, f"thread {native_id} never ended"
        time.sleep(0.02)


class StandInStudio:
    """A real Python process that runs `code` (which prints one JSON line when its children are
    up, then waits), to be killed with SIGKILL as a crashing studio would be."""

    def __init__(self, code: str, *args: str, env: dict[str, str] | None = None):
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=ROOT, env={**os.environ, **(env or {})})

    def report(self, timeout: float = 180) -> dict:
        """The JSON line the code prints once its children are running."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise AssertionError("the stand-in studio said nothing")
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the stand-in studio ended: {self.process.stderr.read()[-3000:]}")
        return json.loads(line)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self.process.stdout.close()
        self.process.stderr.close()


def kill_if_alive(pid: int) -> None:
    """Clean up after a failed test, so a child that outlived its parent does not linger."""
    if not is_gone(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
