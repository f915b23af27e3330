"""The Schedule tab: g(t)^2 (beta(t) for VP), m(t), s(t) and the SNR m^2/s^2 of the SDE."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
import torch
from PySide6 import QtCore, QtWidgets

from workbench.core.sde import LinearSDE
from workbench.gui.plots.base import PlotTab

if TYPE_CHECKING:
    from workbench.gui.state import ExperimentState

__all__ = ["ScheduleTab"]


class ScheduleTab(PlotTab):
    title = "Schedule"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("schedulePlot")
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("w")
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.markers: list[pg.InfiniteLine] = []
        titles = {
            "g2": "g(t)² (β(t) for VP)",
            "m": "m(t): mean coefficient",
            "s": "s(t): noise std",
            "snr": "SNR(t) = m²/s² (log)",
        }
        for i, (key, title) in enumerate(titles.items()):
            item = self.view.addPlot(row=i // 2, col=i % 2, title=title)
            item.showGrid(x=True, y=True, alpha=0.25)
            item.setLabel("bottom", "t")
            self.plots[key] = item
            self.curves[key] = item.plot(pen=pg.mkPen("#1f77b4", width=2))
            line = pg.InfiniteLine(
                angle=90, pen=pg.mkPen("#d62728", style=QtCore.Qt.PenStyle.DashLine)
            )
            item.addItem(line)
            self.markers.append(line)
        self.plots["snr"].setLogMode(y=True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.view)
        self.values: dict[str, np.ndarray] = {}

    def set_experiment(self, state: ExperimentState) -> None:
        sde = state.sde
        t = torch.linspace(1e-3, sde.T, 400, dtype=torch.float64)
        self.values = {"t": t.numpy(), "g2": (sde.diffusion(t) ** 2).numpy()}
        if isinstance(sde, LinearSDE):
            m, s = sde.marginal_coeffs(t)
            self.values.update(m=m.numpy(), s=s.numpy(), snr=((m / s) ** 2).numpy())
        for key, curve in self.curves.items():
            if key in self.values:
                curve.setData(self.values["t"], self.values[key])
            else:
                curve.setData([], [])

    def set_time(self, t: float) -> None:
        for line in self.markers:
            line.setValue(t)

    def export_item(self) -> pg.GraphicsScene:
        return self.view.scene()
