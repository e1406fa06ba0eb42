"""Start-up: from the command to a painted window showing the demo model's schema.

    .venv/bin/python benchmarks/startup.py            # warm runs, a table on stdout
    .venv/bin/python benchmarks/startup.py --cold --write   # also cold runs (root: drops the
                                                            # page cache first); docs/benchmarks.md

Each run starts a fresh process with fresh settings (its own XDG folders, so a running studio is
not disturbed) and the offscreen platform; the app prints the moment it painted (SLIPWAY_QUIT_WHEN_SHOWN,
studio/ui/app.py) on the system's monotonic clock and quits. The reference, measured in the same
run the same way, is the floor under any PySide6 app: an empty QMainWindow.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from docs_section import replace_section  # noqa: E402

DEMO = ROOT / "resources" / "demo" / "wine_classifier.onnx"
SLIPWAY = [sys.executable, "-m", "studio.cli"]
QT_FLOOR = [sys.executable, "-c", (
    "import time\n"
    "from PySide6.QtCore import QTimer\n"
    "from PySide6.QtWidgets import QApplication, QLabel, QMainWindow\n"
    "app = QApplication([]); window = QMainWindow(); window.setCentralWidget(QLabel('empty'))\n"
    "window.show()\n"
    "def shown():\n"
    "    window.repaint(); print(f'slipway-shown {time.monotonic():.6f}', flush=True); app.quit()\n"
    "QTimer.singleShot(0, shown); app.exec()\n")]
CASES = {
    "empty PySide6 window (reference)": QT_FLOOR,
    "Slipway, no model": SLIPWAY,
    "Slipway on the demo model (schema shown)": SLIPWAY + [str(DEMO)],
}
TARGET_S = 2.0


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def one_run(command: list[str]) -> float:
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", SLIPWAY_QUIT_WHEN_SHOWN="1",
                   XDG_CONFIG_HOME=f"{home}/config", XDG_CACHE_HOME=f"{home}/cache",
                   XDG_DATA_HOME=f"{home}/data", XDG_RUNTIME_DIR=home)
        started = time.monotonic()
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    for line in done.stdout.splitlines():
        if line.startswith("slipway-shown "):
            return float(line.split()[1]) - started
    raise RuntimeError(f"{command[-1]} never showed its window:\n{done.stderr[-2000:]}")


def measure(runs: int, cold: bool) -> dict[str, list[float]]:
    """Seconds to the painted window, per case; the cases take turns so drift hits all alike."""
    timings: dict[str, list[float]] = {name: [] for name in CASES}
    one_run(CASES["Slipway, no model"])  # compiles the bytecode once, outside the figures
    for _ in range(runs):
        for name, command in CASES.items():
            if cold and not drop_page_cache():
                raise SystemExit("--cold needs root (it writes /proc/sys/vm/drop_caches)")
            timings[name].append(one_run(command))
    return timings


def table(warm: dict[str, list[float]], cold: dict[str, list[float]] | None) -> str:
    floor_warm = statistics.median(warm[next(iter(CASES))])
    lines = ["| what | warm, median | warm, × the empty window | cold, median |",
             "|---|---|---|---|"]
    for name in CASES:
        median = statistics.median(warm[name])
        cold_text = f"{statistics.median(cold[name]):.2f} s" if cold else "not measured"
        lines.append(f"| {name} | {median:.2f} s (runs {min(warm[name]):.2f}–"
                     f"{max(warm[name]):.2f}) | {median / floor_warm:.1f}× | {cold_text} |")
    return "\n".join(lines)


def section(text: str, runs: int, cold: bool) -> str:
    load = os.getloadavg()[0]
    return "\n".join([
        "## Start-up: command to a painted window",
        "",
        "```sh",
        f".venv/bin/python benchmarks/startup.py{' --cold' if cold else ''} --write",
        "```",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, offscreen platform, fresh settings each run; median of "
        f"{runs} runs per line, the lines taking turns; load average {load:.1f} at the end (the "
        "machine is shared). From starting the process to the window's first paint with the demo "
        f"model's schema on the Model page; the target is under {TARGET_S:.0f} s. Cold runs drop "
        "the operating system's page cache before each start, so every library is read from "
        "disk again.",
        "",
        text,
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="also measure after dropping caches")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    warm = measure(args.runs, cold=False)
    cold = measure(max(3, args.runs // 2), cold=True) if args.cold else None
    text = table(warm, cold)
    print(text)
    if args.write:
        replace_section("startup", section(text, args.runs, args.cold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
