"""The row under the 2-D Densities panels: p_t(x₁) and p_t(x₂) of the same three densities.

The square panels of 2-D data fill the width long before the height: the row below them shows
the marginals of the forward histogram, the reverse histogram and the reference p_t on their
grid (:func:`workbench.core.grids.marginals`), as the 1-D view shows its densities at t, so a
mode that is too narrow or too heavy reads off as a number on an axis, not as a shade.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from workbench.core.grids import coarsen, marginals
from workbench.gui.state import Units

__all__ = ["CURVE_PENS", "MarginalRow"]

#: the pens of the Densities tab's curves (here and in the 1-D view): forward blue, reverse
#: orange, the reference dashed black
CURVE_PENS = {
    "forward": pg.mkPen("#1f77b4", width=1.5),
    "reverse": pg.mkPen("#ff7f0e", width=1.5),
    "exact": pg.mkPen("#222222", width=2, style=QtCore.Qt.PenStyle.DashLine),
}
_NAMES = {"forward": "forward", "reverse": "reverse"}
#: neighbouring cells merged (per axis) before a histogram's marginal is drawn
HISTOGRAM_MERGE = 2
#: the y range over the highest curve
HEADROOM = 1.1
#: how each curve is drawn, in the key's words
_STROKES = {"forward": "━━", "reverse": "━━", "exact": "╍╍"}


def _key(names: list[str], labels: dict[str, str]) -> str:
    """The curves' key as one line of HTML: each name after a stroke of its colour."""
    parts = []
    for name in names:
        colour = CURVE_PENS[name].color().name()
        stroke = f"<span style='color:{colour}'>{_STROKES[name]}</span>"
        parts.append(f"{stroke} {html.escape(labels[name])}")
    return "&nbsp;&nbsp;&nbsp;".join(parts)


class MarginalRow:
    """Two plots, x₁ and x₂, each with a curve per density shown in the panels above.

    ``reference_label`` names the reference's curve in the key over them, shortly ("exact",
    "FPK", ...; None: no reference, no curve). The curves' data (centres, density in the
    units shown) are kept in ``shown``.
    """

    def __init__(
        self, layout: pg.GraphicsLayoutWidget, row: int, columns: int, reference_label: str | None
    ) -> None:
        inner = layout.addLayout(row=row, col=0, colspan=columns)
        self.plots: list[pg.PlotItem] = []
        self.curves: list[dict[str, pg.PlotDataItem]] = []
        names = ["forward", "reverse"] + (["exact"] if reference_label is not None else [])
        labels = {**_NAMES, "exact": reference_label or ""}
        # the key, one line over both plots: a legend inside a plot covered its curves
        self.key = inner.addLabel(_key(names, labels), row=0, col=0, colspan=2)
        for axis in range(2):
            plot = inner.addPlot(row=1, col=axis)
            plot.setMenuEnabled(False)
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.getAxis("left").enableAutoSIPrefix(False)
            curves = {}
            for name in names:
                step = "center" if name != "exact" else None
                curves[name] = plot.plot(stepMode=step, pen=CURVE_PENS[name])
            self.plots.append(plot)
            self.curves.append(curves)
        #: what each curve shows: name -> [(x₁ centres, p(x₁)), (x₂ centres, p(x₂))]
        self.shown: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}

    def set_units(self, units: Units) -> None:
        for axis, plot in enumerate(self.plots):
            coordinate = "x₁" if axis == 0 else "x₂"
            plot.setLabel("bottom", units.label(coordinate))
            plot.setLabel("left", f"p_t({coordinate}) ({units.name})")

    def show(self, name: str, density: np.ndarray | None, units: Units, half: float) -> None:
        """Draw the marginals of ``density`` (model units on [-half, half]², None: clear)."""
        if density is None:
            self.shown.pop(name, None)
            for curves in self.curves:
                curves[name].setData([], [])
            return
        low, high = units.window(half, 2)
        p = units.density(density, 2)
        if name != "exact" and p.shape[0] % HISTOGRAM_MERGE == 0:
            # a histogram's marginal on cells HISTOGRAM_MERGE times wider: a few thousand
            # samples leave the panels' fine cells too noisy to read as a curve
            p = coarsen(p, HISTOGRAM_MERGE) / HISTOGRAM_MERGE**2  # the blocks' mean density
        pairs = marginals(p, low, high)
        self.shown[name] = pairs
        for axis, (centres, values) in enumerate(pairs):
            curve = self.curves[axis][name]
            if name == "exact":
                curve.setData(centres, values)
            else:  # steps: the cells' edges around their centres
                width = (high[axis] - low[axis]) / len(centres)
                edges = np.append(centres - width / 2, centres[-1] + width / 2)
                curve.setData(edges, values)
            plot = self.plots[axis]
            plot.setXRange(low[axis], high[axis], padding=0)
            top = max(float(np.max(v[axis][1], initial=0.0)) for v in self.shown.values())
            plot.setYRange(0.0, HEADROOM * top if top > 0 else 1.0, padding=0)
