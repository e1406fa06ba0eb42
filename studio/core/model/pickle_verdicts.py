"""How much each import a pickle names should worry the person deciding whether to trust it, and
the list of what a scan found, each name once with its most severe verdict.

Any import in a pickle runs code the file chooses, so nothing is ever marked safe: names are either
`listed` or `dangerous`. Dangerous are the ways a file can act outside building a model: run
programs, run Python code it carries as data, touch files or the network, change the interpreter,
or reach any attribute by name (the usual way to hide one of the others). A model saved by
scikit-learn, XGBoost or LightGBM names none of them.
"""

from __future__ import annotations

from studio.core.errors import TrustFinding, Verdict

PROGRAMS = "runs other programs and shell commands"
OPERATING_SYSTEM = "hands the file the operating system's own calls: running programs, deleting " \
                   "and changing files"
PYTHON_CODE = "runs Python code carried as text or data, which the scan cannot see"
IMPORTS_ANYTHING = "imports any module by a name chosen while loading"
FILES = "reads, writes or deletes files"
NETWORK = "connects to other computers"
BROWSER = "opens web pages"
NATIVE = "calls native machine code directly"
INTERPRETER = "changes the running Python itself: its modules, import paths and hooks"
ATTRIBUTES = "reaches any attribute of any object by name, a common way to hide a dangerous call"
MORE_CODE = "loads another pickle or code object hidden inside this one, which the scan cannot see"
COMPANIONS = "loads companion files named inside this one (joblib's format before 0.10), which " \
             "the scan does not see"
INTERNALS = "reaches Python's internals through a double-underscore attribute, a common way to " \
            "hide a dangerous call"
CHANGED_IN_PLACE = "is itself changed by the file (its attributes are set while loading), so code " \
                   "that later uses it may run something else"

# Modules where every attribute is dangerous, matched on the module and its submodules.
WHOLE_MODULES: dict[str, str] = {
    "os": OPERATING_SYSTEM, "posix": OPERATING_SYSTEM, "nt": OPERATING_SYSTEM,
    "subprocess": PROGRAMS, "_posixsubprocess": PROGRAMS, "_winapi": PROGRAMS, "pty": PROGRAMS,
    "multiprocessing": PROGRAMS, "asyncio": PROGRAMS, "concurrent": PROGRAMS,
    "shutil": FILES, "tempfile": FILES, "fileinput": FILES,
    "sys": INTERPRETER, "site": INTERPRETER, "gc": INTERPRETER,
    "importlib": IMPORTS_ANYTHING, "pkgutil": IMPORTS_ANYTHING, "zipimport": IMPORTS_ANYTHING,
    # Each of these runs source text it is handed (timeit's statements, pdb's and profile's run,
    # the interactive console, doctest's examples).
    "runpy": PYTHON_CODE, "code": PYTHON_CODE, "codeop": PYTHON_CODE, "timeit": PYTHON_CODE,
    "pdb": PYTHON_CODE, "bdb": PYTHON_CODE, "profile": PYTHON_CODE, "cProfile": PYTHON_CODE,
    "trace": PYTHON_CODE, "doctest": PYTHON_CODE, "idlelib": PYTHON_CODE,
    "ctypes": NATIVE, "_ctypes": NATIVE, "cffi": NATIVE,
    "socket": NETWORK, "_socket": NETWORK, "ssl": NETWORK, "urllib": NETWORK, "http": NETWORK,
    "ftplib": NETWORK, "smtplib": NETWORK, "telnetlib": NETWORK, "poplib": NETWORK,
    "imaplib": NETWORK, "xmlrpc": NETWORK, "socketserver": NETWORK, "requests": NETWORK,
    "urllib3": NETWORK, "httpx": NETWORK, "aiohttp": NETWORK,
    "webbrowser": BROWSER,
    # A pickle that unpickles (or unmarshals) more data hides what that data names.
    "pickle": MORE_CODE, "_pickle": MORE_CODE, "marshal": MORE_CODE, "shelve": MORE_CODE,
    "dill": MORE_CODE, "cloudpickle": MORE_CODE,
}

# Single dangerous attributes of otherwise ordinary modules (also matched in submodules).
NAMES: dict[str, dict[str, str]] = {
    "builtins": {
        "exec": PYTHON_CODE, "eval": PYTHON_CODE, "compile": PYTHON_CODE,
        "__import__": IMPORTS_ANYTHING, "open": FILES,
        "getattr": ATTRIBUTES, "setattr": ATTRIBUTES, "delattr": ATTRIBUTES,
        "globals": ATTRIBUTES, "locals": ATTRIBUTES, "vars": ATTRIBUTES,
    },
    "io": {"open": FILES, "open_code": FILES, "FileIO": FILES},
    "_io": {"open": FILES, "open_code": FILES, "FileIO": FILES},
    "codecs": {"open": FILES},
    "operator": {"attrgetter": ATTRIBUTES, "methodcaller": ATTRIBUTES},
    "_operator": {"attrgetter": ATTRIBUTES, "methodcaller": ATTRIBUTES},
    # A function object built from a code object runs whatever that code says.
    "types": {"FunctionType": PYTHON_CODE, "LambdaType": PYTHON_CODE, "CodeType": PYTHON_CODE},
    "numpy": {"load": MORE_CODE, "runstring": PYTHON_CODE},  # numpy.testing's runstring execs
    "joblib": {"load": MORE_CODE, "NDArrayWrapper": COMPANIONS, "ZNDArrayWrapper": COMPANIONS},
    "pandas": {"read_pickle": MORE_CODE, "eval": PYTHON_CODE},
    "torch": {"load": MORE_CODE},
}

COMPUTED_IMPORT = ("(an import the scan cannot name: its module or attribute is computed while "
                   "the file loads)")
COMPUTED_CALL = "(a call the scan cannot name: it calls something computed while the file loads)"
RANK = {"dangerous": 0, "unnamed": 1, "listed": 2}
LONGEST_NAME_SHOWN = 200

# Dunder attributes that ordinary pickles name: copyreg's helpers for protocol 2 objects.
ORDINARY_DUNDERS = {"__newobj__", "__newobj_ex__"}


def verdict_of(module: str, name: str) -> tuple[Verdict, str]:
    """The verdict on `module.name` and, when dangerous, what it does in words."""
    why = _danger(module, name)
    if why:
        return "dangerous", why
    attributes = name.split(".")
    for segment in attributes:
        if segment.startswith("__") and segment.endswith("__") and segment not in ORDINARY_DUNDERS:
            return "dangerous", INTERNALS
    # Protocol 4 follows dotted names attribute by attribute, so `somepackage` + `os.system`
    # reaches os.system through a module that imported os.
    for start in range(len(attributes) - 1):
        why = _danger(attributes[start], ".".join(attributes[start + 1:]))
        if why:
            return "dangerous", f"reaches {'.'.join(attributes[start:])} through {module}: {why}"
    return "listed", ""


def verdict_of_computed(module: str) -> tuple[Verdict, str]:
    """The verdict on an attribute of `module` whose name is computed while loading: dangerous
    when the module holds anything dangerous, since the name may be that; otherwise unnamed."""
    why = _danger(module, "<computed>")
    if why:
        return "dangerous", why
    members = sorted({name for package in _packages(module) for name in NAMES.get(package, {})})
    if members:
        return "dangerous", (f"takes an attribute named while loading from a module that holds "
                             f"{', '.join(members)}")
    return "unnamed", ""


def _danger(module: str, name: str) -> str:
    last = name.rsplit(".", 1)[-1]
    for package in _packages(module):
        specific = NAMES.get(package, {}).get(last)
        if specific:
            return specific
    if module.split(".", 1)[0] in ("os", "posix", "nt") and last.startswith(
            ("system", "popen", "exec", "spawn", "posix_spawn", "fork", "kill")):
        return PROGRAMS
    for package in _packages(module):
        if package in WHOLE_MODULES:
            return WHOLE_MODULES[package]
    return ""


def _packages(module: str) -> list[str]:
    """'a.b.c' -> ['a.b.c', 'a.b', 'a']: a rule on a package covers its submodules."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(len(parts), 0, -1)]


def shown(name: str) -> str:
    """A name as the list shows it: a file can name a "module" a megabyte long."""
    if len(name) <= LONGEST_NAME_SHOWN:
        return name
    return f"{name[:LONGEST_NAME_SHOWN]}… ({len(name):,} characters)"


class Findings:
    """What a scan found: one entry per name, with its most severe verdict."""

    def __init__(self) -> None:
        self._found: dict[str, TrustFinding] = {}

    def add(self, finding: TrustFinding) -> None:
        name = shown(finding.name)
        known = self._found.get(name)
        if known is None or RANK[finding.verdict] < RANK[known.verdict]:
            self._found[name] = TrustFinding(name, finding.verdict, finding.why)

    def imported(self, module: str, name: str) -> str:
        """Note an import; returns its full name (the list may show it shortened)."""
        full = f"{module}.{name}"
        if shown(full) not in self._found:
            self.add(TrustFinding(full, *verdict_of(module, name)))
        return full

    def unnamed(self, sentence: str) -> None:
        self.add(TrustFinding(sentence, "unnamed"))

    def computed_attribute(self, module: str) -> None:
        """An attribute of a known module whose name is computed while loading."""
        verdict, why = verdict_of_computed(module)
        if verdict == "dangerous":
            self.add(TrustFinding(f"{module}.<computed>", verdict, why))
        else:
            self.unnamed(COMPUTED_IMPORT)

    def ordered(self) -> list[TrustFinding]:
        """The dangerous first, then what the scan cannot name, then the rest, each group in
        the order found."""
        return sorted(self._found.values(), key=lambda f: RANK[f.verdict])
