"""The trajectory inspector: open saved HDF5 files read-only, look inside, export samples.

:class:`InspectorWindow` (object name ``inspectorWindow``) holds one :class:`FileView` per open
file in closable tabs. A FileView shows the tree of groups and datasets of any HDF5 file (shape,
dtype, chunking, compression; attributes of the selected node) and, for a trajectory file of
ours, a summary with the experiment config as TOML and lazy views: samples and the marginal
histogram at the slider's row, particle paths of the first particles, per-row statistics, an
image grid for image data and the log-likelihood histogram. Nothing is read until a view is
shown; moving the slider reads one row. F5 re-opens the file to follow one still being written.

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

from workbench.errors import WorkbenchError
from workbench.gui.plots.trajectories import image_mosaic, time_colormap
from workbench.io.trajectories import TrajectoryFile

__all__ = ["InspectorWindow", "FileView", "ExportDialog", "benchmark_open_and_slider"]

SCATTER_POINTS = 2000  # particles drawn as dots at one row, at most (every k-th one)
PATH_PARTICLES = 200  # particles whose paths are drawn: the first ones (a contiguous block)
STATS_ROWS = 200  # rows read for the statistics plot, at most
HIST_BINS = 120  # most bins per axis (fewer for few samples: about sqrt(n) / 1.5)
IMAGE_SIDE = 8  # image grid: IMAGE_SIDE x IMAGE_SIDE
PLAY_INTERVAL_MS = 80
STATS_DIMS = 4  # per-dimension statistics for at most this many dimensions
EXPORT_FORMATS = ("npy", "npz", "csv", "h5", "png")

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
    text = str(value)
    return text if len(text) <= 2000 else text[:2000] + " …"


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
            self.fields[key].setText(text)
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
        self.hist: np.ndarray | None = None  # the last histogram, for tests
        self.row_shown: int | None = None
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
        if window != self._window:
            self._window = window
            self.hist_plot.autoRange()


class PathsView(_View):
    title = "Paths"

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("inspectorPathsPlot")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        layout.addWidget(self.plot)
        self.n_paths = 0

    def draw(self) -> None:
        tf = self.fv.tf
        self.plot.clear()
        if tf.n_saved == 0:
            self.n_paths = 0
            return
        k = min(PATH_PARTICLES, tf.n_samples)
        paths = tf.particles(np.arange(k), denormalise=True)  # (rows, k, dim)
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
        self.plot.setTitle(f"paths of the first {k} particles over {tf.n_saved} rows")


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
        from workbench.io.export import export_samples

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
            self.exported = export_samples(
                self.tf, out, force=force, progress=progress, **self.options()
            )
        except WorkbenchError as exc:
            self.progress.hide()
            self._fail(str(exc))
            return
        except OSError as exc:
            self.progress.hide()
            self._fail(f"cannot write {out}: {exc.strerror or exc}")
            return
        self.error = None
        self.progress.setValue(1000)
        super().accept()


# ---------------------------------------------------------------------------------- file view
class FileView(QtWidgets.QWidget):
    """One open file: its tree and attributes, and for our format the summary and views."""

    def __init__(self, path: str | os.PathLike[str], parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("inspectorFileView")
        self.path = Path(path)
        self.tf = TrajectoryFile(self.path, foreign_ok=True)  # raises WorkbenchError
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
        else:
            self.controls.hide()
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
                label = name.rsplit("/", 1)[1]
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
            self.attrs.setItem(r, 0, QtWidgets.QTableWidgetItem(str(key)))
            cell = QtWidgets.QTableWidgetItem(_attr_text(value).splitlines()[0] if value else "")
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
        self._timer.stop()
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
            view = FileView(path)
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
        self.last_error = None
        self.opened.emit(str(path))
        return True

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
        while self.tabs.count():
            self.close_tab(0)
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
