"""The Statistics view: mean, spread and range of the samples over the saved rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from workbench.gui.inspector.common import _View

if TYPE_CHECKING:
    from workbench.gui.inspector.file_view import FileView

STATS_ROWS = 200  # rows read for the statistics plot, at most
STATS_DIMS = 4  # per-dimension statistics for at most this many dimensions


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
