"""The Loss tab: the live loss curve, smoothed, on a log scale, against step or wall time.

Points arrive in batches from the training worker and are kept in full (nothing is dropped);
the curve is redrawn at most ~30 times a second, downsampled by pyqtgraph for drawing only.
Smoothing is TensorBoard's: an exponential moving average with bias correction,
s_k = a s_{k-1} + (1 - a) y_k, shown as s_k / (1 - a^k), so the start is not pulled to 0.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from workbench.gui.plots.base import PlotTab

__all__ = ["LossTab", "LossRun", "smooth"]

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

        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("lossPlotWidget")
        self.item = self.plot.getPlotItem()
        self.item.showGrid(x=True, y=True, alpha=0.25)
        self.item.setLabel("left", "loss")
        self.item.setLabel("bottom", "step")
        self.item.setDownsampling(auto=True, mode="peak")
        self.item.setClipToView(True)
        self.legend = self.item.addLegend(offset=(-10, 10))
        self.readout = QtWidgets.QLabel(" ")
        self.readout.setObjectName("lossReadout")

        self.smoothing = QtWidgets.QSlider(QtCore.Qt.Horizontal)
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
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.readout)

        self.smoothing.valueChanged.connect(self.schedule_redraw)
        self.log_y.toggled.connect(self._apply_axes)
        self.x_axis.currentIndexChanged.connect(self._apply_axes)
        self.plot.scene().sigMouseMoved.connect(self._hover)
        self._apply_axes()

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

    def _apply_axes(self) -> None:
        self.item.setLogMode(x=False, y=self.log_y.isChecked())
        self.item.setLabel("bottom", "step" if self.x_axis.currentIndex() == 0 else "wall time (s)")
        self.redraw()

    def _x(self, run: LossRun) -> np.ndarray:
        return run.steps if self.x_axis.currentIndex() == 0 else run.wall

    def _redraw(self) -> None:
        weight = self.smoothing.value() / 100.0
        self.smoothing_label.setText(f"{weight:.2f}")
        self._smoothed = []
        for run, (raw, sm) in zip(self.runs, self._curves, strict=True):
            x = self._x(run)
            y = run.loss
            smoothed = smooth(y, weight)
            self._smoothed.append(smoothed)
            if self.log_y.isChecked():
                ok = y > 0  # a log axis cannot show losses <= 0 (SSM/ESM can go negative)
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

    def export_item(self) -> pg.PlotItem:
        self.flush_redraw()
        return self.item
