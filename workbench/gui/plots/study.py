"""The Study tab: run a sampler or loss study (:mod:`workbench.jobs.study`) off the GUI thread
and plot it.

A sampler study is drawn as error against NFE on log-log axes, one curve per sampler, with the
noise floor of the chosen measurement as a band: what a perfect sampler scores with the same n
(floor mean ± 2 sd). A curve that reaches the band has no error left that this n can see. A
loss study is drawn as the weighted score error e(t) against t, log-log, one curve per loss.
A guidance study (:mod:`.study_guidance`) is drawn as distance against the guidance weight w,
to the tilted density and to p(x|c), each with its floor band.

Clicking a point of a sampler study opens the samples it measures (stored in the study file:
:func:`workbench.io.study_file.read_samples`) in the window's Densities tab, titled by sampler
and NFE; the file is read in a worker (a study of many samples of images is not small).

The tab needs nothing of the main window but what any QMainWindow has (its status bar, for the
progress and Cancel) and, optionally, ``runs_dir`` (where studies go by default), ``run_dir``
(a trained run to study the samplers of) and ``log``; so the window's edit is one line.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
import torch
from PySide6 import QtCore, QtWidgets

from workbench.errors import WorkbenchError
from workbench.gui.plots.base import LogAxis, PlotTab, follow_palette
from workbench.gui.plots.study_guidance import GuidancePage, draw_guidance, parse_weights
from workbench.gui.workers import Task, TaskContext, TaskProgress

__all__ = ["METRICS", "StudyTab", "parse_nfe"]

#: the chooser's measurements: (label, column of the study file, has a noise floor)
METRICS = (
    ("log-density gap |gap|", "log_density_gap", True),
    ("sliced Wasserstein", "sw", True),
    ("MMD", "mmd", True),
    ("energy distance", "energy", True),
    ("pathwise error (deterministic samplers)", "pathwise_error", False),
)
DEFAULT_NFE = "5,10,20,50"
_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
_MAX_N = 10_000_000


def parse_nfe(text: str) -> list[int]:
    """``"5,10,20"`` (commas or spaces) as budgets; one-line WorkbenchError naming the bad one."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts:
        raise WorkbenchError("NFE: give at least one budget, e.g. 5,10,20,50")
    budgets: list[int] = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise WorkbenchError(
                f"NFE: {part!r} is not a whole number of score evaluations"
            ) from None
        if value < 1:
            raise WorkbenchError(f"NFE: {value} is not a positive number of score evaluations")
        if value in budgets:
            raise WorkbenchError(f"NFE: {value} is named twice")
        budgets.append(value)
    return budgets


def _checkable(name: str, names: list[str], checked: set[str]) -> QtWidgets.QListWidget:
    box = QtWidgets.QListWidget()
    box.setObjectName(name)
    for item_name in names:
        item = QtWidgets.QListWidgetItem(item_name)
        item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(
            QtCore.Qt.CheckState.Checked if item_name in checked else QtCore.Qt.CheckState.Unchecked
        )
        box.addItem(item)
    box.setMaximumHeight(150)
    return box


def _checked(box: QtWidgets.QListWidget) -> list[str]:
    return [
        box.item(i).text()
        for i in range(box.count())
        if box.item(i).checkState() == QtCore.Qt.CheckState.Checked
    ]


def set_checked(box: QtWidgets.QListWidget, names: list[str]) -> None:
    """Check exactly ``names`` in a checkable list (a test's or a preset's choice)."""
    for i in range(box.count()):
        item = box.item(i)
        on = item.text() in names
        item.setCheckState(QtCore.Qt.CheckState.Checked if on else QtCore.Qt.CheckState.Unchecked)


class StudyTab(PlotTab):
    """Choose, run and plot a study. ``studyFinished`` carries the ``StudyResult`` (None when
    the study failed) once the worker thread has ended."""

    title = "Study"
    studyFinished = QtCore.Signal(object)
    #: the :class:`~workbench.gui.plots.density.SampleSet` of a clicked point, once read
    samplesOpened = QtCore.Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        from workbench.core.losses import LOSSES
        from workbench.core.samplers import SAMPLERS

        self.setObjectName("studyTab")
        self.state: Any = None
        self.data: dict[str, Any] | None = None
        self.task: Task | None = None
        self.work: TaskProgress | None = None
        self.result: Any = None
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.band: pg.FillBetweenItem | None = None
        self.worker_threads: list[threading.Thread] = []
        self.loader: Task | None = None
        #: the study file the plot shows (its points' samples are read from it)
        self.path: Path | None = None

        self.kind = QtWidgets.QComboBox()
        self.kind.setObjectName("studyKind")
        self.kind.addItems(["samplers", "losses", "guidance"])
        self.samplers = _checkable("studySamplers", SAMPLERS.names(), {"em", "ode"})
        self.nfe = QtWidgets.QLineEdit(DEFAULT_NFE)
        self.nfe.setObjectName("studyNfe")
        self.nfe.setToolTip("score-evaluation budgets, comma separated")
        self.n = QtWidgets.QSpinBox()
        self.n.setObjectName("studyN")
        self.n.setRange(2, _MAX_N)
        self.n.setValue(2000)
        self.n.setToolTip("samples per sampler and budget (the noise floor shrinks as 1/sqrt(n))")
        self.losses = _checkable("studyLosses", LOSSES.names(), set(LOSSES.names()[:2]))
        self.steps = QtWidgets.QSpinBox()
        self.steps.setObjectName("studySteps")
        self.steps.setRange(1, _MAX_N)
        self.steps.setValue(2000)
        self.out = QtWidgets.QLineEdit()
        self.out.setObjectName("studyOut")
        self.out.setPlaceholderText("runs/studies/<time>-<data>-<kind>.h5")
        self.out.setToolTip(
            "the study file (and its .csv); empty: a new file in the runs folder's studies/. "
            "Naming an existing study of the same arguments resumes it."
        )
        browse = QtWidgets.QToolButton()
        browse.setText("…")
        browse.clicked.connect(self._browse)
        self.metric_box = QtWidgets.QComboBox()
        self.metric_box.setObjectName("studyMetric")
        self.metric_box.addItems([label for label, _, _ in METRICS])
        self.run_button = QtWidgets.QPushButton("Run")
        self.run_button.setObjectName("studyRun")
        self.run_button.clicked.connect(self.run_study)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setObjectName("studyCancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_study)
        self.status = QtWidgets.QLabel("")
        self.status.setObjectName("studyStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        sampler_page = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(sampler_page)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("samplers", self.samplers)
        form.addRow("NFE", self.nfe)
        form.addRow("n", self.n)
        loss_page = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(loss_page)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("losses", self.losses)
        form.addRow("steps", self.steps)
        self.pages = QtWidgets.QStackedWidget()
        self.pages.addWidget(sampler_page)
        self.pages.addWidget(loss_page)
        self.guidance = GuidancePage()
        self.pages.addWidget(self.guidance)
        self.kind.currentIndexChanged.connect(self.pages.setCurrentIndex)

        out_row = QtWidgets.QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        controls = QtWidgets.QWidget()
        controls.setMaximumWidth(320)
        outer = QtWidgets.QVBoxLayout(controls)
        column = QtWidgets.QFormLayout()
        outer.addLayout(column)
        outer.addStretch(1)  # the choices stay together at the top
        column.addRow("study", self.kind)
        column.addRow(self.pages)
        column.addRow("output", out_row)
        column.addRow(buttons)
        column.addRow("metric", self.metric_box)
        self._form = column
        column.addRow(self.status)

        self.plot = pg.PlotWidget(axisItems={"bottom": LogAxis("bottom"), "left": LogAxis("left")})
        self.plot.setObjectName("studyPlot")
        self.plot.setToolTip("click a point to open its samples in the Densities tab")
        self.item = self.plot.getPlotItem()
        for side in ("left", "bottom"):
            self.item.getAxis(side).enableAutoSIPrefix(False)
        self.item.showGrid(x=True, y=True, alpha=0.25)
        self.item.setLogMode(x=True, y=True)
        self.legend = self.item.addLegend(offset=(-10, 10))
        self.readout = QtWidgets.QLabel(" ")
        self.readout.setObjectName("studyReadout")
        self.readout.setWordWrap(True)

        right = QtWidgets.QVBoxLayout()
        right.addWidget(self.plot, 1)
        right.addWidget(self.readout)
        layout = QtWidgets.QHBoxLayout(self)
        layout.addWidget(controls)
        layout.addLayout(right, 1)
        self.metric_box.currentIndexChanged.connect(self.schedule_redraw)
        self.guidance.measure.currentIndexChanged.connect(self.schedule_redraw)
        follow_palette(self.plot)
        self._redraw()

    # -- the experiment -----------------------------------------------------------------------
    def set_experiment(self, state: Any) -> None:
        self.state = state
        classes = int(getattr(getattr(state, "dataset", None), "num_classes", 0) or 0)
        if classes:  # the guidance study's class: one of the data's
            self.guidance.class_box.setMaximum(classes - 1)

    def _window_attr(self, name: str, default: Any = None) -> Any:
        return getattr(self.window(), name, default)

    def _log(self, message: str) -> None:
        log = self._window_attr("log")
        if callable(log):
            log(message)

    def default_out(self, kind: str) -> Path:
        """A new file in the runs folder's ``studies/``, named by time, data and kind."""
        runs = self._window_attr("runs_dir")
        if runs is None:
            from workbench.gui.main_window import default_runs_dir

            runs = default_runs_dir()
        data = self.state.config.data.name if self.state is not None else "study"
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(runs) / "studies" / f"{stamp}-{data}-{kind}"
        path, k = base.with_suffix(".h5"), 1
        while path.exists():
            k += 1
            path = base.with_name(f"{base.name}-{k}.h5")
        return path

    def _browse(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Study file", self.out.text(), "HDF5 (*.h5);;All files (*)"
        )
        if path:
            self.out.setText(path)

    # -- running ------------------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        self.status.setText(message)
        self._log(f"study: {message}")

    def run_study(self) -> Task | None:
        """Check the choices (one line in the status on a bad one), then run the study in a
        worker; returns the task, or None when nothing was started."""
        if self.task is not None:
            return None
        if self.state is None:
            self._fail("no valid experiment to study yet")
            return None
        from workbench.jobs import study as jobs

        config = self.state.config
        kind = self.kind.currentText()
        try:
            if kind == "samplers":
                samplers = _checked(self.samplers)
                jobs.parse_samplers(samplers)
                budgets = parse_nfe(self.nfe.text())
                source = self._sampler_source(config)
            elif kind == "guidance":
                weights = parse_weights(self.guidance.weights.text())
                samplers = [self.guidance.sampler.currentText()]
                source = self._sampler_source(config)
            else:
                losses = jobs.check_losses(_checked(self.losses))
        except WorkbenchError as exc:
            self._fail(" ".join(str(exc).split()))
            return None
        text = self.out.text().strip()
        out = Path(os.path.expanduser(text)) if text else self.default_out(kind)
        n, steps = self.n.value(), self.steps.value()
        if kind == "guidance":
            n, c, nfe = (
                self.guidance.n.value(),
                self.guidance.class_box.value(),
                self.guidance.nfe.value(),
            )
        threads = self.worker_threads

        def work(ctx: TaskContext) -> Any:
            threads.append(threading.current_thread())
            previous = torch.get_num_threads()
            # torch would take every core and the event loop would wait its turn
            torch.set_num_threads(max(1, min(previous, (os.cpu_count() or 2) - 1)))

            def progress(fraction: float, what: str) -> None:
                ctx.report((round(1000 * fraction), 1000))
                ctx.report(what)

            try:
                if kind == "samplers":
                    from workbench.jobs.sample import load_model

                    loaded, model, dataset = load_model(source)
                    result = jobs.sampler_study(
                        loaded,
                        model,
                        dataset,
                        out,
                        samplers=samplers,
                        nfe=budgets,
                        n=n,
                        source=str(source) if isinstance(source, Path) else "",
                        progress=progress,
                        cancel=ctx.cancelled,
                    )
                elif kind == "guidance":
                    from workbench.jobs.guidance_study import guidance_study
                    from workbench.jobs.sample import load_model

                    loaded, model, dataset = load_model(source)
                    result = guidance_study(
                        loaded,
                        model,
                        dataset,
                        out,
                        class_label=c,
                        guidance=weights,
                        samplers=samplers,
                        nfe=nfe,
                        n=n,
                        source=str(source) if isinstance(source, Path) else "",
                        progress=progress,
                        cancel=ctx.cancelled,
                    )
                else:
                    result = jobs.loss_study(
                        config,
                        out,
                        losses=losses,
                        steps=steps,
                        progress=progress,
                        cancel=ctx.cancelled,
                    )
            finally:
                torch.set_num_threads(previous)
            from workbench.io.study_file import read_study

            return result, read_study(result.path)

        task = Task("study", work, self)
        task.progress.connect(self._progress)
        task.done.connect(self._done)
        task.failed.connect(self._failed)
        task.finished.connect(self._finished)
        self.task = task
        self.result = None
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"running the {kind} study into {out}…")
        self._log(f"study: {kind} into {out}")
        window = self.window()
        bar = window.statusBar() if isinstance(window, QtWidgets.QMainWindow) else None
        if bar is not None:
            if self.work is None:
                self.work = TaskProgress(bar, "studyWork")
            self.work.track(task, f"{kind} study")
        task.start()
        return task

    def _sampler_source(self, config: Any) -> Any:
        """What the samplers sample from: the analytic score, or the window's trained run."""
        if config.model.kind == "analytic":
            return config
        run_dir = self._window_attr("run_dir")
        if run_dir is not None and (Path(run_dir) / "checkpoint.pt").exists():
            return Path(run_dir)
        raise WorkbenchError(
            "a sampler study needs a score: train a run first (or open one), or choose "
            "model.kind = analytic"
        )

    def cancel_study(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.setText("stopping after the current solver or training step…")

    def _progress(self, payload: Any) -> None:
        if isinstance(payload, str):
            self.status.setText(f"study: {payload}…")

    def _done(self, outcome: tuple[Any, dict[str, Any]]) -> None:
        self.result, self.data = outcome
        r = self.result
        self.path = Path(r.path)
        self.status.setText(
            f"study {r.status}: {r.ran} run, {r.skipped} already stored, {r.seconds:.1f} s — "
            f"{r.path}" + "".join(f"\n{w}" for w in r.warnings)
        )
        self._log(f"study {r.status}: {r.path} ({r.ran} run, {r.skipped} skipped)")
        self.schedule_redraw()

    def _failed(self, message: str, details: str) -> None:
        self._fail(f"study failed: {message}")
        show = self._window_attr("show_error")
        if callable(show) and details:
            show(f"study failed: {message}", details)

    def _finished(self) -> None:
        task = self.task
        if task is not None:
            task.wait()
        self.task = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.studyFinished.emit(self.result)

    # -- drawing ------------------------------------------------------------------------------
    def metric_key(self) -> tuple[str, str, bool]:
        return METRICS[self.metric_box.currentIndex()]

    def _clear(self) -> None:
        self.item.clear()
        self.legend.clear()
        self.curves = {}
        self.band = None

    def _redraw(self) -> None:
        self._clear()
        self.item.setLogMode(x=True, y=True)
        data = self.data
        # the metric picks among the sampler study's measures; a loss study has one
        self._form.setRowVisible(self.metric_box, data is None or data["kind"] == "samplers")
        if data is None:
            self.item.setLabel("bottom", "NFE (score evaluations)")
            self.item.setLabel("left", "error")
            self.item.setTitle("no study yet: choose one and press Run")
            return
        self.legend.anchor((1, 0), (1, 0), offset=(-10, 10))
        if data["kind"] == "samplers":
            self._draw_samplers(data)
        elif data["kind"] == "guidance":
            # the curves rise with w: the legend goes where they start low, top left
            self.legend.anchor((0, 0), (0, 0), offset=(10, 10))
            self.curves, bands, note = draw_guidance(
                self.item, data, self.guidance.measure.currentIndex(), self._point_clicked
            )
            self.band = bands[0] if bands else None
            self.readout.setText(note)
        else:
            self._draw_losses(data)

    def _draw_samplers(self, data: dict[str, Any]) -> None:
        label, key, floored = self.metric_key()
        self.item.setTitle(f"{label} against NFE")
        self.item.setLabel("bottom", "NFE (score evaluations)")
        self.item.setLabel("left", label)
        values = np.abs(data[key]) if key == "log_density_gap" else data[key]
        xs: list[float] = []
        empty: list[str] = []
        for i, name in enumerate(data["names"]):
            x = np.where(data["nfe_actual"][i] > 0, data["nfe_actual"][i], data["nfe"]).astype(
                float
            )
            y = values[i].astype(float)
            ok = data["done"][i] & np.isfinite(y) & (y > 0)
            if not ok.any():
                empty.append(name)
                continue
            order = np.argsort(x[ok])
            colour = _COLOURS[i % len(_COLOURS)]
            curve = self.item.plot(
                x[ok][order],
                y[ok][order],
                pen=pg.mkPen(colour, width=2),
                symbol="o",
                symbolSize=9,
                symbolBrush=colour,
                name=name,
                # each point carries its budget's index: a click names the entry
                data=np.flatnonzero(ok)[order],
            )
            curve.sigPointsClicked.connect(
                lambda _c, points, _ev, i=i: self._point_clicked(i, points)
            )
            self.curves[name] = curve
            xs.extend(x[ok].tolist())
        notes = [f"nothing to draw for {', '.join(empty)}"] if empty else []
        if floored and xs:
            mean, sd = data["floors"][key]
            if np.isfinite(mean) and np.isfinite(sd):
                hi = mean + 2 * sd
                # a log axis has no 0: a floor band reaching 0 (the gap's, whose mean is 0) is
                # drawn down to a hundredth of its top, which reads as "down to nothing"
                lo = mean - 2 * sd if mean - 2 * sd > 0 else hi / 100
                if hi > 0:
                    x_band = [min(xs) / 1.2, max(xs) * 1.2]
                    pen = pg.mkPen((128, 128, 128, 120))
                    top = self.item.plot(x_band, [hi, hi], pen=pen)
                    bottom = self.item.plot(x_band, [lo, lo], pen=pen)
                    self.band = pg.FillBetweenItem(top, bottom, brush=(128, 128, 128, 60))
                    self.item.addItem(self.band)
                    notes.append(f"band: noise floor {mean:.3g} ± 2 × {sd:.3g}")
        self.readout.setText("   ".join(notes) or " ")

    def show_study(self, path: str | os.PathLike[str]) -> None:
        """Plot the study file at ``path`` (as if it had just run here); its points open."""
        from workbench.io.study_file import read_study

        self.data = read_study(path)
        self.path = Path(path)
        self.kind.setCurrentIndex(self.kind.findText(self.data["kind"]))
        self.status.setText(f"study: {self.path}")
        self.schedule_redraw()

    # -- a clicked point -> its samples in the Densities tab -----------------------------------
    def _point_clicked(self, i: int, points: Any) -> None:
        if len(points):
            self.open_point(i, int(points[0].data()))

    def open_point(self, i: int, j: int) -> Task | None:
        """Read sampler ``i``'s samples at budget ``j`` in a worker, then show them in the
        Densities tab (:meth:`_samples_read`); a second click while one is read waits."""
        if self.path is None or self.data is None or self.data.get("kind") == "losses":
            return None
        if self.loader is not None:
            return None
        from workbench.io.study_file import read_samples

        path = self.path
        if self.data["kind"] == "guidance":
            what = f"{self.data['names'][i]} at w = {float(self.data['guidance'][j]):g}"
        else:
            what = f"{self.data['names'][i]} at {int(self.data['nfe'][j])} NFE"

        def work(ctx: TaskContext) -> Any:
            return read_samples(path, i, j)

        task = Task("study samples", work, self)
        task.done.connect(self._samples_read)
        task.failed.connect(lambda message, _details: self._fail(message))
        task.finished.connect(self._loader_finished)
        self.loader = task
        self.status.setText(f"reading the samples of {what}…")
        task.start()
        return task

    def _loader_finished(self) -> None:
        if self.loader is not None:
            self.loader.wait()
        self.loader = None

    def _samples_read(self, entry: Any) -> None:
        from workbench.config import parse_config
        from workbench.gui.plots.density import SampleSet

        try:
            config = parse_config(entry.config_toml, source=f"{entry.path}:config")
        except WorkbenchError:  # samples of an unreadable experiment: shown unchecked
            config = None
        # the truth drawn beside them is the one they were drawn for: a guidance study's class
        # and w, a sampler study's unguided p_0, whatever the window's class and w are
        choice = (-1, 0.0) if entry.guidance is None else (entry.class_label, entry.guidance)
        samples = SampleSet(entry.points, f"study: {entry.title}", 0.0, config, choice)
        self.status.setText(f"{entry.title}: {len(entry.points):,} samples shown in Densities")
        self._log(f"study: {entry.title} from {entry.path} shown in Densities")
        tabs = self._window_attr("tabs_by_name") or {}
        density = tabs.get("density")
        if density is not None and hasattr(density, "show_samples"):
            density.show_samples(samples)
            request_time = self._window_attr("_request_time")
            if callable(request_time):
                request_time(0.0)  # the samples are the sampler's output: t = 0
            widget = self._window_attr("tab_widget")
            if isinstance(widget, QtWidgets.QTabWidget):
                widget.setCurrentWidget(density)
        self.samplesOpened.emit(samples)

    def _draw_losses(self, data: dict[str, Any]) -> None:
        self.item.setTitle("weighted score error e(t) per loss")
        self.item.setLabel("bottom", "t")
        self.item.setLabel("left", "score error e(t)")
        t = np.asarray(data["t"], dtype=float)
        for i, name in enumerate(data["names"]):
            y = np.asarray(data["error"][i], dtype=float)
            ok = np.isfinite(y) & (y > 0)
            if not data["done"][i] or not ok.any():
                continue
            colour = _COLOURS[i % len(_COLOURS)]
            self.curves[name] = self.item.plot(
                t[ok],
                y[ok],
                pen=pg.mkPen(colour, width=2),
                symbol="o",
                symbolSize=5,
                symbolBrush=colour,
                name=name,
            )
        self.readout.setText(" ")

    def export_item(self) -> pg.PlotItem:
        self.flush_redraw()
        return self.item
