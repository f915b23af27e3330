"""The main window: experiment panels on the left, plot tabs in the centre, work in threads.

The window holds one :class:`~workbench.config.ExperimentConfig`. Every edit in a panel is
judged by the config itself (after a short pause in typing); an invalid value is marked at its
field with the config's message and Train/Sample are disabled until it is fixed. Training and
sampling run in :class:`~workbench.gui.workers.Task` threads and report through queued
signals; the window never waits on them except when closing, after asking.

The experiment itself (:class:`~workbench.gui.state.ExperimentState`: the data set read or
sampled, its normaliser, the SDE) is built off the GUI thread too, on every config change, by
a :class:`~workbench.gui.latest.LatestWork` (the newest config wins; a state built for an
older one is dropped). Until the state of the config shown has arrived the status bar says so
and Train/Sample are disabled; ``experimentChanged`` announces it. A Train or Sample asked for
meanwhile (a script, a retry) starts once it has arrived, or not at all if it failed.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from PySide6 import QtCore, QtGui, QtWidgets

from workbench.config import (
    ExperimentConfig,
    config_from_dict,
    config_to_dict,
    default_config,
    load_config,
    parse_config,
    save_config,
    to_toml,
)
from workbench.errors import ConfigError, WorkbenchError
from workbench.gui.app import app_icon
from workbench.gui.latest import LatestWork
from workbench.gui.panels import (
    DataPanel,
    NetworkPanel,
    Panel,
    SamplingPanel,
    SDEPanel,
    TrainingPanel,
    config_errors,
    describe_devices,
    mark_pages,
)
from workbench.gui.plots.base import PlotTab
from workbench.gui.plots.loss import LossTab
from workbench.gui.plots.schedule import ScheduleTab
from workbench.gui.run_control import RunControl
from workbench.gui.state import ExperimentState, preload_training
from workbench.gui.workers import Task, TaskContext

if TYPE_CHECKING:  # imported where they are used, lazily
    from workbench.gui.plots.trajectories import TrajectoryTab

__all__ = ["MainWindow", "default_runs_dir"]

_SLIDER_STEPS = 1000


def default_runs_dir() -> Path:
    """Where the GUI puts run folders: $SDE_WORKBENCH_HOME/runs, else the user's data dir."""
    home = os.environ.get("SDE_WORKBENCH_HOME")
    if home:
        return Path(home) / "runs"
    import platformdirs

    return Path(platformdirs.user_data_dir("sde-workbench", appauthor=False)) / "runs"


class MainWindow(RunControl):
    """The workbench. ``MainWindow()`` opens the built-in default experiment."""

    experimentChanged = QtCore.Signal(object)  # ExperimentState, built in a worker
    experimentFailed = QtCore.Signal(str)  # the current config's state could not be built
    trainingFinished = QtCore.Signal(object)  # TrainResult, or None after a failure
    samplingFinished = QtCore.Signal(object)  # path of the trajectory file, or None
    modelUpdated = QtCore.Signal(object)
    # the Run toolbar's actions and their buttons (workbench/gui/actions.py)
    train_action: QtGui.QAction
    stop_action: QtGui.QAction
    sample_action: QtGui.QAction
    train_button: QtWidgets.QToolButton
    stop_button: QtWidgets.QToolButton
    sample_button: QtWidgets.QToolButton
    run_toolbar: QtWidgets.QToolBar

    def __init__(
        self,
        settings: QtCore.QSettings | None = None,
        runs_dir: str | os.PathLike[str] | None = None,
        restore: bool = False,
    ) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowIcon(app_icon())
        self.settings = settings or QtCore.QSettings("sde-workbench", "SDE Workbench")
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.config: ExperimentConfig = default_config()
        self.state: ExperimentState | None = None
        self.valid = True
        self.model: torch.nn.Module | None = None
        self.trajectory: Any = None
        self.task: Task | None = None
        self.run_dir: Path | None = None
        self._training_config: ExperimentConfig | None = None
        # the opened or trained run's checkpoint: (folder, stored experiment, stored normaliser)
        self._run_meaning: tuple[Path, Any, Any] | None = None
        self.experiment_path: Path | None = None
        self.errors: list[str] = []  # every error shown, for the log and for tests
        # Answers the "work is running, quit?" question; tests replace it.
        self.confirm = self._ask_user
        self.inspector: Any = None  # the InspectorWindow, made on first use
        self.draw_dialog: Any = None  # the Data panel's draw mode, made on first use
        self.setAcceptDrops(True)

        # the state being built for the config shown (None: the state is that config's, or
        # its build failed); what is to start once it has arrived
        self._building: ExperimentConfig | None = None
        self._when_ready: list[Any] = []
        self.state_builder = LatestWork("experiment", self)
        self.state_builder.done.connect(self._state_built)
        self.state_builder.failed.connect(self._state_failed)
        # the first optimizer step's imports, now, before the window shows (see state.py);
        # likewise the inspector's modules (~30-60 ms), else paid by the first file opened
        preload_training()
        import workbench.gui.inspector  # noqa: F401

        self._build_panels()
        self._build_tabs()
        self._build_status()
        self._build_reference()
        self._build_log()
        self._build_menus()
        self._debounce = QtCore.QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(150)
        self._debounce.timeout.connect(self.validate)

        config = default_config()
        if restore:
            config = self._restored_config() or config
            self._restore_layout()
        self.set_config(config)
        self._set_document(None)
        if not restore or self.settings.value("geometry") is None:
            self.resize(1400, 900)

    # ------------------------------------------------------------------------------ building
    def _build_panels(self) -> None:
        self.data_panel = DataPanel()
        self.sde_panel = SDEPanel()
        self.network_panel = NetworkPanel()
        self.training_panel = TrainingPanel()
        self.sampling_panel = SamplingPanel()
        self.panels: list[Panel] = [
            self.data_panel,
            self.sde_panel,
            self.network_panel,
            self.training_panel,
            self.sampling_panel,
        ]
        toolbox = QtWidgets.QToolBox()
        toolbox.setObjectName("panelToolBox")
        titles = ["Data", "SDE", "Network", "Loss && Training", "Sampling"]
        for panel, title in zip(self.panels, titles, strict=True):
            scroll = QtWidgets.QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(panel)
            toolbox.addItem(scroll, title)
            panel.edited.connect(self._edited)
        self.data_panel.drawRequested.connect(self.open_draw)
        self.toolbox = toolbox
        dock = QtWidgets.QDockWidget("Experiment", self)
        dock.setObjectName("experimentDock")
        dock.setWidget(toolbox)
        dock.setMinimumWidth(330)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.experiment_dock = dock

    def open_draw(self) -> Any:
        """The Data panel's draw mode: the canvas in its own window (workbench/gui/draw.py)."""
        from workbench.gui.draw import open_draw_dialog

        return open_draw_dialog(self)

    def _build_tabs(self) -> None:
        self.loss_tab = LossTab()
        self.schedule_tab = ScheduleTab()
        self.tabs_by_name: dict[str, PlotTab] = {"loss": self.loss_tab}
        for name, tab in self._extra_tabs().items():
            self.tabs_by_name[name] = tab
        self.tabs_by_name["schedule"] = self.schedule_tab
        self.tab_widget = QtWidgets.QTabWidget()
        self.tab_widget.setObjectName("plotTabs")
        for tab in self.tabs_by_name.values():
            self.tab_widget.addTab(tab, tab.title)

        self.time_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.time_slider.setObjectName("timeSlider")
        self.time_slider.setRange(0, _SLIDER_STEPS)
        self.time_slider.setValue(_SLIDER_STEPS // 10)
        self.time_slider.setToolTip(
            "diffusion time t shown by the density, score and trajectory views"
        )
        self.time_label = QtWidgets.QLabel()
        self.time_label.setObjectName("timeLabel")
        self.time_label.setMinimumWidth(90)
        self.time_slider.valueChanged.connect(self._time_changed)
        trajectories = cast("TrajectoryTab", self.tabs_by_name["trajectories"])
        trajectories.timeRequested.connect(self._request_time)
        export = QtWidgets.QPushButton("Export plot…")
        export.setObjectName("exportPlotButton")
        export.clicked.connect(self._export_current_plot)

        centre = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(centre)
        layout.addWidget(self.tab_widget, 1)
        row = QtWidgets.QHBoxLayout()
        self._slider_row = row
        row.addWidget(QtWidgets.QLabel("t"))
        row.addWidget(self.time_slider, 1)
        row.addWidget(self.time_label)
        # one switch for every view: data units (what the Data preview shows) or model units
        self.units_toggle = QtWidgets.QCheckBox("model units")
        self.units_toggle.setObjectName("unitsToggle")
        self.units_toggle.setToolTip(
            "draw the densities, score field and trajectories in the model's normalised units "
            "(off: in data units, like the Data preview)"
        )
        self.units_toggle.toggled.connect(self._units_toggled)
        row.addWidget(self.units_toggle)
        row.addWidget(export)
        layout.addLayout(row)
        from workbench.gui.snapshots import TrainingScrubber

        self.snapshots = TrainingScrubber(self)  # shown while the open run has snapshots
        layout.addWidget(self.snapshots)
        self.setCentralWidget(centre)

    def _units_toggled(self, model: bool) -> None:
        for tab in self.tabs_by_name.values():
            if hasattr(tab, "set_model_units"):
                tab.set_model_units(model)

    def _request_time(self, t: float) -> None:
        """A tab (the trajectory player) asks to show time ``t``."""
        T = self.state.sde.T if self.state is not None else 1.0
        self.time_slider.setValue(round(t / T * _SLIDER_STEPS))

    def _extra_tabs(self) -> dict[str, PlotTab]:
        """Densities, score field and trajectories (their modules may grow independently)."""
        from workbench.gui.plots.density import DensityTab
        from workbench.gui.plots.score_field import ScoreFieldTab
        from workbench.gui.plots.study import StudyTab
        from workbench.gui.plots.trajectories import TrajectoryTab

        return {
            "density": DensityTab(),
            "score": ScoreFieldTab(),
            "trajectories": TrajectoryTab(),
            "study": StudyTab(),
        }

    def _build_status(self) -> None:
        bar = self.statusBar()
        self.progress = QtWidgets.QProgressBar()
        self.progress.setObjectName("progressBar")
        self.progress.setMaximumWidth(260)
        self.progress.setVisible(False)
        self.rate_label = QtWidgets.QLabel("")
        self.rate_label.setObjectName("rateLabel")
        self.device_label = QtWidgets.QLabel(describe_devices())
        self.device_label.setObjectName("deviceLabel")
        self.experiment_busy = QtWidgets.QLabel("building the experiment…")
        self.experiment_busy.setObjectName("experimentBusyLabel")
        self.experiment_busy.setVisible(False)
        bar.addWidget(self.progress)
        bar.addWidget(self.experiment_busy)
        bar.addWidget(self.rate_label, 1)
        bar.addPermanentWidget(self.device_label)

    def _build_reference(self) -> None:
        """The reference chooser (beside the time slider) and its solve's progress and cancel
        in the status bar; the manager solves off the GUI thread and caches per data + SDE."""
        from workbench.gui.reference import ReferenceManager, describe

        self.references = ReferenceManager(self)
        combo = QtWidgets.QComboBox()
        combo.setObjectName("referenceCombo")
        combo.setToolTip(
            "where the views' true p_t and score come from: analytic (Gaussian-mixture data, "
            "linear SDE), Fokker–Planck (1-D/2-D data, any SDE), empirical (the training set "
            "noised, linear SDE)"
        )
        for kind in ("auto", "analytic", "fpk", "empirical", "none"):
            combo.addItem(describe(kind), kind)
        combo.currentIndexChanged.connect(lambda _: self.references.set_kind(combo.currentData()))
        self.reference_combo = combo
        self._slider_row.insertWidget(self._slider_row.count() - 1, QtWidgets.QLabel("truth"))
        self._slider_row.insertWidget(self._slider_row.count() - 1, combo)
        self.reference_progress = QtWidgets.QProgressBar()
        self.reference_progress.setObjectName("referenceProgress")
        self.reference_progress.setMaximumWidth(200)
        self.reference_progress.setMinimumWidth(170)  # room for "Fokker–Planck 100%" on one line
        self.reference_progress.setRange(0, 1000)
        self.reference_progress.setFormat("Fokker–Planck %p%")
        self.reference_progress.setVisible(False)
        self.reference_cancel = QtWidgets.QToolButton()
        self.reference_cancel.setObjectName("referenceCancel")
        self.reference_cancel.setText("Cancel")
        self.reference_cancel.setToolTip("stop the Fokker–Planck solve")
        self.reference_cancel.setVisible(False)
        self.reference_cancel.clicked.connect(self._cancel_reference)
        self.statusBar().addPermanentWidget(self.reference_progress)
        self.statusBar().addPermanentWidget(self.reference_cancel)
        self.references.progress.connect(
            lambda f: self.reference_progress.setValue(round(1000 * f))
        )
        self.references.busyChanged.connect(self._reference_busy)
        self.references.referenceChanged.connect(self._reference_changed)
        self.references.failed.connect(lambda m: self.log(f"reference: {m}"))

    def _cancel_reference(self) -> None:
        self.references.cancel()
        self.log("Fokker–Planck solve cancelled; choose the reference again to restart it")

    def _reference_busy(self, busy: bool) -> None:
        self.reference_progress.setVisible(busy)
        self.reference_cancel.setVisible(busy)
        if busy:
            self.reference_progress.setValue(0)

    def _reference_changed(self, reference: Any) -> None:
        for tab in self.tabs_by_name.values():
            tab.set_reference(reference)
        if reference is not None:
            self.log(f"reference: {reference.note}")
        self._update_reference_choices()

    def _update_reference_choices(self) -> None:
        """Grey out the kinds this experiment cannot have, with the reason as tooltip."""
        from workbench.core.reference import unavailable_reason

        # a QComboBox's own model is a QStandardItemModel: its items can be disabled
        model = cast(QtGui.QStandardItemModel, self.reference_combo.model())
        for i in range(self.reference_combo.count()):
            kind = self.reference_combo.itemData(i)
            reason = None if kind == "auto" else unavailable_reason(kind, self.state)
            item = model.item(i)
            item.setEnabled(reason is None)
            item.setToolTip(reason or "")

    def _build_log(self) -> None:
        self.log_view = QtWidgets.QPlainTextEdit()
        self.log_view.setObjectName("logView")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        dock = QtWidgets.QDockWidget("Log", self)
        dock.setObjectName("logDock")
        dock.setWidget(self.log_view)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.resizeDocks([dock], [110], QtCore.Qt.Orientation.Vertical)
        self.log_dock = dock

    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        std = QtGui.QKeySequence.StandardKey
        entries = [
            ("&New experiment", std.New, self._new_from_user),
            ("&Open…", std.Open, self._open_dialog),
            ("&Save experiment", std.Save, self.save_experiment),
            ("Save experiment &as…", std.SaveAs, self._save_as_dialog),
        ]
        for text, key, slot in entries:
            action = menu.addAction(text)
            action.setShortcut(key)
            action.triggered.connect(slot)
        self.open_trajectory_action = menu.addAction("Open &trajectory file…")
        self.open_trajectory_action.triggered.connect(self._open_trajectory_dialog)
        self.follow_action = menu.addAction("&Follow run folder…")
        self.follow_action.setObjectName("followRunAction")
        self.follow_action.setToolTip(
            "Watch a run folder that another process (sde-workbench train, torchrun) is writing"
        )
        self.follow_action.triggered.connect(self._follow_dialog)
        self.recent_menu = menu.addMenu("Open &recent")
        self.export_action = menu.addAction("&Export samples…")
        self.export_action.triggered.connect(self._export_samples_dialog)
        menu.addSeparator()
        quit_action = menu.addAction("&Quit")
        quit_action.setShortcut(std.Quit)
        quit_action.triggered.connect(self.close)
        view = self.menuBar().addMenu("&View")
        view.addAction(self.experiment_dock.toggleViewAction())
        view.addAction(self.log_dock.toggleViewAction())
        from workbench.gui.actions import build_help_menu, build_run_actions

        build_run_actions(self, before=view.menuAction())
        view.addAction(self.run_toolbar.toggleViewAction())
        build_help_menu(self)
        self.recent_menu.aboutToShow.connect(self._refresh_recent_menu)
        self._refresh_recent_menu()

    # ------------------------------------------------------------------------------ the config
    def set_config(self, config: ExperimentConfig) -> None:
        """Show ``config`` in the panels and the views."""
        tree = config_to_dict(config)
        for panel in self.panels:
            panel.load(config, tree)
        self.config = config
        self._apply_valid(config)

    def raw_tree(self) -> dict[str, dict[str, Any]]:
        tree: dict[str, dict[str, Any]] = {}
        for panel in self.panels:
            tree.update(panel.raw())
        return tree

    def validate(self) -> bool:
        """Judge the panels' values by the config; mark the field of an error."""
        self._debounce.stop()
        try:
            config = config_from_dict(self.raw_tree())
        except ConfigError as exc:
            # every invalid field at once, not only the first the config meets
            fallback = config_to_dict(self.config) if self.config is not None else None
            errors = config_errors(self.raw_tree(), fallback) or {exc.key or "": exc.message}
            self._mark_all(errors)
            self.valid = False
            self._judge_modified(None)
            self._update_buttons()
            more = f" (and {len(errors) - 1} more marked)" if len(errors) > 1 else ""
            self.statusBar().showMessage(f"{exc}{more}", 10000)
            return False
        self._apply_valid(config)
        return self.valid

    def _mark(self, key: str | None, message: str | None) -> None:
        self._mark_all({} if key is None else {key: message or ""})

    def _mark_all(self, errors: dict[str, str]) -> None:
        for panel in self.panels:
            panel.mark_all(errors)
        mark_pages(self.toolbox, self.panels)

    def _apply_valid(self, config: ExperimentConfig) -> None:
        self._mark(None, None)
        self.config = config
        self.valid = True
        self._judge_modified(config)
        if config == getattr(self.state, "config", None):
            self._building = None  # back to the state shown: a build under way is stale
        elif config != self._building:
            self._building = config
            self.state_builder.request(config, lambda _ctx: ExperimentState.build(config))
        self.experiment_busy.setVisible(self._building is not None)
        self._update_buttons()
        self.statusBar().clearMessage()
        self._run_when_ready()

    def _state_built(self, config: ExperimentConfig, state: ExperimentState) -> None:
        """A state arrived from the builder: shown if it is the current config's."""
        if config != self.config or config != self._building:
            return  # stale: the config changed since it was asked for
        self._building = None
        self.experiment_busy.setVisible(False)
        self.state = state
        for panel in self.panels:
            panel.update_state(state)
        for tab in self.tabs_by_name.values():
            tab.set_experiment(state)
        self.references.set_experiment(state)
        self._update_reference_choices()
        self._time_changed()
        self.experimentChanged.emit(state)
        self._update_buttons()
        self._run_when_ready()

    def _state_failed(self, config: ExperimentConfig, message: str, details: str) -> None:
        if config != self.config or config != self._building:
            return
        self._building = None
        self.experiment_busy.setVisible(False)
        self.state = None
        self.valid = False
        if details:  # a bug, not a data file that does not load
            self.show_error(f"building the experiment failed: {message}", details)
        else:
            key = "data.path" if config.data.name == "file" else "data.name"
            self._mark(key, message)
            self.log(f"data: {message}")
        for start in self._when_ready:
            self.log(f"not started ({getattr(start, '__name__', 'work')}): the experiment failed")
        self._when_ready.clear()
        self._update_buttons()
        self.experimentFailed.emit(message)

    def experiment_ready(self) -> bool:
        """Whether the state shown is the current config's (built, not being rebuilt)."""
        return self._building is None and self.state is not None

    def experiment_settled(self) -> bool:
        """Whether the current config's state has arrived or failed (nothing being built)."""
        return self._building is None

    def when_ready(self, start: Any) -> bool:
        """True if the state of the current config is ready (and nothing else is loading);
        else ``start`` is called once it is, and False."""
        if self.experiment_ready() and not self.model_loading():
            return True
        if start not in self._when_ready:
            self._when_ready.append(start)
        return False

    def _run_when_ready(self) -> None:
        if self._when_ready and self.experiment_ready() and not self.model_loading():
            waiting, self._when_ready = self._when_ready, []
            for start in waiting:
                start()

    def current_time(self) -> float:
        T = self.state.sde.T if self.state is not None else 1.0
        return T * self.time_slider.value() / _SLIDER_STEPS

    def _time_changed(self) -> None:
        t = self.current_time()
        self.time_label.setText(f"t = {t:.3f}")
        for tab in self.tabs_by_name.values():
            tab.set_time(t)

    def _update_buttons(self) -> None:
        busy = self.task is not None
        # the actions: their toolbar buttons, menu entries and shortcuts follow; never on a
        # state built for another config (or none yet)
        ready = self.valid and not busy and self._building is None and self.state is not None
        self.train_action.setEnabled(ready)
        self.sample_action.setEnabled(ready)
        self.stop_action.setEnabled(busy)
        for panel in self.panels:
            for form in panel.forms.values():
                form.setEnabled(not busy)

    # ------------------------------------------------------------------------------ messages
    def log(self, message: str) -> None:
        stamp = _dt.datetime.now().strftime("%H:%M:%S")
        self.log_view.appendPlainText(f"{stamp}  {message}")

    def show_error(self, message: str, details: str = "") -> None:
        """A non-modal error box and a log line; the app keeps running."""
        self.errors.append(message)
        self.log(f"error: {message}")
        box = QtWidgets.QMessageBox(self)
        box.setObjectName("errorBox")
        box.setIcon(QtWidgets.QMessageBox.Icon.Critical)
        box.setWindowTitle("SDE Workbench")
        box.setText(message)
        if details:
            box.setDetailedText(details)
        box.setModal(False)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()

    def _ask_user(self, question: str) -> bool:
        answer = QtWidgets.QMessageBox.question(self, "SDE Workbench", question)
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------------------------ work
    def _start_task(self, name: str, fn: Any, on_progress: Any, on_done: Any) -> Task:
        def leave_a_core(ctx: TaskContext) -> Any:
            # torch's compute threads would otherwise take every core and the event loop
            # would wait its turn: the window's responsiveness comes first
            previous = torch.get_num_threads()
            torch.set_num_threads(max(1, min(previous, (os.cpu_count() or 2) - 1)))
            try:
                return fn(ctx)
            finally:
                torch.set_num_threads(previous)

        task = Task(name, leave_a_core, self)
        task.progress.connect(on_progress)
        task.done.connect(on_done)
        task.failed.connect(self._task_failed)
        task.finished.connect(self._task_finished)
        self.task = task
        self._outcome: Any = None
        self._update_buttons()
        self.progress.setVisible(True)
        self.progress.setValue(0)
        task.start()
        return task

    def _task_failed(self, message: str, details: str) -> None:
        name = self.task.name if self.task is not None else "work"
        if self._offer_smaller(name, message):
            return
        self.show_error(f"{name} failed: {message}", details)
        self._outcome = None

    def _offer_smaller(self, name: str, message: str) -> bool:
        """A GPU out of memory: offer the smaller batch or chunk the message names, and start
        the same work again with it once this task has ended. False if not such an error or
        the user declines (then the error is shown as any other)."""
        from workbench.io.safety import DeviceOutOfMemoryError

        restart = {"training": self.start_training, "sampling": self.start_sampling}.get(name)
        found = DeviceOutOfMemoryError.suggestion(message)
        if found is None or restart is None:
            return False
        key, value = found
        if not self.confirm(f"{message}\n\nSet {key} = {value} and start {name} again?"):
            return False
        self.errors.append(message)
        self.log(f"{name}: {message}; retrying with {key} = {value}")
        self.set_config(self.config.with_overrides({key: value}))
        self._outcome = None
        finished = self.trainingFinished if name == "training" else self.samplingFinished

        def again(_outcome: object) -> None:
            finished.disconnect(again)
            restart()

        finished.connect(again)
        return True

    def _task_finished(self) -> None:
        """The thread has ended: the window is ready again, then the outcome is announced
        (so whoever waits on trainingFinished/samplingFinished can start the next work)."""
        task = self.sender()
        if task is not self.task:
            return
        task.wait()
        self.task = None
        self.progress.setVisible(False)
        self._update_buttons()
        signal = {"training": self.trainingFinished, "sampling": self.samplingFinished}.get(
            task.name
        )
        if signal is not None:
            # after the run's model, loading in a worker, is in place (run_control.py)
            self._announcing = (signal, self._outcome)
            self._announce()

    def stop_work(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.log(f"stopping {self.task.name} after the current step…")

    def is_busy(self) -> bool:
        return self.task is not None

    def open_trajectory(self, path: str | os.PathLike[str]) -> None:
        """Show a trajectory file of ours in the density and trajectory views."""
        from workbench.io.trajectories import TrajectoryFile

        try:
            trajectory = TrajectoryFile(path)
        except WorkbenchError as exc:
            self.show_error(str(exc))
            return
        if self.trajectory is not None:
            self.trajectory.close()
        self.trajectory = trajectory
        for tab in self.tabs_by_name.values():
            tab.set_trajectory(trajectory)
        self._add_recent(Path(path))

    # ------------------------------------------------------------------------------ files
    def new_experiment(self) -> None:
        self.experiment_path = None
        self.set_config(default_config())
        self._set_document(None)
        self.log("new experiment (the built-in default)")

    def open_path(self, path: str | os.PathLike[str]) -> bool:
        """Open an experiment .toml, a run folder, or a trajectory .h5."""
        path = Path(path)
        try:
            if path.is_dir():
                self._open_run_folder(path)
            elif path.suffix.lower() in (".h5", ".hdf5"):
                self.open_trajectory_file(path)
            else:
                config = load_config(path)
                self.experiment_path = path
                self.set_config(config)
                self.log(f"opened {path}")
        except (WorkbenchError, ConfigError) as exc:
            self.show_error(str(exc))
            return False
        self._opened(path)
        return True

    def open_trajectory_file(self, path: Path) -> None:
        """Trajectory files open in the inspector where there is one, else in the views."""
        inspector = getattr(self, "open_in_inspector", None)
        if inspector is not None:
            inspector(path)
        else:
            self.open_trajectory(path)

    def open_in_inspector(self, path: str | os.PathLike[str]) -> None:
        """Show the inspector window (made once) and open ``path`` in it, read-only."""
        from workbench.gui.inspector import InspectorWindow

        if getattr(self, "inspector", None) is None:
            self.inspector = InspectorWindow(self)
        self.inspector.show()
        self.inspector.raise_()
        if not self.inspector.open(path):
            raise WorkbenchError(self.inspector.last_error or f"cannot open {path}")
        self.log(f"opened {path} in the inspector")

    def _open_run_folder(self, path: Path) -> None:
        from workbench.io.runs import RunFolder

        folder = RunFolder.open(path)
        config = folder.load_config()
        if folder.has_checkpoint():
            # a config.toml edited against its checkpoint is refused here, as by the CLI
            from workbench.io.runs import check_edits

            check_edits(str(folder.config_path), config, folder.load_checkpoint())
        self.set_config(config)
        self.run_dir = folder.path
        metrics = folder.read_metrics()
        if metrics["step"]:
            self.loss_tab.add_run(path.name, metrics["step"], metrics["wall_time"], metrics["loss"])
        if folder.has_checkpoint():
            self.load_run_model(folder.path)
        self.snapshots.set_run(folder.path)
        self.log(f"opened run {path}")

    def save_experiment(self, path: str | os.PathLike[str] | None = None) -> bool:
        if not self.validate():
            self.show_error("the experiment has an invalid value; fix the marked field first")
            return False
        target = Path(path) if path else self.experiment_path
        if target is None:
            return self._save_as_dialog()
        try:
            save_config(self.config, target)
        except (OSError, WorkbenchError) as exc:
            self.show_error(f"could not save {target}: {exc}")
            return False
        self.experiment_path = target
        self._set_document(target)
        self._add_recent(target)
        self.log(f"saved {target}")
        return True

    def _open_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open", "", "Experiments and trajectories (*.toml *.h5 *.hdf5);;All files (*)"
        )
        if path:
            self.open_from_user(path)

    def _open_trajectory_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open trajectory file", str(self.runs_dir), "HDF5 (*.h5 *.hdf5);;All files (*)"
        )
        if path:
            self.open_path(path)

    def _save_as_dialog(self) -> bool:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Save experiment", "experiment.toml", "Experiments (*.toml)"
        )
        return self.save_experiment(path) if path else False

    def _export_samples_dialog(self) -> None:
        if self.trajectory is None:
            self.show_error("no samples to export yet: sample first, or open a trajectory file")
            return
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export samples", "samples.npy", "NumPy (*.npy *.npz);;CSV (*.csv);;HDF5 (*.h5)"
        )
        if path:
            self.export_samples(path)

    def export_samples(self, path: str | os.PathLike[str], **options: Any) -> Path | None:
        from workbench.io.export import run_export

        try:
            result = run_export(self.trajectory, path, force=True, **options)
        except WorkbenchError as exc:
            self.show_error(str(exc))
            return None
        self.log(result.describe())
        return result.path

    def _export_current_plot(self) -> None:
        tab = cast(PlotTab, self.tab_widget.currentWidget())  # every tab is a PlotTab
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export plot", f"{tab.title.lower()}.png", "PNG (*.png);;SVG (*.svg);;CSV (*.csv)"
        )
        if path:
            try:
                tab.export(path)
            except WorkbenchError as exc:
                self.show_error(str(exc))

    # ------------------------------------------------------------------------------ settings
    def _restored_config(self) -> ExperimentConfig | None:
        text = self.settings.value("lastExperiment")
        if not text:
            return None
        try:
            return parse_config(str(text), source="the last session's experiment")
        except (ConfigError, WorkbenchError):
            return None  # from an older version, say: the default is a fine start

    def _restore_layout(self) -> None:
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("windowState")
        if state is not None:
            self.restoreState(state)

    def save_settings(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("windowState", self.saveState())
        if self.valid:
            self.settings.setValue("lastExperiment", to_toml(self.config))
        self.settings.sync()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if self.task is not None:
            if not self.confirm(
                f"{self.task.name.capitalize()} is running. Stop it and quit? "
                "(The checkpoint of the last step is kept.)"
            ):
                event.ignore()
                return
            self.task.cancel()
            self.task.wait()
        self.state_builder.shutdown()
        self.model_loader.shutdown()
        self.references.shutdown()
        self.snapshots.shutdown()
        for tab in self.tabs_by_name.values():
            shutdown = getattr(tab, "shutdown", None)
            if shutdown is not None:
                shutdown()  # join the tab's own worker threads
        if self.trajectory is not None:
            self.trajectory.close()
        self.save_settings()
        event.accept()
