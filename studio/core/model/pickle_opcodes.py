"""The stand-ins a pickle scan pushes instead of real objects, and what each opcode does to them.

Each handler takes the machine (`pickle_scan.Machine`: its `stack`, `memo`, `source` and the
methods that import, call and build) and the opcode, with the semantics of CPython's
pickle._Unpickler: what it pops, what it pushes and when it fails. Nothing is imported or called.
"""

from __future__ import annotations

import copyreg
import pickletools
import struct
from collections.abc import Callable
from typing import Any

from studio.core.model.pickle_stream import Stop
from studio.core.model.pickle_verdicts import COMPUTED_IMPORT

ARRAY_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
# Strings and bytes longer than this are stepped over, not read: no import is named by one.
LONGEST_FOLLOWED_VALUE = 64 * 1024


class Global:
    """A module attribute the pickle imports (name None: computed while loading)."""
    __slots__ = ("name",)

    def __init__(self, name: str | None):
        self.name = name


class Made:
    """What a call returns: its maker when named, its arguments and state; `fresh` when only
    __new__ ran (NEWOBJ, copyreg's rebuilders), as for every object joblib writes; `tainted`
    when it may be joblib's NumpyArrayWrapper without the scan knowing it (made from one, or by a
    call the scan cannot name)."""
    __slots__ = ("maker", "args", "state", "fresh", "tainted")

    def __init__(self, maker: str | None, args: Any, *, fresh: bool):
        self.maker, self.args, self.state, self.fresh = maker, args, None, fresh
        self.tainted = maker is None or may_hold_wrapper(args)


class Bag:
    """A list, set or dict being built; a dict keeps its first pairs (all a NumpyArrayWrapper's
    state needs), and each notes whether anything put in it may be a wrapper."""
    __slots__ = ("pairs", "tainted")

    def __init__(self, items: list[Any] | None = None):
        self.pairs: list[tuple[Any, Any]] = []
        self.tainted = False
        self.add(items or [], as_pairs=False)

    def add(self, items: list[Any], *, as_pairs: bool) -> None:
        self.tainted = self.tainted or may_hold_wrapper(tuple(items))
        if as_pairs:
            self.pairs.extend(list(zip(items[::2], items[1::2]))[:64 - len(self.pairs)])

    def get(self, key: str) -> Any:
        return next((v for k, v in self.pairs if isinstance(k, str) and k == key), None)


OPAQUE = object()  # bytes, buffers, arrays already read: values that never name an import


def may_hold_wrapper(value: Any, budget: int = 10_000) -> bool:
    """Whether `value` is or holds joblib's NumpyArrayWrapper (its class or an instance) or
    something the scan cannot name, which might be one."""
    pending = [value]
    while pending:
        budget -= 1
        if budget < 0:
            return True  # too deep to look through: assume the worst
        item = pending.pop()
        if isinstance(item, tuple):
            pending.extend(item)
        elif isinstance(item, Global):
            if item.name in (None, ARRAY_WRAPPER):
                return True
        elif isinstance(item, Made):
            if item.tainted or item.maker == ARRAY_WRAPPER:
                return True
        elif isinstance(item, Bag) and item.tainted:
            return True
    return False


PAYLOADS = {  # opcode: (how its length is written, what follows)
    "BINSTRING": ("<i", "string"), "SHORT_BINSTRING": ("<B", "string"),
    "BINBYTES": ("<I", "bytes"), "SHORT_BINBYTES": ("<B", "bytes"),
    "BINBYTES8": ("<Q", "bytes"), "BYTEARRAY8": ("<Q", "bytes"),
    "BINUNICODE": ("<I", "unicode"), "SHORT_BINUNICODE": ("<B", "unicode"),
    "BINUNICODE8": ("<Q", "unicode"),
}


def _payload(m: Any, opcode: Any) -> None:
    layout, kind = PAYLOADS[opcode.name]
    (length,) = struct.unpack(layout, m.source.read(struct.calcsize(layout)))
    if length < 0:
        raise Stop(f"{opcode.name} has a negative length")
    if length > LONGEST_FOLLOWED_VALUE:
        m.source.skip(length)
        m.stack.append(OPAQUE)
        return
    data = m.source.read(length)
    if kind == "bytes":
        m.stack.append(OPAQUE)
        return
    try:  # joblib's unpickler decodes Python 2 strings as ASCII
        m.stack.append(data.decode("utf-8", "surrogatepass") if kind == "unicode"
                       else data.decode("ascii"))
    except UnicodeDecodeError:
        m.stack.append(OPAQUE)


def _literal(m: Any, opcode: Any) -> None:
    value = opcode.arg.reader(m.source)
    m.stack.append(value if isinstance(value, (int, float, str)) else OPAQUE)


def _get(m: Any, opcode: Any) -> None:
    index = int(opcode.arg.reader(m.source))
    if index not in m.memo:
        raise Stop("the pickle asks for a memo entry it never stored (Python's loader stops "
                   "there too)")
    m.stack.append(m.memo[index])


def _put(m: Any, opcode: Any) -> None:
    index = len(m.memo) if opcode.name == "MEMOIZE" else int(opcode.arg.reader(m.source))
    m.memo[index] = m.stack[-1]


def _mark(m: Any, opcode: Any) -> None:
    m.metastack.append(m.stack)
    m.marked += len(m.stack)
    m.stack = []


def _pop(m: Any, opcode: Any) -> None:
    if m.stack:
        m.stack.pop()
    else:  # pickle's load_pop: POP on an empty stack drops the mark
        m.pop_mark()


def _fill(m: Any, opcode: Any) -> None:
    """APPEND(S), ADDITEMS, SETITEM(S): items go into the list, set, dict or object below."""
    if opcode.name in ("APPENDS", "ADDITEMS", "SETITEMS"):
        items = m.pop_mark()
    else:
        items = [m.stack.pop(-2), m.stack.pop()] if opcode.name == "SETITEM" else [m.stack.pop()]
    target = m.stack[-1]
    if isinstance(target, Bag):
        target.add(items, as_pairs=opcode.name.startswith("SETITEM"))
    elif isinstance(target, Made) and may_hold_wrapper(tuple(items)):
        target.tainted = True  # its append or __setitem__ now holds what may be a wrapper


def _global(m: Any, opcode: Any) -> None:
    module = m.read_line()
    m.stack.append(m.import_global(module, m.read_line()))


def _stack_global(m: Any, opcode: Any) -> None:
    name, module = m.stack.pop(), m.stack.pop()
    if isinstance(module, str) and isinstance(name, str):
        m.stack.append(m.import_global(module, name))
        return
    if isinstance(module, str):
        m.findings.computed_attribute(module)
    else:
        m.findings.unnamed(COMPUTED_IMPORT)
    m.stack.append(Global(None))


def _ext(m: Any, opcode: Any) -> None:
    code = opcode.arg.reader(m.source)
    key = copyreg._inverted_registry.get(code)
    if key is None:
        # The loader's registry can differ from the studio's (a module the pickle imports first
        # may register codes), so an unknown code is an import the scan cannot name.
        m.findings.unnamed(f"(an import the scan cannot name: extension code {code}, which is "
                           "not registered here)")
        m.stack.append(Global(None))
        return
    m.stack.append(m.import_global(*key))


def _reduce(m: Any, opcode: Any) -> None:
    args = m.stack.pop()
    m.stack[-1] = m.call(m.stack[-1], args, fresh=False)


def _newobj(m: Any, opcode: Any) -> None:
    if opcode.name == "NEWOBJ_EX":
        m.stack.pop()  # keyword arguments
    args = m.stack.pop()
    made = m.call(m.stack.pop(), args, fresh=True)
    m.stack.append(made)


def _obj(m: Any, opcode: Any) -> None:
    items = m.pop_mark()
    made = m.call(items[0], tuple(items[1:]), fresh=False)
    m.stack.append(made)


def _inst(m: Any, opcode: Any) -> None:
    module = m.read_line()
    target = m.import_global(module, m.read_line())
    made = m.call(target, tuple(m.pop_mark()), fresh=False)
    m.stack.append(made)


def _frame(m: Any, opcode: Any) -> None:
    length = opcode.arg.reader(m.source)
    if m.frame_end is not None:  # a FRAME inside a frame must be its last bytes
        if m.source.position != m.frame_end:
            raise Stop("a frame begins before the last one ends (Python's loader stops there too)")
        m.end_frame()  # the next frame is read after the arrays the last one's BUILDs read
    m.frame_end = m.source.position + length


def _proto(m: Any, opcode: Any) -> None:
    m.proto = opcode.arg.reader(m.source)


def _persistent_id(m: Any, opcode: Any) -> None:
    if opcode.name == "PERSID":
        m.source.readline()
    else:
        m.stack.pop()
    m.stack.append(OPAQUE)  # joblib's unpickler has no persistent_load: loading fails here


def _push(value: Callable[[], Any]) -> Callable[[Any, Any], None]:
    return lambda m, opcode: m.stack.append(value())


def _tuple_of(count: int) -> Callable[[Any, Any], None]:
    def make(m: Any, opcode: Any) -> None:
        if len(m.stack) < count:
            raise IndexError
        items = tuple(m.stack[-count:])
        del m.stack[-count:]
        m.stack.append(items)
    return make


def _from_mark(value: Callable[[list[Any]], Any]) -> Callable[[Any, Any], None]:
    def collect(m: Any, opcode: Any) -> None:
        made = value(m.pop_mark())  # before naming m.stack: popping the mark replaces it
        m.stack.append(made)
    return collect


def _dict(items: list[Any]) -> Bag:
    bag = Bag()
    bag.add(items, as_pairs=True)
    return bag


HANDLERS: dict[str, Callable[[Any, Any], Any]] = {
    **{name: _payload for name in PAYLOADS},
    **{name: _literal for name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
                                   "FLOAT", "BINFLOAT", "STRING", "UNICODE")},
    "NONE": _push(lambda: None), "NEWTRUE": _push(lambda: True), "NEWFALSE": _push(lambda: False),
    "NEXT_BUFFER": _push(lambda: OPAQUE),
    "READONLY_BUFFER": lambda m, opcode: m.stack[-1],  # needs a buffer below; changes nothing
    "EMPTY_TUPLE": _push(tuple), "EMPTY_LIST": _push(Bag), "EMPTY_DICT": _push(Bag),
    "EMPTY_SET": _push(Bag),
    "TUPLE1": _tuple_of(1), "TUPLE2": _tuple_of(2), "TUPLE3": _tuple_of(3),
    "TUPLE": _from_mark(tuple), "LIST": _from_mark(Bag), "FROZENSET": _from_mark(Bag),
    "DICT": _from_mark(_dict),
    "APPEND": _fill, "APPENDS": _fill, "ADDITEMS": _fill, "SETITEM": _fill, "SETITEMS": _fill,
    "POP": _pop, "POP_MARK": lambda m, opcode: m.pop_mark(),
    "DUP": lambda m, opcode: m.stack.append(m.stack[-1]), "MARK": _mark,
    "GET": _get, "BINGET": _get, "LONG_BINGET": _get,
    "PUT": _put, "BINPUT": _put, "LONG_BINPUT": _put, "MEMOIZE": _put,
    "GLOBAL": _global, "STACK_GLOBAL": _stack_global, "EXT1": _ext, "EXT2": _ext, "EXT4": _ext,
    "REDUCE": _reduce, "NEWOBJ": _newobj, "NEWOBJ_EX": _newobj, "OBJ": _obj, "INST": _inst,
    "BUILD": lambda m, opcode: m.build(m.stack.pop()),
    "PERSID": _persistent_id, "BINPERSID": _persistent_id,
    "PROTO": _proto, "FRAME": _frame, "STOP": lambda m, opcode: None,
}
DISPATCH = {ord(opcode.code): (opcode, HANDLERS[opcode.name]) for opcode in pickletools.opcodes}
