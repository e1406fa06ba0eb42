"""Render the app icon's PNGs from its SVG, with Qt's own SVG renderer.

    .venv/bin/python packaging/render_icons.py           write resources/icons/hicolor/*/apps/*.png
    .venv/bin/python packaging/render_icons.py --check   exit 1 when a PNG differs from the SVG

The SVG (resources/icons/hicolor/scalable/apps/io.slipway.Studio.svg) is the source; the PNGs are
kept in the repository beside it because desktops, AppStream and window managers look for fixed
sizes in the hicolor theme, and the build should not need a renderer. tests/packaging checks they
are still what the SVG renders.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_ID = "io.slipway.Studio"
HICOLOR = ROOT / "resources" / "icons" / "hicolor"
SOURCE = HICOLOR / "scalable" / "apps" / f"{APP_ID}.svg"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
"""The hicolor sizes desktops ask for; AppStream wants 64 and 128 at least."""


def png_path(size: int) -> Path:
    return HICOLOR / f"{size}x{size}" / "apps" / f"{APP_ID}.png"


def render(size: int):
    """The SVG drawn into a transparent size × size QImage."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        raise SystemExit(f"render_icons: {SOURCE} is not an SVG Qt can draw")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare the PNGs with a fresh rendering instead of writing them")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication, QImage

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (fonts, images)
    stale = []
    for size in SIZES:
        image = render(size)
        path = png_path(size)
        if args.check:
            saved = QImage(str(path)).convertToFormat(QImage.Format.Format_ARGB32)
            if saved.isNull() or saved != image:
                stale.append(str(path.relative_to(ROOT)))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(path), "PNG"):
            raise SystemExit(f"render_icons: could not write {path}")
    if stale:
        print("render_icons: these PNGs are not what the SVG renders (run "
              "packaging/render_icons.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
