"""The Study tab's guidance study (:mod:`workbench.jobs.guidance_study`): its choices and its
plot, kept apart from :mod:`.study` so that module stays about the sampler and loss studies.

The plot is the chosen distance against the guidance weight w (linear axis: w = 0 is the point
the others are compared with) on a log y axis, twice per sampler: to the tilted density q_w
(solid) and to p(x|c) (dashed), each with its noise-floor band (what a perfect sampler of that
target scores with the same n: mean ± 2 sd, per w, since each w has its own q_w). A curve
inside its band is as close to that target as n samples can tell; the distance of the solid
curve above its band is how far guidance lands from the density it is said to sample.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from workbench.errors import WorkbenchError

__all__ = ["GUIDANCE_METRICS", "GuidancePage", "draw_guidance", "parse_weights"]

DEFAULT_WEIGHTS = "0,0.5,1,2,4"
#: the chooser's measurements: (label, tilted column, its floor (mean, sd) columns, the p(x|c)
#: columns); a gap's floor mean is 0 (None)
GUIDANCE_METRICS = (
    (
        "log-density gap |gap|",
        ("log_density_gap", None, "log_density_gap_floor_std"),
        (
            "conditional_log_density_gap",
            None,
            "conditional_log_density_gap_floor_std",
        ),
    ),
    (
        "sliced Wasserstein",
        ("sw", "sw_floor", "sw_floor_std"),
        ("sw_conditional", "sw_conditional_floor", "sw_conditional_floor_std"),
    ),
)
_TARGETS = (("tilted q_w", QtCore.Qt.PenStyle.SolidLine), ("p(x|c)", QtCore.Qt.PenStyle.DashLine))
_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def parse_weights(text: str) -> list[float]:
    """``"0,0.5,1"`` (commas or spaces) as guidance weights; one-line WorkbenchError naming
    the bad one (not a number, negative or not finite, or named twice)."""
    from workbench.jobs.guidance_study import check_weights  # the study's own rules

    values: list[float] = []
    for part in (p for p in re.split(r"[,\s]+", text.strip()) if p):
        try:
            values.append(float(part))
        except ValueError:
            raise WorkbenchError(f"guidance: {part!r} is not a number") from None
    return check_weights(values, key="guidance")


class GuidancePage(QtWidgets.QWidget):
    """The guidance study's choices: class (``studyClass``), weights (``studyGuidance``), one
    sampler (``studyGuidanceSampler``) at one NFE (``studyGuidanceNfe``), n
    (``studyGuidanceN``), and which distance to plot (``studyGuidanceMetric``)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        from workbench.core.samplers import SAMPLERS

        self.class_box = QtWidgets.QSpinBox()
        self.class_box.setObjectName("studyClass")
        self.class_box.setRange(0, 999)
        self.class_box.setToolTip("the class to guide towards (a mixture component)")
        self.weights = QtWidgets.QLineEdit(DEFAULT_WEIGHTS)
        self.weights.setObjectName("studyGuidance")
        self.weights.setToolTip("guidance weights w, comma separated")
        self.sampler = QtWidgets.QComboBox()
        self.sampler.setObjectName("studyGuidanceSampler")
        self.sampler.addItems(SAMPLERS.names())
        self.sampler.setCurrentText("ode")
        self.nfe = QtWidgets.QSpinBox()
        self.nfe.setObjectName("studyGuidanceNfe")
        self.nfe.setRange(1, 100_000)
        self.nfe.setValue(100)
        self.nfe.setToolTip("score evaluations per run (a guided one costs two network calls)")
        self.n = QtWidgets.QSpinBox()
        self.n.setObjectName("studyGuidanceN")
        self.n.setRange(2, 10_000_000)
        self.n.setValue(2000)
        self.n.setToolTip("samples per w (the noise floor shrinks as 1/sqrt(n))")
        self.measure = QtWidgets.QComboBox()
        self.measure.setObjectName("studyGuidanceMetric")
        self.measure.addItems([m[0] for m in GUIDANCE_METRICS])
        form = QtWidgets.QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("class", self.class_box)
        form.addRow("w", self.weights)
        form.addRow("sampler", self.sampler)
        form.addRow("NFE", self.nfe)
        form.addRow("n", self.n)
        form.addRow("plot", self.measure)


def _band(item: pg.PlotItem, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, colour: str) -> Any:
    pen = pg.mkPen(colour, width=1, style=QtCore.Qt.PenStyle.DotLine)
    top = item.plot(x, hi, pen=pen)
    bottom = item.plot(x, lo, pen=pen)
    brush = pg.mkBrush(colour)
    c = brush.color()
    c.setAlpha(45)
    band = pg.FillBetweenItem(top, bottom, brush=pg.mkBrush(c))
    item.addItem(band)
    return band


def draw_guidance(
    item: pg.PlotItem, data: dict[str, Any], metric: int, clicked: Any
) -> tuple[dict[str, pg.PlotDataItem], list[Any], str]:
    """Draw the study ``data`` (:func:`workbench.io.study_file.read_study`) for the
    ``metric``-th of :data:`GUIDANCE_METRICS` on ``item`` (log y); ``clicked(i, points)``
    gets a click on sampler i's points (each carries its w's index). Returns the curves by
    legend name, the floor bands and a readout line."""
    label, *targets = GUIDANCE_METRICS[metric]
    c = data["class_label"]
    item.setLogMode(x=False, y=True)
    item.setTitle(f"{label} against guidance w, class {c}")
    item.setLabel("bottom", "guidance w")
    item.setLabel("left", label)
    w = np.asarray(data["guidance"], dtype=float)
    curves: dict[str, pg.PlotDataItem] = {}
    bands: list[Any] = []
    notes: list[str] = []
    for i, name in enumerate(data["names"]):
        for t, ((target, style), (key, floor_key, sd_key)) in enumerate(
            zip(_TARGETS, targets, strict=True)
        ):
            colour = _COLOURS[(2 * i + t) % len(_COLOURS)]
            y = np.abs(np.asarray(data[key][i], dtype=float))
            ok = data["done"][i] & np.isfinite(y) & (y > 0)
            if not ok.any():
                continue
            order = np.argsort(w[ok])
            legend = f"{name} → {target}"
            curve = item.plot(
                w[ok][order],
                y[ok][order],
                pen=pg.mkPen(colour, width=2, style=style),
                symbol="o" if t == 0 else "t",
                symbolSize=9,
                symbolBrush=colour,
                name=legend,
                data=np.flatnonzero(ok)[order],
            )
            curve.sigPointsClicked.connect(lambda _c, points, _ev, i=i: clicked(i, points))
            curves[legend] = curve
            if i:  # every sampler meets the same floors: one band per target
                continue
            sd = np.asarray(data[sd_key][i], dtype=float)[ok][order]
            mean = (
                np.zeros_like(sd)
                if floor_key is None
                else np.asarray(data[floor_key][i], dtype=float)[ok][order]
            )
            hi = mean + 2 * sd
            # a log axis has no 0: a band reaching 0 is drawn down to a hundredth of its top
            lo = np.where(mean - 2 * sd > 0, mean - 2 * sd, hi / 100)
            if np.all(np.isfinite(hi)) and np.all(hi > 0):
                bands.append(_band(item, w[ok][order], lo, hi, colour))
                notes.append(f"{target} floor ≤ {hi.max():.3g}")
    if curves:
        notes.insert(0, "bands: noise floor (mean ± 2 sd) of each target at this n")
    return curves, bands, "   ".join(notes) or " "
