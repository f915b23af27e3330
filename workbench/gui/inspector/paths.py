"""The Paths view: the paths of a chosen contiguous block of particles."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from workbench.gui.inspector.common import _View
from workbench.gui.plots.trajectories import time_colormap

if TYPE_CHECKING:
    from workbench.gui.inspector.file_view import FileView

PATH_PARTICLES = 200  # particles whose paths are drawn: the first ones (a contiguous block)


class PathsView(_View):
    title = "Paths"

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("inspectorPathsPlot")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        n = max(1, fv.tf.n_samples)
        self.count = QtWidgets.QSpinBox()
        self.count.setObjectName("inspectorPathCount")
        self.count.setRange(1, n)
        self.count.setValue(min(PATH_PARTICLES, n))
        self.start = QtWidgets.QSpinBox()
        self.start.setObjectName("inspectorPathStart")
        self.start.setRange(0, n - 1)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Paths:"))
        row.addWidget(self.count)
        row.addWidget(QtWidgets.QLabel("starting at particle:"))
        row.addWidget(self.start)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addWidget(self.plot)
        self.n_paths = 0
        self.first = 0
        for box in (self.count, self.start):
            box.valueChanged.connect(self._subset_changed)

    def _subset_changed(self, _value: int) -> None:
        self.schedule_redraw()

    def draw(self) -> None:
        tf = self.fv.tf
        self.plot.clear()
        if tf.n_saved == 0:
            self.n_paths = 0
            return
        first = min(self.start.value(), tf.n_samples - 1)
        k = min(self.count.value(), tf.n_samples - first)
        self.first = first
        paths = tf.particles(np.arange(first, first + k), denormalise=True)  # (rows, k, dim)
        self.n_paths = k
        times = tf.times
        pen = pg.mkPen((30, 90, 200, 60), width=1)
        if tf.dim == 1:
            xs = np.concatenate([np.append(times, np.nan)] * k)
            ys = np.concatenate([np.append(paths[:, i, 0], np.nan) for i in range(k)])
            self.plot.setLabels(bottom="t", left="x")
        else:
            xs = np.concatenate([np.append(paths[:, i, 0], np.nan) for i in range(k)])
            ys = np.concatenate([np.append(paths[:, i, 1], np.nan) for i in range(k)])
            self.plot.setLabels(bottom="x1", left="x2")
            cmap = time_colormap()
            span = float(times.max() - times.min()) or 1.0
            colours = cmap.map((times - times.min()) / span, mode="qcolor")
            ends = pg.ScatterPlotItem(
                paths[-1, :, 0],
                paths[-1, :, 1],
                size=4,
                pen=None,
                brush=colours[-1] if len(colours) else "k",
            )
            self.plot.addItem(ends)
        self.plot.addItem(pg.PlotDataItem(xs, ys, pen=pen, connect="finite"))
        self.plot.setTitle(
            f"paths of particles {first} to {first + k - 1} ({k}) over {tf.n_saved} rows"
        )
