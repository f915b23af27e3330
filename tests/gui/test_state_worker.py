"""The main window's experiment state and a run's model are built off the GUI thread
(workbench/gui/latest.py, main_window.py, run_control.py): structural checks, no timings.

A build is held at a gate (a threading.Event) so that a test sees the window while the state
is on its way, whatever the machine's speed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.gui.conftest import fast, settle
from tests.gui.test_off_thread import off_main, record
from workbench.config import ExperimentConfig
from workbench.gui.main_window import MainWindow
from workbench.gui.state import ExperimentState


def gate_builds(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[ExperimentConfig]]:
    """Every ExperimentState.build waits for the event (then builds for real); the configs
    asked for are noted."""
    real = ExperimentState.build
    gate = threading.Event()
    asked: list[ExperimentConfig] = []

    def gated(config: ExperimentConfig) -> ExperimentState:
        asked.append(config)
        assert gate.wait(60), "the test never opened the gate"
        return real(config)

    monkeypatch.setattr(ExperimentState, "build", gated)
    return gate, asked


def test_the_state_is_built_in_a_worker_and_announced(
    qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = record(monkeypatch, ExperimentState, "build")
    config = window.config.with_overrides({"data.name": "moons"})
    with qtbot.waitSignal(window.experimentChanged, timeout=60_000) as changed:
        window.set_config(config)
    assert off_main(built)
    state = changed.args[0]
    assert state is window.state and state.config == config and window.experiment_ready()


def test_train_and_sample_wait_for_the_current_configs_state(
    qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast(window, **{"train.steps": 30})
    old = window.state
    gate, _ = gate_builds(monkeypatch)
    window.set_config(window.config.with_overrides({"sde.beta_max": 15.0}))
    # the config is valid, but its state is not there: nothing may act on the old one
    assert window.valid and not window.experiment_ready() and window.state is old
    assert window.experiment_busy.isVisible()
    assert not window.train_button.isEnabled() and not window.sample_button.isEnabled()
    window.start_training()  # a script's (or a retry's) Train: started once the state is in
    assert window.task is None
    with qtbot.waitSignal(window.trainingFinished, timeout=120_000) as finished:
        gate.set()
    assert finished.args[0].status == "done"
    assert window.state is not old and window.state.config.sde.params["beta_max"] == 15.0
    assert not window.experiment_busy.isVisible() and window.train_button.isEnabled()


def test_a_state_for_an_older_config_is_dropped(
    qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, asked = gate_builds(monkeypatch)
    shown: list[Any] = []
    window.experimentChanged.connect(shown.append)
    first = window.config.with_overrides({"data.name": "moons"})
    second = window.config.with_overrides({"data.name": "checkerboard"})
    window.set_config(first)
    qtbot.waitUntil(lambda: len(asked) == 1, timeout=60_000)  # first's build is running
    window.set_config(second)  # the newest wins
    gate.set()
    settle(window)
    assert asked == [first, second]  # one worker at a time; first's result was dropped
    assert [s.config for s in shown] == [second] and window.state.config == second


def test_back_to_the_shown_config_needs_no_build(
    qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, asked = gate_builds(monkeypatch)
    shown = window.state
    original = window.config
    window.set_config(original.with_overrides({"data.name": "moons"}))
    qtbot.waitUntil(lambda: len(asked) == 1, timeout=60_000)
    window.set_config(original)  # the state shown is this config's: ready again at once
    assert window.experiment_ready() and window.state is shown
    assert window.train_button.isEnabled()
    changed: list[Any] = []
    window.experimentChanged.connect(changed.append)
    gate.set()
    qtbot.waitUntil(lambda: not window.state_builder.busy(), timeout=60_000)
    assert changed == [] and window.state is shown  # moons' state arrived stale: dropped


def test_a_data_file_that_does_not_load_is_marked_once_its_build_fails(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an array")
    with qtbot.waitSignal(window.experimentFailed, timeout=60_000) as failed:
        window.set_config(
            window.config.with_overrides({"data.name": "file", "data.path": str(bad)})
        )
    assert "bad.npy" in failed.args[0] and "\n" not in failed.args[0]
    path = window.data_panel.forms["data"].fields["path"]
    assert path.error is not None and not window.valid and window.state is None
    assert not window.train_button.isEnabled()
    window.start_training()  # refused: the experiment it would train failed
    assert window.task is None


def test_a_finished_runs_model_is_loaded_in_a_worker(
    qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.io.checkpoints as checkpoints

    fast(window, **{"train.steps": 40, "train.checkpoint_every": 20})
    loaded = record(monkeypatch, checkpoints, "load_checkpoint")
    built = record(monkeypatch, ExperimentState, "build_model")
    with qtbot.waitSignal(window.trainingFinished, timeout=120_000):
        window.start_training()
    # announced after the model is in place: Sample can follow at once
    assert window.model is not None and not window.model.training
    assert off_main(loaded) and off_main(built)
    with qtbot.waitSignal(window.samplingFinished, timeout=120_000) as sampled:
        window.start_sampling()
    assert sampled.args[0] is not None and sampled.args[0].exists()
