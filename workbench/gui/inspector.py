"""The trajectory inspector: open saved HDF5 files read-only, look inside, export samples.

:class:`InspectorWindow` (object name ``inspectorWindow``) holds one :class:`FileView` per open
file in closable tabs. A FileView shows the tree of groups and datasets of any HDF5 file (shape,
dtype, chunking, compression; attributes of the selected node) and, for a trajectory file of
ours, a summary with the experiment config as TOML and lazy views: samples and the marginal
histogram at the slider's row (with the exact p_t's 50%/90%-mass contours when the config has
Gaussian-mixture data and a linear SDE), particle paths of a chosen contiguous block of
particles, per-row statistics, an image grid for image data, the log-likelihood histogram, and
Compare: the final samples against the config's data set or another open file, with sliced
Wasserstein, MMD² and energy distance beside their noise floors, computed in a worker thread
that closing the file waits for. Nothing is read until a view is shown; moving the slider
reads one row. F5 re-opens the file to follow one still being written.

Opening never modifies a file: :class:`~workbench.io.trajectories.TrajectoryFile` opens it
read-only. Every failure is a one-line message in the window's banner and the ``failed`` signal.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from workbench.core.compare import COMPARE_REPEATS, COMPARE_SEED, compare_samples, subsample
from workbench.core.contours import HDR_MASSES, contour_segments, hdr_levels
from workbench.core.experiment import dataset_of, sde_of
from workbench.core.mixture import GaussianMixture
from workbench.core.reference import data_units_marginal
from workbench.core.sde import LinearSDE
from workbench.errors import WorkbenchError
from workbench.gui.plots.trajectories import image_mosaic, time_colormap
from workbench.gui.workers import Task
from workbench.io.printable import printable
from workbench.io.trajectories import TrajectoryFile

__all__ = [
    "InspectorWindow",
    "FileView",
    "ExportDialog",
    "benchmark_open_and_slider",
    "density_at",
]

SCATTER_POINTS = 2000  # particles drawn as dots at one row, at most (every k-th one)
PATH_PARTICLES = 200  # particles whose paths are drawn: the first ones (a contiguous block)
STATS_ROWS = 200  # rows read for the statistics plot, at most
HIST_BINS = 120  # most bins per axis (fewer for few samples: about sqrt(n) / 1.5)
IMAGE_SIDE = 8  # image grid: IMAGE_SIDE x IMAGE_SIDE
PLAY_INTERVAL_MS = 80
STATS_DIMS = 4  # per-dimension statistics for at most this many dimensions
EXPORT_FORMATS = ("npy", "npz", "csv", "h5", "png")
COMPARE_POINTS = 3000  # points per side for Compare, at most (subsampled with a fixed seed)
DENSITY_GRID = 120  # grid side for the analytic density contours
DATA_SET_CHOICE = "data set from the config"

INCOMPLETE_TEXT = (
    "This file is incomplete: its writer stopped before closing it; rows flushed so far are shown."
)
_YELLOW = "background:#fff3bf; color:#5c4400; border:1px solid #e0c060; padding:6px;"
_RED = "background:#ffe3e3; color:#8a1010; border:1px solid #e08080; padding:6px;"


def _banner(name: str, style: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel()
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setStyleSheet(style)
    label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
    label.hide()
    return label


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _storage(tf: TrajectoryFile, node: dict[str, Any]) -> tuple[str, str]:
    """Chunking and compression of a dataset node, as text."""
    chunks, comp = node.get("chunks"), node.get("compression")
    chunk_text = "contiguous" if chunks is None else " x ".join(str(c) for c in chunks)
    return chunk_text, comp or "none"


def _attr_text(value: Any) -> str:
    """A value for the tooltip: lines kept, other control codes escaped, at most 2000 chars."""
    return printable(value, 2000, keep_lines=True)


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


# ---------------------------------------------------------------------------------- analytic
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


# ---------------------------------------------------------------------------------- views
class _View(QtWidgets.QWidget):
    """One lazy view: ``draw()`` runs only while the view is shown (and again when stale)."""

    title = ""
    follows_slider = False

    def __init__(self, fv: FileView) -> None:
        super().__init__()
        self.fv = fv
        self.stale = True
        self.draws = 0

    def draw(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def redraw(self) -> None:
        self.stale = False
        self.draws += 1
        try:
            self.draw()
        except WorkbenchError as exc:
            self.fv.show_read_error(str(exc))


class SummaryView(_View):
    title = "Summary"

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        self.form = QtWidgets.QFormLayout()
        self.fields: dict[str, QtWidgets.QLabel] = {}
        for key, label in (
            ("sampler", "Sampler"),
            ("direction", "Direction"),
            ("nfe", "NFE"),
            ("n_samples", "Samples"),
            ("dim", "Dimension"),
            ("sample_shape", "Sample shape"),
            ("rows", "Saved rows"),
            ("t_range", "Times"),
            ("normalizer", "Normalisation"),
            ("complete", "Complete"),
            ("created", "Created"),
            ("software", "Software"),
        ):
            value = QtWidgets.QLabel()
            value.setObjectName(f"summary_{key}")
            value.setTextFormat(QtCore.Qt.PlainText)  # a file's "<b>" is text, not markup
            value.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
            self.fields[key] = value
            self.form.addRow(label + ":", value)
        layout.addLayout(self.form)
        layout.addWidget(QtWidgets.QLabel("Experiment config (TOML):"))
        self.config = QtWidgets.QPlainTextEdit()
        self.config.setObjectName("inspectorConfig")
        self.config.setReadOnly(True)
        self.config.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.FixedFont))
        layout.addWidget(self.config, 1)

    def draw(self) -> None:
        tf = self.fv.tf
        times = tf.times
        norm = tf.normalizer
        values = {
            "sampler": tf.sampler or "—",
            "direction": tf.direction or "—",
            "nfe": "—" if tf.nfe is None else str(tf.nfe),
            "n_samples": f"{tf.n_samples:,}",
            "dim": str(tf.dim),
            "sample_shape": str(tuple(tf.sample_shape)),
            "rows": str(tf.n_saved),
            "t_range": f"{times[0]:.4g} → {times[-1]:.4g}" if len(times) else "no rows",
            "normalizer": "none" if norm is None else str(norm.mode),
            "complete": "yes" if tf.complete else "no (writer stopped before closing)",
            "created": tf.created or "—",
            "software": tf.software or "—",
        }
        for key, text in values.items():
            self.fields[key].setText(printable(text))
        try:
            self.config.setPlainText(tf.config_text)
        except WorkbenchError as exc:
            self.config.setPlainText(f"# {exc}")


class SamplesView(_View):
    """The particles at the slider's row (a subsample) and their marginal histogram (all)."""

    title = "Samples"
    follows_slider = True

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("inspectorSamplesPlot")
        self.graphics.setBackground("w")
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
        self.scatter_plot.setTitle(f"samples at t = {t:.4g} (row {k}, {units})")
        self.hist_plot.setTitle(f"marginal histogram at t = {t:.4g} ({len(x):,} samples)")
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
        self.hist_plot.setTitle(
            f"histogram at t = {t:.4g} ({n:,}); lines: exact p_t, 50% / 90% of mass"
        )


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
        self.stale = True
        if self.isVisible():
            self.redraw()

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


class StatsView(_View):
    title = "Statistics"

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("inspectorStatsPlot")
        self.graphics.setBackground("w")
        layout.addWidget(self.graphics)
        self.stats: dict[str, np.ndarray] = {}

    def compute(self) -> dict[str, np.ndarray]:
        tf = self.fv.tf
        n = tf.n_saved
        rows = np.unique(np.linspace(0, n - 1, min(n, STATS_ROWS)).round().astype(int))
        per_dim = tf.dim <= STATS_DIMS
        out: dict[str, list[np.ndarray]] = {"mean": [], "std": [], "min": [], "max": []}
        for k in rows:
            x = tf.row(int(k), denormalise=True).astype(np.float64)
            if not per_dim:
                x = x.reshape(-1, 1)
            with np.errstate(invalid="ignore"):
                out["mean"].append(np.nanmean(np.where(np.isfinite(x), x, np.nan), 0))
                out["std"].append(np.nanstd(np.where(np.isfinite(x), x, np.nan), 0))
                out["min"].append(np.nanmin(np.where(np.isfinite(x), x, np.inf), 0))
                out["max"].append(np.nanmax(np.where(np.isfinite(x), x, -np.inf), 0))
        stats = {key: np.array(v) for key, v in out.items()}
        stats["t"] = tf.times[rows]
        stats["rows"] = rows
        return stats

    def draw(self) -> None:
        self.graphics.clear()
        tf = self.fv.tf
        if tf.n_saved == 0:
            self.stats = {}
            return
        self.stats = s = self.compute()
        names = [f"x{i + 1}" for i in range(tf.dim)] if tf.dim <= STATS_DIMS else ["all dimensions"]
        colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
        mean_plot = self.graphics.addPlot(row=0, col=0, title="mean with min/max band")
        std_plot = self.graphics.addPlot(row=1, col=0, title="standard deviation")
        mean_plot.addLegend(offset=(10, 10))
        std_plot.setXLink(mean_plot)
        for i, name in enumerate(names):
            c = colours[i % len(colours)]
            mean_plot.plot(s["t"], s["mean"][:, i], pen=pg.mkPen(c, width=2), name=name)
            lo = pg.PlotDataItem(s["t"], s["min"][:, i], pen=pg.mkPen((*c, 80)))
            hi = pg.PlotDataItem(s["t"], s["max"][:, i], pen=pg.mkPen((*c, 80)))
            mean_plot.addItem(lo)
            mean_plot.addItem(hi)
            mean_plot.addItem(pg.FillBetweenItem(lo, hi, brush=(*c, 30)))
            std_plot.plot(s["t"], s["std"][:, i], pen=pg.mkPen(c, width=2))
        for p in (mean_plot, std_plot):
            p.showGrid(x=True, y=True, alpha=0.2)
            p.setLabel("bottom", "t")
        if len(s["rows"]) < tf.n_saved:
            mean_plot.setTitle(f"mean with min/max band ({len(s['rows'])} of {tf.n_saved} rows)")


class ImagesView(_View):
    title = "Images"
    follows_slider = True

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("inspectorImagesPlot")
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        layout.addWidget(self.plot)

    def draw(self) -> None:
        tf, k = self.fv.tf, self.fv.row_index()
        if k is None:
            self.image.clear()
            return
        n = min(IMAGE_SIDE * IMAGE_SIDE, tf.n_samples)
        x = tf.row(k, particles=slice(0, n))
        self.image.setImage(image_mosaic(x, tf.sample_shape, IMAGE_SIDE), levels=(0, 255))
        self.plot.setTitle(f"first {n} images at t = {float(tf.times[k]):.4g} (model units)")


class LogpView(_View):
    title = "Log-likelihood"

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("inspectorLogpPlot")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        layout.addWidget(self.plot)

    def draw(self) -> None:
        lp = self.fv.tf.logp()
        finite = lp[np.isfinite(lp)]
        self.plot.clear()
        if finite.size == 0:
            self.plot.setTitle("no finite log-likelihoods")
            return
        counts, edges = np.histogram(finite, bins=min(HIST_BINS, max(10, finite.size // 20)))
        self.plot.addItem(
            pg.PlotDataItem(edges, counts, stepMode="center", fillLevel=0, brush=(44, 160, 44, 90))
        )
        self.plot.setLabels(bottom="log p(x) (nats)", left="samples")
        self.plot.setTitle(
            f"per-sample log-likelihood: mean {finite.mean():.4g}, {lp.size - finite.size} "
            "non-finite"
        )


# ---------------------------------------------------------------------------------- export
class CompareView(_View):
    """This file's final samples against the data set of its config or another open file's,
    overlaid, with the metrics beside their noise floors (computed in a worker thread)."""

    title = "Compare"

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        row = QtWidgets.QHBoxLayout()
        self.against = QtWidgets.QComboBox()
        self.against.setObjectName("compareAgainst")
        self.against.setMinimumContentsLength(28)
        self.against.addItem(DATA_SET_CHOICE, None)
        self.points = QtWidgets.QSpinBox()
        self.points.setObjectName("comparePoints")
        self.points.setRange(10, 100_000)
        self.points.setSingleStep(500)
        self.points.setValue(COMPARE_POINTS)
        self.points.setToolTip("points per side; larger samples are subsampled with a fixed seed")
        self.compute_button = QtWidgets.QPushButton("Compare")
        self.compute_button.setObjectName("compareButton")
        row.addWidget(QtWidgets.QLabel("Against:"))
        row.addWidget(self.against, 1)
        row.addWidget(QtWidgets.QLabel("Points per side (at most):"))
        row.addWidget(self.points)
        row.addWidget(self.compute_button)
        layout.addLayout(row)
        self.message = _banner("compareMessage", _YELLOW)
        layout.addWidget(self.message)
        self.status = QtWidgets.QLabel()
        self.status.setObjectName("compareStatus")
        layout.addWidget(self.status)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("comparePlot")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.legend = self.plot.addLegend(offset=(10, 10))
        self.table = QtWidgets.QTableWidget(0, 4)
        self.table.setObjectName("compareTable")
        self.table.setHorizontalHeaderLabels(
            ["Metric", "Value", "Noise floor (mean ± std)", "Verdict"]
        )
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMaximumHeight(140)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.table)
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.tasks: list[Task] = []
        self._generation = 0
        self.against.currentIndexChanged.connect(self._choice_changed)
        self.compute_button.clicked.connect(self.compute)

    # peers -------------------------------------------------------------------------------
    def set_peers(self, paths: list[Path]) -> None:
        """The other open files, offered beside the data set."""
        current = self.against.currentData()
        self.against.blockSignals(True)
        self.against.clear()
        self.against.addItem(DATA_SET_CHOICE, None)
        for path in paths:
            self.against.addItem(path.name, str(path))
            self.against.setItemData(self.against.count() - 1, str(path), QtCore.Qt.ToolTipRole)
        index = self.against.findData(current) if current is not None else 0
        self.against.setCurrentIndex(max(0, index))
        self.against.blockSignals(False)
        if current is not None and index < 0:
            self._choice_changed(0)

    def choices(self) -> list[str]:
        return [self.against.itemText(i) for i in range(self.against.count())]

    def _choice_changed(self, _index: int) -> None:
        self.stale = True
        if self.isVisible():
            self.redraw()

    # drawing -----------------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        self.error = _one_line(message)
        self.message.setText(self.error)
        self.message.show()
        self.status.setText("")

    def _dataset(self, tf: TrajectoryFile) -> Any:
        return dataset_of(tf.read_config())

    def draw(self) -> None:
        self.compute()

    def compute(self) -> None:
        """Read both samples (subsampled), draw the overlay, start the metrics in a Task."""
        import torch

        self._generation += 1
        generation = self._generation
        self.result, self.error = None, None
        self.message.hide()
        self.table.setRowCount(0)
        self.plot.clear()
        self.legend.clear()
        n_max = self.points.value()
        tf = self.fv.tf
        other = self.against.currentData()
        try:
            a = subsample(tf.samples(), n_max).astype(np.float64)
        except WorkbenchError as exc:
            return self._fail(str(exc))
        reference, floor_note = None, ""
        try:
            dataset = self._dataset(tf)
            if int(np.prod(dataset.sample_shape)) == a.shape[1]:
                reference = dataset
            else:
                floor_note = "the config's data set has another dimension"
        except WorkbenchError as exc:
            floor_note = f"no data set: {_one_line(exc)}"
        except Exception as exc:  # a bad config must not take the view down
            floor_note = f"no data set: {type(exc).__name__}: {_one_line(exc)}"
        if other is None:
            if reference is None:
                return self._fail(f"Cannot compare with the data set: {floor_note}")
            gen = torch.Generator().manual_seed(COMPARE_SEED)
            b = reference.sample(len(a), gen, dtype=torch.float64).reshape(len(a), -1).numpy()
            label_b = f"data set {tf.read_config().data.name!r} ({len(b):,} fresh draws)"
        else:
            try:
                with TrajectoryFile(other) as peer:
                    b = subsample(peer.samples(), n_max).astype(np.float64)
            except WorkbenchError as exc:
                return self._fail(str(exc))
            if b.shape[1] != a.shape[1]:
                return self._fail(
                    f"Cannot compare: {Path(other).name} has dimension {b.shape[1]}, "
                    f"this file {a.shape[1]}"
                )
            label_b = f"{Path(other).name} ({len(b):,} samples)"
        if floor_note and reference is None:
            self.message.setText(f"Noise floors not shown: {floor_note}")
            self.message.show()
        self.label_b = label_b
        self._overlay(a, b, f"{self.fv.path.name} ({len(a):,} samples)", label_b)
        self.status.setText(f"computing metrics on {min(len(a), len(b)):,} points per side…")
        self.compute_button.setEnabled(False)

        def work(ctx: Any) -> dict[str, Any]:
            return compare_samples(a, b, reference, cancelled=ctx.cancelled)

        task = Task("inspector-compare", work, self)
        task.done.connect(lambda result: self._done(generation, result))
        task.failed.connect(lambda msg, _details: self._failed(generation, msg))
        task.finished.connect(lambda: self._forget(task))
        self.tasks.append(task)
        self._started = time.perf_counter()
        task.start()

    def _forget(self, task: Task) -> None:
        if task in self.tasks:
            self.tasks.remove(task)
            task.deleteLater()

    def _overlay(self, a: np.ndarray, b: np.ndarray, label_a: str, label_b: str) -> None:
        blue, orange = (30, 90, 200), (230, 110, 20)
        if a.shape[1] == 1:
            lo = float(min(a.min(), b.min()))
            hi = float(max(a.max(), b.max()))
            edges = np.linspace(lo, hi if hi > lo else lo + 1, 81)
            for x, c, label in ((a, blue, label_a), (b, orange, label_b)):
                dens, _ = np.histogram(x[:, 0], bins=edges, density=True)
                self.plot.plot(edges, dens, stepMode="center", pen=pg.mkPen(c, width=2), name=label)
            self.plot.setLabels(bottom="x", left="density")
        else:
            for x, c, label in ((b, orange, label_b), (a, blue, label_a)):
                self.plot.plot(
                    x[:, 0],
                    x[:, 1],
                    pen=None,
                    symbol="o",
                    symbolSize=3,
                    symbolPen=None,
                    symbolBrush=(*c, 110),
                    name=label,
                )
            self.plot.setLabels(bottom="x1", left="x2")
        self.plot.setTitle("final samples (data units)")
        self.plot.autoRange()

    def _done(self, generation: int, result: dict[str, Any]) -> None:
        if generation != self._generation:
            return
        self.compute_button.setEnabled(True)
        self.result = result
        seconds = time.perf_counter() - self._started
        metrics = result["metrics"]
        self.table.setRowCount(len(metrics))
        for r, (name, (value, floor)) in enumerate(metrics.items()):
            if floor is None:
                floor_text, verdict = "—", "no floor (no data set)"
            else:
                mean, std = floor
                floor_text = f"{mean:.4g} ± {std:.2g}"
                sigmas = (value - mean) / max(std, 1e-12)
                if value <= mean + 3 * std:
                    verdict = "within the noise floor"
                elif sigmas < 10:
                    verdict = f"slightly above the floor ({sigmas:.1f} std)"
                else:
                    verdict = f"far above the floor ({sigmas:.0f} std)"
            for c, text in enumerate((name, f"{value:.4g}", floor_text, verdict)):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.status.setText(
            f"{result['n']:,} points per side; floors over {COMPARE_REPEATS} pairs of fresh "
            f"data-set draws of the same size; {seconds:.1f} s"
        )

    def _failed(self, generation: int, message: str) -> None:
        if generation != self._generation:
            return
        self.compute_button.setEnabled(True)
        self._fail(f"Metrics failed: {message}")

    def busy(self) -> bool:
        return any(task.isRunning() for task in self.tasks)

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Cancel running metric tasks and wait for their threads."""
        self._generation += 1
        for task in list(self.tasks):
            task.cancel()
            task.wait(timeout_ms)


class ExportDialog(QtWidgets.QDialog):
    """Export samples of one file with :func:`workbench.io.export.export_samples`."""

    def __init__(
        self, tf: TrajectoryFile, parent: QtWidgets.QWidget | None = None, row: int | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export samples")
        self.tf = tf
        self.exported: Path | None = None
        self.report: str | None = None
        self.error: str | None = None
        # Asked before replacing an existing file; tests replace it.
        self.confirm_overwrite: Callable[[Path], bool] = self._ask_overwrite

        form = QtWidgets.QFormLayout()
        self.row_box = QtWidgets.QComboBox()
        self.row_box.setObjectName("exportRow")
        self.row_box.addItem("final samples", None)
        times, steps = tf.times, tf.steps
        for k in range(tf.n_saved):
            self.row_box.addItem(f"row {k}: t = {times[k]:.4g}, step {int(steps[k])}", k)
        if row is not None:
            self.row_box.setCurrentIndex(row + 1)
        form.addRow("Which samples:", self.row_box)
        self.n_box = QtWidgets.QSpinBox()
        self.n_box.setObjectName("exportCount")
        self.n_box.setRange(1, max(1, tf.n_samples))
        self.n_box.setValue(tf.n_samples)
        self.n_box.setGroupSeparatorShown(True)
        form.addRow("How many:", self.n_box)
        self.format_box = QtWidgets.QComboBox()
        self.format_box.setObjectName("exportFormat")
        image = len(tf.sample_shape) >= 2
        for fmt in EXPORT_FORMATS:
            if fmt != "png" or image:
                self.format_box.addItem(fmt)
        form.addRow("Format:", self.format_box)
        self.denormalise_box = QtWidgets.QCheckBox("denormalised (data units)")
        self.denormalise_box.setObjectName("exportDenormalise")
        self.denormalise_box.setChecked(True)
        form.addRow("Units:", self.denormalise_box)
        dest = QtWidgets.QHBoxLayout()
        self.path_edit = QtWidgets.QLineEdit()
        self.path_edit.setObjectName("exportPath")
        self.path_edit.setText(str(tf.path.with_name(tf.path.stem + "_samples.npy")))
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        dest.addWidget(self.path_edit, 1)
        dest.addWidget(browse)
        form.addRow("Destination:", dest)
        self.format_box.currentTextChanged.connect(self._format_changed)

        self.message = _banner("exportMessage", _RED)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setObjectName("exportProgress")
        self.progress.setRange(0, 1000)
        self.progress.hide()
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel
        )
        buttons.button(QtWidgets.QDialogButtonBox.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.progress)
        layout.addWidget(buttons)

    def _format_changed(self, fmt: str) -> None:
        path = Path(self.path_edit.text())
        if path.suffix.lower().lstrip(".") in EXPORT_FORMATS and fmt:
            self.path_edit.setText(str(path.with_suffix("." + fmt)))

    def _browse(self) -> None:
        fmt = self.format_box.currentText()
        name, _ = QtWidgets.QFileDialog.getSaveFileName(
            self,
            "Export samples",
            self.path_edit.text(),
            f"{fmt} files (*.{fmt});;All files (*)",
            options=QtWidgets.QFileDialog.DontConfirmOverwrite,
        )
        if name:
            self.path_edit.setText(name)

    def _ask_overwrite(self, path: Path) -> bool:
        answer = QtWidgets.QMessageBox.question(
            self, "Export samples", f"{path} already exists. Replace it?"
        )
        return answer == QtWidgets.QMessageBox.Yes

    def options(self) -> dict[str, Any]:
        """The export_samples keyword arguments the fields describe (without force)."""
        k = self.row_box.currentData()
        opts: dict[str, Any] = {
            "fmt": self.format_box.currentText(),
            "n": int(self.n_box.value()),
            "denormalise": self.denormalise_box.isChecked(),
        }
        if k is not None:
            opts["step"] = int(self.tf.steps[int(k)])
        return opts

    def _fail(self, message: str) -> None:
        self.error = _one_line(message)
        self.message.setText(self.error)
        self.message.show()

    def accept(self) -> None:
        from workbench.io.export import run_export

        text = self.path_edit.text().strip()
        if not text:
            self._fail("give a destination file")
            return
        out = Path(text).expanduser()
        force = False
        if out.exists():
            if not self.confirm_overwrite(out):
                self._fail(f"{out} already exists and was kept; choose another destination")
                return
            force = True
        self.progress.setValue(0)
        self.progress.show()
        big = self.n_box.value() * self.tf.dim >= 5_000_000

        def progress(fraction: float) -> None:
            self.progress.setValue(int(1000 * fraction))
            if big:
                QtWidgets.QApplication.processEvents(QtCore.QEventLoop.ExcludeUserInputEvents)

        try:
            result = run_export(self.tf, out, force=force, progress=progress, **self.options())
        except WorkbenchError as exc:
            self.progress.hide()
            self._fail(str(exc))
            return
        except OSError as exc:
            self.progress.hide()
            self._fail(f"cannot write {out}: {exc.strerror or exc}")
            return
        self.exported = result.path
        # which samples went out (final samples or row k, step, t), for the window to show
        self.report = result.describe()
        self.error = None
        self.progress.setValue(1000)
        super().accept()


# ---------------------------------------------------------------------------------- file view
class FPKView(QtWidgets.QWidget):
    """A Fokker–Planck solution (/fpk, from ``sde-workbench fpk``): p_t on its grid at the
    stored time the slider picks; a curve in 1-D, an image in 2-D (model units)."""

    def __init__(self, path: Path, parent: QtWidgets.QWidget | None = None) -> None:
        from workbench.io.fpk_file import read_fpk

        super().__init__(parent)
        self.setObjectName("fpkView")
        self.data = read_fpk(path)  # WorkbenchError: the FileView shows it
        self.slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
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


class FileView(QtWidgets.QWidget):
    """One open file: its tree and attributes, and for our format the summary and views."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        parent: QtWidgets.QWidget | None = None,
        *,
        allow_external: bool = False,
    ):
        super().__init__(parent)
        self.setObjectName("inspectorFileView")
        self.path = Path(path)
        # raises WorkbenchError; external references outside the folder only if allowed
        self.tf = TrajectoryFile(self.path, foreign_ok=True, allow_external=allow_external)
        self.is_trajectory = bool(self.tf.is_trajectory_file)
        self.nodes: list[dict[str, Any]] = []
        self.export_dialog: ExportDialog | None = None
        self.confirm_overwrite: Callable[[Path], bool] | None = None

        self.incomplete_banner = _banner("incompleteBanner", _YELLOW)
        self.incomplete_banner.setText(INCOMPLETE_TEXT)
        self.error_banner = _banner("readErrorBanner", _RED)

        # left: tree + attributes
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setObjectName("inspectorTree")
        self.tree.setHeaderLabels(["Name", "Shape", "Dtype", "Chunks", "Compression"])
        self.tree.setAlternatingRowColors(True)
        self.tree.currentItemChanged.connect(self._node_selected)
        self.attrs = QtWidgets.QTableWidget(0, 2)
        self.attrs.setObjectName("inspectorAttributes")
        self.attrs.setHorizontalHeaderLabels(["Attribute", "Value"])
        self.attrs.horizontalHeader().setStretchLastSection(True)
        self.attrs.verticalHeader().hide()
        self.attrs.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.attrs.setWordWrap(False)
        self.attrs.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        left = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        left.addWidget(self.tree)
        left.addWidget(self.attrs)
        left.setSizes([400, 250])

        # right: controls + views
        right = QtWidgets.QWidget()
        rlay = QtWidgets.QVBoxLayout(right)
        rlay.setContentsMargins(0, 0, 0, 0)
        self.views = QtWidgets.QTabWidget()
        self.views.setObjectName("inspectorViews")
        self.view_list: list[_View] = []
        self.slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.slider.setObjectName("inspectorTimeSlider")
        self.play_button = QtWidgets.QPushButton("Play")
        self.play_button.setObjectName("inspectorPlayButton")
        self.play_button.setCheckable(True)
        self.time_label = QtWidgets.QLabel()
        self.time_label.setObjectName("inspectorTimeLabel")
        self.time_label.setMinimumWidth(220)
        self.export_button = QtWidgets.QPushButton("Export samples…")
        self.export_button.setObjectName("inspectorExportButton")
        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(QtWidgets.QLabel("Row:"))
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.time_label)
        controls.addWidget(self.export_button)
        self.controls = QtWidgets.QWidget()
        self.controls.setLayout(controls)
        rlay.addWidget(self.controls)
        rlay.addWidget(self.views, 1)

        if self.is_trajectory:
            self.summary_view = SummaryView(self)
            self.samples_view = SamplesView(self)
            self._add_view(self.summary_view)
            self._add_view(self.samples_view)
            self.paths_view = PathsView(self)
            self._add_view(self.paths_view)
            self.stats_view = StatsView(self)
            self._add_view(self.stats_view)
            self.images_view = ImagesView(self) if len(self.tf.sample_shape) >= 2 else None
            if self.images_view is not None:
                self._add_view(self.images_view)
            self.logp_view = LogpView(self) if self.tf.has_logp else None
            if self.logp_view is not None:
                self._add_view(self.logp_view)
            self.compare_view = CompareView(self)
            self._add_view(self.compare_view)
        else:
            self.controls.hide()
            self.fpk_view: FPKView | None = None
            from workbench.io.fpk_file import has_fpk

            if has_fpk(self.path):
                self.fpk_view = FPKView(self.path)
                self.views.addTab(self.fpk_view, "Fokker–Planck p_t")
            note = QtWidgets.QLabel(
                "Not an SDE Workbench trajectory file: browse its groups, datasets and "
                "attributes in the tree."
            )
            note.setObjectName("foreignNote")
            note.setWordWrap(True)
            note.setAlignment(QtCore.Qt.AlignTop | QtCore.Qt.AlignLeft)
            self.views.addTab(note, "About")
        self.views.currentChanged.connect(lambda _: self._draw_current())

        splitter = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([430, 900])
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.incomplete_banner)
        layout.addWidget(self.error_banner)
        layout.addWidget(splitter, 1)

        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(PLAY_INTERVAL_MS)
        self._timer.timeout.connect(self._advance)
        self.play_button.toggled.connect(self._play)
        self.slider.valueChanged.connect(self._row_changed)
        self.export_button.clicked.connect(self.open_export_dialog)
        self._load()

    # ------------------------------------------------------------------ building and loading
    def _add_view(self, view: _View) -> None:
        self.view_list.append(view)
        self.views.addTab(view, view.title)

    def _load(self) -> None:
        """Fill the tree and the slider from the (re-)opened file; views become stale."""
        self._fill_tree()
        self.incomplete_banner.setVisible(self.is_trajectory and not self.tf.complete)
        if not self.is_trajectory:
            return
        n = self.tf.n_saved
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n - 1))
        self.slider.setEnabled(n > 0)
        self.play_button.setEnabled(n > 1)
        self.slider.blockSignals(False)
        self._update_time_label()
        for view in self.view_list:
            view.stale = True
        self._draw_current()

    def _fill_tree(self) -> None:
        self.tree.clear()
        try:
            self.nodes = self.tf.nodes()
        except WorkbenchError as exc:
            self.nodes = []
            self.show_read_error(str(exc))
            return
        items: dict[str, QtWidgets.QTreeWidgetItem] = {}
        for node in self.nodes:
            name = node["name"]
            if name == "/":
                item = QtWidgets.QTreeWidgetItem([self.path.name + " (/)", "", "group", "", ""])
                self.tree.addTopLevelItem(item)
            else:
                parent_name = name.rsplit("/", 1)[0] or "/"
                parent = items.get(parent_name)
                label = printable(name.rsplit("/", 1)[1])
                if node["kind"] == "dataset":
                    shape = " x ".join(str(s) for s in node.get("shape", [])) or "scalar"
                    chunks, comp = _storage(self.tf, node)
                    cols = [label, shape, node.get("dtype", ""), chunks, comp]
                else:
                    cols = [label, "", "group", "", ""]
                item = QtWidgets.QTreeWidgetItem(cols)
                (parent.addChild(item) if parent is not None else self.tree.addTopLevelItem(item))
            item.setData(0, QtCore.Qt.UserRole, name)
            items[name] = item
        self.tree.expandAll()
        for c in range(5):
            self.tree.resizeColumnToContents(c)
        if self.tree.topLevelItemCount():
            self.tree.setCurrentItem(self.tree.topLevelItem(0))

    def tree_paths(self) -> dict[str, QtWidgets.QTreeWidgetItem]:
        """Every tree item by its HDF5 path."""
        out = {}
        it = QtWidgets.QTreeWidgetItemIterator(self.tree)
        while it.value():
            item = it.value()
            out[item.data(0, QtCore.Qt.UserRole)] = item
            it += 1
        return out

    def _node_selected(self, item: QtWidgets.QTreeWidgetItem | None, _prev: Any = None) -> None:
        self.attrs.setRowCount(0)
        if item is None:
            return
        name = item.data(0, QtCore.Qt.UserRole)
        node = next((n for n in self.nodes if n["name"] == name), None)
        attrs = {} if node is None else node.get("attrs", {})
        self.attrs.setRowCount(len(attrs))
        for r, (key, value) in enumerate(attrs.items()):
            # names and values are the writer's: escaped (and shortened) as `inspect` shows them
            self.attrs.setItem(r, 0, QtWidgets.QTableWidgetItem(printable(key)))
            cell = QtWidgets.QTableWidgetItem(printable(value) if value else "")
            cell.setToolTip(_attr_text(value))
            self.attrs.setItem(r, 1, cell)
        self.attrs.resizeColumnToContents(0)

    def attributes_shown(self) -> dict[str, str]:
        return {
            self.attrs.item(r, 0).text(): self.attrs.item(r, 1).toolTip()
            for r in range(self.attrs.rowCount())
        }

    # ------------------------------------------------------------------ slider and views
    def row_index(self) -> int | None:
        return self.slider.value() if self.is_trajectory and self.tf.n_saved > 0 else None

    def _update_time_label(self) -> None:
        k = self.row_index()
        if k is None:
            self.time_label.setText("no rows recorded")
            return
        t, step = float(self.tf.times[k]), int(self.tf.steps[k])
        self.time_label.setText(f"row {k + 1}/{self.tf.n_saved}  t = {t:.4g}  step {step}")

    def _row_changed(self, _value: int) -> None:
        self._update_time_label()
        for view in self.view_list:
            if view.follows_slider:
                view.stale = True
        self._draw_current()

    def _draw_current(self) -> None:
        view = self.views.currentWidget()
        if isinstance(view, _View) and view.stale and self.tf is not None:
            view.redraw()

    def show_view(self, title: str) -> _View:
        for i, view in enumerate(self.view_list):
            if view.title == title:
                self.views.setCurrentIndex(i)
                self._draw_current()
                return view
        raise KeyError(title)

    def _play(self, on: bool) -> None:
        self.play_button.setText("Pause" if on else "Play")
        if on:
            if self.slider.value() >= self.slider.maximum():
                self.slider.setValue(0)
            self._timer.start()
        else:
            self._timer.stop()

    def _advance(self) -> None:
        if self.slider.value() >= self.slider.maximum():
            self.play_button.setChecked(False)
        else:
            self.slider.setValue(self.slider.value() + 1)

    def show_read_error(self, message: str) -> None:
        self.error_banner.setText(_one_line(message))
        self.error_banner.show()

    # ------------------------------------------------------------------ refresh, export, close
    def refresh(self) -> None:
        """Re-open the file (F5): new rows of a file being written, its completion."""
        self.play_button.setChecked(False)
        at_end = self.slider.value() >= self.slider.maximum()
        try:
            self.tf.refresh()
        except WorkbenchError as exc:
            self.show_read_error(str(exc))
            return
        self.error_banner.hide()
        self._load()
        if at_end and self.is_trajectory:
            self.slider.setValue(self.slider.maximum())

    def open_export_dialog(self) -> ExportDialog:
        """The export dialog, shown non-modally (tests set its fields and call accept())."""
        dlg = ExportDialog(self.tf, self, row=None)
        if self.confirm_overwrite is not None:
            dlg.confirm_overwrite = self.confirm_overwrite
        self.export_dialog = dlg
        dlg.show()
        return dlg

    def close_file(self) -> None:
        """Stop playing, wait for the Compare worker thread, close the file."""
        self._timer.stop()
        if self.is_trajectory:
            self.compare_view.shutdown()
        self.tf.close()


# ---------------------------------------------------------------------------------- window
class InspectorWindow(QtWidgets.QMainWindow):
    """Trajectory files, one tab each; ``open(path)`` never raises."""

    opened = QtCore.Signal(str)
    failed = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inspectorWindow")
        self.setWindowTitle("SDE Workbench — Inspector")
        self.confirm_overwrite: Callable[[Path], bool] | None = None
        self.last_error: str | None = None
        # Files are first walked by the HDF5 library in a child process (a crafted file that
        # crashes it costs a banner, not the app); references to files outside the file's
        # folder are followed only if this says yes (tests replace it).
        self.validate_in_child = True
        self.allow_external: Callable[[Path, list[str]], bool] = self._ask_external
        self.banner = _banner("inspectorBanner", _RED)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setObjectName("inspectorTabs")
        self.tabs.setTabsClosable(True)
        self.tabs.setDocumentMode(True)
        self.tabs.tabCloseRequested.connect(self.close_tab)
        self.placeholder = QtWidgets.QLabel(
            "Open a trajectory file (.h5) with File > Open trajectory file, or drop one on the "
            "main window."
        )
        self.placeholder.setAlignment(QtCore.Qt.AlignCenter)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.placeholder, 1)
        self.setCentralWidget(central)
        self.tabs.hide()

        menu = self.menuBar().addMenu("&File")
        self.open_action = menu.addAction("&Open…", self._open_dialog)
        self.open_action.setShortcut(QtGui.QKeySequence.Open)
        self.refresh_action = menu.addAction("&Refresh", self.refresh)
        self.refresh_action.setShortcut(QtGui.QKeySequence.Refresh)
        self.refresh_action.setShortcutContext(QtCore.Qt.WindowShortcut)
        self.export_action = menu.addAction("&Export samples…", self._export)
        menu.addSeparator()
        menu.addAction("&Close file", lambda: self.close_tab(self.tabs.currentIndex()))
        self.resize(1400, 850)

    def views(self) -> list[FileView]:
        return [self.tabs.widget(i) for i in range(self.tabs.count())]

    def current(self) -> FileView | None:
        w = self.tabs.currentWidget()
        return w if isinstance(w, FileView) else None

    def open(self, path: str | os.PathLike[str]) -> bool:
        """Open ``path`` in a new tab (or switch to it); False, a banner and ``failed`` if not."""
        path = Path(path)
        for i, view in enumerate(self.views()):
            if view.path.resolve() == path.resolve():
                self.tabs.setCurrentIndex(i)
                view.refresh()
                return True
        try:
            allow = self._check_in_child(path)
            view = FileView(path, allow_external=allow)
        except WorkbenchError as exc:
            return self._failed(str(exc))
        except Exception as exc:  # a bad file must never take the app down
            return self._failed(f"{path}: cannot be shown ({type(exc).__name__}: {exc})")
        view.confirm_overwrite = self.confirm_overwrite
        index = self.tabs.addTab(view, path.name)
        self.tabs.setTabToolTip(index, str(path))
        self.tabs.setCurrentIndex(index)
        self.tabs.show()
        self.placeholder.hide()
        self.banner.hide()
        self._peers_changed()
        self.last_error = None
        self.opened.emit(str(path))
        return True

    def _check_in_child(self, path: Path) -> bool:
        """Walk ``path`` with HDF5 in a child process first (WorkbenchError if that crashes,
        hangs or runs out of memory); whether the user allows its references outside its
        folder (False when it has none)."""
        if not self.validate_in_child:
            return False
        from workbench.io.safety import outside_folder, validate_in_child

        report = validate_in_child(path)
        outside = outside_folder(report["external"], path)
        if not outside:
            return False
        return bool(self.allow_external(path, [r.describe() for r in outside]))

    def _ask_external(self, path: Path, references: list[str]) -> bool:
        shown = "\n".join(references[:10]) + ("\n…" if len(references) > 10 else "")
        answer = QtWidgets.QMessageBox.question(
            self,
            "SDE Workbench — external references",
            f"{path.name} refers to files outside its folder:\n\n{shown}\n\nReading those "
            "parts reads the other files. Follow these references?",
            QtWidgets.QMessageBox.Yes | QtWidgets.QMessageBox.No,
            QtWidgets.QMessageBox.No,
        )
        return answer == QtWidgets.QMessageBox.Yes

    def _failed(self, message: str) -> bool:
        self.last_error = _one_line(message)
        self.banner.setText(self.last_error)
        self.banner.show()
        self.failed.emit(self.last_error)
        return False

    def close_tab(self, index: int) -> None:
        view = self.tabs.widget(index)
        if isinstance(view, FileView):
            self.tabs.removeTab(index)
            view.close_file()
            view.deleteLater()
        if self.tabs.count() == 0:
            self.tabs.hide()
            self.placeholder.show()
        self._peers_changed()

    def _peers_changed(self) -> None:
        """Offer every open trajectory file to the others' Compare view."""
        files = [v for v in self.views() if isinstance(v, FileView) and v.is_trajectory]
        for view in files:
            view.compare_view.set_peers([o.path for o in files if o is not view])

    def shutdown(self) -> None:
        """Close every file, waiting for worker threads (also run by closeEvent)."""
        while self.tabs.count():
            self.close_tab(0)

    def refresh(self) -> None:
        view = self.current()
        if view is not None:
            view.refresh()

    def _open_dialog(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open trajectory file", "", "HDF5 files (*.h5 *.hdf5);;All files (*)"
        )
        if name:
            self.open(name)

    def _export(self) -> None:
        view = self.current()
        if view is not None and view.is_trajectory:
            view.open_export_dialog()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)


# ---------------------------------------------------------------------------------- benchmark
def benchmark_open_and_slider(path: str | os.PathLike[str], moves: int = 20) -> dict[str, float]:
    """Seconds to open ``path`` in a fresh inspector, to draw the samples view first, and the
    median of ``moves`` slider moves (each reads a row, histograms it and redraws)."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    window = InspectorWindow()
    window.show()
    try:
        start = time.perf_counter()
        ok = window.open(path)
        app.processEvents()
        open_s = time.perf_counter() - start
        if not ok:
            raise WorkbenchError(window.last_error or f"cannot open {path}")
        view = window.current()
        assert view is not None
        start = time.perf_counter()
        view.show_view("Samples")
        app.processEvents()
        first_s = time.perf_counter() - start
        n = view.tf.n_saved
        rows = np.linspace(0, n - 1, moves + 1).round().astype(int)[1:][::-1]
        times = []
        for k in rows:
            start = time.perf_counter()
            view.slider.setValue(int(k))
            app.processEvents()
            times.append(time.perf_counter() - start)
        return {
            "open_s": open_s,
            "first_draw_s": first_s,
            "slider_median_s": float(np.median(times)),
            "slider_max_s": float(max(times)),
            "rows": float(n),
            "n_samples": float(view.tf.n_samples),
            "file_bytes": float(Path(path).stat().st_size),
        }
    finally:
        window.close()
        window.deleteLater()


if __name__ == "__main__":  # pragma: no cover - manual benchmark
    import sys

    print(benchmark_open_and_slider(sys.argv[1]))
    sys.exit(0)
