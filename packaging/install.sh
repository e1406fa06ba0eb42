#!/usr/bin/env bash
# Install Slipway Studio's one-folder bundle for one person, with its desktop integration.
#
#   ./install.sh                 into ~/.local: the app, `slipway` on PATH, the menu entry,
#                                "Open with Slipway Studio" for model files, the icon
#   ./install.sh --prefix DIR    into DIR instead of ~/.local (DIR/bin, DIR/lib, DIR/share)
#   ./install.sh --uninstall     remove all of that again (same --prefix)
#
# Run from the bundle (dist/slipway/install.sh, or the unpacked archive's slipway/install.sh);
# packaging/build.sh puts it there with the freedesktop files beside it (share/).
set -euo pipefail
BUNDLE=$(cd "$(dirname "$0")" && pwd)
APP_ID=io.slipway.Studio
PREFIX="$HOME/.local"

say() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

uninstall=no
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || usage; PREFIX=$2; shift 2 ;;
        --uninstall) uninstall=yes; shift ;;
        *) usage ;;
    esac
done
case "$PREFIX" in
    /*) ;;
    *) PREFIX="$(pwd)/$PREFIX" ;;
esac
case "$PREFIX" in  # characters a .desktop Exec line cannot carry without escapes
    *[\"\`\$\\]*) say "the prefix may not contain \" \` \$ or \\: $PREFIX"; exit 2 ;;
esac

APP_DIR="$PREFIX/lib/slipway-studio"
BIN="$PREFIX/bin/slipway"
SHARE="$PREFIX/share"
DESKTOP="$SHARE/applications/$APP_ID.desktop"
MIME="$SHARE/mime/packages/$APP_ID.xml"
METAINFO="$SHARE/metainfo/$APP_ID.metainfo.xml"

refresh_caches() {  # each only when the desktop provides the tool; the files work without them
    if command -v update-mime-database >/dev/null; then
        update-mime-database "$SHARE/mime"
    fi
    if command -v update-desktop-database >/dev/null; then
        update-desktop-database -q "$SHARE/applications" || true
    fi
    if command -v gtk-update-icon-cache >/dev/null && [ -f "$SHARE/icons/hicolor/index.theme" ]; then
        gtk-update-icon-cache -q -t -f "$SHARE/icons/hicolor" || true
    fi
    touch "$SHARE/icons/hicolor" 2>/dev/null || true  # tells icon caches to look again
}

if [ "$uninstall" = yes ]; then
    rm -rf "$APP_DIR"
    [ -L "$BIN" ] && rm -f "$BIN"
    rm -f "$DESKTOP" "$MIME" "$METAINFO" "$SHARE"/icons/hicolor/*/apps/"$APP_ID".{png,svg}
    refresh_caches
    say "removed Slipway Studio from $PREFIX"
    exit 0
fi

[ -x "$BUNDLE/slipway" ] && [ -d "$BUNDLE/share" ] \
    || { say "run this from the built bundle (packaging/build.sh makes dist/slipway)"; exit 1; }

if [ "$BUNDLE" != "$APP_DIR" ]; then
    say "copying the app to $APP_DIR"
    rm -rf "$APP_DIR.new"
    mkdir -p "$(dirname "$APP_DIR")"
    cp -a "$BUNDLE" "$APP_DIR.new"
    rm -rf "$APP_DIR"
    mv "$APP_DIR.new" "$APP_DIR"
fi
mkdir -p "$PREFIX/bin"
ln -sfn "$APP_DIR/slipway" "$BIN"

mkdir -p "$(dirname "$DESKTOP")" "$(dirname "$MIME")" "$(dirname "$METAINFO")"
# The menu entry runs this installation by its full path: a desktop session's PATH often lacks
# ~/.local/bin.
sed -e "s|^Exec=slipway |Exec=\"$APP_DIR/slipway\" |" -e "s|^TryExec=slipway\$|TryExec=$APP_DIR/slipway|" \
    "$BUNDLE/share/applications/$APP_ID.desktop" > "$DESKTOP"
cp "$BUNDLE/share/mime/packages/$APP_ID.xml" "$MIME"
cp "$BUNDLE/share/metainfo/$APP_ID.metainfo.xml" "$METAINFO"
(cd "$BUNDLE/share/icons" && find hicolor -name "$APP_ID.*" -print0 \
    | while IFS= read -r -d '' icon; do
        mkdir -p "$SHARE/icons/$(dirname "$icon")"
        cp "$icon" "$SHARE/icons/$icon"
    done)
refresh_caches
say "installed: run \`$BIN\`, or Slipway Studio from the applications menu"
case ":$PATH:" in
    *":$PREFIX/bin:"*) ;;
    *) say "note: $PREFIX/bin is not on PATH; add it to use \`slipway\` in a terminal" ;;
esac
