"""The Samples view: the particles at the slider's row, their marginal histogram, and the
exact p_t over it where the config allows (:func:`density_at`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from workbench.core.contours import HDR_MASSES, contour_segments, hdr_levels
from workbench.core.experiment import dataset_of, sde_of
from workbench.core.mixture import GaussianMixture
from workbench.core.reference import data_units_marginal
from workbench.core.sde import LinearSDE
from workbench.errors import WorkbenchError
from workbench.gui.inspector.common import HIST_BINS, _View
from workbench.gui.plots.base import set_title
from workbench.io.trajectories import TrajectoryFile

if TYPE_CHECKING:
    from workbench.gui.inspector.file_view import FileView

SCATTER_POINTS = 2000  # particles drawn as dots at one row, at most (every k-th one)
DENSITY_GRID = 120  # grid side for the analytic density contours


def _finite_range(values: np.ndarray) -> tuple[float, float]:
    """A window holding the bulk of ``values``: mean ± 4 std, clipped to min/max."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return -1.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    mean, std = float(v.mean()), float(v.std())
    lo, hi = max(lo, mean - 4 * std), min(hi, mean + 4 * std)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def density_at(tf: TrajectoryFile, t: float) -> GaussianMixture | None:
    """The exact p_t in data units, or None: only when the file's config names a
    Gaussian-mixture data set and a linear SDE (:func:`workbench.core.reference.
    data_units_marginal` does the maths; this reads the config)."""
    try:
        cfg = tf.read_config()
        mixture = dataset_of(cfg).mixture()
        sde = sde_of(cfg)
    except (WorkbenchError, ValueError, KeyError):
        return None
    if mixture is None or not isinstance(sde, LinearSDE) or mixture.dim != tf.dim:
        return None
    return data_units_marginal(mixture, sde, float(t), tf.normalizer)


class SamplesView(_View):
    """The particles at the slider's row (a subsample) and their marginal histogram (all)."""

    title = "Samples"
    follows_slider = True

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("inspectorSamplesPlot")
        layout.addWidget(self.graphics)
        self.scatter_plot = self.graphics.addPlot(title="samples")
        self.hist_plot = self.graphics.addPlot(title="marginal histogram")
        for p in (self.scatter_plot, self.hist_plot):
            p.showGrid(x=True, y=True, alpha=0.2)
        self.scatter = pg.ScatterPlotItem(
            size=2, pen=None, brush=pg.mkBrush(30, 90, 200, 110), pxMode=True
        )
        self.scatter_plot.addItem(self.scatter)
        self.image = pg.ImageItem()
        self.image.setColorMap(pg.colormap.get("viridis"))
        self.curve = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=(30, 90, 200, 80))
        self.hist_plot.addItem(self.image)
        self.hist_plot.addItem(self.curve)
        self.density_curve = pg.PlotDataItem(pen=pg.mkPen((220, 60, 30), width=2))
        self.contours = [
            pg.PlotDataItem(pen=pg.mkPen(c, width=2), connect="pairs")
            for c in ((255, 90, 40), (255, 200, 60))
        ]
        self.hist_plot.addItem(self.density_curve)
        for item in self.contours:
            self.hist_plot.addItem(item)
        self.density_levels: list[float] = []  # levels of the contours drawn (empty: none)
        self.hist: np.ndarray | None = None  # the last histogram, for tests
        self.row_shown: int | None = None
        self._mixture_cache: dict[float, Any] = {}
        self._window: tuple[float, ...] | None = None

    def draw(self) -> None:
        tf, k = self.fv.tf, self.fv.row_index()
        if k is None:
            self.scatter.setData([], [])
            self.image.clear()
            self.curve.setData([], [])
            self.hist, self.row_shown = None, None
            return
        x = tf.row(k, denormalise=True)
        self.row_shown = k
        t = float(tf.times[k])
        units = "data units"
        set_title(self.scatter_plot, f"samples at t = {t:.4g} (row {k}, {units})")
        set_title(self.hist_plot, f"histogram at t = {t:.4g} ({len(x):,} samples)")
        # 2-D: one data unit as long across as up (a round cloud looks round); 1-D: x by density
        for plot in (self.scatter_plot, self.hist_plot):
            plot.setAspectLocked(tf.dim >= 2, 1)
        stride = max(1, len(x) // SCATTER_POINTS)
        sub = x[::stride]
        if tf.dim == 1:
            ys = np.random.default_rng(0).uniform(0, 1, len(sub))
            self.scatter.setData(sub[:, 0], ys)
            self.scatter_plot.setLabels(bottom="x", left="jitter")
            lo, hi = _finite_range(x[:, 0])
            counts, edges = np.histogram(x[:, 0], bins=HIST_BINS, range=(lo, hi))
            dens = counts / max(1, len(x)) / (edges[1] - edges[0])
            self.image.hide()
            self.curve.show()
            self.curve.setData(edges, dens)
            self.hist_plot.setLabels(bottom="x", left="density")
            self.hist = counts
            self._draw_density(t, (lo, hi, 0.0, 0.0))
            return
        a, b = x[:, 0], x[:, 1]
        self.scatter.setData(sub[:, 0], sub[:, 1])
        self.scatter_plot.setLabels(bottom="x1", left="x2")
        (xl, xh), (yl, yh) = _finite_range(a), _finite_range(b)
        bins = int(np.clip(np.sqrt(len(a)) / 1.5, 20, HIST_BINS))
        counts, _, _ = np.histogram2d(a, b, bins=bins, range=[[xl, xh], [yl, yh]])
        self.curve.hide()
        self.image.show()
        self.image.setImage(counts, autoLevels=True)
        self.image.setRect(QtCore.QRectF(xl, yl, xh - xl, yh - yl))
        self.hist_plot.setLabels(bottom="x1", left="x2")
        self.hist = counts
        window = (xl, xh, yl, yh)
        self._draw_density(t, window)
        if window != self._window:
            self._window = window
            self.hist_plot.autoRange()

    def _mixture(self, t: float) -> Any:
        if t not in self._mixture_cache:
            self._mixture_cache = {t: density_at(self.fv.tf, t)}
        return self._mixture_cache[t]

    def _draw_density(self, t: float, window: tuple[float, float, float, float]) -> None:
        """The exact p_t over the histogram: a curve (1-D) or its 50%/90%-mass contours."""
        self.density_curve.setData([], [])
        for item in self.contours:
            item.setData([], [])
        self.density_levels = []
        mix = self._mixture(t)
        if mix is None:
            return
        xl, xh, yl, yh = window
        if self.fv.tf.dim == 1:
            xs = np.linspace(xl, xh, 400)
            self.density_curve.setData(xs, mix.density_np(xs[:, None]))
            self.density_levels = [float("nan")]
            return
        gx = np.linspace(xl, xh, DENSITY_GRID)
        gy = np.linspace(yl, yh, DENSITY_GRID)
        mx, my = np.meshgrid(gx, gy, indexing="ij")
        pts = np.stack([mx.ravel(), my.ravel()], 1)
        # the marginal of (x1, x2): the same mixture's first two coordinates
        grid = mix.marginal([0, 1]).density_np(pts).reshape(DENSITY_GRID, DENSITY_GRID)
        self.density_levels = hdr_levels(grid, HDR_MASSES)
        for item, level in zip(self.contours, self.density_levels, strict=False):
            item.setData(*contour_segments(grid, gx, gy, level))
        n = 0 if self.hist is None else int(self.hist.sum())
        set_title(
            self.hist_plot, f"histogram at t = {t:.4g} ({n:,}); lines: exact p_t, 50 % / 90 %"
        )
