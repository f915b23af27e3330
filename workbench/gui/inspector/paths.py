"""The Paths view: the paths of a chosen contiguous block of particles, up to the slider's row.

The sampler runs from t = T (row 0) down to t = eps (the last row); the view draws each path
from row 0 to the slider's row, its segments coloured by t with the main window's time colour
map (:func:`workbench.gui.plots.trajectories.time_colormap`, in TIME_BANDS items, as the main
Trajectories tab does), and dots where the particles are at the slider's row. Moving the slider
therefore grows the paths towards the data. Points are in data units (the file's normaliser
undone). The block's paths are read once per (block, file size) and kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from workbench.gui.inspector.common import _View
from workbench.gui.plots.trajectories import (
    DEFAULT_PATHS,
    TIME_BANDS,
    band_segments,
    path_alpha,
    time_colormap,
)

if TYPE_CHECKING:
    from workbench.gui.inspector.file_view import FileView

PATH_PARTICLES = DEFAULT_PATHS  # particles whose paths are drawn: the first ones (a block)


class PathsView(_View):
    title = "Paths"
    follows_slider = True

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
        self.cmap = time_colormap()
        self.n_paths = 0
        self.first = 0
        self.row_shown = -1
        self.segments_drawn = 0  # line segments drawn (all bands): grows with the slider's row
        self._cache: tuple[tuple[int, int, int], np.ndarray] | None = None
        for box in (self.count, self.start):
            box.valueChanged.connect(self._subset_changed)

    def _subset_changed(self, _value: int) -> None:
        self.schedule_redraw()

    def _paths(self, first: int, k: int) -> np.ndarray:
        """(rows, k, dim) in data units, read once per block and file size."""
        tf = self.fv.tf
        key = (first, k, int(tf.n_saved))
        if self._cache is None or self._cache[0] != key:
            paths = tf.particles(np.arange(first, first + k), denormalise=True)
            self._cache = (key, np.asarray(paths, dtype=np.float64))
        return self._cache[1]

    def draw(self) -> None:
        tf = self.fv.tf
        self.plot.clear()
        self.segments_drawn = 0
        if tf.n_saved == 0:
            self.n_paths = 0
            return
        first = min(self.start.value(), tf.n_samples - 1)
        k = min(self.count.value(), tf.n_samples - first)
        self.first = first
        paths = self._paths(first, k)
        self.n_paths = k
        times = np.asarray(tf.times, dtype=np.float64)
        row = self.fv.row_index()
        row = len(times) - 1 if row is None else min(int(row), len(times) - 1)
        self.row_shown = row
        finite = times[np.isfinite(times)]
        lo = min(0.0, float(finite.min())) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 1.0
        hi = hi if hi > lo else lo + 1.0
        line = tf.dim == 1
        shown, shown_t = paths[: row + 1], times[: row + 1]
        bands = band_segments(shown, shown_t, lo, hi, TIME_BANDS, abscissa_is_time=line)
        alpha = path_alpha(k)
        for b, (xs, ys) in enumerate(bands):
            if xs.size == 0:
                continue
            colour = self.cmap.map((b + 0.5) / TIME_BANDS, mode="qcolor")
            colour.setAlpha(alpha)
            item = pg.PlotDataItem(xs, ys, connect="pairs", pen=pg.mkPen(colour, width=1))
            item.setZValue(-b)  # the data end on top, as in the main tab
            self.plot.addItem(item)
            self.segments_drawn += xs.size // 2
        here = paths[row]
        t_row = float(times[row])
        if line:
            self.plot.setLabels(bottom="t  (the sampler runs from T to 0)", left="x (data units)")
            self.plot.getPlotItem().invertX(True)
            xs, ys = np.full(len(here), t_row), here[:, 0]
        else:
            self.plot.setLabels(bottom="x₁ (data units)", left="x₂ (data units)")
            xs, ys = here[:, 0], here[:, 1]
        ok = np.isfinite(xs) & np.isfinite(ys)
        dots = pg.ScatterPlotItem(
            xs[ok],
            ys[ok],
            size=5,
            pen=pg.mkPen(255, 255, 255, 230, width=1),
            brush=self.cmap.map((t_row - lo) / (hi - lo), mode="qcolor"),
        )
        dots.setZValue(10)
        self.plot.addItem(dots)
        # one window for every row (the whole paths'), so the picture grows and does not jump
        if line:
            v = paths[..., 0][np.isfinite(paths[..., 0])]
            if v.size:
                self.plot.setRange(xRange=(lo, hi), yRange=(v.min(), v.max()), padding=0.03)
        else:
            pts = paths[..., :2].reshape(-1, 2)
            pts = pts[np.isfinite(pts).all(1)]
            if len(pts):
                self.plot.setRange(
                    xRange=(pts[:, 0].min(), pts[:, 0].max()),
                    yRange=(pts[:, 1].min(), pts[:, 1].max()),
                    padding=0.04,
                )
        self.plot.setTitle(
            f"paths of particles {first} to {first + k - 1} ({k}) from t = {hi:.3g} to "
            f"t = {t_row:.3g} (row {row + 1} of {tf.n_saved}), coloured by t"
        )
