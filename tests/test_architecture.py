"""The shape of the house, checked: `studio/core` is the product and never imports Qt, the UI or
the command line (not in its source, not at run time); the serving app imports nothing from the
studio (tests/serving/test_server_imports.py); no two modules import each other, even through
others; the command line's groups of subcommands do not import each other; every stage of the
core has its tests in a folder of the same name; the error family is the one its docstring lists;
and a module longer than 500 lines says why at its top."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import studio
import studio.core
from studio.core import errors

ROOT = Path(studio.__file__).resolve().parents[1]
STUDIO = ROOT / "studio"
CORE = STUDIO / "core"
TESTS = ROOT / "tests"
SERVER = ROOT / "serving_templates" / "server" / "slipway_server"
FORBIDDEN_IN_CORE = ("PySide6", "shiboken6", "pyqtgraph", "studio.ui", "studio.cli")
LONG_MODULE_LINES = 500
LONG_MODULE_REASON = "Longer than 500 lines because"


def _is_forbidden(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in FORBIDDEN_IN_CORE)


def _imports(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """Every module a source names in an import, at any depth (imports inside functions count)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module",
                                                                              "__import__")
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    name = _module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _sources(folder: Path) -> list[Path]:
    """The Python files under `folder`, but not in hidden folders (a benchmark's own venv)."""
    return sorted(path for path in folder.rglob("*.py")
                  if not any(part.startswith(".") for part in path.relative_to(folder).parts))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_the_sources_are_found():
    names = {p.relative_to(CORE).as_posix() for p in _sources(CORE)}
    assert {"model/artifact.py", "model/schema.py", "model/isolation.py",
            "model/formats/onnx.py", "loadtest/engine.py", "monitor/reference.py"} <= names


def test_no_core_source_imports_qt_the_ui_or_the_command_line():
    offenders = []
    for path in _sources(CORE):
        offenders += [f"{path.relative_to(ROOT)}:{line}: {module}"
                      for line, module in _imports(_tree(path), _package_of(path))
                      if _is_forbidden(module)]
    assert offenders == [], "studio/core must not import Qt, the UI or the CLI:\n" + \
        "\n".join(offenders)


IMPORT_ALL = """
import importlib, json, pkgutil, sys
import studio.core
names = sorted(m.name for m in pkgutil.walk_packages(studio.core.__path__, "studio.core."))
failed = {}
for name in names:
    if name.endswith("__main__"):
        continue
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"modules": names, "failed": failed,
                  "loaded": sorted(m for m in sys.modules
                                   if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph")
                                   or m.startswith(("studio.ui", "studio.cli")))}))
"""


def test_importing_every_core_module_loads_no_qt_ui_or_cli():
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "studio.core.model.artifact" in report["modules"]
    assert "studio.core.model.formats.onnx" in report["modules"]
    assert report["failed"] == {}, report["failed"]
    assert report["loaded"] == [], f"importing studio.core loaded {report['loaded']}"


def test_the_import_check_catches_every_form_of_forbidden_import():
    source = (
        "import PySide6\n"
        "from PySide6.QtCore import QObject\n"
        "import pyqtgraph as pg\n"
        "from ....ui import pages\n"
        "from studio.ui.widgets import charts\n"
        "importlib.import_module('PySide6.QtWidgets')\n"
        "def later():\n"
        "    from studio.cli.common import seconds\n"
        "import numpy\n"
        "from ..schema import ModelSchema\n"
    )
    found = [module for _, module in _imports(ast.parse(source), "studio.core.model.formats")
             if _is_forbidden(module)]
    assert {"PySide6", "PySide6.QtCore", "pyqtgraph", "studio.ui", "studio.ui.widgets",
            "PySide6.QtWidgets", "studio.cli.common"} <= set(found)
    assert not any(m.startswith(("numpy", "studio.core")) for m in found)


# --- no import cycles ----------------------------------------------------------------------------

def _studio_modules() -> dict[str, Path]:
    return {_module_name(path): path for path in _sources(STUDIO)}


def _import_graph() -> dict[str, set[str]]:
    """studio module -> the studio modules it imports. `from package import name` counts as an
    import of the submodule when `name` is one, else of the package."""
    modules = _studio_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for _, imported in _imports(_tree(path), _package_of(path)):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_through_others():
    assert _cycles(_import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_command_lines_groups_do_not_import_each_other():
    graph = _import_graph()
    groups = [name for name in graph if name.startswith("studio.cli.")
              and name not in ("studio.cli.common", "studio.cli.__main__")]
    assert len(groups) >= 5
    crossing = {name: sorted(t for t in graph[name] if t.startswith("studio.cli")
                             and t != "studio.cli.common")
                for name in groups}
    assert {name: targets for name, targets in crossing.items() if targets} == {}


# --- the layout ------------------------------------------------------------------------------------

def test_every_core_stage_has_its_tests_in_a_folder_of_the_same_name():
    stages = {p.name for p in CORE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert {"model", "optimize", "serve", "loadtest", "monitor"} <= stages
    missing = sorted(stage for stage in stages if not list((TESTS / "core" / stage).glob("test_*.py")))
    assert missing == []


def test_a_module_longer_than_500_lines_says_why_at_its_top():
    unexplained = []
    for path in [*_sources(STUDIO), *_sources(SERVER), *_sources(ROOT / "benchmarks"),
                 *_sources(ROOT / "scripts"), *_sources(TESTS)]:
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > LONG_MODULE_LINES and \
                LONG_MODULE_REASON not in (ast.get_docstring(_tree(path)) or ""):
            unexplained.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
    assert unexplained == []


# --- the error family --------------------------------------------------------------------------

FAMILY_ROW = re.compile(r"^\s{4}(?P<name>\w+)\s+(?P<status>\d+)\s+(?P<module>core/\S+\.py)\s",
                        re.M)


def _family_in_the_docstring() -> dict[str, tuple[int, str]]:
    return {row["name"]: (int(row["status"]), row["module"])
            for row in FAMILY_ROW.finditer(errors.__doc__ or "")}


def _family_in_the_code() -> dict[str, tuple[int, str]]:
    for module in pkgutil.walk_packages(studio.core.__path__, "studio.core."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    family, pending = {}, [errors.StudioError]
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls.__module__.startswith("studio.core."):
            where = cls.__module__.removeprefix("studio.").replace(".", "/") + ".py"
            family[cls.__name__] = (int(cls.exit_status), where)
    return family


def test_the_error_family_is_the_one_its_docstring_lists_with_each_exit_status():
    listed = _family_in_the_docstring()
    assert len(listed) >= 10
    assert _family_in_the_code() == listed


def test_every_exit_status_the_family_uses_is_a_documented_one():
    statuses = {status for status, _ in _family_in_the_code().values()}
    assert statuses <= {int(s) for s in errors.ExitStatus}
    assert {errors.ExitStatus.FAILED, errors.ExitStatus.USAGE,
            errors.ExitStatus.NOT_LOADABLE} <= statuses
