"""The Score field tab: the learned score s_theta(x, t) beside the true grad log p_t at t.

- 2-D data: arrows on a 25 x 25 grid over the density p_t (the exact one for Gaussian-mixture
  data, else the forward particles' histogram): the learned score in orange, the true score
  (where known) in black beneath it, so that agreement shows as orange on black. Arrow lengths
  are proportional to |score| and capped: the 95th percentile of |true score| (of the learned
  one without truth) over the grid is drawn 0.9 grid spacings long, longer arrows are clipped to
  that. Where the truth is known a second panel maps the error s(t) |s_theta - grad log p_t|
  on a 64 x 64 grid; times s(t) it is the noise-prediction error |eps_theta - eps|, on one scale
  at every t. The readout gives its mean weighted by p_t on the grid.
- 1-D data: the learned and the true score against x, and p_t beneath.
- Images: a note (the field is drawn for 1-D and 2-D data).

The field is computed in model units and drawn in data units unless the window's "model units"
switch is on: points map by x = shift + scale y, scores by s / scale, densities by
1 / prod(scale) (:class:`workbench.gui.state.Units`), and the arrows are re-scaled to the
mapped grid (:func:`workbench.core.score_field.arrows_in_units`). The error map keeps its
values (s(t)·|Δ| is the model's noise-prediction error) and only moves with the axes.

The "true" score is the chosen reference's (:mod:`workbench.core.reference`): analytic, the
Fokker–Planck solution's finite-difference grad log p_t (NaN, so left out of arrows and means,
where p_t is below the solver's floor; the readout gives the p_t mass left out), or the
empirical one. For a non-linear SDE there is no s(t) and the error is |s_theta - grad log p_t|.

The numbers come from :func:`workbench.core.score_field.compute_field`; the model is evaluated
off the GUI thread, in a :class:`~workbench.gui.workers.Task` per refresh
(training hands the tab a new model about once a second): while one runs, only the latest
request is remembered and started when it ends. ``shutdown()`` joins the thread; the tab calls
it when its window closes (an event filter on the window), and a main window may call it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from workbench.core.clouds import ForwardCloud
from workbench.core.score_field import FieldRequest, arrows_in_units, compute_field
from workbench.core.sde import LinearSDE
from workbench.gui.guidance_controls import (
    no_class_reason,
    same_guidance,
    view_model,
    view_reference,
)
from workbench.gui.plots.base import TITLE_CHARS, ReferencePlotTab, set_title
from workbench.gui.plots.density import equal_columns, message_item, same_process
from workbench.gui.state import Units
from workbench.gui.workers import Task

if TYPE_CHECKING:
    from workbench.gui.state import ExperimentState

__all__ = ["ScoreFieldTab"]

NO_TRUTH = (
    "no exact score for this data set (only Gaussian mixtures have one): choose the "
    "Fokker–Planck or empirical reference (truth, beside the time slider)"
)
_LEARNED = "#f36c21"
_TRUE = "#111111"


def _hint(truth: Any) -> str:
    if truth is None:
        return "no learned score yet: train to see it"
    return "no learned score yet: train, or pick model.kind = analytic"


# ------------------------------------------------------------------------------------ the views
def _light_map() -> pg.ColorMap:
    return pg.ColorMap([0.0, 1.0], [(255, 255, 255), (88, 140, 204)])


class _Field2D:
    def __init__(
        self, layout: pg.GraphicsLayoutWidget, state: ExperimentState, reference: Any
    ) -> None:
        self.layout = layout
        self.truth = reference
        self.units = Units(state.normalizer)
        scaled = isinstance(state.sde, LinearSDE)
        self.error_label = "s(t)·|s_θ − ∇log p_t|" if scaled else "|s_θ − ∇log p_t|"
        self.field = layout.addPlot(row=0, col=0)
        set_title(self.field, "score at t")
        self.field.setAspectLocked(True, 1)
        self.field.setMenuEnabled(False)
        self.legend = self.field.addLegend(offset=(-5, 5), brush=pg.mkBrush(255, 255, 255, 200))
        self.background = pg.ImageItem()
        self.background.setColorMap(_light_map())
        self.field.addItem(self.background)
        self.true_item = pg.PlotDataItem(connect="pairs", pen=pg.mkPen(_TRUE, width=3))
        self.learned_item = pg.PlotDataItem(connect="pairs", pen=pg.mkPen(_LEARNED, width=1.5))
        if self.truth is not None:
            self.field.addItem(self.true_item)
            self.legend.addItem(self.true_item, f"{self.truth.short} ∇log p_t")
        self.field.addItem(self.learned_item)
        self.legend.addItem(self.learned_item, "learned s_θ")
        self.hint = message_item(_hint(self.truth), fill=True)
        self.field.addItem(self.hint)
        plots = [self.field]
        self.error_plot = None
        if self.truth is not None:
            self.error_plot = layout.addPlot(row=0, col=1, title=f"error {self.error_label}")
            self.error_plot.setAspectLocked(True, 1)
            self.error_plot.setMenuEnabled(False)
            self.error_image = pg.ImageItem()
            self.error_plot.addItem(self.error_image)
            self.contour_items = []
            for colour in ("#00e5ff", "#7fdbe8"):
                item = pg.PlotDataItem(connect="pairs", pen=pg.mkPen(colour, width=1.2))
                self.error_plot.addItem(item)
                self.contour_items.append(item)
            self.error_hint = message_item("no learned score yet")
            self.error_plot.addItem(self.error_hint)
            self.bar = pg.ColorBarItem(
                values=(0, 1),
                colorMap=pg.colormap.get("inferno"),
                interactive=False,
                width=14,
                rounding=1e-6,
                label="s(t)·|Δ score|" if scaled else "|Δ score|",
            )
            self.bar.setImageItem(self.error_image)
            layout.addItem(self.bar, row=0, col=2)
            plots.append(self.error_plot)
        equal_columns(layout, plots)
        self.result: dict[str, Any] | None = None
        self.set_units(self.units)

    def set_units(self, units: Units) -> None:
        self.units = units
        for plot in (self.field, self.error_plot):
            if plot is not None:
                plot.setLabel("bottom", units.label("x₁"))
                plot.setLabel("left", units.label("x₂"))

    def show(self, r: dict[str, Any]) -> str:
        self.result = r
        h, t, u = r["half"], r["t"], self.units
        lo, hi = u.window(h, 2)
        rect = QtCore.QRectF(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])
        if not u.identity and "learned_segments" in r:
            r = {**r, **arrows_in_units(r, u.points, u.score)}
        if "background" in r:
            bg = u.density(r["background"], 2)
            self.background.setImage(bg, levels=(0, float(bg.max()) or 1.0))
            self.background.setRect(rect)
        else:
            self.background.clear()
        if r["learned_segments"] is not None:
            self.learned_item.setData(*r["learned_segments"])
        else:
            self.learned_item.setData([], [])
        if r["true_segments"] is not None:
            self.true_item.setData(*r["true_segments"])
        # the error panel says it where there is one; else a note over the arrows
        self.hint.setVisible(not r["has_model"] and self.error_plot is None)
        self.hint.setPos(rect.center().x(), rect.center().y())
        self.field.setRange(rect, padding=0)
        set_title(
            self.field,
            f"score at t = {t:.3f} over the {r.get('background_kind', 'plane')}",
            width=2 * TITLE_CHARS,
        )
        parts = [f"t = {t:.3f}" + ("" if t == r["t_requested"] else " (t ≥ 0.001 T is shown)")]
        if r["learned"] is not None or r["true"] is not None:
            parts.append(
                f"arrows: length ∝ |score|, {r['spacing'] * 0.9:.3g} (0.9 grid spacing) for "
                f"|score| = {r['cap_score']:.3g} (the 95th percentile), longer ones clipped"
            )
        if self.error_plot is not None:
            self.error_plot.setRange(rect, padding=0)
            for item, (xs, ys) in zip(self.contour_items, r.get("contours", []), strict=False):
                pts = u.points(np.stack([xs, ys], axis=-1).reshape(-1, 2))
                item.setData(pts[:, 0], pts[:, 1])
            if "error" in r:
                err = r["error"]
                finite = err[np.isfinite(err)]
                top = float(np.quantile(finite, 0.99)) if finite.size else 1.0
                # masked cells (below the FPK floor) drawn as 0: the readout gives their mass
                self.error_image.setImage(np.nan_to_num(err, nan=0.0), autoLevels=False)
                self.error_image.setRect(rect)
                self.bar.setLevels((0.0, top if top > 0 else 1.0))
                self.error_hint.setVisible(False)
                if r["linear"]:
                    parts.append(
                        f"mean error over p_t: s(t)·|Δ| = {r['mean_error']:.3g} "
                        f"(= |ε_θ − ε|), |Δ| = {r['mean_raw_error']:.3g}   s(t) = {r['s']:.3g}"
                    )
                else:
                    parts.append(f"mean error over p_t: |Δ| = {r['mean_raw_error']:.3g}")
                if r.get("masked", 0.0) > 0:
                    parts.append(f"masked (p_t below the floor): {100 * r['masked']:.2g} % of p_t")
                parts.append(f"contours: 50 % / 90 % of p_t   reference: {self.truth.note}")
            else:
                self.error_image.clear()
                self.error_hint.setVisible(True)
                self.error_hint.setPos(rect.center().x(), rect.center().y())
        else:
            parts.append(NO_TRUTH)
        if not r["has_model"]:
            parts.append(_hint(self.truth))
        if self.truth is not None and "error" not in r:
            parts.append(f"reference: {self.truth.note}")
        return "   ".join(parts)


class _Field1D:
    def __init__(
        self, layout: pg.GraphicsLayoutWidget, state: ExperimentState, reference: Any
    ) -> None:
        self.truth = reference
        self.units = Units(state.normalizer)
        self.plot = layout.addPlot(row=0, col=0, title="score at t")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.addLegend(offset=(-10, 10), brush=pg.mkBrush(255, 255, 255, 200))
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.true_item = None
        if self.truth is not None:
            self.true_item = self.plot.plot(
                pen=pg.mkPen(_TRUE, width=3), name=f"{self.truth.short} ∇log p_t"
            )
        self.learned_item = self.plot.plot(pen=pg.mkPen(_LEARNED, width=2), name="learned s_θ")
        self.hint = message_item(_hint(self.truth), fill=True)
        self.plot.addItem(self.hint)
        self.density_plot = layout.addPlot(row=1, col=0)
        self.density_plot.showGrid(x=True, y=True, alpha=0.25)
        self.density_plot.getAxis("left").enableAutoSIPrefix(False)
        self.density_plot.setXLink(self.plot)
        self.density_item = self.density_plot.plot(
            pen=pg.mkPen("#588ccc", width=1.5), fillLevel=0, brush=(88, 140, 204, 80)
        )
        layout.ci.layout.setRowStretchFactor(0, 3)
        layout.ci.layout.setRowStretchFactor(1, 1)
        self.result: dict[str, Any] | None = None
        self.set_units(self.units)

    def set_units(self, units: Units) -> None:
        self.units = units
        self.plot.setLabel("left", f"score ∂/∂x log p_t ({units.name})")
        self.density_plot.setLabel("left", f"p_t ({units.name})")
        self.density_plot.setLabel("bottom", units.label("x"))

    def show(self, r: dict[str, Any]) -> str:
        self.result = r
        u = self.units
        t, x = r["t"], u.points(r["x"][:, None])[:, 0]
        learned = None if r["learned"] is None else u.score(r["learned"][:, None])[:, 0]
        true = None if r["true"] is None else u.score(r["true"][:, None])[:, 0]
        self.plot.setTitle(f"score at t = {t:.3f}")
        if learned is not None:
            self.learned_item.setData(x, learned)
        else:
            self.learned_item.setData([], [])
        if self.true_item is not None and true is not None:
            self.true_item.setData(x, true, connect="finite")
        reference = true if true is not None else learned
        if reference is not None and np.any(np.isfinite(reference)):
            lo, hi = float(np.nanmin(reference)), float(np.nanmax(reference))
            pad = 0.1 * (hi - lo) + 1e-9
            self.plot.setYRange(lo - pad, hi + pad, padding=0)
        self.plot.setXRange(float(x[0]), float(x[-1]), padding=0.02)
        self.hint.setVisible(not r["has_model"])
        self.hint.setPos(
            float(np.mean(x)), 0 if reference is None else float(np.nanmean(reference))
        )
        if "density_edges" in r:
            edges = u.points(r["density_edges"][:, None])[:, 0]
            self.density_item.setData(edges, u.density(r["density"], 1), stepMode="center")
        elif "density" in r:
            self.density_item.setData(x, u.density(r["density"], 1))
        parts = [f"t = {t:.3f}" + ("" if t == r["t_requested"] else " (t ≥ 0.001 T is shown)")]
        if "mean_error" in r:
            if r["linear"]:
                parts.append(
                    f"mean error over p_t: s(t)·|Δ| = {r['mean_error']:.3g} (= |ε_θ − ε|)   "
                    f"s(t) = {r['s']:.3g}"
                )
            else:
                parts.append(f"mean error over p_t: |Δ| = {r['mean_error']:.3g}")
            if r.get("masked", 0.0) > 0:
                parts.append(f"masked (p_t below the floor): {100 * r['masked']:.2g} % of p_t")
        if self.truth is None:
            parts.append(NO_TRUTH)
        else:
            parts.append(f"reference: {self.truth.note}")
        if not r["has_model"]:
            parts.append(_hint(self.truth))
        return "   ".join(parts)


# ------------------------------------------------------------------------------------ the tab
class ScoreFieldTab(ReferencePlotTab):
    """The learned score field beside the true one, computed in a worker thread."""

    title = "Score field"
    square_panels = True  # the 2-D panels: one model unit as long across as up
    fieldUpdated = QtCore.Signal()  # a computed field has been drawn

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scoreFieldPlot")
        self.state: ExperimentState | None = None
        self.model: Any = None
        self.t = 0.0
        self.cloud: ForwardCloud | None = None
        self.reference: Any = None
        self.shown_reference: Any = None  # the reference, or its guided twin (a class chosen)
        self.view: _Field1D | _Field2D | None = None
        self.error: str | None = None
        self._task: Task | None = None
        self._queued = False  # a refresh asked for while one runs: started when it ends
        self._watched: QtWidgets.QWidget | None = None
        self.model_units = False  # data units unless the window's units switch says otherwise

        self._build_canvas("scoreField")
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.readout)
        self._show_message("no experiment yet")

    # -- the PlotTab hooks --------------------------------------------------------------------
    def set_experiment(self, state: ExperimentState) -> None:
        previous, self.state = self.state, state
        if (
            self.view is not None
            and same_process(previous, state)
            and same_guidance(previous, state)
        ):
            # only training, network or sampling settings changed: the true field is the same
            self.request()
            return
        self._drop_stale_reference(state)
        self._rebuild()

    def _rebuild(self) -> None:
        state = self.state
        if state is None:  # no experiment yet: nothing to build
            return
        self.layout_widget.clear()
        self.view = None
        reuse, self.cloud = self.cloud, None
        if state.is_image or state.dim > 2:
            what = "images" if state.is_image else f"{state.dim}-D vectors"
            self._show_message(
                f"The score field is shown for 1-D and 2-D data; these data are {what}. "
                "The Densities and Trajectories tabs show how the learned score samples them."
            )
            return
        if isinstance(state.sde, LinearSDE):
            self.cloud = ForwardCloud(state, reuse=reuse)
        # with a class chosen: the guided field's exact truth, where there is one
        self.shown_reference = view_reference(state, self.reference)
        self.view = (
            _Field1D(self.layout_widget, state, self.shown_reference)
            if state.dim == 1
            else _Field2D(self.layout_widget, state, self.shown_reference)
        )
        self.view.set_units(Units.of(state, self.model_units))
        self.stack.setCurrentWidget(self.layout_widget)
        self.readout.setText(" ")
        self.request()

    def set_time(self, t: float) -> None:
        self.t = float(t)
        self.request()

    def set_model_units(self, on: bool) -> None:
        """Draw in model units (True) or data units (False): the last field, re-drawn."""
        self.model_units = bool(on)
        if self.view is None:
            return
        self.view.set_units(Units.of(self.state, self.model_units))
        if self.view.result is not None:
            self.readout.setText(self.view.show(self.view.result))
            self.fieldUpdated.emit()

    def set_model(self, model: Any) -> None:
        self.model = model
        self.request()

    def export_item(self) -> Any:
        return self.layout_widget.scene() if self.view is not None else None

    # -- the worker ---------------------------------------------------------------------------
    def request(self) -> None:
        """Refresh the field: now, after the running refresh, or when the tab is shown."""
        self.schedule_redraw()

    def _redraw(self) -> None:
        """Start computing the field (LazyRedraw calls this only while the tab is shown), or
        queue it behind the one running."""
        if self.view is None:
            return
        if self._task is not None:
            self._queued = True
            return
        self._start()

    def is_idle(self) -> bool:
        """No refresh running or waiting (a hidden tab's deferred refresh does not count)."""
        return self._task is None and not self._queued

    def _start(self) -> None:
        self._queued = False
        model = view_model(self.state, self.model)
        req = FieldRequest(self.state, model, self.t, self.cloud, self.shown_reference)
        task = Task("score field", lambda ctx: compute_field(req), self)
        task.done.connect(self._done)
        task.failed.connect(self._failed)
        task.finished.connect(lambda: self._finished(task))
        self._task = task
        task.start()

    def _done(self, result: dict[str, Any]) -> None:
        if (
            result.get("state") is not self.state
            or result.get("reference") is not self.shown_reference
            or self.view is None
        ):
            return  # computed for an experiment (or a reference) since replaced
        self.error = None
        text = self.view.show(result)
        reason = no_class_reason(self.state, self.model)
        if reason is not None:  # said instead of the generic "no learned score yet"
            text = f"{reason}   {text}"
        self.readout.setText(text)
        self.fieldUpdated.emit()

    def _failed(self, message: str, details: str) -> None:
        self.error = message
        self.readout.setText(f"could not compute the score field: {message}")

    def _finished(self, task: Task) -> None:
        task.wait()
        task.deleteLater()
        if task is self._task:
            self._task = None
            if self._queued:
                self._start()

    def shutdown(self) -> None:
        """Drop any waiting refresh and join the running one (call before the tab goes away)."""
        self._queued = False
        task = self._task
        self._task = None
        if task is not None:
            task.cancel()
            task.wait()

    # -- visibility and teardown --------------------------------------------------------------
    def showEvent(self, event: QtGui.QShowEvent) -> None:
        window = self.window()
        if window is not self and window is not self._watched:
            if self._watched is not None:
                self._watched.removeEventFilter(self)
            window.installEventFilter(self)
            self._watched = window
        super().showEvent(event)  # and a refresh asked for while hidden (LazyRedraw)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if watched is self._watched and event.type() == QtCore.QEvent.Type.Close:
            self.shutdown()
        return False

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
