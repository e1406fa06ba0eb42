"""The one-folder bundle against `./dev run`: size on disk and start-to-window time.

    .venv/bin/python packaging/benchmark.py --write     after packaging/build.sh

Start to window: from starting `slipway DEMO_MODEL` to the window having painted the demo model's
schema, read on the system's monotonic clock (the app prints the moment and quits when
SLIPWAY_QUIT_WHEN_SHOWN is set: studio/ui/app.py). The bundle's `dist/slipway/slipway` against
.venv's `slipway`, which is what `./dev run` starts. The two take turns, after one unmeasured
start each (so both read their files from the page cache); the table gives medians. Start of the
command line: `slipway --version`, the same way, timed from outside.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "bundle"
BUNDLE = ROOT / "dist" / "slipway"
DEMO = ROOT / "resources" / "demo" / "wine_classifier.onnx"


def size(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def mb(size_bytes: float) -> str:
    return f"{size_bytes / 1e6:,.0f} MB"


def run(command: list[str], env: dict[str, str], expect: str) -> tuple[float, str]:
    """(seconds from start to exit, stdout) of one run of `command`."""
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    elapsed = time.monotonic() - started
    if result.returncode != 0 or expect not in result.stdout:
        raise SystemExit(f"benchmark: {command[0]} failed: {result.stdout}{result.stderr}")
    return elapsed, result.stdout


def start_to_window(program: str, env: dict[str, str]) -> float:
    started = time.monotonic()
    _, output = run([program, str(DEMO)], {**env, "SLIPWAY_QUIT_WHEN_SHOWN": "1"},
                    "slipway-shown")
    shown = float(output.split("slipway-shown", 1)[1].split()[0])
    return shown - started


def measure(rounds: int) -> dict:
    scratch = tempfile.mkdtemp(prefix="sw-bench-")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": scratch,
           "XDG_CONFIG_HOME": scratch, "XDG_DATA_HOME": scratch}
    programs = {"bundle": str(BUNDLE / "slipway"), "dev": str(ROOT / ".venv" / "bin" / "slipway")}
    times: dict[str, dict[str, list[float]]] = {name: {"window": [], "version": []}
                                                for name in programs}
    for turn in range(rounds + 1):
        for name, program in programs.items():
            window = start_to_window(program, env)
            version, _ = run([program, "--version"], env, "slipway")
            if turn:  # the first round warms the page cache
                times[name]["window"].append(window)
                times[name]["version"].append(version)
    internal = BUNDLE / "_internal"
    biggest = sorted(((size(p) if p.is_dir() else p.lstat().st_size, p.name)
                      for p in internal.iterdir()), reverse=True)[:6]
    return {
        "bundle_bytes": size(BUNDLE),
        "bundle_venv_bytes": size(ROOT / "build" / "bundle-venv"),
        "dev_venv_bytes": size(ROOT / ".venv"),
        "biggest": biggest,
        "times": {name: {kind: statistics.median(values) for kind, values in kinds.items()}
                  for name, kinds in times.items()},
        "spread": {name: (min(kinds["window"]), max(kinds["window"]))
                   for name, kinds in times.items()},
        "rounds": rounds,
    }


def section(r: dict) -> str:
    bundle, dev = r["times"]["bundle"], r["times"]["dev"]
    load = os.getloadavg()[0]
    return "\n".join([
        f"<!-- {SECTION}:start -->",
        "## The one-folder bundle against `./dev run`",
        "",
        "```sh",
        "packaging/build.sh && .venv/bin/python packaging/benchmark.py --write",
        "```",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {load:.1f} at the end (the machine is shared). "
        "The bundle is `dist/slipway` as packaging/build.sh makes it (PyInstaller, one folder, "
        "with the boosters extra); `./dev run` starts .venv's `slipway` (the studio with its test "
        f"extras). Medians of {r['rounds']} starts each, taking turns, after one unmeasured start "
        "each.",
        "",
        "| | bundle | `./dev run` | bundle ÷ `./dev run` |",
        "|---|---|---|---|",
        f"| start to window, demo model shown | {bundle['window']:.2f} s | {dev['window']:.2f} s | "
        f"**{bundle['window'] / dev['window']:.2f}×** |",
        f"| `slipway --version` | {bundle['version']:.2f} s | {dev['version']:.2f} s | "
        f"{bundle['version'] / dev['version']:.2f}× |",
        f"| size on disk | {mb(r['bundle_bytes'])} (`dist/slipway`) | "
        f"{mb(r['dev_venv_bytes'])} (`.venv`) | {r['bundle_bytes'] / r['dev_venv_bytes']:.2f}× |",
        "",
        f"The product's own packages installed the ordinary way (build/bundle-venv, the environment "
        f"the bundle is made from, PyInstaller included) take {mb(r['bundle_venv_bytes'])}; the "
        f"bundle, {r['bundle_bytes'] / r['bundle_venv_bytes']:.0%} of that. Its largest parts: "
        + ", ".join(f"{name} {mb(b)}" for b, name in r["biggest"]) + ". "
        f"Start to window ranged {r['spread']['bundle'][0]:.2f}–{r['spread']['bundle'][1]:.2f} s "
        f"for the bundle and {r['spread']['dev'][0]:.2f}–{r['spread']['dev'][1]:.2f} s for "
        "`./dev run`.",
        f"<!-- {SECTION}:end -->",
    ])


def write(text: str) -> None:
    current = DOC.read_text()
    pattern = re.compile(rf"<!-- {SECTION}:start -->.*?<!-- {SECTION}:end -->", re.S)
    updated = (pattern.sub(lambda _: text, current) if pattern.search(current)
               else current.rstrip() + "\n\n" + text + "\n")
    DOC.write_text(updated)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    parser.add_argument("--rounds", type=int, default=5, help="measured starts of each (5)")
    args = parser.parse_args()
    if not (BUNDLE / "slipway").exists():
        print("benchmark: build the bundle first: packaging/build.sh", file=sys.stderr)
        return 1
    text = section(measure(args.rounds))
    print(text)
    if args.write:
        write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
