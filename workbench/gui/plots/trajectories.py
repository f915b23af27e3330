"""The Trajectories tab: particle paths of the last sampling run, and where they are at t.

The file holds model (normalised) units, as the sampler saw them; the paths are drawn in data
units (the file's normaliser, else the experiment's: x = shift + scale y) unless the window's
"model units" switch is on (:class:`workbench.gui.state.Units`).

- 2-D data: the paths of a contiguous block of particles (the first k, 40 by default: the file
  is chunked by row, so a contiguous block reads a handful of chunks per row) drawn as line
  segments coloured by time, from t = T (light) to t = 0 (dark), with a colour bar. The
  segments are grouped into TIME_BANDS bands of time, one ``PlotDataItem(connect="pairs")`` in
  one colour each: a few items, however many paths. The defaults are chosen to read: 40 paths
  at opacity ~0.35 (fainter for more), so the final structure shows through them; the last
  row's samples (the sampler's result, up to FINAL_POINTS of them) as a grey scatter, the
  paths' end points at t = eps as dark dots, and the block's particles at the slider's t as
  outlined dots. Data with more than two coordinates show the first two.
- 1-D data: the paths as x against t (t from T on the left to 0 on the right), coloured the
  same way, a vertical marker at the slider's t and the particles there as dots.
- Images: a GRID_SIDE x GRID_SIDE grid of the trajectory's first images at the row nearest the
  slider's t, on grey levels [-1, 1] in model units (the first channel, or RGB).

The block's paths are read once per trajectory (and again only when a larger block is asked
for); moving the slider only moves the dots or swaps the image grid. A repaint still paints
every segment (Qt's item caches were measured slower here), so the segments drawn are capped at
MAX_SEGMENTS: many long paths are drawn through every s-th row.

Play animates t from T down to 0 at ~30 frames a second by emitting ``timeRequested(t)``: a
main window connects it to its time slider, whose move comes back through ``set_time``. With no
one connected the tab moves its own dots. A second click stops.
"""

from __future__ import annotations

import collections
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from workbench.core.samplers import SAMPLERS
from workbench.core.study import is_stochastic
from workbench.errors import WorkbenchError
from workbench.gui.plots.base import PlotTab
from workbench.gui.state import Units

if TYPE_CHECKING:
    from workbench.gui.state import ExperimentState

__all__ = [
    "TrajectoryTab",
    "PathBlock",
    "band_segments",
    "image_mosaic",
    "DEFAULT_PATHS",
    "PATH_OPACITY",
    "path_alpha",
    "MIN_PATHS",
    "MAX_PATHS",
    "TIME_BANDS",
    "GRID_SIDE",
    "HINT",
]

DEFAULT_PATHS = 40
# the opacity of the default number of paths; more paths are drawn fainter (see path_alpha)
PATH_OPACITY = 0.35
MIN_PATHS = 10
MAX_PATHS = 2000
TIME_BANDS = 16
GRID_SIDE = 6  # images: GRID_SIDE x GRID_SIDE tiles
FINAL_POINTS = 5000  # the last row's samples drawn faintly, at most this many
MAX_BLOCK_BYTES = 64 * 1024 * 1024  # images: all rows of the grid's images at once up to this
CACHED_ROWS = 32  # else rows as they are shown, this many kept
# Segments drawn at most (~40 ms a repaint on one CPU core): longer paths are drawn through every
# s-th row, never fewer than MIN_DRAWN_ROWS (the dots always use every row)
MAX_SEGMENTS = 250_000
MIN_DRAWN_ROWS = 100
FRAME_MS = 33  # ~30 frames a second
PLAY_SECONDS = 4.0  # from T to 0
FADE = 0.7  # path segments near t = T are drawn (1 - FADE) as opaque as those near t = 0
HINT = "sample to see trajectories (Sampling panel → Sample)"

_FINAL = (60, 60, 60, 80)
_ENDS = "#0d0887"  # the time colour map at t = 0: the paths' ends are their own darkest point
_MARKER = "#ff4d4d"
_DOTS = "#111111"
# t = 0 dark (the data end, where the structure is), t = T light (the noise end)
_CMAP_SPAN = (0.0, 0.88)

_READ_ERRORS = (WorkbenchError, OSError, ValueError, RuntimeError, KeyError, IndexError)


def draws_noise(sampler: str) -> bool:
    """Whether the registered sampler ``sampler`` draws noise after x_T, as its class declares
    (:func:`~workbench.core.study.is_stochastic` of the class). A sampler whose randomness
    depends on its settings (DDIM's eta, Karras's churn: set per instance, over the class's
    default True) or an unknown name counts as stochastic."""
    return sampler not in SAMPLERS or is_stochastic(SAMPLERS.get(sampler))


def time_colormap() -> pg.ColorMap:
    """The colours of t in [0, 1] x T: plasma from dark blue (t = 0) to orange (t = T)."""
    base = pg.colormap.get("plasma")
    lo, hi = _CMAP_SPAN
    pos = np.linspace(0.0, 1.0, 32)
    colours = base.map(lo + (hi - lo) * pos, mode="qcolor")
    return pg.ColorMap(pos, colours)


# ------------------------------------------------------------------------------------ numerics
def band_segments(
    paths: np.ndarray,
    times: np.ndarray,
    lo: float,
    hi: float,
    bands: int = TIME_BANDS,
    abscissa_is_time: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The path segments between consecutive rows, grouped into ``bands`` bands of time.

    ``paths`` is (rows, k, dim); a segment from row j to j + 1 falls in the band of its middle
    time on [lo, hi]. Returns, per band, x and y arrays of segment end points (two per segment,
    for ``connect="pairs"``): (x1, x2) of the paths, or (t, x1) with ``abscissa_is_time``.
    Segments with a non-finite end are left out.
    """
    rows = paths.shape[0]
    out: list[tuple[np.ndarray, np.ndarray]] = []
    empty = (np.empty(0), np.empty(0))
    if rows < 2:
        return [empty] * bands
    mid = 0.5 * (times[:-1] + times[1:])
    span = hi - lo if hi > lo else 1.0
    band = np.clip(np.floor((mid - lo) / span * bands), 0, bands - 1).astype(np.int64)
    k = paths.shape[1]
    for b in range(bands):
        js = np.flatnonzero(band == b)
        if js.size == 0:
            out.append(empty)
            continue
        if abscissa_is_time:
            a = np.stack([np.broadcast_to(times[js, None], (js.size, k)), paths[js, :, 0]], -1)
            c = np.stack(
                [np.broadcast_to(times[js + 1, None], (js.size, k)), paths[js + 1, :, 0]], -1
            )
        else:
            a, c = paths[js, :, :2], paths[js + 1, :, :2]
        ok = np.isfinite(a).all(-1) & np.isfinite(c).all(-1)
        pts = np.stack([a, c], axis=2)[ok]  # (segments, 2 ends, 2 coordinates)
        out.append((pts[..., 0].ravel(), pts[..., 1].ravel()))
    return out


def image_mosaic(flat: np.ndarray, sample_shape: tuple[int, ...], side: int = GRID_SIDE):
    """RGB uint8 mosaic (width, height, 3) of up to side² images, [-1, 1] on grey levels.

    ``flat`` is (n, prod(sample_shape)); images are channel-first (c, h, w) or (h, w). One
    channel (or any count but 3) shows its first channel in grey, three show as RGB. Tiles are
    separated by 2 px white gaps; non-finite values show black.
    """
    shape = tuple(sample_shape)
    c, hgt, wid = (1, *shape[-2:]) if len(shape) == 2 else shape[-3:]
    imgs = np.nan_to_num(flat[: side * side].reshape(-1, c, hgt, wid), nan=-1.0)
    grey = np.clip((imgs + 1.0) * 127.5, 0, 255).astype(np.uint8)
    rgb = grey[:, :3] if c == 3 else np.repeat(grey[:, :1], 3, axis=1)
    gap = 2
    out = np.full((side * (hgt + gap) - gap, side * (wid + gap) - gap, 3), 255, np.uint8)
    for i in range(rgb.shape[0]):
        r, q = divmod(i, side)
        y, x = r * (hgt + gap), q * (wid + gap)
        out[y : y + hgt, x : x + wid] = rgb[i].transpose(1, 2, 0)
    return out.transpose(1, 0, 2)  # ImageItem: axis 0 is horizontal


def path_alpha(k: int) -> int:
    """The opacity (0-255) of k paths: PATH_OPACITY for DEFAULT_PATHS, falling as 1/sqrt(k)
    (the ink per unit area of k overlapping random paths then stays about the same)."""
    alpha = 255 * PATH_OPACITY * math.sqrt(DEFAULT_PATHS / max(int(k), 1))
    return int(np.clip(alpha, 20, 200))


def _is_image(sample_shape: tuple[int, ...]) -> bool:
    return len(sample_shape) >= 2 and math.prod(sample_shape[-2:]) > 1


class PathBlock:
    """What the tab reads of one trajectory file: its times, the first k particles' paths
    (rows, k, c) in model units, and a sample of the last row. Read once, grown on demand.

    Vectors keep their first two coordinates (c <= 2): all the views draw. Images keep every
    value of the first GRID_SIDE² particles, all rows at once when that is at most
    MAX_BLOCK_BYTES, else row by row as they are shown (a few recent rows kept).
    """

    def __init__(self, trajectory: Any, k: int) -> None:
        self.trajectory = trajectory
        self.name = Path(str(trajectory.path)).name
        self.n_saved = int(trajectory.n_saved)
        self.n_samples = int(trajectory.n_samples)
        self.dim = int(trajectory.dim)
        self.sample_shape = tuple(int(s) for s in trajectory.sample_shape)
        self.sampler = trajectory.sampler or "?"
        self.draws_noise = draws_noise(self.sampler)
        self.nfe = trajectory.nfe
        self.complete = bool(getattr(trajectory, "complete", True))
        self.normalizer = getattr(trajectory, "normalizer", None)
        if self.n_saved == 0:
            raise WorkbenchError(
                f"{self.name} holds no trajectory rows: its writer stopped before recording any"
                + ("" if self.complete else " (the file is incomplete)")
            )
        self.times = np.asarray(trajectory.times, dtype=np.float64)
        finite = self.times[np.isfinite(self.times)]
        if finite.size == 0:
            raise WorkbenchError(f"{self.name}: its row times are not finite numbers")
        self.t_lo = min(0.0, float(finite.min()))
        self.t_hi = float(finite.max())
        if self.t_hi <= self.t_lo:
            self.t_hi = self.t_lo + 1.0
        self.is_image = _is_image(self.sample_shape)
        self.coords = self.dim if self.is_image else min(self.dim, 2)
        self.paths = np.empty((self.n_saved, 0, self.coords), np.float32)
        self.read_ms = 0.0
        self.whole = True  # paths holds every row
        self._rows: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self.final = np.empty((0, self.coords), np.float32)
        if self.is_image:
            k = min(GRID_SIDE**2, self.n_samples)
            self.n_images = k
            self.whole = self.n_saved * k * self.dim * 4 <= MAX_BLOCK_BYTES
            if self.whole:
                self.ensure(k)
        else:
            self.ensure(k)
            last = min(self.n_samples, FINAL_POINTS)
            self.final = self._read((self.n_saved - 1, slice(0, last), slice(0, self.coords)))

    def _read(self, index: tuple[Any, ...]) -> np.ndarray:
        """x[index] (rows, particles, coordinates) as float32, by one contiguous read."""
        traj = self.trajectory
        read = getattr(traj, "read", None)
        if read is not None:
            x = read("trajectories/x", index)
        else:  # a trajectory-like object without generic reads
            rows, parts, coords = index
            if isinstance(rows, int):
                x = traj.row(rows, particles=parts)[:, coords]
            else:
                ids = np.arange(parts.start, parts.stop)
                x = traj.particles(ids)[rows][..., coords]
        return np.ascontiguousarray(x, dtype=np.float32)

    @property
    def k(self) -> int:
        return int(self.paths.shape[1])

    def ensure(self, k: int) -> None:
        """Have the first min(k, n_samples) particles' paths (one contiguous read)."""
        k = min(int(k), self.n_samples)
        if k <= self.k:
            return
        start = time.perf_counter()
        x = self._read((slice(0, self.n_saved), slice(0, k), slice(0, self.coords)))
        if x.shape != (self.n_saved, k, self.coords):
            raise WorkbenchError(f"{self.name}: read {x.shape} values, not paths of {k} particles")
        self.paths = x
        self.read_ms = 1000.0 * (time.perf_counter() - start)

    def at(self, row: int, k: int) -> np.ndarray:
        """The first k particles at ``row``, (k, c)."""
        if self.whole:
            return self.paths[row, :k]
        if row not in self._rows:
            self._rows[row] = self._read((int(row), slice(0, k), slice(0, self.coords)))
            while len(self._rows) > CACHED_ROWS:
                self._rows.popitem(last=False)
        self._rows.move_to_end(row)
        return self._rows[row][:k]

    def nearest_row(self, t: float) -> int:
        """The row nearest t; a t outside the recorded times gets the nearest end's row."""
        times = self.times
        finite = times[np.isfinite(times)]
        t = float(np.clip(t, finite.min(), finite.max()))
        return int(self.trajectory.index_of_time(t))

    def drawn_rows(self, k: int) -> np.ndarray:
        """The rows the lines of k paths go through: all, or every s-th (and the last) when
        k paths through all rows would be more than MAX_SEGMENTS segments."""
        n = self.n_saved
        most = max(MIN_DRAWN_ROWS, MAX_SEGMENTS // max(int(k), 1) + 1)
        if n <= most:
            return np.arange(n)
        stride = math.ceil((n - 1) / (most - 1))
        rows = np.arange(0, n, stride)
        return rows if rows[-1] == n - 1 else np.append(rows, n - 1)


# ------------------------------------------------------------------------------------ the views
class _View:
    kind = ""

    def __init__(self, layout: pg.GraphicsLayoutWidget, block: PathBlock) -> None:
        self.layout = layout
        self.block = block
        self.cmap = time_colormap()
        self.n_paths = 0
        self.row = -1
        self.units = Units(block.normalizer)

    def colour(self, t: float) -> QtGui.QColor:
        b = self.block
        return self.cmap.map((t - b.t_lo) / (b.t_hi - b.t_lo), mode="qcolor")

    def set_paths(self, k: int) -> None:
        """Draw the first k paths."""

    def show_row(self, k: int) -> None:
        """Show row k (the dots, the marker, the images)."""
        raise NotImplementedError


class _Paths(_View):
    """Paths coloured by time in TIME_BANDS items; dots at the row shown; final samples."""

    def __init__(self, layout: pg.GraphicsLayoutWidget, block: PathBlock, line: bool) -> None:
        super().__init__(layout, block)
        self.line = line
        self.kind = "paths1d" if line else "paths2d"
        plot = layout.addPlot(row=0, col=0)
        plot.setMenuEnabled(False)
        plot.showGrid(x=True, y=True, alpha=0.2)
        if line:
            plot.setLabel("bottom", "t  (the sampler runs from T to 0)")
            plot.invertX(True)
        else:
            plot.setAspectLocked(True)
        plot.getAxis("left").enableAutoSIPrefix(False)
        plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot = plot
        lo, hi = block.t_lo, block.t_hi
        self.band_items: list[pg.PlotDataItem] = []
        for b in range(TIME_BANDS):
            item = pg.PlotDataItem(connect="pairs", skipFiniteCheck=True)
            item.setZValue(-b)  # the data end (t near 0) on top of the noise end
            plot.addItem(item)
            self.band_items.append(item)
        self.band_times = lo + (np.arange(TIME_BANDS) + 0.5) * (hi - lo) / TIME_BANDS
        self.final_item = pg.ScatterPlotItem(
            size=3, pen=None, brush=pg.mkBrush(*_FINAL), symbol="o", pxMode=True
        )
        self.final_item.setZValue(5)
        # the drawn paths' end points (the row at t = eps): where each path arrived
        self.end_item = pg.ScatterPlotItem(
            size=5, pen=None, brush=pg.mkBrush(_ENDS), symbol="o", pxMode=True
        )
        self.end_item.setZValue(7)
        plot.addItem(self.end_item)
        self.marker = None
        if line:
            self.marker = pg.InfiniteLine(angle=90, pen=pg.mkPen(_MARKER, width=1.5))
            self.marker.setZValue(8)
            plot.addItem(self.marker)
        else:
            plot.addItem(self.final_item)
        self.dots = pg.ScatterPlotItem(
            size=6,
            pen=pg.mkPen(255, 255, 255, 230, width=1),
            brush=pg.mkBrush(_DOTS),
            symbol="o",
            pxMode=True,
        )
        self.dots.setZValue(10)
        plot.addItem(self.dots)
        if not line:
            self.bar = pg.ColorBarItem(
                values=(lo, hi),
                colorMap=self.cmap,
                interactive=False,
                width=14,
                rounding=1e-6,
                label="t of the path segment",
            )
            layout.addItem(self.bar, row=0, col=1)
        self.positions = np.empty((0, 2))
        self.title = ""
        self.alpha = 0

    def set_units(self, units: Units) -> None:
        """Draw in ``units`` (call set_paths and show_row again to redraw)."""
        self.units = units
        if self.line:
            self.plot.setLabel("left", units.label("x"))
        else:
            self.plot.setLabel("bottom", units.label("x₁"))
            self.plot.setLabel("left", units.label("x₂"))
            f = units.points(self.block.final) if self.block.final.shape[0] else None
            if f is not None:
                self.final_item.setData(f[:, 0], f[:, 1])
        self.row = -1

    def set_paths(self, k: int) -> None:
        b = self.block
        rows = b.drawn_rows(k)
        paths = self.units.points(b.paths[rows, :k])
        times = b.times[rows]
        segments = band_segments(paths, times, b.t_lo, b.t_hi, TIME_BANDS, self.line)
        # fainter lines for more paths: the picture stays readable from 10 to 2000
        alpha = path_alpha(k)
        self.alpha = alpha
        for item, (xs, ys), tb in zip(self.band_items, segments, self.band_times, strict=True):
            colour = self.colour(float(tb))
            # a stochastic sampler's noise end fades: its long random steps would hide the
            # structure near t = 0; a deterministic sampler's smooth paths are drawn whole
            frac = (float(tb) - b.t_lo) / (b.t_hi - b.t_lo) if b.draws_noise else 0.0
            colour.setAlpha(int(alpha * (1.0 - FADE * frac)))
            item.setPen(pg.mkPen(colour, width=1))
            item.setData(xs, ys)
        self.n_paths = k
        self.row = -1
        end = self.units.points(b.paths[-1, :k])
        ok = np.isfinite(end).all(-1)
        if self.line:
            self.end_item.setData(np.full(int(ok.sum()), float(b.times[-1])), end[ok, 0])
        else:
            self.end_item.setData(end[ok, 0], end[ok, 1])
        # dots small enough that 2000 of them still leave the paths visible
        size, outline = (7, 1.0) if k <= 100 else (5, 1.0) if k <= 500 else (4, 0.0)
        pen = pg.mkPen(255, 255, 255, 230, width=outline) if outline else None
        self.dots.setSize(size)
        self.dots.setPen(pen)
        if self.line:
            self._range_1d(paths)
        else:
            self._range_2d(paths)

    def _finite_range(self, values: np.ndarray) -> tuple[float, float]:
        v = values[np.isfinite(values)]
        if v.size == 0:
            return -1.0, 1.0
        lo, hi = np.quantile(v, [0.001, 0.999]) if v.size > 1000 else (v.min(), v.max())
        lo, hi = float(lo), float(hi)
        if hi <= lo:
            lo, hi = lo - 1.0, hi + 1.0
        return lo, hi

    def _range_2d(self, paths: np.ndarray) -> None:
        parts = [paths[..., :2].reshape(-1, 2)]
        if self.block.final.shape[0]:
            parts.append(self.units.points(self.block.final[:, :2]))
        pts = np.concatenate(parts)
        x0, x1 = self._finite_range(pts[:, 0])
        y0, y1 = self._finite_range(pts[:, 1])
        self.plot.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.04)

    def _range_1d(self, paths: np.ndarray) -> None:
        b = self.block
        y0, y1 = self._finite_range(paths[..., 0])
        self.plot.setRange(xRange=(b.t_lo, b.t_hi), yRange=(y0, y1), padding=0.03)

    def show_row(self, k: int) -> None:
        b = self.block
        t_row = float(b.times[k])
        pts = self.units.points(b.paths[k, : self.n_paths])
        if self.line:
            self.positions = pts[:, :1]
            xs, ys = np.full(len(pts), t_row), pts[:, 0]
            if self.marker is not None:  # made with the line view
                self.marker.setValue(t_row)
        else:
            self.positions = pts[:, :2]
            xs, ys = pts[:, 0], pts[:, 1]
        ok = np.isfinite(xs) & np.isfinite(ys)
        self.dots.setData(xs[ok], ys[ok])
        self.row = k
        what = "x against t" if self.line else "x₂ against x₁"
        self.plot.setTitle(
            f"{self.n_paths} paths ({what}), coloured by t; dots: the particles at t = {t_row:.3f}"
            f" ({self.units.name})"
        )


class _Images(_View):
    """A GRID_SIDE² grid of the first images at the row shown."""

    kind = "images"

    def __init__(self, layout: pg.GraphicsLayoutWidget, block: PathBlock) -> None:
        super().__init__(layout, block)
        plot = layout.addPlot(row=0, col=0)
        plot.hideAxis("left")
        plot.hideAxis("bottom")
        plot.setAspectLocked(True)
        plot.invertY(True)
        plot.setMenuEnabled(False)
        self.image = pg.ImageItem()
        self.image.setAutoDownsample(False)
        plot.addItem(self.image)
        self.plot = plot
        self.mosaic: np.ndarray | None = None
        self.n_paths = block.n_images

    def show_row(self, k: int) -> None:
        b = self.block
        mosaic = image_mosaic(b.at(k, self.n_paths), b.sample_shape)
        self.mosaic = mosaic
        self.image.setImage(mosaic, levels=(0, 255))
        if self.row < 0:
            self.plot.setRange(xRange=(0, mosaic.shape[0]), yRange=(0, mosaic.shape[1]))
        self.row = k
        self.plot.setTitle(
            f"the first {self.n_paths} images at t = {float(b.times[k]):.3f}: grey levels "
            "[-1, 1] in model units"
        )


# ------------------------------------------------------------------------------------ the tab
class TrajectoryTab(PlotTab):
    """Particle paths of the last sampling run, coloured by time, and the particles at t."""

    title = "Trajectories"
    timeRequested = QtCore.Signal(float)  # Play asks for this t (connect to the time slider)
    drawn = QtCore.Signal()  # the view has been redrawn for a new t or a new block

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trajectoryPlot")
        self.state: ExperimentState | None = None
        self.trajectory: Any = None
        self.block: PathBlock | None = None
        self.view: _View | None = None
        self.problem: str | None = None
        self.t = 0.0
        self.last_redraw_ms = float("nan")
        self.model_units = False  # data units unless the window's units switch says otherwise
        self._loaded = True  # the current trajectory (none yet) has been read, or has failed
        self._play_t = 0.0
        self.play_seconds = PLAY_SECONDS  # how long Play takes from T to 0

        self.subset = QtWidgets.QSpinBox()
        self.subset.setObjectName("pathCountSpin")
        self.subset.setRange(MIN_PATHS, MAX_PATHS)
        self.subset.setSingleStep(10)
        self.subset.setValue(DEFAULT_PATHS)
        self.subset.setKeyboardTracking(False)  # typing 2000 is one change, not four
        self.subset.setToolTip(
            "how many particles' paths to draw: the first k of the file (a contiguous block)"
        )
        self.subset.valueChanged.connect(self._subset_changed)
        self.play_button = QtWidgets.QPushButton("▶ Play")
        self.play_button.setObjectName("playButton")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("animate t from T down to 0 (click again to stop)")
        self.play_button.toggled.connect(self._play_toggled)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self._tick)

        self._build_canvas("trajectory")

        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("paths"))
        bar.addWidget(self.subset)
        bar.addWidget(self.play_button)
        bar.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.readout)
        self._show_message(HINT)
        self._update_controls()

    # -- the PlotTab hooks --------------------------------------------------------------------
    def set_experiment(self, state: ExperimentState) -> None:
        self.state = state  # the view shows the file as it is; the experiment is not needed

    def set_time(self, t: float) -> None:
        self.t = float(t)
        self.schedule_redraw()

    def set_trajectory(self, trajectory: Any) -> None:
        self.trajectory = trajectory
        self.block = None
        self.view = None
        self.problem = None
        self._loaded = False
        self.layout_widget.clear()
        if trajectory is None:
            self.stop()
            self._loaded = True
            self._show_message(HINT)
            self._update_controls()
            return
        self.schedule_redraw()

    def export_item(self) -> Any:
        """The layout (plot and colour bar): its own rectangle, not the scene's items' bounds,
        which paths running far outside a zoomed view would make huge."""
        self.flush_redraw()
        if self.view is None:
            return None
        self.layout_widget.ci.layout.activate()  # a view built since the last event loop turn
        return self.layout_widget.ci

    def shutdown(self) -> None:
        """Stop the animation (called when the window closes)."""
        self.stop()

    # -- reading and drawing ------------------------------------------------------------------
    def _fail(self, reason: str) -> None:
        self.stop()
        self.problem = " ".join(str(reason).split()) or "the trajectory could not be read"
        self.block = None
        self.view = None
        self.layout_widget.clear()
        self._show_message(f"cannot show this trajectory: {self.problem}")
        self._update_controls()

    @property
    def redraw_pending(self) -> bool:
        """Also while a new trajectory waits to be read (LazyRedraw draws only when shown)."""
        return super().redraw_pending or not self._loaded

    def _load(self) -> None:
        """Read the current trajectory's block once and build its view."""
        self._loaded = True
        traj = self.trajectory
        if traj is None:
            return
        try:
            block = PathBlock(traj, self._wanted_paths_for(traj))
        except _READ_ERRORS as exc:
            self._fail(str(exc))
            return
        self.block = block
        self.layout_widget.clear()
        if block.is_image:
            self.view = _Images(self.layout_widget, block)
        else:
            self.view = _Paths(self.layout_widget, block, line=block.dim == 1)
            self.view.set_units(self._units())
            self.view.set_paths(block.k)
        self.stack.setCurrentWidget(self.layout_widget)
        self._update_controls()

    def _units(self) -> Units:
        """The file's normaliser (it says what its numbers mean), else the experiment's."""
        norm = self.block.normalizer if self.block is not None else None
        if norm is None and self.state is not None:
            norm = self.state.normalizer
        return Units(norm, self.model_units)

    def set_model_units(self, on: bool) -> None:
        """Draw in model units (True) or data units (False)."""
        self.model_units = bool(on)
        if isinstance(self.view, _Paths) and self.block is not None:
            self.view.set_units(self._units())
            self.view.set_paths(self.view.n_paths)
            self.redraw()

    def _wanted_paths_for(self, traj: Any) -> int:
        try:
            shape = tuple(int(s) for s in traj.sample_shape)
        except _READ_ERRORS:
            shape = ()
        return GRID_SIDE**2 if _is_image(shape) else self.subset.value()

    def _redraw(self) -> None:
        """Show the row nearest the current t (reading the trajectory first if needed)."""
        if not self._loaded:
            self._load()
        if self.view is None or self.block is None:
            return
        start = time.perf_counter()
        try:
            k = self.block.nearest_row(self.t)
        except _READ_ERRORS as exc:
            self._fail(str(exc))
            return
        if k != self.view.row:
            self.view.show_row(k)
        self.last_redraw_ms = 1000.0 * (time.perf_counter() - start)
        self.readout.setText(self._readout(self.block, k))
        self.drawn.emit()

    def _readout(self, b: PathBlock, k: int) -> str:
        nfe = "?" if b.nfe is None else f"{b.nfe}"
        parts = [
            b.name + ("" if b.complete else " (incomplete)"),
            f"sampler {b.sampler}, nfe {nfe}",
            f"{b.n_samples} samples, {b.n_saved} rows",
            f"row {k} at t = {float(b.times[k]):.3f} (slider t = {self.t:.3f})",
        ]
        if isinstance(self.view, _Paths):
            parts.append(f"paths of particles 0–{self.view.n_paths - 1}")
            drawn = len(b.drawn_rows(self.view.n_paths))
            if drawn < b.n_saved:
                parts.append(f"lines through {drawn} of the {b.n_saved} rows")
            if b.dim > 2:
                parts.append(f"the first 2 of {b.dim} coordinates")
            if not self.view.line:
                parts.append(f"grey: the last row's first {len(b.final)} samples")
        return "   ".join(parts)

    def _subset_changed(self, value: int) -> None:
        if not isinstance(self.view, _Paths) or self.block is None:
            return
        try:
            self.block.ensure(value)
        except _READ_ERRORS as exc:
            self._fail(str(exc))
            return
        self.view.set_paths(min(value, self.block.k))
        self.redraw()

    def _update_controls(self) -> None:
        paths = isinstance(self.view, _Paths)
        self.subset.setEnabled(paths or self.view is None)
        self.play_button.setEnabled(self.view is not None)

    # -- for tests and readers ----------------------------------------------------------------
    def path_count(self) -> int:
        """Paths drawn: the segments in the band items over the segments per path."""
        if not isinstance(self.view, _Paths) or self.block is None:
            return 0
        per_path = len(self.block.drawn_rows(self.view.n_paths)) - 1
        segments = sum(
            len(item.xData) // 2 for item in self.view.band_items if item.xData is not None
        )
        return segments // per_path if per_path > 0 else self.view.n_paths

    def end_positions(self) -> np.ndarray:
        """The paths' end points (n, 2) as drawn: (x1, x2), or (t_end, x) for 1-D data."""
        if not isinstance(self.view, _Paths):
            return np.empty((0, 2))
        x, y = self.view.end_item.getData()
        return np.stack([x, y], axis=1)

    def dot_positions(self) -> np.ndarray:
        """The dots' coordinates (n, 2) as drawn: (x1, x2), or (t, x) for 1-D data."""
        if not isinstance(self.view, _Paths):
            return np.empty((0, 2))
        x, y = self.view.dots.getData()
        return np.stack([x, y], axis=1)

    def shown_time(self) -> float:
        """The time of the row shown (nan when none is)."""
        if self.view is None or self.block is None or self.view.row < 0:
            return float("nan")
        return float(self.block.times[self.view.row])

    def is_playing(self) -> bool:
        return self.timer.isActive()

    # -- play ---------------------------------------------------------------------------------
    def stop(self) -> None:
        if self.play_button.isChecked():
            self.play_button.setChecked(False)
        self.timer.stop()

    def _play_toggled(self, on: bool) -> None:
        if on and self.block is not None:
            self._play_t = self.block.t_hi
            self.play_button.setText("■ Stop")
            self._request(self._play_t)
            self.timer.start()
        else:
            self.timer.stop()
            self.play_button.setText("▶ Play")
            if on:
                self.play_button.setChecked(False)

    def _step(self) -> float:
        b = self.block
        span = (b.t_hi - 0.0) if b is not None else 1.0
        return span * FRAME_MS / (1000.0 * max(self.play_seconds, 1e-3))

    def _tick(self) -> None:
        if self.block is None:
            self.stop()
            return
        step = self._step()
        # a slider moved by hand while playing: go on from where it was put
        base = self._play_t if abs(self.t - self._play_t) <= 1.5 * step else self.t
        t = max(0.0, base - step)
        self._play_t = t
        self._request(t)
        if t <= 0.0:
            self.stop()

    def _request(self, t: float) -> None:
        if self.receivers(QtCore.SIGNAL("timeRequested(double)")) > 0:
            self.timeRequested.emit(float(t))
        else:
            self.set_time(t)
