"""Pickles built to hide what they run, written opcode by opcode (nothing hostile is ever run to
make them), and the loader's own view of a file for comparison.

Each trick is a pickle program whose real unpickler would import (and call) `os.system` or another
dangerous name while a naive reading of its opcodes sees nothing. `names_the_loader_asks_for` runs
joblib's own unpickler on a file with `find_class` recording each name and handing back a harmless
stand-in for anything outside the model libraries and copy, so a test can hold the scan to
what the loader really imports without running any of it.
"""

from __future__ import annotations

import _compat_pickle
import bz2
import gzip
import io
import lzma
import pickle
import struct
import zlib
from pathlib import Path

import joblib

COMMAND = "echo the scan missed this"


def text(value: str) -> bytes:
    """SHORT_BINUNICODE (or BINUNICODE for long strings): push a str."""
    encoded = value.encode()
    if len(encoded) < 256:
        return pickle.SHORT_BINUNICODE + bytes([len(encoded)]) + encoded
    return pickle.BINUNICODE + struct.pack("<I", len(encoded)) + encoded


def global_(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def called_with(*args: str) -> bytes:
    """Call what is on top of the stack with these strings (MARK ... TUPLE, REDUCE)."""
    return pickle.MARK + b"".join(text(a) for a in args) + pickle.TUPLE + pickle.REDUCE


def program(*parts: bytes, proto: int = 4) -> bytes:
    return pickle.PROTO + bytes([proto]) + b"".join(parts) + pickle.STOP


def binget(index: int) -> bytes:
    return pickle.BINGET + bytes([index])


def binput(index: int) -> bytes:
    return pickle.BINPUT + bytes([index])


# --- the tricks: each imports a dangerous name a naive reading misses, and calls it -------------

TRICKS: dict[str, bytes] = {
    # INST names the class in its argument: no GLOBAL opcode at all.
    "inst": program(pickle.MARK + text(COMMAND) + pickle.INST + b"os\nsystem\n", proto=0),
    # The module and attribute strings are pushed, something else is pushed and POPped in
    # between, and STACK_GLOBAL takes them from deeper in the stack.
    "names_lost_after_pop": program(text("os"), text("system"), pickle.NONE, pickle.POP,
                                    pickle.NONE, pickle.NONE, pickle.POP, pickle.POP,
                                    pickle.STACK_GLOBAL, called_with(COMMAND)),
    # The strings are stored in the memo from a DUP'd copy and fetched back out of order.
    "stack_global_from_memo": program(text("system"), pickle.DUP, binput(7), pickle.POP,
                                      pickle.POP, text("os"), pickle.DUP, binput(3),
                                      pickle.POP, pickle.POP, pickle.NONE, binput(9), pickle.POP,
                                      binget(3), binget(7), pickle.STACK_GLOBAL,
                                      called_with(COMMAND)),
    # A MARK ... POP_MARK throws away a decoy; OBJ calls the class right after its MARK.
    "obj_after_pop_mark": program(pickle.MARK, text("decoy"), global_("sklearn.base", "clone"),
                                  pickle.POP_MARK, pickle.MARK, text("os"), text("system"),
                                  pickle.STACK_GLOBAL, text(COMMAND), pickle.OBJ),
    # NEWOBJ builds an instance of a class named in the memo.
    "newobj_socket": program(text("socket"), pickle.MEMOIZE, text("socket"), pickle.MEMOIZE,
                             pickle.POP, pickle.POP, binget(0), binget(1), pickle.STACK_GLOBAL,
                             pickle.EMPTY_TUPLE, pickle.NEWOBJ),
    # Python 2's module name, which pickle maps to builtins for protocols below 3.
    "python2_builtin_eval": program(global_("__builtin__", "eval"),
                                    called_with("print('the scan missed this')"), proto=2),
    # Protocol 4 follows dotted names attribute by attribute: joblib.numpy_pickle imports os.
    "dotted_reach": program(text("joblib.numpy_pickle"), text("os.system"),
                            pickle.STACK_GLOBAL, called_with(COMMAND)),
}
DANGEROUS_IN = {
    "inst": "os.system", "names_lost_after_pop": "os.system", "stack_global_from_memo": "os.system",
    "obj_after_pop_mark": "os.system", "newobj_socket": "socket.socket",
    "python2_builtin_eval": "builtins.eval", "dotted_reach": "joblib.numpy_pickle.os.system",
}

# str("os") makes the module's name only while loading, so no reading of the bytes can name it.
COMPUTED_IMPORT = program(global_("builtins", "str"), called_with("os"), text("system"),
                          pickle.STACK_GLOBAL, called_with(COMMAND))

EXTENSION_CODE = 0x5A1F  # registered for os.system by the tests that use it, then removed


def extension_call(code: int = EXTENSION_CODE) -> bytes:
    """EXT2 code: the name comes from copyreg's extension registry, not from the file."""
    return program(pickle.EXT2 + struct.pack("<H", code), called_with(COMMAND), proto=2)


def call_hidden_in_joblib(estimator, path: Path, call: bytes) -> Path:
    """joblib.dump(estimator), then `call` run after its last frame: the file still loads as the
    estimator (POP_MARK throws the call's result away), with the call in between."""
    joblib.dump(estimator, path)
    data = path.read_bytes()
    assert data.endswith(pickle.STOP)
    # STOP is the last byte of the last frame; a MARK takes its place, and the rest is read
    # from the file after the frame, as pickle allows.
    path.write_bytes(data[:-1] + pickle.MARK + call + pickle.POP_MARK + pickle.STOP)
    return path


def os_system_call() -> bytes:
    return global_("os", "system") + called_with(COMMAND)


def open_call(marker: Path) -> bytes:
    """builtins.open(marker, 'w'): harmless evidence that a trusted load ran the hidden call."""
    return global_("builtins", "open") + called_with(str(marker), "w")


def float64_wrapper_state(count: int) -> bytes:
    """The state dict joblib BUILDs a NumpyArrayWrapper with: `count` float64 values, C order,
    no alignment padding (what joblib writes to a stream it cannot tell)."""
    dtype = (global_("numpy", "dtype") + text("f8") + pickle.NEWFALSE + pickle.NEWTRUE
             + pickle.TUPLE3 + pickle.REDUCE + pickle.MARK + pickle.BININT1 + b"\x03" + text("<")
             + pickle.NONE * 3 + (pickle.BININT + struct.pack("<i", -1)) * 2 + pickle.BININT1
             + b"\x00" + pickle.TUPLE + pickle.BUILD)
    return (pickle.EMPTY_DICT + pickle.MARK + text("subclass") + global_("numpy", "ndarray")
            + text("shape") + pickle.BININT1 + bytes([count]) + pickle.TUPLE1
            + text("order") + text("C") + text("dtype") + dtype
            + text("allow_mmap") + pickle.NEWFALSE
            + text("numpy_array_alignment_bytes") + pickle.NONE + pickle.SETITEMS)


NEW_WRAPPER = global_("joblib.numpy_pickle", "NumpyArrayWrapper") + pickle.EMPTY_TUPLE + pickle.NEWOBJ


def frame(content: bytes) -> bytes:
    return pickle.FRAME + struct.pack("<Q", len(content)) + content


def array_built_inside_a_frame() -> bytes:
    """A joblib array BUILT in the middle of a frame, with a call after it in the same frame: the
    loader reads the array's bytes from after the frame, then runs the call."""
    inner = NEW_WRAPPER + float64_wrapper_state(2) + pickle.BUILD + os_system_call() + pickle.POP
    return (pickle.PROTO + b"\x04" + frame(inner) + struct.pack("<2d", 1.0, 2.0)
            + pickle.STOP)


def array_read_through_a_copy() -> bytes:
    """copy.copy of a NumpyArrayWrapper, BUILT: joblib reads 16 bytes of array data after it,
    which a reading that does not know the copy is a wrapper takes for a BINBYTES8 opcode
    swallowing the call that follows."""
    call = os_system_call() + pickle.POP
    array_bytes = pickle.BINBYTES8 + struct.pack("<Q", 7 + len(call)) + bytes(7)
    assert len(array_bytes) == 16
    return (pickle.PROTO + b"\x04" + global_("copy", "copy") + NEW_WRAPPER + pickle.TUPLE1
            + pickle.REDUCE + float64_wrapper_state(2) + pickle.BUILD + array_bytes + call
            + pickle.STOP)


COMPRESSORS = {
    "zlib": zlib.compress, "gzip": gzip.compress, "bz2": bz2.compress,
    "xz": lzma.compress, "lzma": lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE),
}
DECOMPRESSORS = {
    "zlib": zlib.decompress, "gzip": gzip.decompress, "bz2": bz2.decompress,
    "xz": lzma.decompress, "lzma": lzma.decompress,
}


class WritesMarker:
    """Pickled as a call to open(marker, 'w'): loading it creates the file, evidence that the
    pickle ran (its own code only returns that call; nothing runs while pickling)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class StandIn:
    """What the recording loader hands back instead of anything outside the model libraries."""

    def __init__(self, *args, **kwargs):
        pass


def names_the_loader_asks_for(path: Path, compressed_with: str | None = None) -> list[str]:
    """Every name joblib's unpickler asks find_class for while loading `path`. Only classes and
    functions of numpy, scikit-learn, SciPy, joblib, copy and copyreg are really imported (not
    `load`, `clone` or dotted paths); everything else is a StandIn."""
    from joblib.numpy_pickle import NumpyUnpickler

    asked: list[str] = []

    class Recording(NumpyUnpickler):
        def find_class(self, module, name):
            if self.proto < 3 and module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
            asked.append(f"{module}.{name}")
            library = module.split(".")[0] in ("numpy", "sklearn", "joblib", "scipy", "copyreg",
                                               "copy")
            if library and "." not in name and name not in ("load", "clone"):
                return super().find_class(module, name)
            return StandIn

    data = path.read_bytes()
    if compressed_with:
        data = DECOMPRESSORS[compressed_with](data)
    handle = io.BytesIO(data)
    Recording(str(path), handle, ensure_native_byte_order=True).load()
    return asked
