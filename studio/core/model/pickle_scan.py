"""What a pickle would import and call, read from its bytes without running any of it.

A pickle is a program for a small stack machine: its opcodes push values, import module attributes
(GLOBAL, STACK_GLOBAL, INST, EXT1/2/4), call them (REDUCE, NEWOBJ, OBJ, INST) and set state on what
they return (BUILD). The scan runs that program on stand-ins (`pickle_opcodes`), with the
semantics of CPython's pickle._Unpickler: strings, numbers, tuples and dict states are followed as
values, because an import's name can be built on the stack or fetched from the memo; whatever a
call would return is an opaque `Made`; nothing is ever imported or called.

joblib writes each numpy array as a NumpyArrayWrapper followed by the array's raw bytes, outside
the opcodes; the scan steps over them by the wrapper's shape and dtype, as joblib reads them, and
stops (saying so) wherever it cannot tell whether array bytes follow. Bytes come from
`pickle_stream` (joblib's decompressors, within limits); verdicts from `pickle_verdicts`.
"""

from __future__ import annotations

import _compat_pickle
import lzma
import math
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.core.errors import TrustFinding
from studio.core.model.pickle_opcodes import (
    ARRAY_WRAPPER,
    DISPATCH,
    OPAQUE,
    Bag,
    Global,
    Made,
    may_hold_wrapper,
)
from studio.core.model.pickle_stream import (
    DEFAULT_INFLATE_LIMIT,
    DEFAULT_LIMIT,
    CutShort,
    Source,
    Stop,
    open_as_joblib_does,
)
from studio.core.model.pickle_verdicts import CHANGED_IN_PLACE, COMPUTED_CALL, Findings
from studio.core.tasks import Progress

# A hostile file can grow the stack or memo by one value per opcode; past this many the scan stops
# (and says so) rather than hold them all.
MOST_VALUES_HELD = 2_000_000
NUMPY_DTYPES = {"numpy.dtype", "numpy.core.multiarray.dtype", "numpy._core.multiarray.dtype"}
# copyreg's helpers that rebuild objects for protocols 0-2 with __new__ alone: the object's class
# is their first argument.
COPYREG_MAKERS = {"copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__"}


def scan_pickle(path: Path, *, limit: int = DEFAULT_LIMIT,
                inflate_limit: int = DEFAULT_INFLATE_LIMIT,
                progress: Progress | None = None) -> list[TrustFinding]:
    """Every import and call target a pickle or joblib file names: the dangerous ones first, then
    what the scan cannot name (and where it had to stop, if it did), then the rest in the order
    found."""
    findings = Findings()
    with open(path, "rb") as raw:
        try:
            stream, size, joblib_arrays = open_as_joblib_does(raw, path.stat().st_size)
        except Stop as stop:
            findings.unnamed(f"({stop})")
            return findings.ordered()
        source = Source(stream, size=size, limit=limit, inflate_limit=inflate_limit)
        machine = Machine(source, findings, progress, joblib_arrays=joblib_arrays)
        try:
            machine.run()
        except CutShort as cut:
            findings.unnamed(str(cut))
        except Stop as stop:
            findings.unnamed(f"(the scan stopped at byte {machine.at:,}: {stop}; anything after "
                             "it is not listed)")
        except (OSError, EOFError, ValueError, struct.error, zlib.error, lzma.LZMAError) as exc:
            # a damaged compressed stream, or a value pickletools cannot parse
            findings.unnamed(f"(the scan stopped at byte {machine.at:,}: it cannot read past it "
                             f"({type(exc).__name__}); anything after it is not listed)")
    return findings.ordered()


class Machine:
    """Pickle's stack machine on stand-ins; `joblib_arrays` when joblib's unpickler reads it (it
    reads array bytes after each NumpyArrayWrapper), not the plain one of a nested pickle."""

    def __init__(self, source: Source, findings: Findings, progress: Progress | None, *,
                 joblib_arrays: bool):
        self.source, self.findings, self.progress = source, findings, progress
        self.joblib_arrays = joblib_arrays
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.marked = 0  # values held in the metastack
        self.memo: dict[int, Any] = {}
        self.proto = 0
        self.frame_end: int | None = None
        self.after_frame: list[Callable[[], None]] = []  # array reads the loader makes past a frame
        self.at = 0  # where the current opcode starts

    def run(self) -> None:
        source, count = self.source, 0
        while True:
            self.at = source.position
            code = source.read(1)[0]
            if code not in DISPATCH:
                raise Stop(f"byte {code:#04x} is not a pickle opcode")
            opcode, handle = DISPATCH[code]
            try:
                handle(self, opcode)
            except IndexError:
                raise Stop(f"{opcode.name} takes a value the stack does not have (Python's loader "
                           "stops there too)") from None
            if self.frame_end is not None and source.position >= self.frame_end:
                if source.position > self.frame_end:
                    raise Stop(f"{opcode.name} runs past the end of its frame (Python's loader "
                               "stops there too)")
                self.end_frame()
            if opcode.name == "STOP":
                self.end_frame()  # arrays read inside the last frame are still read
                return
            count += 1
            if count % 4096 == 0:
                if self.progress is not None:
                    self.progress.check()
                if len(self.stack) + self.marked + len(self.memo) > MOST_VALUES_HELD:
                    raise CutShort(f"(the scan was cut short: the file holds more than "
                                   f"{MOST_VALUES_HELD:,} values at once, more than the scan "
                                   "follows; the rest is not listed and may import anything)")

    def end_frame(self) -> None:
        self.frame_end = None
        pending, self.after_frame = self.after_frame, []
        for read_array in pending:
            read_array()

    def pop_mark(self) -> list[Any]:
        items = self.stack
        self.stack = self.metastack.pop()
        self.marked -= len(self.stack)
        return items

    def read_line(self) -> str:
        return self.source.readline()[:-1].decode("utf-8")

    def import_global(self, module: str, name: str) -> Global:
        if self.proto < 3:  # pickle's find_class renames Python 2 modules (fix_imports)
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        return Global(self.findings.imported(module, name))

    def call(self, target: Any, args: Any, *, fresh: bool) -> Made:
        """What `target(*args)` returns (`fresh`: only __new__ runs), noting a call the scan
        cannot name."""
        if isinstance(target, Global) and target.name in COPYREG_MAKERS:
            target, fresh = (args[0] if isinstance(args, tuple) and args else None), True
        if not isinstance(target, Global):
            self.findings.unnamed(COMPUTED_CALL)
            return Made(None, args, fresh=fresh)
        return Made(target.name, args, fresh=fresh)  # an unnamed Global was noted when imported

    def build(self, state: Any) -> None:
        target = self.stack[-1]
        if isinstance(target, Global) and target.name is not None:
            # BUILD on an import itself sets attributes on the class, function or module
            self.findings.add(TrustFinding(target.name, "dangerous", CHANGED_IN_PLACE))
        if not isinstance(target, Made):
            return
        if self.joblib_arrays:
            if target.maker == ARRAY_WRAPPER:
                self.build_array(target, state)
                return
            if target.tainted or (target.maker or "").endswith("NumpyArrayWrapper"):
                raise Stop("BUILD on an object that may be joblib's NumpyArrayWrapper, made in a "
                           "way joblib never writes, so the scan cannot tell whether array data "
                           "follows")
        target.state = state
        if may_hold_wrapper(state):
            target.tainted = True

    def build_array(self, wrapper: Made, state: Any) -> None:
        """joblib's load_build: the wrapper becomes the array it reads from the file right away,
        after the current frame when there is one (the frame was read whole)."""
        if not wrapper.fresh or wrapper.state is not None or not isinstance(state, Bag):
            raise Stop("a joblib array is described in a way joblib never writes, so its size is "
                       "unknown")
        wrapper.state = state
        self.stack[-1] = OPAQUE
        if self.frame_end is not None and self.source.position >= self.frame_end:
            self.end_frame()  # BUILD was the frame's last byte: the file comes next
        if self.frame_end is not None:
            self.after_frame.append(lambda: self.read_array(state))
        else:
            self.read_array(state)

    def read_array(self, state: Bag) -> None:
        """Step over what joblib's NumpyArrayWrapper.read_array reads."""
        shape = state.get("shape")
        if not (isinstance(shape, tuple)
                and all(type(n) is int and 0 <= n < 2**63 for n in shape)):
            raise Stop("a joblib array's shape is not plain numbers, so its size is unknown")
        itemsize, holds_objects = dtype_layout(state.get("dtype"))
        if holds_objects:  # joblib pickles an object array as a nested pickle, imports and all
            Machine(self.source, self.findings, self.progress, joblib_arrays=False).run()
            return
        if state.get("numpy_array_alignment_bytes") is not None:
            self.source.skip(self.source.read(1)[0])  # one byte saying how much padding follows
        self.source.skip(math.prod(shape) * itemsize)


def dtype_layout(dtype: Any) -> tuple[int, bool]:
    """(item size, holds Python objects) of a pickled numpy.dtype, as numpy rebuilds it from its
    arguments ('f8', 'U5', 'V12', 'O8') and state (version, byte order, subarray, names, fields,
    item size, alignment, flags)."""
    if not (isinstance(dtype, Made) and dtype.maker in NUMPY_DTYPES
            and isinstance(dtype.args, tuple) and dtype.args and isinstance(dtype.args[0], str)):
        raise Stop("a joblib array's dtype is not a plain numpy dtype, so its size is unknown")
    code = dtype.args[0]
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    flags = state[7] if len(state) > 7 and type(state[7]) is int else 0
    if code.startswith("O") or flags & 1:  # NPY_ITEM_REFCOUNT: the items are Python objects
        return 0, True
    if len(state) > 5 and type(state[5]) is int and state[5] > 0:  # flexible types keep a size
        return state[5], False
    digits = re.fullmatch(r"[a-zA-Z](\d+)", code)
    if digits is None:
        raise Stop(f"a joblib array's dtype '{code[:20]}' has no size the scan can read")
    return int(digits.group(1)), False
