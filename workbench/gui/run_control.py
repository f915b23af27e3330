"""The main window's runs: training into a run folder, following one another process writes,
loading a run's model, and sampling into a trajectory file, each in a worker
:class:`~workbench.gui.workers.Task` that reports through queued signals.

Loading a run's checkpoint into a model for the views (after a training, on opening a run
folder, at each new checkpoint of a followed run) is worker work too: a
:class:`~workbench.gui.latest.LatestWork` reads the file and builds the model off the GUI
thread, for the experiment state shown when it was asked (a result for a state replaced since
is dropped). Train and Sample asked for while the state or the model is on its way start once
both have arrived (``when_ready``); ``trainingFinished`` is announced after the finished run's
model is in place, so whoever waits on it can sample at once.

A mixin of :class:`~workbench.gui.main_window.MainWindow`, kept apart so that the window's
building and its files stay one module and its work another; the attributes it uses are the
window's, declared below.
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PySide6 import QtCore, QtWidgets

from workbench.config import ExperimentConfig
from workbench.errors import WorkbenchError
from workbench.gui.document import DocumentWindow
from workbench.gui.latest import LatestWork
from workbench.gui.workers import Task, TaskContext

if TYPE_CHECKING:
    from workbench.gui.follow import RunFollower
    from workbench.gui.plots.base import PlotTab
    from workbench.gui.plots.loss import LossTab
    from workbench.gui.snapshots import TrainingScrubber
    from workbench.gui.state import ExperimentState

__all__ = ["RunControl"]


class RunControl(DocumentWindow):
    """Training, following, model loading and sampling of :class:`MainWindow`."""

    modelUpdated: QtCore.SignalInstance
    state: ExperimentState | None
    model: torch.nn.Module | None
    task: Task | None
    run_dir: Path | None
    runs_dir: Path
    loss_tab: LossTab
    tabs_by_name: dict[str, PlotTab]
    progress: QtWidgets.QProgressBar
    rate_label: QtWidgets.QLabel
    _training_config: ExperimentConfig | None
    _run_meaning: tuple[Path, Any, Any] | None
    _outcome: Any
    _rate: tuple[int, float]
    snapshots: TrainingScrubber
    # a finished run's signal and outcome, announced once its model has loaded
    _announcing: tuple[QtCore.SignalInstance, Any] | None = None
    _model_wanted: Path | None = None
    _checkpoint_given: dict[str, Any] | None = None  # the wanted run's checkpoint, if read

    def validate(self) -> bool:
        raise NotImplementedError

    def when_ready(self, start: Any) -> bool:
        raise NotImplementedError

    def _run_when_ready(self) -> None:
        raise NotImplementedError

    def _update_buttons(self) -> None:
        raise NotImplementedError

    @property
    def model_loader(self) -> LatestWork:
        """The worker that loads runs' checkpoints (made on first use)."""
        loader: LatestWork | None = getattr(self, "_model_loader", None)
        if loader is None:
            loader = self._model_loader = LatestWork("model-load", self)
            loader.done.connect(self._model_loaded)
            loader.failed.connect(self._model_load_failed)
            loader.busyChanged.connect(self._model_loader_busy)
        return loader

    def model_loading(self) -> bool:
        loader: LatestWork | None = getattr(self, "_model_loader", None)
        return loader is not None and loader.busy()

    def log(self, message: str) -> None:
        raise NotImplementedError

    def show_error(self, message: str, details: str = "") -> None:
        raise NotImplementedError

    def open_trajectory(self, path: str | os.PathLike[str]) -> None:
        raise NotImplementedError

    def _start_task(self, name: str, fn: Any, on_progress: Any, on_done: Any) -> Task:
        raise NotImplementedError

    def new_run_dir(self) -> Path:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = self.runs_dir / f"{stamp}-{self.config.data.name}"
        path, k = base, 1
        while path.exists():
            k += 1
            path = base.with_name(f"{base.name}-{k}")
        return path

    # following a run written elsewhere ---------------------------------------------------
    def follow_run(self, path: str | os.PathLike[str]) -> bool:
        """Attach the window to a run folder another process is writing (see gui/follow.py)."""
        from workbench.gui.follow import follow_in_window

        path = Path(path)
        # a folder that does not exist yet is fine: the job may not have started writing
        if path.exists() and not path.is_dir():
            self.show_error(f"{path}: not a folder (Follow takes a run folder)")
            return False
        self.stop_following()
        self.follower: RunFollower | None = follow_in_window(self, path)
        self.statusBar().showMessage(f"following {path}", 5000)
        return True

    def stop_following(self) -> None:
        follower = getattr(self, "follower", None)
        if follower is not None:
            follower.stop()
            follower.deleteLater()
            self.follower = None

    def _follow_dialog(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Follow run folder")
        if path:
            self.follow_run(path)

    # training ---------------------------------------------------------------------------
    def start_training(self) -> None:
        if self.task is not None or not self.validate():
            return
        if not self.when_ready(self.start_training):
            return  # started once the experiment (and a loading model) has arrived
        # our own run takes over the loss view and the model; a followed run stops updating them
        self.stop_following()

        config = self.config
        self._training_config = config
        run_dir = self.new_run_dir()
        self.run_dir = run_dir
        self.loss_tab.start_run(run_dir.name)
        self.snapshots.set_run(None)  # shown again for this run when it is done
        self.log(f"training {config.describe()} into {run_dir}")
        self._rate = (0, 0.0)

        def work(ctx: TaskContext) -> Any:
            # imported here, in the worker: a first import is long and holds the GIL
            from workbench.jobs.train import train_in_folder

            last = {"time": 0.0}

            def on_eval(step: int, ema: torch.nn.Module) -> None:
                # a copy on the CPU, at most once a second, made here in the worker: the views
                # refresh without the GUI thread building anything, and never share tensors
                # with the training thread
                now = QtCore.QDateTime.currentMSecsSinceEpoch() / 1000.0
                if now - last["time"] >= 1.0:
                    last["time"] = now
                    snapshot = copy.deepcopy(ema).to("cpu").eval().requires_grad_(False)
                    ctx.report(("model", snapshot))

            return train_in_folder(
                config,
                run_dir,
                on_progress=lambda p: ctx.report(("progress", p)),
                cancel=ctx.cancelled,
                on_eval=on_eval,
                eval_every=max(1, config.train.log_every),
                on_note=lambda note: ctx.report(("note", note)),
                what="SDE Workbench GUI training",
            )

        self._start_task("training", work, self._training_progress, self._training_done)

    def _training_progress(self, payload: tuple[str, Any]) -> None:
        kind, value = payload
        if kind == "note":
            self.log(value)
            return
        if kind == "model":
            if getattr(self.state, "config", None) == self._training_config:
                self.set_model(value)
            return
        p = value
        self.loss_tab.add_points([p.step], [p.wall_time], [p.loss])
        self.progress.setMaximum(p.total)
        self.progress.setValue(p.step)
        eta = (p.total - p.step) / p.steps_per_s if p.steps_per_s > 0 else float("nan")
        from workbench.terminal import format_duration

        self.rate_label.setText(
            f"step {p.step}/{p.total}   {p.steps_per_s:,.0f} steps/s   ETA "
            f"{format_duration(eta)}   loss {p.loss:.4g}"
        )

    def _training_done(self, result: Any) -> None:
        self.log(f"training: {result.message} ({self.run_dir})")
        if self.run_dir is not None and (self.run_dir / "checkpoint.pt").exists():
            self.load_run_model(self.run_dir)
        self.snapshots.set_run(self.run_dir)
        self.rate_label.setText(result.message)
        self._outcome = result

    def _build_model(self) -> torch.nn.Module | None:
        state = self.state
        return None if state is None else state.build_model()

    def set_model(self, model: torch.nn.Module | None) -> None:
        self.model = model
        for tab in self.tabs_by_name.values():
            tab.set_model(model)
        self.modelUpdated.emit(model)

    def load_run_model(self, run_dir: Path, checkpoint: dict[str, Any] | None = None) -> None:
        """Load ``run_dir``'s checkpoint into a model for the views, in a worker, once the
        current config's experiment state is there (the model is built from it).
        ``checkpoint``: its contents where the caller has read them already (the follower)."""
        self._model_wanted = run_dir
        self._checkpoint_given = checkpoint
        if not self.when_ready(self._load_wanted_model):
            return
        self._load_wanted_model()

    def _load_wanted_model(self) -> None:
        run_dir: Path | None = getattr(self, "_model_wanted", None)
        experiment = self.state
        if run_dir is None or experiment is None:
            return
        self._model_wanted = None
        given, self._checkpoint_given = self._checkpoint_given, None

        def work(_ctx: TaskContext) -> tuple[torch.nn.Module | None, tuple[Path, Any, Any]]:
            from workbench.io.checkpoints import load_checkpoint
            from workbench.io.runs import stored_experiment, stored_normalizer

            try:
                state = given if given is not None else load_checkpoint(run_dir / "checkpoint.pt")
                meaning = (run_dir, stored_experiment(state), stored_normalizer(state))
                model = experiment.build_model()
                try:
                    model.load_state_dict(state["ema"])
                except RuntimeError:
                    return None, meaning  # the experiment changed since; a later load fits
                return model.eval(), meaning
            except KeyError as exc:
                raise WorkbenchError(f"the checkpoint has no {exc}") from None

        self.model_loader.request((run_dir, experiment), work)

    def _model_loaded(self, tag: tuple[Path, ExperimentState], result: Any) -> None:
        experiment = tag[1]
        if experiment is not self.state:
            return  # built for a state replaced since: the views have moved on
        model, meaning = result
        self._run_meaning = meaning
        scrubbed = getattr(self, "snapshots", None)
        if scrubbed is not None and scrubbed.holds_earlier_model():
            return  # the user scrubbed to an earlier step while the checkpoint loaded
        if model is not None:
            self.set_model(model)

    def _model_load_failed(self, tag: tuple[Path, Any], message: str, details: str) -> None:
        self.show_error(f"could not load the model of {tag[0]}: {message}", details)

    def _model_loader_busy(self, busy: bool) -> None:
        self._update_buttons()
        if not busy:
            self._announce()
            self._run_when_ready()

    def _announce(self) -> None:
        """Announce a finished training whose model has been loaded (or failed to)."""
        waiting = getattr(self, "_announcing", None)
        if waiting is not None and not self.model_loading():
            self._announcing = None
            signal, outcome = waiting
            signal.emit(outcome)

    # sampling ---------------------------------------------------------------------------
    def start_sampling(self) -> None:
        if self.task is not None or not self.validate():
            return
        if not self.when_ready(self.start_sampling):
            return
        from workbench.jobs.sample import sample_to_file

        config = self.config
        model = self.model if config.model.kind != "analytic" else self._build_model()
        if model is None:
            self.show_error(
                "nothing to sample from yet: train first, or choose model.kind = analytic"
            )
            return
        run_dir = self.run_dir or self.new_run_dir()
        stamp = _dt.datetime.now().strftime("%H%M%S")
        out = run_dir / f"samples-{config.sample.sampler}-{stamp}.h5"
        k = 1
        while out.exists():  # a second sampling (a retry) within the same second
            k += 1
            out = run_dir / f"samples-{config.sample.sampler}-{stamp}-{k}.h5"
        self.log(f"sampling {config.sample.n} points with {config.sample.sampler} into {out}")

        dataset = self._run_dataset(config)

        def work(ctx: TaskContext) -> Any:
            return sample_to_file(
                config,
                model,
                out,
                progress=lambda done, total: ctx.report((done, total)),
                cancel=ctx.cancelled,
                dataset=dataset,
            )

        self._start_task("sampling", work, self._sampling_progress, self._sampling_done)

    def _run_dataset(self, config: ExperimentConfig) -> Any:
        """The data set to sample with: the run's, in its stored normaliser's units, while the
        model is the opened or trained run's and the experiment still means what it did; else
        None (sample_to_file builds it from the config)."""
        from workbench.io.runs import config_differences

        meaning = self._run_meaning
        if meaning is None or self.state is None or config.model.kind == "analytic":
            return None
        run_dir, trained, normalizer = meaning
        if run_dir != self.run_dir or normalizer is None or trained is None:
            return None
        if config_differences(config, trained):
            return None
        return self.state.dataset.with_normalizer(normalizer)

    def _sampling_progress(self, payload: tuple[int, int]) -> None:
        done, total = payload
        self.progress.setMaximum(total)
        self.progress.setValue(done)
        self.rate_label.setText(f"sampling: step {done}/{total}")

    def _sampling_done(self, result: Any) -> None:
        if result.status == "cancelled":
            self.log(f"sampling cancelled; {result.path} keeps the rows so far (incomplete)")
        else:
            self.log(
                f"sampling: wrote {result.path} ({result.nfe} score evaluations, "
                f"{result.seconds:.1f} s)"
            )
        self.rate_label.setText(f"sampling {result.status}: {result.path.name}")
        self.open_trajectory(result.path)
        self._outcome = result.path
