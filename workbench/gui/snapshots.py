"""The training-step slider: scrub through a run's snapshots and watch the model learn.

Shown under the time slider while the open run (an opened run folder, the run just trained, or
a followed one) has snapshots (``train.snapshot_every``, :mod:`workbench.io.snapshots`). Each
snapshot is re-sampled once, in a worker thread, with the same seed for all
(:func:`workbench.jobs.snapshots.resample_snapshots`), and kept: moving the slider to a step
already done is instant, to another one asks the worker for it first. The chosen step's
network becomes the window's model (the Score field and the Densities' learned views redraw)
and its samples the Densities view's "generated at t" panel.

A followed run is listed again every second, and new snapshots extend the slider. Nothing is
read from a snapshot on the GUI thread; the one listing of a folder per second is a directory
read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6 import QtCore, QtWidgets

from workbench.errors import WorkbenchError
from workbench.gui.workers import Task, TaskContext

if TYPE_CHECKING:
    from workbench.jobs.snapshots import SnapshotSamples

__all__ = ["TrainingScrubber"]

#: how often a followed run's snapshots are listed again
POLL_MS = 1000


class TrainingScrubber(QtWidgets.QWidget):
    """The ``trainingStepSlider`` with its ``trainingStepLabel``, for the main window."""

    stepShown = QtCore.Signal(int)  # the window now shows the snapshot of this step
    sampled = QtCore.Signal(int)  # a snapshot's samples arrived in the cache
    failed = QtCore.Signal(str)  # one line

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.setObjectName("trainingStepBar")
        self.window_ = window
        self.run: Path | None = None
        self.steps: list[int] = []
        self.total = 0
        self.cache: dict[int, SnapshotSamples] = {}
        self.errors: dict[int, str] = {}
        self.run_config: Any = None
        self.task: Task | None = None
        self._wanted: int | None = None  # the step to show once it is sampled
        self.applied_step: int | None = None  # the snapshot whose network the window shows
        self._generation = 0  # bumped by set_run: results of an older run are dropped

        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setObjectName("trainingStepSlider")
        self.slider.setToolTip(
            "training step: show the model as it was at each kept snapshot "
            "(train.snapshot_every), re-sampled with the same noise"
        )
        self.slider.setPageStep(1)
        self.label = QtWidgets.QLabel()
        self.label.setObjectName("trainingStepLabel")
        self.label.setMinimumWidth(160)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QtWidgets.QLabel("training step"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.label)
        self.slider.valueChanged.connect(self._moved)
        self._poll = QtCore.QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self.refresh)
        self.setVisible(False)

    # -- the run ------------------------------------------------------------------------------
    def set_run(self, run: str | Path | None, *, follow: bool = False) -> None:
        """Scrub ``run``'s snapshots (None: none); ``follow`` lists the folder again every
        second while another process writes it."""
        self._generation += 1
        self._cancel()
        self.run = None if run is None else Path(run)
        self.steps, self.cache, self.errors, self.run_config = [], {}, {}, None
        self._wanted = None
        self.applied_step = None
        self._poll.stop()
        if self.run is not None and follow:
            self._poll.start()
        self.refresh()

    def refresh(self) -> None:
        """List the run's snapshots; new ones extend the slider (the shown step stays, unless it
        was the newest: then the newest is shown)."""
        from workbench.io.snapshots import list_snapshots

        if self.run is None:
            self.setVisible(False)
            return
        try:
            steps = list_snapshots(self.run)
        except WorkbenchError as exc:
            self._fail(str(exc))
            return
        if steps == self.steps:
            return
        at_end = not self.steps or self.slider.value() == len(self.steps) - 1
        self.steps = steps
        self.total = self._total()
        self.setVisible(bool(steps))
        if not steps:
            return
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(steps) - 1)
        if at_end:
            self.slider.setValue(len(steps) - 1)
        self.slider.blockSignals(False)
        self._show_label()
        self._start()  # sample what is new, in the background

    def _total(self) -> int:
        config = getattr(self.window_, "config", None)
        total = getattr(getattr(config, "train", None), "steps", 0)
        return max(int(total or 0), self.steps[-1] if self.steps else 0)

    def current_step(self) -> int | None:
        return self.steps[self.slider.value()] if self.steps else None

    def _show_label(self, note: str = "") -> None:
        step = self.current_step()
        text = "" if step is None else f"step {step} of {self.total}"
        self.label.setText(f"{text}  {note}".strip())

    def holds_earlier_model(self) -> bool:
        """Whether the window shows an earlier snapshot's network than the run's newest: a
        checkpoint arriving then (the run opened, or followed) must not replace it."""
        return (
            self.isVisible()
            and self.applied_step is not None
            and bool(self.steps)
            and self.applied_step != self.steps[-1]
            and self.current_step() == self.applied_step
        )

    # -- the slider ---------------------------------------------------------------------------
    def show_step(self, step: int) -> None:
        """Move to the snapshot of ``step`` and show it (at once when it is sampled already,
        else when the worker has it: ``stepShown``), even where the slider already is."""
        self.slider.blockSignals(True)
        self.slider.setValue(self.steps.index(step))
        self.slider.blockSignals(False)
        self._moved(self.slider.value())

    def _moved(self, _index: int) -> None:
        step = self.current_step()
        if step is None:
            return
        self._wanted = step
        if step in self.errors:
            self._show_label("(unreadable)")
            return
        if step in self.cache:
            self._apply(self.cache[step])
            return
        self._show_label("sampling…")
        self._start()

    def _apply(self, result: SnapshotSamples) -> None:
        """Show ``result`` in the window: its network as the model, its samples in the
        Densities view, if the window still holds the run's experiment."""
        from workbench.io.runs import config_differences

        w = self.window_
        if self.run_config is None or config_differences(w.config, self.run_config):
            self._show_label("(the experiment differs from the run's)")
            return
        self._wanted = None
        self.applied_step = result.step
        w.set_model(result.model)
        density = w.tabs_by_name.get("density")
        if density is not None:
            density.set_trajectory(result)
        self._show_label()
        self.stepShown.emit(result.step)

    # -- the worker ---------------------------------------------------------------------------
    def _order(self) -> list[int]:
        """What is still to sample: the wanted step first, then the rest outward from it."""
        todo = [s for s in self.steps if s not in self.cache and s not in self.errors]
        here = self.current_step() or 0
        return sorted(todo, key=lambda s: (s != self._wanted, abs(s - here)))

    def _start(self) -> None:
        if self.run is None:
            return
        if self.task is not None:
            # the running one is asked to stop after its snapshot; its end starts the next
            self.task.cancel()
            return
        order = self._order()
        if not order:
            return
        run, generation = self.run, self._generation

        def work(ctx: TaskContext) -> Any:
            # imported here, in the worker: jobs imports torch's samplers (GIL-heavy)
            from workbench.io.runs import RunFolder
            from workbench.jobs import snapshots as jobs

            ctx.report(("config", RunFolder.open(run).load_config()))
            errors: dict[int, str] = {}

            def result(r: Any) -> None:
                ctx.report(("result", r))

            jobs.resample_snapshots(
                run, order, on_result=result, cancel=ctx.cancelled, errors=errors
            )
            for step, message in errors.items():
                ctx.report(("error", (step, message)))

        task = Task("snapshots", work, self)
        task.progress.connect(lambda payload: self._report(generation, payload))
        task.failed.connect(lambda message, _details: self._fail(message))
        task.finished.connect(lambda t=task: self._finished(t))
        self.task = task
        task.start()

    def _report(self, generation: int, payload: tuple[str, Any]) -> None:
        if generation != self._generation:
            return  # another run was opened since
        kind, value = payload
        if kind == "config":
            self.run_config = value
        elif kind == "result":
            self.cache[value.step] = value
            self.sampled.emit(value.step)
            if value.step == self._wanted:
                self._apply(value)
        elif kind == "error":
            step, message = value
            self.errors[step] = message
            self._fail(message)
            if step == self.current_step():
                self._show_label("(unreadable)")

    def _fail(self, message: str) -> None:
        line = " ".join(message.split())
        self.window_.log(f"snapshots: {line}")
        self.failed.emit(line)

    def _finished(self, task: Task) -> None:
        task.wait()
        if task is self.task:
            self.task = None
            task.deleteLater()
            self._start()  # what was asked for meanwhile

    def _cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def is_idle(self) -> bool:
        return self.task is None

    def shutdown(self) -> None:
        """Stop polling and join the worker (the window is closing)."""
        self._poll.stop()
        self._generation += 1
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            task.wait()
