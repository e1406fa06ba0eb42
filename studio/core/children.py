"""Python child processes that never outlive the studio, whichever thread starts them.

Every Python child the studio runs (a model server of the process runtime, the model loader of
`model/isolation.py`) is a `PythonChild`: `python -P -c LIFELINE_BOOTSTRAP FD PATHS MODULE ARGS…`.
The bootstrap starts a watchdog thread that blocks reading FD, the read end of a pipe whose only
write end this process holds, then runs MODULE as `__main__` with runpy, exactly as `python -m`
would. When this process ends, however it ends (exit, crash, `kill -9`), the kernel closes the write
end, the watchdog reads end-of-file and SIGKILLs the child, and its whole process group when the
child leads one (`start_new_session=True`), so what a loader forked goes with it.

Why a lifeline rather than PR_SET_PDEATHSIG, which this replaced: the parent-death signal fires when
the *thread* that forked the child exits, not the process. The app starts servers from
QThreadPool workers, and an idle pool thread expires after 30 s, taking the server it started with
it. A pipe belongs to the process, so it does not matter which thread spawns. It also needs no
`preexec_fn` (Python code run between fork and exec, which the subprocess documentation warns can
deadlock in a process with threads, as the app is), works on every POSIX system rather than Linux
alone, and lets the child take its grandchildren down with it. The servers run unchanged: the
bootstrap wraps them from outside.

The cost: the watchdog is a Python thread, so it acts once it gets the interpreter lock. Native code
that holds the lock for long (rare: ONNX Runtime, ctypes-based libraries such as XGBoost and
LightGBM, and blocking I/O all release it) delays the child's exit until it lets go.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

LIFELINE_SUPPORTED = os.name == "posix"
"""Elsewhere children run without a lifeline; the runtimes' atexit hooks still stop them."""

# Kept to the standard library and to one screen: it runs before anything of the child's own.
LIFELINE_BOOTSTRAP = """\
import os, runpy, signal, sys, threading

def watch(lifeline):
    try:
        while os.read(lifeline, 64):
            pass
    except OSError:
        pass
    if os.getpgid(0) == os.getpid():
        os.killpg(0, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)

_, lifeline, extra_paths, module, *args = sys.argv
if lifeline != "-":
    threading.Thread(target=watch, args=(int(lifeline),), name="lifeline", daemon=True).start()
sys.path += [path for path in extra_paths.split(os.pathsep) if path]
sys.argv = [module, *args]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


class PythonChild(subprocess.Popen):
    """`python -m module args…` with this interpreter, as a child that dies with this process.

    `sys_path` is appended to the child's sys.path (after site-packages, so it shadows nothing).
    The other keyword arguments are Popen's. Its lifeline closes once the child is seen to have
    exited (`poll`, `wait`), since then there is nothing left to hold; a child dropped without
    either keeps its lifeline, and so runs until this process ends, as under a plain Popen.
    """

    def __init__(self, module: str, args: Sequence[str] = (), *, sys_path: Sequence[str] = (),
                 **popen_kwargs):
        self._lifeline_lock = threading.Lock()
        self._lifeline: int | None = None
        lifeline_read = "-"
        if LIFELINE_SUPPORTED:
            read_end, self._lifeline = os.pipe()  # both ends close on exec: no other child holds them
            popen_kwargs["pass_fds"] = (*popen_kwargs.get("pass_fds", ()), read_end)
            lifeline_read = str(read_end)
        command = [sys.executable, "-P", "-c", LIFELINE_BOOTSTRAP, lifeline_read,
                   os.pathsep.join(sys_path), module, *args]
        try:
            super().__init__(command, **popen_kwargs)
        except BaseException:
            self._let_go()
            raise
        finally:
            if LIFELINE_SUPPORTED:
                os.close(read_end)  # the child has its own copy; ours would keep the pipe open

    def poll(self) -> int | None:
        code = super().poll()
        if code is not None:
            self._let_go()
        return code

    def wait(self, timeout: float | None = None) -> int:
        code = super().wait(timeout)
        self._let_go()
        return code

    def has_exited(self) -> bool:
        """Whether the child has ended, without reaping it: while it is unreaped its pid (which is
        also its process group's id) cannot be reused, so `kill_group` cannot hit a stranger."""
        if self.returncode is not None:
            return True
        if not hasattr(os, "waitid"):
            return self.poll() is not None
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:  # reaped already, by a wait elsewhere
            return True

    def kill_group(self) -> None:
        """SIGKILL the child and everything in its process group (it leads one when started with
        `start_new_session=True`; otherwise only the child is killed), then reap it."""
        if self.returncode is None:
            try:
                if LIFELINE_SUPPORTED and os.getpgid(self.pid) == self.pid:
                    os.killpg(self.pid, signal.SIGKILL)
                else:
                    self.kill()
            except ProcessLookupError:
                pass
        self.wait()

    def _let_go(self) -> None:
        # Under a lock: two threads polling at once must not close the descriptor twice (the second
        # close could hit a file opened in between under the same number).
        with self._lifeline_lock:
            if self._lifeline is not None:
                os.close(self._lifeline)
                self._lifeline = None


def die_with_parent() -> None:
    """A `preexec_fn` that SIGKILLs the child when the *thread* that started it ends (Linux
    PR_SET_PDEATHSIG; harmless elsewhere). Only for a script that starts children from its main
    thread, which lives as long as the script; the studio's own children are `PythonChild`ren."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
