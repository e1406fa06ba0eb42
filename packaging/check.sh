#!/usr/bin/env bash
# Check a built bundle as a person would use it; CI runs it after packaging/build.sh.
#
#   packaging/check.sh [BUNDLE]     BUNDLE defaults to dist/slipway
#
#   0. what the app does not use stayed out: Qt WebEngine, QML and Quick, Qt's translations
#   1. `slipway --version`
#   2. `slipway inspect` on the demo model
#   3. the window opens offscreen on the demo model (packaging/window_check.py; the window is
#      saved to dist/window-check.png)
#   4. `slipway serve --runtime process` on the demo model answers a prediction: the serving
#      app's files and the bundle standing in for Python work from the bundle
#   5. the wheelhouse logic fills a wheelhouse with the bundle's own pip
#   6. install.sh into a temporary prefix: the installed files pass desktop-file-validate and
#      appstreamcli (when installed), and --uninstall removes them
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUNDLE=$(cd "${1:-dist/slipway}" && pwd)
SLIPWAY="$BUNDLE/slipway"
DEMO="$ROOT/resources/demo/wine_classifier.onnx"
SCRATCH=$(mktemp -d /tmp/slipway-check.XXXXXX)
server=""
cleanup() {
    if [ -n "$server" ]; then kill -INT "$server" 2>/dev/null || true; wait "$server" || true; fi
    rm -rf "$SCRATCH"
}
trap cleanup EXIT
# The checks' data folder, registry and single-instance rendezvous are their own.
export XDG_DATA_HOME="$SCRATCH/data" XDG_CONFIG_HOME="$SCRATCH/config" XDG_RUNTIME_DIR="$SCRATCH/run"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

step() { printf '\033[1m[check]\033[0m %s\n' "$*"; }
fail() { printf '\033[1m[check]\033[0m FAILED: %s\n' "$*" >&2; exit 1; }

step "0. what stays out"
left=$(find "$BUNDLE/_internal" \( -name 'libQt6WebEngine*' -o -name 'libQt6Qml*' \
    -o -name 'libQt6Quick*' -o -name '*.qm' -o -path '*/Qt/qml' -o -path '*/Qt/translations' \) \
    -print | head -5)
[ -z "$left" ] || fail "the bundle carries what the app does not use: $left"
echo "   $(du -sh "$BUNDLE" | cut -f1) in all"

step "1. slipway --version"
version=$("$SLIPWAY" --version)
[[ "$version" =~ ^slipway\ [0-9] ]] || fail "--version printed: $version"
echo "   $version"

step "2. slipway inspect (demo model)"
"$SLIPWAY" inspect "$DEMO" > "$SCRATCH/inspect.txt" || fail "inspect exited with $?"
grep -q "^wine_classifier  (onnx, classification)" "$SCRATCH/inspect.txt" \
    && grep -q "^Features (13)" "$SCRATCH/inspect.txt" || fail "inspect printed: $(cat "$SCRATCH/inspect.txt")"

step "3. the window, offscreen, on the demo model"
shown=$(QT_QPA_PLATFORM=offscreen "$SLIPWAY" -c "$(cat packaging/window_check.py)" \
    "$DEMO" "$ROOT/dist/window-check.png") || fail "the window check exited with $?"
[ "$shown" = "WINDOW wine_classifier 13" ] || fail "the window showed: $shown"
echo "   $shown (dist/window-check.png)"

step "4. slipway serve --runtime process, and a prediction"
# Job control on for this one: a script's background commands otherwise ignore Ctrl-C (SIGINT).
set -m
"$SLIPWAY" serve "$DEMO" --runtime process > "$SCRATCH/serve.log" 2>&1 &
server=$!
set +m
url=""
for _ in $(seq 120); do
    url=$(grep -o 'is ready at http://[0-9.:]*' "$SCRATCH/serve.log" | cut -d' ' -f4 || true)
    [ -n "$url" ] && break
    kill -0 "$server" 2>/dev/null || fail "serve stopped: $(cat "$SCRATCH/serve.log")"
    sleep 1
done
[ -n "$url" ] || fail "serve did not get ready: $(cat "$SCRATCH/serve.log")"
features=$(sed -n 2p "$ROOT/resources/demo/wine_reference.csv" | cut -d, -f1-13)
"$SLIPWAY" predict "$url" --data "{\"features\": [$features]}" > "$SCRATCH/predict.json" \
    || fail "predict exited with $?: $(cat "$SCRATCH/predict.json")"
grep -q '"label"\|"prediction"\|"predictions"' "$SCRATCH/predict.json" \
    || fail "the prediction was: $(cat "$SCRATCH/predict.json")"
kill -INT "$server"
wait "$server" || fail "serve did not stop cleanly on Ctrl-C: $(cat "$SCRATCH/serve.log")"
server=""
echo "   $url answered"

step "5. the wheelhouse, with the bundle's pip"
# An empty cache, so pip runs and downloads for real.
XDG_CACHE_HOME="$SCRATCH/cache" "$SLIPWAY" -c "
import sys
from studio.core.serve.bundle import ImageOptions, fill_wheelhouse, pinned_requirements
folder = fill_wheelhouse(pinned_requirements()[-1:], ImageOptions())
wheels = sorted(p.name for p in folder.glob('*.whl'))
print(*wheels)
sys.exit(0 if wheels else 1)
" > "$SCRATCH/wheels.txt" || fail "the wheelhouse: $(cat "$SCRATCH/wheels.txt")"
echo "   $(cat "$SCRATCH/wheels.txt")"

step "6. install.sh for one person, and --uninstall"
"$BUNDLE/install.sh" --prefix "$SCRATCH/prefix" > "$SCRATCH/install.log" 2>&1 \
    || fail "install.sh: $(cat "$SCRATCH/install.log")"
installed="$SCRATCH/prefix/share/applications/io.slipway.Studio.desktop"
"$SCRATCH/prefix/bin/slipway" --version > /dev/null || fail "the installed slipway does not run"
if command -v desktop-file-validate > /dev/null; then
    desktop-file-validate --no-hints "$installed" || fail "desktop-file-validate"
fi
if command -v appstreamcli > /dev/null; then
    appstreamcli validate --no-net "$SCRATCH/prefix/share/metainfo/io.slipway.Studio.metainfo.xml" \
        > /dev/null || fail "appstreamcli validate"
fi
"$BUNDLE/install.sh" --prefix "$SCRATCH/prefix" --uninstall > "$SCRATCH/install.log" 2>&1 \
    || fail "install.sh --uninstall: $(cat "$SCRATCH/install.log")"
[ ! -e "$installed" ] && [ ! -e "$SCRATCH/prefix/lib/slipway-studio" ] \
    || fail "--uninstall left files behind"
step "the bundle passed every check"
