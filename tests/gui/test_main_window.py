"""The real main window driven through its object names, as a user would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtWidgets

from tests.gui.conftest import fast
from workbench.config import load_config
from workbench.gui.main_window import MainWindow
from workbench.gui.plots.trajectories import DEFAULT_PATHS

OBJECT_NAMES = [
    "dataPanel",
    "sdePanel",
    "networkPanel",
    "trainingPanel",
    "samplingPanel",
    "trainButton",
    "stopButton",
    "sampleButton",
    "lossPlot",
    "densityPlot",
    "scoreFieldPlot",
    "trajectoryPlot",
    "schedulePlot",
    "timeSlider",
]


def field(window: MainWindow, panel: str, section: str, key: str):
    return window.findChild(QtWidgets.QWidget, panel).forms[section].fields[key]


def test_every_documented_object_name_exists(window: MainWindow) -> None:
    for name in OBJECT_NAMES:
        assert window.findChild(QtWidgets.QWidget, name) is not None, name
    assert window.windowTitle() == "untitled[*] — SDE Workbench"
    assert not window.isWindowModified()
    assert window.config.data.name == "8gaussians" and window.train_button.isEnabled()


def test_invalid_value_is_marked_and_train_disabled(qtbot, window: MainWindow) -> None:
    lr = field(window, "trainingPanel", "train", "lr")
    qtbot.keyClicks(lr.widget, "")
    lr.widget.setText("-1")
    lr.edited.emit()
    qtbot.waitUntil(lambda: not window.train_button.isEnabled())
    assert lr.error is not None and "> 0" in lr.error
    assert lr.widget.property("invalid") is True
    lr.widget.setText("0.001")
    lr.edited.emit()
    qtbot.waitUntil(lambda: window.train_button.isEnabled())
    assert lr.error is None and window.config.train.lr == 0.001


def test_cross_field_error_is_marked_at_its_key(qtbot, window: MainWindow) -> None:
    n = field(window, "dataPanel", "data", "n")
    n.widget.setValue(100)  # below the batch size of 1024
    qtbot.waitUntil(lambda: not window.train_button.isEnabled())
    batch = field(window, "trainingPanel", "train", "batch_size")
    assert batch.error is not None and "data.n" in batch.error


def test_changing_the_data_set_rebuilds_its_fields(qtbot, window: MainWindow) -> None:
    name = field(window, "dataPanel", "data", "name")
    name.widget.setCurrentText("moons")
    qtbot.waitUntil(lambda: window.config.data.name == "moons")
    assert "noise" in window.data_panel.forms["data"].fields
    assert "radius" not in window.data_panel.forms["data"].fields


def test_train_shows_loss_points_and_keeps_a_checkpoint(qtbot, window: MainWindow) -> None:
    fast(window, **{"train.steps": 300})
    with qtbot.waitSignal(window.trainingFinished, timeout=120_000) as done:
        qtbot.mouseClick(window.train_button, QtCore.Qt.LeftButton)
        assert window.stop_button.isEnabled() and not window.train_button.isEnabled()
    result = done.args[0]
    assert result.status == "done" and result.step == 300
    run = window.loss_tab.runs[-1]
    assert run.n == 30 and np.all(np.isfinite(run.loss))
    assert (window.run_dir / "checkpoint.pt").exists()
    assert window.model is not None  # the EMA model now feeds the views
    qtbot.waitUntil(lambda: window.task is None)
    assert window.train_button.isEnabled()


def test_stop_cancels_mid_run(qtbot, window: MainWindow) -> None:
    fast(window, **{"train.steps": 100_000})
    qtbot.mouseClick(window.train_button, QtCore.Qt.LeftButton)
    qtbot.waitUntil(
        lambda: window.loss_tab.runs and window.loss_tab.runs[-1].n >= 3, timeout=60_000
    )
    with qtbot.waitSignal(window.trainingFinished, timeout=60_000) as done:
        qtbot.mouseClick(window.stop_button, QtCore.Qt.LeftButton)
    assert done.args[0].status == "cancelled"
    assert (window.run_dir / "checkpoint.pt").exists()


def test_training_runs_in_its_worker_and_reports_to_the_gui_thread(
    qtbot, window: MainWindow, monkeypatch
) -> None:
    """Structural, not timed (a loaded machine makes any gap): the training loop runs in the
    worker thread, and only its reports are handled on the GUI thread."""
    import threading

    import workbench.jobs.train as runs

    threads: dict[str, list[threading.Thread]] = {"train": [], "progress": []}
    real_train, real_progress = runs.train_in_folder, window._training_progress

    def train(*args, **kwargs):
        threads["train"].append(threading.current_thread())
        return real_train(*args, **kwargs)

    def progress(payload):
        threads["progress"].append(threading.current_thread())
        return real_progress(payload)

    monkeypatch.setattr(runs, "train_in_folder", train)
    monkeypatch.setattr(window, "_training_progress", progress)
    fast(window, **{"train.steps": 100})
    with qtbot.waitSignal(window.trainingFinished, timeout=120_000) as done:
        window.start_training()
    assert done.args[0].status == "done"
    main = threading.main_thread()
    assert threads["train"] and all(t is not main for t in threads["train"])
    assert threads["progress"] and all(t is main for t in threads["progress"])
    assert window.loss_tab.runs[-1].n == 10  # the reports did arrive and were drawn


def test_save_and_reopen_an_experiment(qtbot, window: MainWindow, tmp_path: Path) -> None:
    fast(window, **{"sde.kind": "ve"})
    path = tmp_path / "exp.toml"
    assert window.save_experiment(path)
    assert load_config(path) == window.config
    window.new_experiment()
    assert window.config.sde.kind == "vp"
    assert window.open_path(path)
    assert window.config.sde.kind == "ve" and window.config.train.steps == 200
    assert str(path.resolve()) in window.recent_files()


def test_errors_in_workers_are_shown_and_the_app_keeps_running(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    data = tmp_path / "points.npy"
    np.save(data, np.random.default_rng(0).normal(size=(2000, 2)).astype(np.float32))
    fast(window, **{"data.name": "file", "data.path": str(data), "data.n": 1000})
    assert window.valid
    data.unlink()  # the file vanishes between checking and training
    with qtbot.waitSignal(window.trainingFinished, timeout=60_000) as done:
        qtbot.mouseClick(window.train_button, QtCore.Qt.LeftButton)
    assert done.args[0] is None
    assert window.errors and "points.npy" in window.errors[-1]
    assert "points.npy" in window.log_view.toPlainText()
    qtbot.waitUntil(lambda: window.task is None)
    assert window.isVisible()


def test_closing_while_training_asks_then_stops_and_keeps_the_checkpoint(
    qtbot, window: MainWindow
) -> None:
    fast(window, **{"train.steps": 100_000})
    qtbot.mouseClick(window.train_button, QtCore.Qt.LeftButton)
    qtbot.waitUntil(
        lambda: window.loss_tab.runs and window.loss_tab.runs[-1].n >= 2, timeout=60_000
    )
    window.confirm = lambda question: False
    window.close()
    assert window.isVisible() and window.task is not None
    window.confirm = lambda question: True
    window.close()
    assert not window.isVisible()
    assert window.task is None or not window.task.isRunning()
    assert (window.run_dir / "checkpoint.pt").exists()


def test_settings_remember_the_last_experiment(qtbot, tmp_path: Path, settings) -> None:
    first = MainWindow(settings=settings, runs_dir=tmp_path / "runs")
    qtbot.addWidget(first)
    fast(first, **{"data.name": "moons"})
    first.close()
    second = MainWindow(settings=settings, runs_dir=tmp_path / "runs", restore=True)
    qtbot.addWidget(second)
    assert second.config.data.name == "moons" and second.config.train.steps == 200
    plain = MainWindow(settings=settings, runs_dir=tmp_path / "runs")
    qtbot.addWidget(plain)
    assert plain.config.data.name == "8gaussians"  # MainWindow() is the default experiment


def test_loss_plot_exports(qtbot, window: MainWindow, tmp_path: Path) -> None:
    window.loss_tab.add_run("r", [10, 20, 30], [0.1, 0.2, 0.3], [1.0, 0.5, 0.25])
    for ext in ("png", "svg", "csv"):
        out = window.loss_tab.export(tmp_path / f"loss.{ext}")
        assert out.exists() and out.stat().st_size > 0
    assert "0.25" in (tmp_path / "loss.csv").read_text()


def test_train_then_sample_writes_a_trajectory_and_shows_it(qtbot, window: MainWindow) -> None:
    fast(window, **{"train.steps": 100})
    with qtbot.waitSignal(window.trainingFinished, timeout=120_000):
        qtbot.mouseClick(window.train_button, QtCore.Qt.LeftButton)
    assert window.sample_button.isEnabled()  # ready again when the signal comes
    with qtbot.waitSignal(window.samplingFinished, timeout=120_000) as done:
        qtbot.mouseClick(window.sample_button, QtCore.Qt.LeftButton)
    path = done.args[0]
    assert path is not None and path.exists() and path.parent == window.run_dir
    assert window.trajectory is not None and window.trajectory.complete
    assert window.trajectory.n_samples == 500
    tab = window.tabs_by_name["trajectories"]
    window.tab_widget.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.dot_positions().shape == (DEFAULT_PATHS, 2))
    before = tab.dot_positions().copy()
    window.time_slider.setValue(900)
    qtbot.waitUntil(lambda: not np.array_equal(before, tab.dot_positions()))
    out = window.export_samples(window.run_dir / "samples.csv")
    assert out is not None and len(out.read_text().splitlines()) == 501


def test_sampling_the_analytic_model_needs_no_training(qtbot, window: MainWindow) -> None:
    fast(window, **{"model.kind": "analytic"})
    with qtbot.waitSignal(window.samplingFinished, timeout=120_000) as done:
        qtbot.mouseClick(window.sample_button, QtCore.Qt.LeftButton)
    assert done.args[0] is not None and window.trajectory.complete
