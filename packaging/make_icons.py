"""Renders the app icon (the scalable SVG in workbench/resources/icons/hicolor/scalable/apps)
into the freedesktop hicolor theme sizes: ``python packaging/make_icons.py`` writes
workbench/resources/icons/hicolor/<N>x<N>/apps/<APP_ID>.png for N in ICON_SIZES. The SVG is
the one source; the PNGs are committed, so run this again after changing it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6 import QtCore, QtGui, QtSvg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's package, whose files this rewrites

from workbench.resources import APP_ID, ICON_SIZES  # noqa: E402

THEME = ROOT / "workbench" / "resources" / "icons" / "hicolor"
SOURCE = THEME / "scalable" / "apps" / f"{APP_ID}.svg"


def render(size: int, out: Path) -> None:
    renderer = QtSvg.QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {SOURCE}")
    image = QtGui.QImage(size, size, QtGui.QImage.Format_ARGB32)
    image.fill(QtCore.Qt.transparent)
    painter = QtGui.QPainter(image)
    painter.setRenderHint(QtGui.QPainter.Antialiasing)
    painter.setRenderHint(QtGui.QPainter.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(out), "PNG"):
        raise SystemExit(f"cannot write {out}")


def main() -> int:
    app = QtGui.QGuiApplication.instance() or QtGui.QGuiApplication(sys.argv[:1])  # noqa: F841
    for size in ICON_SIZES:
        render(size, THEME / f"{size}x{size}" / "apps" / f"{APP_ID}.png")
    print(f"wrote {len(ICON_SIZES)} PNG sizes from {SOURCE.name} under {THEME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
