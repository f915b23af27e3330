"""Renders the app icon (resources/icons/sde-workbench.svg) into the freedesktop hicolor theme
sizes: ``python packaging/make_icons.py`` writes
resources/icons/hicolor/<N>x<N>/apps/<APP_ID>.png for N in SIZES and the scalable SVG.
The PNGs are committed; run this again after changing the SVG.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6 import QtCore, QtGui, QtSvg

APP_ID = "io.github.sde_workbench.SDEWorkbench"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "resources" / "icons" / "sde-workbench.svg"
THEME = ROOT / "resources" / "icons" / "hicolor"


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
    for size in SIZES:
        render(size, THEME / f"{size}x{size}" / "apps" / f"{APP_ID}.png")
    scalable = THEME / "scalable" / "apps" / f"{APP_ID}.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SOURCE, scalable)
    print(f"wrote {len(SIZES)} PNG sizes and the scalable SVG under {THEME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
