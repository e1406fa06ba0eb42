"""The server runs in an image with no studio, FastAPI, pydantic or scikit-learn: its sources
import only the standard library and its six packages, and importing it loads nothing else."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from server_helpers import SERVER_DIR

PACKAGE = SERVER_DIR / "slipway_server"
ALLOWED = {"onnxruntime", "numpy", "starlette", "uvicorn", "orjson", "prometheus_client"}
FORBIDDEN = ("studio", "fastapi", "pydantic", "sklearn", "pandas", "onnx", "skl2onnx")


def _top_level_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = {(node.module or "").split(".")[0]}
            else:
                continue
            for name in names:
                found.setdefault(name, set()).add(path.name)
    return found


def test_sources_import_only_the_standard_library_and_the_server_packages():
    third_party = {name for name in _top_level_imports()
                   if name not in sys.stdlib_module_names and name != "__future__"}
    assert third_party <= ALLOWED, third_party - ALLOWED


def test_importing_and_creating_the_app_loads_nothing_forbidden(iris_logreg, tmp_path):
    config = tmp_path / "serving.json"
    config.write_text(json.dumps(iris_logreg.with_config(model_file=str(iris_logreg.path))))
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(SERVER_DIR)!r})\n"
        "import slipway_server.__main__\n"
        "from slipway_server import create_app\n"
        f"create_app({str(config)!r})\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        f"print(json.dumps(sorted(loaded & set({FORBIDDEN!r}))))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    assert json.loads(result.stdout) == []
