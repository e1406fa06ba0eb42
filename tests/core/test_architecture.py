"""`studio/core` is the product and never imports Qt: not in its source, not at run time."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import studio.core

CORE = Path(studio.core.__file__).parent
FORBIDDEN = ("PySide6", "shiboken6", "pyqtgraph", "studio.ui")


def _is_forbidden(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in FORBIDDEN)


def _imports(tree: ast.AST, package: str) -> list[tuple[int, str]]:
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


def core_sources() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_core_sources_are_found():
    names = {p.relative_to(CORE).as_posix() for p in core_sources()}
    assert {"artifacts.py", "schema.py", "isolation.py", "formats/onnx.py"} <= names


def test_no_core_source_imports_qt_or_the_ui():
    offenders = []
    for path in core_sources():
        relative = path.relative_to(CORE.parent.parent).with_suffix("")
        parts = list(relative.parts)
        package = ".".join(parts if path.name == "__init__.py" else parts[:-1])
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [f"{path.relative_to(CORE.parent.parent)}:{line}: {module}"
                      for line, module in _imports(tree, package) if _is_forbidden(module)]
    assert offenders == [], "studio/core must not import Qt or studio.ui:\n" + "\n".join(offenders)


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
                                   or m.startswith("studio.ui"))}))
"""


def test_importing_every_core_module_loads_no_qt():
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True,
                            timeout=120, cwd=CORE.parent.parent, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "studio.core.artifacts" in report["modules"]
    assert "studio.core.formats.onnx" in report["modules"]
    assert report["failed"] == {}, report["failed"]
    assert report["loaded"] == [], f"importing studio.core loaded {report['loaded']}"


def test_the_import_check_catches_every_form_of_qt_import():
    source = (
        "import PySide6\n"
        "from PySide6.QtCore import QObject\n"
        "import pyqtgraph as pg\n"
        "from ...ui import pages\n"
        "from studio.ui.widgets import charts\n"
        "importlib.import_module('PySide6.QtWidgets')\n"
        "import numpy\n"
        "from ..schema import ModelSchema\n"
    )
    found = [module for _, module in _imports(ast.parse(source), "studio.core.formats")
             if _is_forbidden(module)]
    assert {"PySide6", "PySide6.QtCore", "pyqtgraph", "studio.ui", "studio.ui.widgets",
            "PySide6.QtWidgets"} <= set(found)
    assert not any(m.startswith(("numpy", "studio.core")) for m in found)
