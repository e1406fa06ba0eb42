"""The bundle's one executable: the `slipway` command, and the Python the studio's children need.

In a bundle `sys.executable` is this program, not a Python interpreter, yet the studio starts its
children with it as if it were one:

    sys.executable -P -c LIFELINE_BOOTSTRAP FD PATHS MODULE ARGS…   core/children.py: the process
                                                                    runtime's server, the isolated
                                                                    model loader
    sys.executable -m pip download …                                serve/bundle.py: the wheelhouse

So when its arguments are a Python command line of that shape (a few of Python's flags, then
`-c CODE` or `-m MODULE`), it acts as that Python: the modules frozen into the bundle and the
folders on PYTHONPATH are importable (the process runtime puts the build context's own copy of
the server there), and the code runs as `__main__`, as `python` would run it. Anything else is the
`slipway` command line. `slipway` has no `-c` or `-m` option, so the two never meet.

The same file runs unfrozen (`python packaging/slipway_entry.py …`), which is how the tests check
the dispatch without building a bundle.
"""

from __future__ import annotations

import os
import sys

# The flags the studio's own children are started with (and their harmless neighbours); any other
# argument ends the Python options, as it would for `python`.
PYTHON_FLAGS = frozenset({"-P", "-I", "-E", "-s", "-S", "-u", "-B"})


def python_command(args: list[str]) -> tuple[list[str], str, str, list[str]] | None:
    """(flags, "-c" or "-m", code or module, the rest) when `args` is a Python command line this
    program runs; None when it is a `slipway` command line."""
    index = 0
    while index < len(args) and args[index] in PYTHON_FLAGS:
        index += 1
    if index + 1 < len(args) and args[index] in ("-c", "-m"):
        return args[:index], args[index], args[index + 1], args[index + 2:]
    return None


def act_as_python(flags: list[str], kind: str, target: str, rest: list[str]) -> None:
    """Run `python FLAGS -c CODE REST…` or `python FLAGS -m MODULE REST…` in this process."""
    import builtins
    import runpy
    import types

    isolated = "-I" in flags
    ignore_environment = isolated or "-E" in flags
    if "-u" in flags or (not ignore_environment and os.environ.get("PYTHONUNBUFFERED")):
        # A server's log is read while it runs: lines must reach the file as they are written.
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.reconfigure(write_through=True)
    if "-B" in flags:
        sys.dont_write_bytecode = True
    # The frozen interpreter ignores PYTHONPATH; Python puts it first on sys.path, and the process
    # runtime names the build context's server folder there.
    if not ignore_environment:
        sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if not (isolated or "-P" in flags):
        sys.path.insert(0, "" if kind == "-c" else os.getcwd())
    if kind == "-m":
        sys.argv = [target, *rest]  # runpy puts the module's file in argv[0]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
        return
    sys.argv = ["-c", *rest]
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    exec(compile(target, "<string>", "exec"), main.__dict__)


def restore_library_path() -> None:
    """Give the programs the studio runs (kubectl, docker-compose, checkov) the library path the
    person had: the bundle's loader puts its own folder first in LD_LIBRARY_PATH, where a system
    program would pick up the bundle's copies of libraries (an older libstdc++, another OpenSSL)
    instead of its own. This process's libraries are already loaded; its frozen children set the
    bundle's path again for themselves."""
    if not getattr(sys, "frozen", False):
        return
    for name in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "LIBPATH"):
        original = os.environ.pop(f"{name}_ORIG", None)
        if original is not None:
            os.environ[name] = original
        elif name in os.environ:
            del os.environ[name]


def main() -> int:
    command = python_command(sys.argv[1:])
    if command is not None:
        act_as_python(*command)
        return 0
    restore_library_path()
    # ONNX Runtime before Qt: both bring native libraries that the other's would otherwise shadow
    # (the C++ runtime, OpenMP); loaded in this order ONNX Runtime gets the ones it was built with,
    # and Qt still finds what it needs.
    import onnxruntime  # noqa: F401

    from studio.cli import main as slipway

    return slipway()


if __name__ == "__main__":
    sys.exit(main())
