"""The Log-likelihood view: the histogram of the per-sample log p(x) the sampler saved."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from workbench.gui.inspector.common import HIST_BINS, _View

if TYPE_CHECKING:
    from workbench.gui.inspector.file_view import FileView


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
