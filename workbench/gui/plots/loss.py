"""The Loss tab: the live loss curve, smoothed, on a log scale, against step or wall time.

Sliced and exact score matching estimate the Fisher divergence up to a constant, so their
losses are often negative: a log axis cannot show them, and the tab then draws a linear axis
and says why (a note above the plot) rather than a blank plot. Axis values are shown as they
are (no pyqtgraph SI prefix: "loss (x0.001)" over ticks -150 ... -650 reads as a wrong sign).

Points arrive in batches from the training worker and are kept in full (nothing is dropped);
the curve is redrawn at most ~30 times a second, downsampled by pyqtgraph for drawing only.
Smoothing is TensorBoard's: an exponential moving average with bias correction,
s_k = a s_{k-1} + (1 - a) y_k, shown as s_k / (1 - a^k), so the start is not pulled to 0.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from workbench.errors import WorkbenchError
from workbench.gui.plots.base import PlotTab, follow_palette

__all__ = ["LossTab", "LossRun", "smooth"]

NO_RUN = "no run yet: Train to see the loss"
LINEAR_NOTE = (
    "linear y axis: the loss takes values ≤ 0 (sliced and exact score matching can go "
    "negative), which a log axis cannot show"
)
CSV_HEADER = ("run", "step", "wall_time_s", "loss", "loss_ema")

_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


def smooth(y: np.ndarray, weight: float) -> np.ndarray:
    """Bias-corrected exponential moving average of ``y`` with decay ``weight`` in [0, 1).

    Vectorised in blocks: within a block s_k = a^(k+1) s_start + (1 - a) a^k sum_j a^-j y_j,
    with blocks short enough that a^-j cannot overflow. 10^6 points take milliseconds.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if weight <= 0 or n == 0:
        return y.copy()
    a = float(weight)
    block = max(1, min(n, int(300.0 / -math.log(a))))
    out = np.empty(n)
    carry = 0.0
    for start in range(0, n, block):
        chunk = y[start : start + block]
        k = np.arange(chunk.size)
        part = (1.0 - a) * a**k * np.cumsum(chunk * a ** (-k)) + carry * a ** (k + 1)
        out[start : start + chunk.size] = part
        carry = part[-1]
    return out / (1.0 - a ** np.arange(1, n + 1))


class LossRun:
    """One run's points; the arrays grow by doubling so appending stays O(1)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._data = np.zeros((3, 256))
        self.n = 0

    def extend(self, steps: list[float], walls: list[float], losses: list[float]) -> None:
        k = len(steps)
        while self.n + k > self._data.shape[1]:
            self._data = np.concatenate([self._data, np.zeros_like(self._data)], axis=1)
        self._data[:, self.n : self.n + k] = [steps, walls, losses]
        self.n += k

    @property
    def steps(self) -> np.ndarray:
        return self._data[0, : self.n]

    @property
    def wall(self) -> np.ndarray:
        return self._data[1, : self.n]

    @property
    def loss(self) -> np.ndarray:
        return self._data[2, : self.n]


class LossTab(PlotTab):
    """Training loss curves, raw and smoothed, of this run and earlier ones."""

    title = "Loss"
    # Losses stream in many times a second: redraw at most ~30 times a second.
    redraw_interval_ms = 33

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lossPlot")
        self.runs: list[LossRun] = []
        self._curves: list[tuple[pg.PlotDataItem, pg.PlotDataItem]] = []
        self._smoothed: list[np.ndarray] = []

        self.plot = pg.PlotWidget()
        self.plot.setObjectName("lossPlotWidget")
        self.item = self.plot.getPlotItem()
        for side in ("left", "bottom"):
            self.item.getAxis(side).enableAutoSIPrefix(False)
        self.item.showGrid(x=True, y=True, alpha=0.25)
        self.item.setLabel("left", "loss")
        self.item.setLabel("bottom", "step")
        self.item.setDownsampling(auto=True, mode="peak")
        self.item.setClipToView(True)
        self.legend = self.item.addLegend(offset=(-10, 10))
        self.readout = QtWidgets.QLabel(" ")
        self.readout.setObjectName("lossReadout")
        self.axis_note = QtWidgets.QLabel(LINEAR_NOTE)
        self.axis_note.setObjectName("lossAxisNote")
        self.axis_note.setWordWrap(True)
        self.axis_note.hide()
        self._log_shown = False  # the log axis actually drawn (the box asks; values decide)
        # a centred note in the empty plot, in the view box's pixels; gone with the first point
        self.empty_note: pg.TextItem | None = pg.TextItem(NO_RUN, anchor=(0.5, 0.5))
        self.empty_note.setParentItem(self.item.vb)
        self.item.vb.sigResized.connect(self._centre_empty_note)

        self.smoothing = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.smoothing.setObjectName("smoothingSlider")
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.setToolTip("EMA smoothing of the curve (bias-corrected)")
        self.smoothing_label = QtWidgets.QLabel()
        self.log_y = QtWidgets.QCheckBox("log y")
        self.log_y.setObjectName("logYCheck")
        self.log_y.setChecked(True)
        self.x_axis = QtWidgets.QComboBox()
        self.x_axis.setObjectName("xAxisCombo")
        self.x_axis.addItems(["step", "wall time (s)"])
        clear = QtWidgets.QPushButton("Clear earlier runs")
        clear.setObjectName("clearRunsButton")
        clear.clicked.connect(self.clear_earlier_runs)

        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("smoothing"))
        bar.addWidget(self.smoothing, 1)
        bar.addWidget(self.smoothing_label)
        bar.addWidget(self.log_y)
        bar.addWidget(QtWidgets.QLabel("x:"))
        bar.addWidget(self.x_axis)
        bar.addWidget(clear)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.axis_note)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.readout)

        self.smoothing.valueChanged.connect(self.schedule_redraw)
        self.log_y.toggled.connect(self._apply_axes)
        self.x_axis.currentIndexChanged.connect(self._apply_axes)
        self.plot.scene().sigMouseMoved.connect(self._hover)
        self._apply_axes()
        follow_palette(self.plot)

    def _centre_empty_note(self) -> None:
        if self.empty_note is not None:
            rect = self.item.vb.boundingRect()
            self.empty_note.setPos(rect.center())

    def _drop_empty_note(self) -> None:
        if self.empty_note is not None:
            self.empty_note.setParentItem(None)
            if self.empty_note.scene() is not None:
                self.empty_note.scene().removeItem(self.empty_note)
            self.empty_note = None

    # -- data ---------------------------------------------------------------------------------
    def start_run(self, name: str) -> int:
        """A new curve; earlier runs stay, dimmed, for comparison."""
        self.flush_redraw()
        self.runs.append(LossRun(name))
        colour = _COLOURS[(len(self.runs) - 1) % len(_COLOURS)]
        raw = self.item.plot(pen=pg.mkPen(colour + "40", width=1))
        smooth_curve = self.item.plot(pen=pg.mkPen(colour, width=2), name=name)
        self._curves.append((raw, smooth_curve))
        return len(self.runs) - 1

    def add_points(self, steps: list[float], walls: list[float], losses: list[float]) -> None:
        """Append to the current run (started if there is none); drawn on the next tick."""
        if not self.runs:
            self.start_run("run")
        self.runs[-1].extend(list(steps), list(walls), list(losses))
        if self.runs[-1].n:
            self._drop_empty_note()
        self.schedule_redraw()

    def add_run(
        self, name: str, steps: list[float], walls: list[float], losses: list[float]
    ) -> None:
        self.start_run(name)
        self.add_points(steps, walls, losses)

    def clear_earlier_runs(self) -> None:
        keep = self.runs[-1:] if self.runs else []
        for raw, sm in self._curves[:-1] if self.runs else self._curves:
            self.item.removeItem(raw)
            self.item.removeItem(sm)
            self.legend.removeItem(sm)
        self._curves = self._curves[-1:] if self.runs else []
        self.runs = keep
        self.schedule_redraw()

    # -- drawing ------------------------------------------------------------------------------
    def _drawable(self) -> bool:
        # Drawn hidden too (on the throttle): readers of the curves, and the soak test, see
        # every logged point within a tick whichever tab is in front.
        return True

    def log_axis(self) -> bool:
        """Whether the y axis is drawn on a log scale: asked for, and every loss is > 0."""
        return self._log_shown

    def _apply_axes(self) -> None:
        self._log_shown = self.log_y.isChecked() and not self._has_non_positive()
        self.item.setLogMode(x=False, y=self._log_shown)
        self.axis_note.setVisible(self.log_y.isChecked() and not self._log_shown)
        self.item.setLabel("bottom", "step" if self.x_axis.currentIndex() == 0 else "wall time (s)")
        self.redraw()

    def _has_non_positive(self) -> bool:
        return any(run.n and bool(np.any(run.loss <= 0)) for run in self.runs)

    def _x(self, run: LossRun) -> np.ndarray:
        return run.steps if self.x_axis.currentIndex() == 0 else run.wall

    def _redraw(self) -> None:
        if self._log_shown != (self.log_y.isChecked() and not self._has_non_positive()):
            self._apply_axes()  # a loss <= 0 arrived (or the runs holding them were cleared)
            return
        weight = self.smoothing.value() / 100.0
        self.smoothing_label.setText(f"{weight:.2f}")
        self._smoothed = []
        for run, (raw, sm) in zip(self.runs, self._curves, strict=True):
            x = self._x(run)
            y = run.loss
            smoothed = smooth(y, weight)
            self._smoothed.append(smoothed)
            if self._log_shown:
                ok = y > 0  # NaN losses too: a log axis has no place for them
                x, y, smoothed = x[ok], y[ok], smoothed[ok]
            raw.setData(x, y)
            sm.setData(x, smoothed)

    def _hover(self, pos: object) -> None:
        if not self.runs or self.runs[-1].n == 0:
            return
        point = self.item.vb.mapSceneToView(pos)
        run = self.runs[-1]
        x = self._x(run)
        i = int(np.clip(np.searchsorted(x, point.x()), 0, run.n - 1))
        self.flush_redraw()
        cached = self._smoothed[-1] if self._smoothed else run.loss
        sm = cached[i] if i < cached.size else float("nan")
        self.readout.setText(
            f"{run.name}: step {int(run.steps[i])}   wall {run.wall[i]:.1f} s   "
            f"loss {run.loss[i]:.5g}   smoothed {sm:.5g}"
        )

    def export(self, path: str | Path) -> Path:
        """PNG or SVG of the plot; CSV: every run's points with named columns (run, step,
        wall_time_s, loss, loss_ema), not pyqtgraph's x0000/y0000 curve dump."""
        path = Path(path)
        if path.suffix.lower() != ".csv":
            return super().export(path)
        if not any(run.n for run in self.runs):
            raise WorkbenchError("the Loss tab has nothing to export: no run yet")
        weight = self.smoothing.value() / 100.0
        try:
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(CSV_HEADER)
                for run in self.runs:
                    ema = smooth(run.loss, weight)
                    for i in range(run.n):
                        writer.writerow(
                            (
                                run.name,
                                int(run.steps[i]),
                                repr(float(run.wall[i])),
                                repr(float(run.loss[i])),
                                repr(float(ema[i])),
                            )
                        )
        except OSError as exc:
            raise WorkbenchError(f"could not write {path}: {exc.strerror or exc}") from exc
        return path

    def export_item(self) -> pg.PlotItem:
        self.flush_redraw()
        return self.item
