#!/usr/bin/env bash
# Build Slipway Studio's one-folder bundle with PyInstaller (packaging/slipway.spec).
#
#   packaging/build.sh              dist/slipway/ (run dist/slipway/slipway)
#   packaging/build.sh --clean      the same, from an empty PyInstaller work folder
#   packaging/build.sh --archive    also dist/slipway-VERSION-linux-ARCH.tar.gz, to hand out
#
# The bundle is made from a virtual environment of its own (build/bundle-venv) holding only what
# the product installs (slipway-studio with its boosters extra) and PyInstaller: a developer's
# .venv also holds the test tools (pytest, mlflow, checkov and what they pull in), which the
# bundle must not ship. The environment is kept and only brought up to date when pyproject.toml
# changes; pip's cache (PIP_CACHE_DIR, .cache/pip in CI) makes it quick to set up again. A build
# takes 7 to 15 minutes on a shared 2-core machine, most of it PyInstaller's analysis of the model
# libraries; PyInstaller's work folder (build/pyinstaller) spares it only when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_VENV="${SLIPWAY_BUNDLE_VENV:-$ROOT/build/bundle-venv}"
WORK="$ROOT/build/pyinstaller"
DIST="$ROOT/dist"
STAMP="$BUILD_VENV/.installed"

say() { printf '\033[1m[bundle]\033[0m %s\n' "$*"; }

archive=no
for option in "$@"; do
    case "$option" in
        --clean) rm -rf "$WORK" ;;
        --archive) archive=yes ;;
        *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done

python=""
for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        python=$candidate; break
    fi
done
[ -n "$python" ] || { say "Python 3.11 or newer is needed"; exit 1; }

[ -x "$BUILD_VENV/bin/python" ] || { say "creating $BUILD_VENV"; "$python" -m venv "$BUILD_VENV"; }
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    say "installing slipway-studio[boosters,packaging] into $BUILD_VENV"
    "$BUILD_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$BUILD_VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[boosters,packaging]"
    touch "$STAMP"
fi

say "running PyInstaller (packaging/slipway.spec)"
started=$(date +%s)
"$BUILD_VENV/bin/python" -m PyInstaller packaging/slipway.spec --noconfirm --log-level WARN \
    --distpath "$DIST" --workpath "$WORK"
# The freedesktop files and their installer ride along, so the bundle (or its archive) is all a
# person needs: slipway/install.sh sets it up for them (packaging/README.md).
SHARE="$DIST/slipway/share"
rm -rf "$SHARE"
mkdir -p "$SHARE/applications" "$SHARE/mime/packages" "$SHARE/metainfo" "$SHARE/icons"
cp packaging/linux/io.slipway.Studio.desktop "$SHARE/applications/"
cp packaging/linux/io.slipway.Studio.xml "$SHARE/mime/packages/"
cp packaging/linux/io.slipway.Studio.metainfo.xml "$SHARE/metainfo/"
cp -r resources/icons/hicolor "$SHARE/icons/"
cp packaging/install.sh "$DIST/slipway/install.sh"
say "built dist/slipway in $(( $(date +%s) - started )) s: $(du -sh "$DIST/slipway" | cut -f1)"

if [ "$archive" = yes ]; then
    version=$("$BUILD_VENV/bin/python" -c 'import studio; print(studio.__version__)')
    file="$DIST/slipway-$version-linux-$(uname -m).tar.gz"
    tar -C "$DIST" -czf "$file" slipway
    say "archive $(basename "$file"): $(du -h "$file" | cut -f1)"
fi
