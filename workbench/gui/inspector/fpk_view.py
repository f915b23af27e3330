"""The view of a Fokker–Planck solution file (``sde-workbench fpk``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from workbench.gui.inspector.common import _attr_text


class FPKView(QtWidgets.QWidget):
    """A Fokker–Planck solution (/fpk, from ``sde-workbench fpk``): p_t on its grid at the
    stored time the slider picks; a curve in 1-D, an image in 2-D (model units)."""

    def __init__(self, path: Path, parent: QtWidgets.QWidget | None = None) -> None:
        from workbench.io.fpk_file import read_fpk

        super().__init__(parent)
        self.setObjectName("fpkView")
        self.data = read_fpk(path)  # WorkbenchError: the FileView shows it
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setObjectName("fpkTimeSlider")
        self.slider.setRange(0, len(self.data.times) - 1)
        self.label = QtWidgets.QLabel()
        self.label.setObjectName("fpkReadout")
        self.label.setWordWrap(True)
        self.plot_widget = pg.PlotWidget(background="w")
        self.plot_widget.setObjectName("fpkPlot")
        self.plot = self.plot_widget.getPlotItem()
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "x₁ (model units)" if self.dim == 2 else "x (model units)")
        self.curve: pg.PlotDataItem | None = None
        self.image: pg.ImageItem | None = None
        if self.dim == 1:
            self.plot.setLabel("left", "p_t")
            self.plot.getAxis("left").enableAutoSIPrefix(False)
            self.curve = self.plot.plot(
                pen=pg.mkPen("#222222", width=2), fillLevel=0, brush=(88, 140, 204, 80)
            )
        else:
            self.plot.setLabel("left", "x₂ (model units)")
            self.plot.setAspectLocked(True)
            self.image = pg.ImageItem()
            self.image.setColorMap(pg.colormap.get("viridis"))
            self.plot.addItem(self.image)
            self.bar = pg.ColorBarItem(
                values=(0, 1), colorMap=pg.colormap.get("viridis"), interactive=False, width=14
            )
            self.bar.setImageItem(self.image, insert_in=self.plot)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("t"))
        row.addWidget(self.slider, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.plot_widget, 1)
        layout.addWidget(self.label)
        self.slider.valueChanged.connect(self.draw)
        self.draw()

    @property
    def dim(self) -> int:
        return len(self.data.axes)

    def draw(self, *_: Any) -> None:
        k = self.slider.value()
        d = self.data
        p, t = d.p[k], float(d.times[k])
        cell = float(np.prod([a[1] - a[0] for a in d.axes]))
        if self.curve is not None:
            self.curve.setData(d.axes[0], p)
        else:
            x, y = d.axes
            hx, hy = x[1] - x[0], y[1] - y[0]
            assert self.image is not None  # made when there is no curve (2-D)
            self.image.setImage(p, autoLevels=False)
            self.image.setRect(
                QtCore.QRectF(x[0] - hx / 2, y[0] - hy / 2, len(x) * hx, len(y) * hy)
            )
            self.bar.setLevels((0.0, float(p.max()) or 1.0))
        self.plot.setTitle(f"Fokker–Planck p_t at t = {t:.4g}")
        grid = "×".join(str(len(a)) for a in d.axes)
        sde = _attr_text(d.attrs.get("sde", "?"))
        mass_error = d.attrs.get("mass_error", "?")
        mass_error = f"{mass_error:.2g}" if isinstance(mass_error, float) else mass_error
        self.label.setText(
            f"t = {t:.4g} (time {k + 1} of {len(d.times)})   mass on the grid = "
            f"{float(p.sum()) * cell:.6f}   grid {grid}   sde = {sde}   "
            f"max |mass - 1| over the times = {mass_error}"
        )
