"""The bundle's one program is both `slipway` and the Python the studio starts its children with
(packaging/slipway_entry.py); run unfrozen here, as the same dispatch runs in the bundle."""

import subprocess
import sys
from pathlib import Path

from studio import __version__
from studio.core.children import LIFELINE_BOOTSTRAP

ENTRY = Path(__file__).resolve().parents[2] / "packaging" / "slipway_entry.py"


def entry(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ENTRY), *args], capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_slipway_arguments_run_the_slipway_command():
    result = entry("--version")
    assert result.returncode == 0
    assert result.stdout == f"slipway {__version__}\n"


def test_a_python_c_command_line_runs_the_code_as_main_with_its_arguments():
    result = entry("-P", "-c", "import sys; print(__name__, sys.argv)", "one", "two")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "__main__ ['-c', 'one', 'two']\n"


def test_a_python_m_command_line_runs_the_module(tmp_path):
    # As the wheelhouse runs `sys.executable -m pip download …`.
    result = entry("-m", "pip", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pip ")


def test_the_lifeline_bootstrap_of_the_studios_children_runs_through_it(tmp_path):
    """core/children.py starts the process runtime's server and the isolated loader as
    `sys.executable -P -c LIFELINE_BOOTSTRAP FD PATHS MODULE ARGS…`; PATHS are importable."""
    (tmp_path / "greeting.py").write_text("import sys\nprint('hello', *sys.argv[1:])\n")
    result = entry("-P", "-c", LIFELINE_BOOTSTRAP, "-", str(tmp_path), "greeting", "from", "child")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from child\n"


def test_a_model_path_is_not_mistaken_for_a_python_option(tmp_path):
    # `slipway -v inspect MODEL`: -v is slipway's, and the rest is not a Python command line.
    result = entry("-v", "inspect", str(tmp_path / "missing.onnx"))
    assert result.returncode != 0
    assert "slipway: error:" in result.stderr
