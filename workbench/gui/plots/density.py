"""The Densities tab: the marginals p_t of the forward process, the sampler's, and the exact one.

Everything is computed in model (normalised) units and shown in data units (the Data
preview's) unless the "model units" switch beside the time slider is on: the window, the
contours and the curves map by x = shift + scale y and densities by 1 / prod(scale)
(:class:`workbench.gui.state.Units`, the normaliser's maths).

For a linear SDE the forward marginal is drawn exactly and cheaply: a fixed set of data points x0
and a fixed set of standard normal z (both drawn once per experiment with a fixed seed) give x_t =
m(t) x0 + s(t) z for any t, so moving the time slider changes the picture smoothly and costs one
multiply-add and a histogram.

- 2-D data: the forward particles' histogram at t, the trajectory file's row nearest t ("reverse:
  generated at t"), and where the exact p_t is known (Gaussian-mixture data) a third panel with
  its heat map and its 50 % / 90 % highest-density contours drawn over the two histograms. All
  three share the window [-h(t), h(t)]^2 with h(t) = 1.1 m(t) q + 4 s(t) (q: the 99.9 %
  quantile of |x0|) and one colour scale (density in model units). The readout gives the L1
  distance of each histogram to the exact p_t on a coarse grid, with the distance pure sampling
  noise alone would give, so that "small" has a yardstick.
- 1-D data: time-by-x heat maps of the forward particles, the exact p_t and the reverse rows,
  in u = x / sqrt(m(t)^2 + s(t)^2) (the identity for VP; VE's exploding spread brought to one
  scale) with each time column scaled to its own peak, a marker at the slider's t, and the
  densities at t, in x, as curves.
- Images: a grid of forward-noised images and of the trajectory's images at t, shown as
  x_t / sqrt(m(t)^2 + s(t)^2) on grey levels [-1, 1] (the signal's scale at every t).
- A plain sample set (:class:`SampleSet`: a study's samples of one sampler at one NFE) is shown
  where the trajectory's rows go, as a one-row trajectory at t = 0, under its own title.
- The reference p_t ("exact" panel, contours, dashed curve, the L1 readout) is the one chosen
  beside the time slider (:mod:`workbench.core.reference`): analytic (Gaussian mixtures), the
  Fokker–Planck solution, or the empirical p_t of the noised training set.
- A non-linear SDE has no closed-form transition: its forward particles are the ones the
  Fokker–Planck reference simulated (Euler–Maruyama), shown as they are (no m, s scaling);
  without that reference a message says to choose it.

The numerics (forward particles, histograms, level sets, L1 distances) live in core:
:mod:`workbench.core.clouds`, :mod:`workbench.core.grids`, :mod:`workbench.core.contours`.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
import torch
from PySide6 import QtCore, QtGui, QtWidgets

from workbench.core.clouds import ForwardCloud
from workbench.core.contours import HDR_MASSES, contour_segments, hdr_levels
from workbench.core.data import Normalizer
from workbench.core.grids import coarsen, grid_centres, histogram, l1_distance
from workbench.core.reference import reference_grid
from workbench.core.sde import LinearSDE
from workbench.errors import ConfigError, WorkbenchError
from workbench.gui.guidance_controls import same_guidance, view_reference
from workbench.gui.plots.base import ReferencePlotTab, set_title
from workbench.gui.plots.marginals import CURVE_PENS, MarginalRow
from workbench.gui.state import Units

if TYPE_CHECKING:
    from workbench.gui.state import ExperimentState

__all__ = [
    "DensityTab",
    "SampleSet",
    "reverse_points",
    "nearest_row",
    "equal_columns",
    "message_item",
    "same_process",
]

BINS_2D = 128
COARSE_2D = 32  # the L1 readout sums BINS_2D / COARSE_2D bins per side: less sampling noise
BINS_1D = 200
LINE_BINS_1D = 100
TIMES_1D = 120
GRID_SIDE = 6  # images: GRID_SIDE x GRID_SIDE tiles

_CONTOURS = ("#ff4d4d", "#ffffff")  # 50 %, 90 %
_MUTED = "#666666"
NO_REFERENCE = (
    "no exact density for this data set (only Gaussian mixtures have one): choose the "
    "Fokker–Planck or empirical reference (truth, beside the time slider)"
)


class SampleSet:
    """Final samples with no trajectory behind them, shown in the reverse panel under ``title``.

    It answers what the views ask of a trajectory file: one row, at time ``t`` (0: the
    samples are the sampler's output, denoised or at eps), read by :func:`reverse_points`
    through an identity normaliser, so ``points`` are taken as data units and mapped to the
    experiment's model units like any file's rows. ``config`` (the experiment the samples
    were drawn for, or None) lets the view refuse samples of another data set or SDE.
    ``guidance`` is the (class, w) the samples were drawn for, (-1, 0) unguided: the view's
    truth is then that pair's, not the window's; None: the window's.
    """

    def __init__(
        self,
        points: np.ndarray,
        title: str,
        t: float = 0.0,
        config: Any = None,
        guidance: tuple[int, float] | None = None,
    ) -> None:
        pts = np.asarray(points, dtype=np.float64)
        self.points = pts.reshape(len(pts), -1)
        self.title = str(title)
        self.times = np.asarray([float(t)])
        self.n_saved = 1
        self.dim = int(self.points.shape[1])
        self.normalizer = Normalizer.identity((self.dim,))
        self.config = config
        self.guidance = guidance

    def row(self, k: int) -> np.ndarray:
        return self.points

    def index_of_time(self, t: float) -> int:
        return 0

    def read_config(self) -> Any:
        return self.config


def _row_note(trajectory: Any, k: int, t_row: float) -> str:
    title = getattr(trajectory, "title", None)
    if title:
        return f"reverse: {title}"
    return f"reverse: row {k} of {trajectory.n_saved}, at t = {t_row:.3f}"


def reverse_points(trajectory: Any, k: int, state: ExperimentState) -> np.ndarray:
    """Row ``k`` of a trajectory file as (n, dim) points in the experiment's model units."""
    row = np.asarray(trajectory.row(k), dtype=np.float64).reshape(-1, state.dim)
    file_norm = getattr(trajectory, "normalizer", None)
    if file_norm is not None and file_norm != state.normalizer:
        data = file_norm.to_data(torch.from_numpy(row))
        row = state.normalizer.to_model(data).numpy()
    return row


def nearest_row(trajectory: Any, t: float) -> int:
    """The row nearest t; a t outside the recorded times gets the nearest end's row."""
    times = np.asarray(trajectory.times, dtype=np.float64)
    t = float(np.clip(t, times.min(), times.max()))
    return int(trajectory.index_of_time(t))


def trajectory_problem(trajectory: Any, state: ExperimentState) -> str | None:
    """Why a trajectory cannot be shown with this experiment, or None."""
    if trajectory is None:
        return None
    dim = int(getattr(trajectory, "dim", state.dim))
    if dim != state.dim:
        return f"the trajectory file holds {dim}-D points; this experiment's data are {state.dim}-D"
    if int(getattr(trajectory, "n_saved", 0)) == 0:
        return "the trajectory file holds no rows yet"
    read_config = getattr(trajectory, "read_config", None)
    if read_config is not None:
        try:
            cfg = read_config()
        except (WorkbenchError, ConfigError):  # unreadable /config: the rows may still be shown
            cfg = None
        if cfg is not None and (
            cfg.data.name != state.config.data.name or cfg.sde != state.config.sde
        ):
            # its rows are draws of another process's p_t: beside this one they mislead
            return (
                f"the trajectory file was sampled with data {cfg.data.name!r} and the "
                f"{cfg.sde.kind!r} SDE; this experiment's p_t is another one"
            )
    return None


def _image_item() -> pg.ImageItem:
    item = pg.ImageItem()
    item.setAutoDownsample(False)
    return item


def _rect(x: float, y: float, w: float, h: float) -> QtCore.QRectF:
    return QtCore.QRectF(float(x), float(y), float(w), float(h))


def equal_columns(layout: pg.GraphicsLayoutWidget, plots: list[pg.PlotItem]) -> None:
    """Columns of equal width for ``plots`` (in columns 0, 1, ...), whatever their titles' or
    axes' widths: with locked aspects, equal panels show equal scales."""
    grid = layout.ci.layout
    for col, plot in enumerate(plots):
        plot.setPreferredWidth(50)
        plot.setMinimumWidth(50)
        grid.setColumnStretchFactor(col, 1)


#: two short lines, so the note fits the narrow reverse panel of the 1-D and 2-D views
NO_REVERSE = "sample to see\nthe reverse process"


def message_item(text: str, fill: bool = False) -> pg.TextItem:
    """A centred grey note inside a plot (on a white box with ``fill``, over busy content)."""
    brush = pg.mkBrush(255, 255, 255, 225) if fill else None
    item = pg.TextItem(text, color=_MUTED, anchor=(0.5, 0.5), fill=brush)
    font = QtGui.QFont()
    font.setPointSize(11)
    item.setFont(font)
    return item


# ------------------------------------------------------------------------------------ the views
class _View:
    """One way of showing p_t (2-D, 1-D, images); draws into the tab's GraphicsLayoutWidget."""

    def __init__(
        self,
        layout: pg.GraphicsLayoutWidget,
        state: ExperimentState,
        cloud: Any,
        reference: Any = None,
    ) -> None:
        self.layout = layout
        self.state = state
        self.cloud = cloud
        # the reference p_t (workbench.core.reference.Reference: analytic, FPK or empirical)
        self.truth = reference
        self.trajectory: Any = None
        self.problem: str | None = None
        self.units = Units(state.normalizer)

    def set_units(self, units: Units) -> None:
        """Draw in ``units`` from the next draw on (the axis labels change now)."""
        self.units = units
        self._label()

    def _label(self) -> None:
        """Put the units' names on the axes (each view its own)."""

    def _rect(self, h: float) -> QtCore.QRectF:
        """The model-unit square [-h, h]^2 in the units shown."""
        lo, hi = self.units.window(h, 2)
        return _rect(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])

    def set_trajectory(self, trajectory: Any) -> None:
        try:
            self.problem = trajectory_problem(trajectory, self.state)
        except WorkbenchError as exc:
            self.problem = str(exc)
        self.trajectory = None if self.problem else trajectory
        self._row_key = None

    def draw(self, t: float) -> str:
        raise NotImplementedError

    # a cache of the last trajectory row read (rows are read from HDF5)
    _row_key: tuple[int, int] | None = None
    _row: np.ndarray | None = None

    def row_at(self, t: float) -> tuple[int, float, np.ndarray] | None:
        """(row index, its time, its points) of the trajectory row nearest t, or None."""
        traj = self.trajectory
        if traj is None:
            return None
        try:
            k = nearest_row(traj, t)
            key = (id(traj), k)
            row = self._row
            if self._row_key != key or row is None:  # the key is only set with a row
                row = self._row = reverse_points(traj, k, self.state)
                self._row_key = key
            return k, float(np.asarray(traj.times)[k]), row
        except WorkbenchError as exc:  # a file gone bad under us: say so, keep running
            self.problem = str(exc)
            self.trajectory = None
            return None


class _Planar(_View):
    """2-D data: forward histogram | reverse histogram | exact p_t, one colour scale; below,
    their marginals p_t(x₁) and p_t(x₂) (:class:`~workbench.gui.plots.marginals.MarginalRow`)."""

    def __init__(
        self,
        layout: pg.GraphicsLayoutWidget,
        state: ExperimentState,
        cloud: Any,
        reference: Any = None,
    ) -> None:
        super().__init__(layout, state, cloud, reference)
        self.plots: dict[str, pg.PlotItem] = {}
        self.images: dict[str, pg.ImageItem] = {}
        self.contours: dict[str, list[pg.PlotDataItem]] = {}
        names = ["forward", "reverse"] + (["exact"] if self.truth is not None else [])
        titles = {
            "forward": "forward: data noised to t",
            "reverse": "reverse: generated at t",
            "exact": self.truth.label if self.truth is not None else "",
        }
        for col, name in enumerate(names):
            plot = layout.addPlot(row=0, col=col)
            set_title(plot, titles[name])  # wrapped: a long reference label must not clip
            plot.setAspectLocked(True, 1)
            plot.setMenuEnabled(False)
            image = _image_item()
            plot.addItem(image)
            self.plots[name], self.images[name] = plot, image
            if name != "exact" and self.truth is not None:
                lines = []
                for level_idx in range(len(HDR_MASSES)):
                    pen = pg.mkPen(_CONTOURS[level_idx], width=2)
                    line = pg.PlotDataItem(connect="pairs", pen=pen)
                    plot.addItem(line)
                    lines.append(line)
                self.contours[name] = lines
        self.bar = pg.ColorBarItem(
            values=(0, 1),
            colorMap=pg.colormap.get("viridis"),
            interactive=False,
            width=14,
            rounding=1e-6,
        )
        self.bar.setImageItem(list(self.images.values()))
        layout.addItem(self.bar, row=0, col=len(names))
        equal_columns(layout, list(self.plots.values()))
        self.no_reverse = message_item(NO_REVERSE)
        self.plots["reverse"].addItem(self.no_reverse)
        # the height the square panels leave: p_t(x1) and p_t(x2) of the same densities
        label = self.truth.short if self.truth is not None else None
        self.marginals = MarginalRow(layout, 1, len(names) + 1, label)
        layout.ci.layout.setRowStretchFactor(0, 3)
        layout.ci.layout.setRowStretchFactor(1, 2)
        # results of the last draw, for tests and readers
        self.half = 1.0
        self.forward_density: np.ndarray | None = None
        self.reverse_density: np.ndarray | None = None
        self.exact: np.ndarray | None = None
        self.distances: dict[str, tuple[float, float]] = {}
        self._label()

    def _label(self) -> None:
        for plot in self.plots.values():
            plot.setLabel("bottom", self.units.label("x₁"))
            plot.setLabel("left", self.units.label("x₂"))
        self.bar.setLabel("left", f"density ({self.units.name})")
        self.marginals.set_units(self.units)

    def draw(self, t: float) -> str:
        cloud, bins, factor = self.cloud, BINS_2D, BINS_2D // COARSE_2D
        h = cloud.half_width(t)
        self.half = h
        area = (2.0 * h / bins) ** 2
        rect = self._rect(h)
        counts = histogram(cloud.at(t), h, bins)
        self.forward_density = counts / (cloud.n * area)
        self._show("forward", self.forward_density, rect)
        # one colour scale for all panels: the exact peak, else the forward histogram's peak
        # on 4 x 4 cells (the peak of single cells is mostly sampling noise)
        vmax = float(coarsen(counts, factor).max()) / (cloud.n * area * factor**2)
        self.distances = {}
        coarse_exact = None
        if self.truth is not None:
            self.exact = reference_grid(self.truth, t, h, bins)
            vmax = float(self.exact.max())
            self._show("exact", self.exact, rect)
            coarse_exact = coarsen(self.exact * area, factor)
            self.distances["forward"] = l1_distance(coarsen(counts, factor), coarse_exact)
            self._draw_contours(self.exact, h)

        row = self.row_at(t)
        self.reverse_density = None
        reverse_note = None
        if row is None:
            self.images["reverse"].clear()
            self.no_reverse.setText(self.problem or NO_REVERSE)
            # contours over an empty panel would only cross the note (and the white one vanishes)
            for line in self.contours.get("reverse", []):
                line.setData([], [])
        else:
            k, t_row, pts = row
            rcounts = histogram(pts, h, bins)
            self.reverse_density = rcounts / (max(len(pts), 1) * area)
            self._show("reverse", self.reverse_density, rect)
            reverse_note = _row_note(self.trajectory, k, t_row)
            if coarse_exact is not None:
                self.distances["reverse"] = l1_distance(coarsen(rcounts, factor), coarse_exact)
        self.no_reverse.setVisible(row is None)
        self.no_reverse.setPos(rect.center().x(), rect.center().y())
        title = getattr(self.trajectory, "title", None)
        set_title(self.plots["reverse"], title or "reverse: generated at t")
        self.marginals.show("forward", self.forward_density, self.units, h)
        self.marginals.show("reverse", self.reverse_density, self.units, h)
        if self.truth is not None:
            self.marginals.show("exact", self.exact, self.units, h)
        vmax = float(self.units.density(vmax, 2)) if vmax > 0 else 1.0
        self.bar.setLevels((0.0, vmax))
        for plot in self.plots.values():
            plot.setRange(rect, padding=0)

        parts = [f"t = {t:.3f}   window ±{h:.3g} (model units), drawn in {self.units.name}"]
        if reverse_note:
            parts.append(reverse_note)
        for name, (d, noise) in self.distances.items():
            parts.append(
                f"{name} vs {self.truth.short}: L1 = {d:.3f} (sampling noise ≈ {noise:.3f})"
            )
        if self.truth is not None:
            parts.append(
                f"L1 on a {COARSE_2D}×{COARSE_2D} grid; contours of the {self.truth.label} hold "
                "50 % (red) and 90 % (white) of its mass"
            )
            parts.append(self.truth.note)
        else:
            parts.append(NO_REFERENCE)
        return "   ".join(parts)

    def _show(self, name: str, density: np.ndarray, rect: QtCore.QRectF) -> None:
        self.images[name].setImage(self.units.density(density, 2), autoLevels=False)
        self.images[name].setRect(rect)

    def _draw_contours(self, exact: np.ndarray, h: float) -> None:
        levels = hdr_levels(exact)
        sub = exact[::2, ::2]  # a 64 x 64 grid: smooth enough, and 4x cheaper
        c = grid_centres(h, BINS_2D)[::2]
        segments = []
        for level in levels:
            xs, ys = contour_segments(sub, c, c, level)
            mapped = self.units.points(np.stack([xs, ys], axis=-1).reshape(-1, 2))
            segments.append((mapped[:, 0], mapped[:, 1]))
        for lines in self.contours.values():
            for i, line in enumerate(lines):
                if i < len(segments):
                    line.setData(*segments[i])
                else:
                    line.setData([], [])


class _Line(_View):
    """1-D data: time-by-x heat maps (forward, exact, reverse) and the densities at t."""

    def __init__(
        self,
        layout: pg.GraphicsLayoutWidget,
        state: ExperimentState,
        cloud: Any,
        reference: Any = None,
    ) -> None:
        super().__init__(layout, state, cloud, reference)
        T = float(state.sde.T)
        self.T = T
        self.times = (np.arange(TIMES_1D) + 0.5) * (T / TIMES_1D)
        # the heat maps show u = x / sqrt(m^2 + s^2), the std of p_t for standardised data: the
        # identity for VP, and VE's exploding spread brought to one scale
        m, s = cloud.coeffs(self.times)
        self.scale = np.sqrt(m * m + s * s)
        self.H = float(np.max(cloud.half_width(self.times) / self.scale))
        names = ["forward"] + (["exact"] if self.truth is not None else []) + ["reverse"]
        titles = {
            "forward": "forward particles",
            "exact": self.truth.label if self.truth is not None else "",
            "reverse": "reverse: generated",
        }
        self.maps: dict[str, pg.PlotItem] = {}
        self.images: dict[str, pg.ImageItem] = {}
        self.markers: list[pg.InfiniteLine] = []
        cmap = pg.colormap.get("viridis")
        for col, name in enumerate(names):
            plot = layout.addPlot(row=0, col=col)
            set_title(plot, titles[name])
            plot.setLabel("bottom", "t")
            plot.setMenuEnabled(False)
            image = _image_item()
            image.setColorMap(cmap)
            plot.addItem(image)
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#ff4d4d", width=1.5))
            plot.addItem(line)
            self.markers.append(line)
            self.maps[name], self.images[name] = plot, image
            if col:
                plot.setXLink(self.maps["forward"])
                plot.setYLink(self.maps["forward"])
        equal_columns(layout, list(self.maps.values()))
        self.no_reverse = message_item(NO_REVERSE)
        self.maps["reverse"].addItem(self.no_reverse)
        self.curve_plot = layout.addPlot(row=1, col=0, colspan=len(names))
        self.curve_plot.setLabel("left", "density")
        self.curve_plot.getAxis("left").enableAutoSIPrefix(False)
        self.curve_plot.showGrid(x=True, y=True, alpha=0.25)
        self.curve_plot.addLegend(offset=(-10, 10), brush=pg.mkBrush(255, 255, 255, 200))
        self.curves = {
            "forward": self.curve_plot.plot(
                stepMode="center", pen=CURVE_PENS["forward"], name="forward particles"
            ),
            "reverse": self.curve_plot.plot(
                stepMode="center", pen=CURVE_PENS["reverse"], name="reverse (generated)"
            ),
        }
        if self.truth is not None:
            self.curves["exact"] = self.curve_plot.plot(
                pen=CURVE_PENS["exact"],
                name=self.truth.label,
            )
        layout.ci.layout.setRowStretchFactor(0, 3)
        layout.ci.layout.setRowStretchFactor(1, 2)
        self.heat: dict[str, np.ndarray] = {}
        self._build_forward_maps()
        self.distances: dict[str, tuple[float, float]] = {}
        self._label()

    def _heat_rect(self) -> QtCore.QRectF:
        """The heat maps' [0, T] x [-H, H] (in u) with u mapped like x: the units' x₁ axis."""
        lo, hi = self.units.window(self.H, 1)
        return _rect(0, lo[0], self.T, hi[0] - lo[0])

    def _label(self) -> None:
        linear = isinstance(self.state.sde, LinearSDE)
        left = self.units.label("x / √(m² + s²)" if linear else "x")
        rect = self._heat_rect()
        for name, plot in self.maps.items():
            plot.setLabel("left", left)
            plot.setRange(xRange=(0, self.T), yRange=(rect.top(), rect.bottom()), padding=0)
            if name in self.heat:
                self.images[name].setRect(rect)
        self.no_reverse.setPos(self.T / 2, rect.center().y())
        self.curve_plot.setLabel("bottom", self.units.label("x"))
        self.curve_plot.setLabel("left", f"density ({self.units.name})")

    def _column_scaled(self, density: np.ndarray) -> np.ndarray:
        peak = density.max(axis=1, keepdims=True)
        return np.where(peak > 0, density / np.where(peak > 0, peak, 1.0), 0.0)

    def _build_forward_maps(self) -> None:
        cloud, H, bins = self.cloud, self.H, BINS_1D
        xs = cloud.at_many(self.times)[:, :, 0] / self.scale[:, None]
        with np.errstate(invalid="ignore"):
            idx = np.floor((xs + H) * (bins / (2 * H)))
            ok = (idx >= 0) & (idx < bins)
        flat = (np.arange(TIMES_1D)[:, None] * bins + np.where(ok, idx, 0)).astype(np.int64)
        counts = np.bincount(flat[ok], minlength=TIMES_1D * bins).reshape(TIMES_1D, bins)
        rect = self._heat_rect()
        self.heat["forward"] = self._column_scaled(counts.astype(np.float64))
        self.images["forward"].setImage(self.heat["forward"], levels=(0, 1))
        self.images["forward"].setRect(rect)
        if self.truth is not None:
            u = grid_centres(H, bins)
            x = (self.scale[:, None] * u[None, :]).reshape(-1, 1)
            tt = np.repeat(self.times, bins)
            p = self.truth.density(tt, x).reshape(TIMES_1D, bins)
            self.heat["exact"] = self._column_scaled(p)
            self.images["exact"].setImage(self.heat["exact"], levels=(0, 1))
            self.images["exact"].setRect(rect)

    def set_trajectory(self, trajectory: Any) -> None:
        super().set_trajectory(trajectory)
        traj = self.trajectory
        set_title(self.maps["reverse"], getattr(traj, "title", None) or "reverse: generated")
        image = self.images["reverse"]
        if traj is None:
            image.clear()
            self.heat.pop("reverse", None)
            self.no_reverse.setText(self.problem or NO_REVERSE)
            self.no_reverse.setVisible(True)
            return
        self.no_reverse.setVisible(False)
        H, bins = self.H, BINS_1D
        rows_t = np.asarray(traj.times, dtype=np.float64)
        gap = float(np.max(np.abs(np.diff(rows_t)))) if rows_t.size > 1 else 0.0
        tol = 0.5 * max(gap, self.T / TIMES_1D) + 1e-12
        heat = np.full((TIMES_1D, bins), np.nan)
        rows: dict[int, np.ndarray] = {}
        try:
            for j, t in enumerate(self.times):
                k = nearest_row(traj, float(t))
                if abs(rows_t[k] - t) > tol:
                    continue
                if k not in rows:
                    rows[k] = reverse_points(traj, k, self.state)[:, :1]
                heat[j] = histogram(rows[k] / self.scale[j], H, bins)
        except WorkbenchError as exc:
            self.set_trajectory(None)
            self.problem = str(exc)
            self.no_reverse.setText(self.problem)
            return
        valid = np.isfinite(heat[:, 0])
        heat[valid] = self._column_scaled(heat[valid])
        self.heat["reverse"] = heat
        image.setImage(np.nan_to_num(heat, nan=0.0), levels=(0, 1))
        image.setRect(self._heat_rect())

    def draw(self, t: float) -> str:
        for line in self.markers:
            line.setValue(t)
        h, bins = self.cloud.half_width(t), LINE_BINS_1D
        edges = np.linspace(-h, h, bins + 1)
        width = 2 * h / bins
        counts = histogram(self.cloud.at(t), h, bins)
        u = self.units
        shown = u.points(edges[:, None])[:, 0]
        self.curves["forward"].setData(shown, u.density(counts / (self.cloud.n * width), 1))
        self.distances = {}
        exact_mass = None
        if self.truth is not None:
            fine = np.linspace(-h, h, 400)
            self.curves["exact"].setData(
                u.points(fine[:, None])[:, 0], u.density(self.truth.density(t, fine[:, None]), 1)
            )
            exact_mass = reference_grid(self.truth, t, h, bins) * width
            self.distances["forward"] = l1_distance(counts, exact_mass)
        row = self.row_at(t)
        parts = [f"t = {t:.3f}"]
        if row is None:
            self.curves["reverse"].setData([], [])
        else:
            k, t_row, pts = row
            rcounts = histogram(pts[:, :1], h, bins)
            self.curves["reverse"].setData(
                shown, u.density(rcounts / (max(len(pts), 1) * width), 1)
            )
            parts.append(_row_note(self.trajectory, k, t_row))
            if exact_mass is not None:
                self.distances["reverse"] = l1_distance(rcounts, exact_mass)
        self.curve_plot.setTitle(f"p_t at t = {t:.3f}")
        self.curve_plot.setXRange(float(shown[0]), float(shown[-1]), padding=0.02)
        for name, (d, noise) in self.distances.items():
            parts.append(
                f"{name} vs {self.truth.short}: L1 = {d:.3f} (sampling noise ≈ {noise:.3f})"
            )
        if self.truth is None:
            parts.append(NO_REFERENCE)
        else:
            parts.append(f"L1 on {bins} bins; {self.truth.note}")
        if isinstance(self.state.sde, LinearSDE):
            parts.append("heat maps: x / √(m(t)² + s(t)²), each time column scaled to its peak")
        else:
            parts.append(
                "forward particles simulated (Euler–Maruyama); heat maps: x, each time "
                "column scaled to its peak"
            )
        return "   ".join(parts)


class _Images(_View):
    """Image data: GRID_SIDE² forward-noised images at t, and the trajectory's images at t."""

    def __init__(
        self,
        layout: pg.GraphicsLayoutWidget,
        state: ExperimentState,
        cloud: Any,
        reference: Any = None,
    ) -> None:
        super().__init__(layout, state, cloud, reference)
        self.shape = tuple(state.dataset.sample_shape)
        self.boxes: dict[str, pg.PlotItem] = {}
        self.images: dict[str, pg.ImageItem] = {}
        for col, name in enumerate(("forward", "reverse")):
            plot = layout.addPlot(row=0, col=col)
            plot.hideAxis("left")
            plot.hideAxis("bottom")
            plot.setAspectLocked(True)
            plot.invertY(True)
            plot.setMenuEnabled(False)
            image = _image_item()
            plot.addItem(image)
            self.boxes[name], self.images[name] = plot, image
        equal_columns(layout, list(self.boxes.values()))
        self.no_reverse = message_item(NO_REVERSE)
        self.boxes["reverse"].addItem(self.no_reverse)
        self.mosaics: dict[str, np.ndarray] = {}

    def _mosaic(self, flat: np.ndarray, scale: float) -> np.ndarray:
        """RGB mosaic (width, height, 3) of up to GRID_SIDE² images, 2 px white gaps."""
        shape = self.shape
        c, hgt, wid = (shape if len(shape) == 3 else (1, *shape[-2:]))[-3:]
        imgs = flat[: GRID_SIDE**2].reshape(-1, c, hgt, wid) / scale
        grey = np.clip((imgs + 1.0) * 127.5, 0, 255).astype(np.uint8)
        if c == 1:
            rgb = np.repeat(grey, 3, axis=1)
        elif c >= 3:
            rgb = grey[:, :3]
        else:
            rgb = np.repeat(grey[:, :1], 3, axis=1)
        gap = 2
        side = GRID_SIDE
        out = np.full((side * (hgt + gap) - gap, side * (wid + gap) - gap, 3), 255, np.uint8)
        for i in range(rgb.shape[0]):
            r, q = divmod(i, side)
            y, x = r * (hgt + gap), q * (wid + gap)
            out[y : y + hgt, x : x + wid] = rgb[i].transpose(1, 2, 0)
        return out.transpose(1, 0, 2)  # ImageItem: axis 0 is horizontal

    def draw(self, t: float) -> str:
        m, s = self.cloud.coeffs(t)
        scale = float(math.sqrt(float(m) ** 2 + float(s) ** 2)) or 1.0
        fwd = self._mosaic(self.cloud.at(t), scale)
        self.mosaics["forward"] = fwd
        self.images["forward"].setImage(fwd, levels=(0, 255))
        self.boxes["forward"].setTitle(f"forward: data noised to t = {t:.3f}")
        row = self.row_at(t)
        if row is None:
            self.images["reverse"].clear()
            self.mosaics.pop("reverse", None)
            self.no_reverse.setText(self.problem or NO_REVERSE)
            self.no_reverse.setVisible(True)
            self.no_reverse.setPos(fwd.shape[0] / 2, fwd.shape[1] / 2)
            self.boxes["reverse"].setTitle("reverse: generated at t")
        else:
            k, t_row, pts = row
            rev = self._mosaic(pts, scale)
            self.mosaics["reverse"] = rev
            self.no_reverse.setVisible(False)
            self.images["reverse"].setImage(rev, levels=(0, 255))
            title = getattr(self.trajectory, "title", None)
            self.boxes["reverse"].setTitle(
                title or f"reverse: generated at t = {t_row:.3f} (row {k})"
            )
        for box in self.boxes.values():
            box.setRange(xRange=(0, fwd.shape[0]), yRange=(0, fwd.shape[1]), padding=0.02)
        return (
            f"t = {t:.3f}   images shown as x_t / √(m² + s²) = x_t / {scale:.3g} on grey levels "
            "[-1, 1] (model units), the first 36 of each set"
        )


# ------------------------------------------------------------------------------------ the tab
def same_process(old: ExperimentState | None, new: ExperimentState | None) -> bool:
    """Whether two experiments have the same data and SDE, hence the same p_t for every t."""
    if old is None or new is None:
        return False
    return (
        old.config.data == new.config.data
        and old.config.sde == new.config.sde
        and type(old.sde) is type(new.sde)
    )


class DensityTab(ReferencePlotTab):
    """Marginal densities p_t: forward particles, the sampler's trajectory, the exact p_t."""

    title = "Densities"
    square_panels = True  # the 2-D panels: one model unit as long across as up

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("densityPlot")
        self.state: ExperimentState | None = None
        self.trajectory: Any = None
        self.t = 0.0
        self.cloud: ForwardCloud | None = None
        self.reference: Any = None
        self.view: _View | None = None
        #: the samples' own (class, w) the view's truth was built for (None: the window's)
        self._built_choice: tuple[int, float] | None = None
        self.last_redraw_ms = float("nan")
        self.model_units = False  # data units unless the window's units switch says otherwise

        self._build_canvas("density")
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.readout)
        self._show_message("no experiment yet")

    # -- the PlotTab hooks --------------------------------------------------------------------
    def set_experiment(self, state: ExperimentState) -> None:
        previous, self.state = self.state, state
        if (
            self.view is not None
            and same_process(previous, state)
            and (same_guidance(previous, state) or self._built_choice is not None)
        ):
            # only training, network or sampling settings changed: p_t is the same
            self.view.state = state
            self.schedule_redraw()
            return
        self._drop_stale_reference(state)
        self._rebuild()

    def _rebuild(self) -> None:
        # with a class chosen, the tilted density of that class (guided sampling's target)
        choice = self._shown_choice()
        state, reference = self.state, view_reference(self.state, self.reference, choice)
        if state is None:  # no experiment yet: nothing to build
            return
        self._built_choice = choice
        self.layout_widget.clear()
        self.view = None
        reuse, self.cloud = self.cloud, None
        kind: type[_Line] | type[_Planar] | type[_Images]
        if not isinstance(state.sde, LinearSDE):
            cloud = getattr(reference, "cloud", None)
            if cloud is None or state.is_image or state.dim > 2:
                self._show_message(
                    f"{state.sde.describe()} is not a linear SDE: its marginals p_t have no "
                    "closed form. The Fokker–Planck reference (truth: automatic or "
                    "Fokker–Planck; 1-D and 2-D data) solves for p_t and simulates the forward "
                    "particles; a solve in progress shows in the status bar."
                )
                return
            self.cloud = reuse if isinstance(reuse, ForwardCloud) else None
            kind = _Line if state.dim == 1 else _Planar
            self.view = kind(self.layout_widget, state, cloud, reference)
        else:
            if state.is_image:
                cloud, kind = ForwardCloud(state, n=GRID_SIDE**2, reuse=reuse), _Images
            elif state.dim == 1:
                cloud, kind = ForwardCloud(state, reuse=reuse), _Line
            elif state.dim == 2:
                cloud, kind = ForwardCloud(state, reuse=reuse), _Planar
            else:
                self._show_message(
                    f"densities are shown for 1-D, 2-D and image data; these are {state.dim}-D "
                    "vectors"
                )
                return
            self.cloud = cloud
            self.view = kind(self.layout_widget, state, cloud, reference)
        self.view.set_units(Units.of(state, self.model_units))
        self.view.set_trajectory(self.trajectory)
        self.stack.setCurrentWidget(self.layout_widget)
        self.schedule_redraw()

    def set_model_units(self, on: bool) -> None:
        """Draw in the model's normalised units (True) or in data units (False)."""
        self.model_units = bool(on)
        if self.view is not None:
            self.view.set_units(Units.of(self.state, self.model_units))
            self.schedule_redraw()

    def set_time(self, t: float) -> None:
        self.t = float(t)
        self.schedule_redraw()

    def _shown_choice(self) -> tuple[int, float] | None:
        """The (class, w) of the samples shown when they carry their own (a study's point)."""
        return getattr(self.trajectory, "guidance", None)

    def set_trajectory(self, trajectory: Any) -> None:
        self.trajectory = trajectory
        if self.view is not None and self._shown_choice() != self._built_choice:
            self._rebuild()  # the truth is another class or w's
            return
        if self.view is not None:
            self.view.set_trajectory(trajectory)
            self.schedule_redraw()

    def show_samples(self, samples: SampleSet) -> None:
        """Show a plain sample set in the reverse panel (until the next trajectory), titled
        by ``samples.title``."""
        self.set_trajectory(samples)

    def shown_title(self) -> str | None:
        """The title of the sample set shown, or None (a trajectory file, or nothing)."""
        return getattr(self.trajectory, "title", None)

    def export_item(self) -> Any:
        if self.view is None:
            return None
        self.flush_redraw()
        return self.layout_widget.scene()

    # -- drawing (only while shown: LazyRedraw) -----------------------------------------------
    def _redraw(self) -> None:
        """Draw the current view at the current t (synchronously; a few ms to ~30 ms)."""
        if self.view is None:
            return
        start = time.perf_counter()
        text = self.view.draw(self.t)
        self.last_redraw_ms = 1000.0 * (time.perf_counter() - start)
        self.readout.setText(text)
