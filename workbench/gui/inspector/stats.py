"""The Statistics view: mean, spread and range of the samples over the saved rows.

The rows are read and reduced in a worker thread (a 400 MB file is seconds of reading), in
blocks of particles so that every read is short, with progress and Cancel in the inspector's
status bar; the plot is drawn once they are all in.

The plot's items are made once per view, one piece per turn of the event loop (a pyqtgraph
PlotItem alone is some 10-25 ms to make, the whole figure 60 ms and more), while the worker
computes; the numbers then go in with ``setData`` on the items already there, which is cheap.
So no single step of the GUI thread grows with the figure, and Compute again (after a Cancel)
or F5 only replaces data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from workbench.errors import one_line
from workbench.gui.inspector.common import _View
from workbench.gui.workers import Task, TaskContext

if TYPE_CHECKING:
    from workbench.gui.inspector.file_view import FileView
    from workbench.io.trajectories import TrajectoryFile

STATS_ROWS = 200  # rows read for the statistics plot, at most
STATS_DIMS = 4  # per-dimension statistics for at most this many dimensions
BLOCK_VALUES = 1 << 18  # values read at once: 1 MiB of float32, a few ms of reading


class _Running:
    """Per-column count, mean, M2, min and max over the finite values of blocks of rows.

    Blocks are merged with Chan et al.'s parallel update (mean and M2 of the union from
    those of the parts), so the variance never comes from sum(x^2) - n mean^2, which cancels
    catastrophically when the mean is large against the spread.
    """

    def __init__(self, columns: int) -> None:
        self.count = np.zeros(columns)
        self.mean = np.zeros(columns)
        self.m2 = np.zeros(columns)
        self.low = np.full(columns, np.inf)
        self.high = np.full(columns, -np.inf)

    def add(self, block: np.ndarray) -> None:
        finite = np.isfinite(block)
        nb = finite.sum(0).astype(np.float64)
        safe = np.where(finite, block, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mb = safe.sum(0) / np.maximum(nb, 1)
            m2b = (np.where(finite, block - mb, 0.0) ** 2).sum(0)
            total = self.count + nb
            delta = mb - self.mean
            self.mean = self.mean + delta * nb / np.maximum(total, 1)
            self.m2 = self.m2 + m2b + delta**2 * self.count * nb / np.maximum(total, 1)
        self.count = total
        self.low = np.minimum(self.low, np.where(finite, block, np.inf).min(0))
        self.high = np.maximum(self.high, np.where(finite, block, -np.inf).max(0))

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """mean, std (population), min, max; NaN where a column had no finite value."""
        none = self.count == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.sqrt(self.m2 / self.count)
        nan = np.full_like(self.mean, np.nan)
        return (
            np.where(none, nan, self.mean),
            np.where(none, nan, std),
            np.where(none, nan, self.low),
            np.where(none, nan, self.high),
        )


def compute_statistics(
    tf: TrajectoryFile,
    *,
    max_rows: int = STATS_ROWS,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> dict[str, np.ndarray] | None:
    """Per-row mean, std, min and max of the samples in data units, over at most ``max_rows``
    rows spread evenly from first to last; per dimension for up to STATS_DIMS dimensions, else
    over all values. None if ``cancelled()`` turned true (checked between blocks).

    Each row is read in blocks of about BLOCK_VALUES values and reduced as it comes, so memory
    stays at one block and the reads (which hold the GIL in h5py) stay short.
    """
    n = tf.n_saved
    rows = np.unique(np.linspace(0, n - 1, min(n, max_rows)).round().astype(int))
    per_dim = tf.dim <= STATS_DIMS
    columns = tf.dim if per_dim else 1
    block = max(1, BLOCK_VALUES // max(1, tf.dim))
    out: dict[str, list[np.ndarray]] = {"mean": [], "std": [], "min": [], "max": []}
    for i, k in enumerate(rows):
        running = _Running(columns)
        for start in range(0, tf.n_samples, block):
            if cancelled is not None and cancelled():
                return None
            x = tf.row(int(k), denormalise=True, particles=slice(start, start + block))
            x = x.astype(np.float64).reshape(len(x), -1)
            running.add(x if per_dim else x.reshape(-1, 1))
        for key, value in zip(("mean", "std", "min", "max"), running.result(), strict=True):
            out[key].append(value)
        if progress is not None:
            progress(i + 1, len(rows))
    stats = {key: np.array(v).reshape(len(rows), columns) for key, v in out.items()}
    stats["t"] = tf.times[rows]
    stats["rows"] = rows
    return stats


class StatsView(_View):
    title = "Statistics"

    def __init__(self, fv: FileView) -> None:
        super().__init__(fv)
        layout = QtWidgets.QVBoxLayout(self)
        row = QtWidgets.QHBoxLayout()
        self.status = QtWidgets.QLabel()
        self.status.setObjectName("statsStatus")
        self.recompute_button = QtWidgets.QPushButton("Compute")
        self.recompute_button.setObjectName("statsRecompute")
        self.recompute_button.setToolTip("compute the statistics again (after a Cancel)")
        self.recompute_button.clicked.connect(self.draw)
        self.recompute_button.hide()
        row.addWidget(self.status, 1)
        row.addWidget(self.recompute_button)
        layout.addLayout(row)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("inspectorStatsPlot")
        self.graphics.setBackground("w")
        layout.addWidget(self.graphics, 1)
        self.stats: dict[str, np.ndarray] = {}
        self.tasks: list[Task] = []
        self.cancelled = False  # the last computation was cancelled
        self._generation = 0
        # the figure, made piece by piece (_build_step) on first draw, then only refilled
        self.mean_plot: pg.PlotItem | None = None
        self.std_plot: pg.PlotItem | None = None
        self.curves: list[dict[str, pg.PlotDataItem]] = []  # per column: mean, min, max, std
        self.build_steps = 0  # event-loop turns the figure took to make
        self._steps: list[Any] | None = None
        self._unplotted: dict[str, np.ndarray] | None = None  # stats waiting for the figure
        self._n_saved = 0  # the file's rows when the statistics were asked for

    def compute(self) -> dict[str, np.ndarray]:
        """The statistics computed here and now (for scripts; the view uses a worker)."""
        stats = compute_statistics(self.fv.tf)
        assert stats is not None  # nothing cancels it
        return stats

    def draw(self) -> None:
        """Start the computation in a worker; the plot follows when it is done."""
        self._generation += 1
        generation = self._generation
        for task in self.tasks:
            task.cancel()
        self._start_figure()
        self._clear_curves()
        self._unplotted = None
        self.stats = {}
        self.cancelled = False
        self.recompute_button.hide()
        tf = self.fv.tf
        self._n_saved = tf.n_saved
        if tf.n_saved == 0:
            self.status.setText("no rows recorded")
            return
        self.status.setText("computing the statistics…")

        def work(ctx: TaskContext) -> dict[str, np.ndarray] | None:
            return compute_statistics(
                tf, progress=lambda done, total: ctx.report((done, total)), cancelled=ctx.cancelled
            )

        task = Task("inspector-statistics", work, self)
        task.progress.connect(lambda p, g=generation: self._progress(g, p))
        task.done.connect(lambda stats, g=generation: self._done(g, stats))
        task.failed.connect(lambda message, _details, g=generation: self._failed(g, message))
        task.finished.connect(lambda t=task: self._forget(t))
        self.tasks.append(task)
        self.fv.track_task(task, "Statistics")
        task.start()

    def _progress(self, generation: int, payload: tuple[int, int]) -> None:
        if generation == self._generation:
            done, total = payload
            self.status.setText(f"computing the statistics… {done}/{total} rows")

    def _done(self, generation: int, stats: dict[str, np.ndarray] | None) -> None:
        if generation != self._generation:
            return
        if stats is None:
            self.cancelled = True
            self.status.setText("statistics cancelled")
            self.recompute_button.show()
            return
        self.stats = stats
        self.status.setText("")
        if self._steps:  # the figure is still being made: filled when it is
            self._unplotted = stats
        else:
            self._fill(stats)

    def _failed(self, generation: int, message: str) -> None:
        if generation == self._generation:
            self.status.setText("")
            self.recompute_button.show()
            self.fv.show_read_error(one_line(message))

    def _forget(self, task: Task) -> None:
        if task in self.tasks:
            task.wait()
            self.tasks.remove(task)
            task.deleteLater()

    def busy(self) -> bool:
        return any(task.isRunning() for task in self.tasks)

    def stats_ready(self) -> bool:
        """Whether the last computation has ended (drawn, cancelled or failed)."""
        return not self.tasks and not self._redraw_owed and self._unplotted is None

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Cancel the computation and wait for its thread (before the file closes)."""
        self._generation += 1
        for task in list(self.tasks):
            task.cancel()
            task.wait(timeout_ms)

    def _start_figure(self) -> None:
        """Queue the figure's pieces, one per event-loop turn (once per view). They read
        nothing from the file: it may be closed before the last of them runs."""
        if self._steps is not None:
            return
        dim = self.fv.tf.dim
        names = [f"x{i + 1}" for i in range(dim)] if dim <= STATS_DIMS else ["all dimensions"]
        self._steps = [self._make_mean_plot, self._make_std_plot]
        self._steps += [lambda i=i, n=n: self._make_curves(i, n) for i, n in enumerate(names)]
        QtCore.QTimer.singleShot(0, self, self._build_step)

    def _build_step(self) -> None:
        if not self._steps:
            return
        self._steps.pop(0)()
        self.build_steps += 1
        if self._steps:
            QtCore.QTimer.singleShot(0, self, self._build_step)
        elif self._unplotted is not None:
            QtCore.QTimer.singleShot(0, self, self._fill_waiting)

    def _fill_waiting(self) -> None:
        stats, self._unplotted = self._unplotted, None
        if stats is not None:
            self._fill(stats)

    def _make_mean_plot(self) -> None:
        plot = self.graphics.addPlot(row=0, col=0, title="mean with min/max band")
        plot.addLegend(offset=(10, 10))
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setLabel("bottom", "t")
        self.mean_plot = plot

    def _make_std_plot(self) -> None:
        plot = self.graphics.addPlot(row=1, col=0, title="standard deviation")
        plot.setXLink(self.mean_plot)
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setLabel("bottom", "t")
        self.std_plot = plot

    def _make_curves(self, i: int, name: str) -> None:
        """Column ``i``'s mean line, min/max band and std line, empty until filled."""
        assert self.mean_plot is not None and self.std_plot is not None
        colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
        c = colours[i % len(colours)]
        curves = {
            "mean": pg.PlotDataItem(pen=pg.mkPen(c, width=2), name=name),
            "min": pg.PlotDataItem(pen=pg.mkPen((*c, 80))),
            "max": pg.PlotDataItem(pen=pg.mkPen((*c, 80))),
            "std": pg.PlotDataItem(pen=pg.mkPen(c, width=2)),
        }
        for key in ("mean", "min", "max"):
            self.mean_plot.addItem(curves[key])
        self.mean_plot.addItem(pg.FillBetweenItem(curves["min"], curves["max"], brush=(*c, 30)))
        self.std_plot.addItem(curves["std"])
        self.curves.append(curves)

    def _clear_curves(self) -> None:
        for curves in self.curves:
            for curve in curves.values():
                curve.setData([], [])

    def _fill(self, s: dict[str, Any]) -> None:
        """The numbers into the figure's items (setData once per curve)."""
        if s is not self.stats or self.mean_plot is None:
            return  # a newer computation has begun since
        for i, curves in enumerate(self.curves):
            for key, curve in curves.items():
                curve.setData(s["t"], s[key][:, i])
        n, shown = self._n_saved, len(s["rows"])
        self.mean_plot.setTitle(
            "mean with min/max band" + (f" ({shown} of {n} rows)" if shown < n else "")
        )
