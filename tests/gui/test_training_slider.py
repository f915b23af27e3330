"""The training-step slider (workbench/gui/snapshots.py) on real run folders: it appears with the
run's snapshots, moving it puts that step's weights into the window's model (loaded and
re-sampled off the GUI thread), a followed run's new snapshots extend it, and a damaged
snapshot is one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PySide6 import QtWidgets

from tests.gui.test_off_thread import off_main, record
from workbench.config import default_config
from workbench.gui.main_window import MainWindow
from workbench.io.snapshots import load_snapshot, snapshot_path
from workbench.jobs.train import train_in_folder

CONFIG = default_config().with_overrides(
    {
        "train.device": "cpu",
        "train.batch_size": 256,
        "train.steps": 90,
        "train.log_every": 10,
        "train.checkpoint_every": 90,
        "train.snapshot_every": 30,
        "data.n": 2048,
        "model.hidden": 32,
        "sample.steps": 40,
    }
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("slider") / "run"
    assert train_in_folder(CONFIG, path).status == "done"
    return path


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def slider(window: MainWindow) -> QtWidgets.QSlider:
    found = window.findChild(QtWidgets.QSlider, "trainingStepSlider")
    assert found is not None
    return found


def label(window: MainWindow) -> str:
    return window.findChild(QtWidgets.QLabel, "trainingStepLabel").text()


def same_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> bool:
    mine = model.state_dict()
    return set(mine) == set(weights) and all(torch.equal(mine[k], weights[k]) for k in mine)


def test_no_slider_without_a_run(window: MainWindow) -> None:
    assert not slider(window).isVisibleTo(window)


def test_opening_a_run_shows_its_steps_and_moving_loads_that_step_off_the_gui_thread(
    qtbot, window: MainWindow, run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workbench.jobs.snapshots as jobs

    resampled = record(monkeypatch, jobs, "resample_snapshots")
    loaded = record(monkeypatch, jobs, "load_snapshot")  # the name the job calls
    scrubber = window.snapshots
    assert window.open_path(run)
    s = slider(window)
    assert s.isVisibleTo(window) and (s.minimum(), s.maximum()) == (0, 2)
    assert s.value() == 2 and label(window).startswith("step 90 of 90")
    with qtbot.waitSignal(scrubber.stepShown, timeout=120_000) as shown:
        s.setValue(0)
    assert shown.args == [30]
    assert label(window).startswith("step 30 of 90")
    assert same_weights(window.model, load_snapshot(run, 30))
    assert not same_weights(window.model, load_snapshot(run, 90))
    # the Densities view shows the snapshot's samples as its generated panel
    density = window.tabs_by_name["density"]
    assert density.trajectory is scrubber.cache[30]
    assert off_main(resampled) and off_main(loaded)

    # back and forth: a step sampled before is shown at once, from the cache
    qtbot.waitUntil(lambda: len(scrubber.cache) == 3, timeout=120_000)
    before = len(resampled)
    with qtbot.waitSignal(scrubber.stepShown, timeout=1000) as shown:
        s.setValue(1)
    assert shown.args == [60] and len(resampled) == before
    assert same_weights(window.model, load_snapshot(run, 60))
    qtbot.waitUntil(scrubber.is_idle, timeout=60_000)


def test_a_followed_runs_new_snapshots_extend_the_slider(
    qtbot, window: MainWindow, run: Path
) -> None:
    later = snapshot_path(run, 90).read_bytes()
    snapshot_path(run, 90).unlink()
    assert window.follow_run(run)
    s = slider(window)
    qtbot.waitUntil(lambda: s.maximum() == 1, timeout=10_000)
    snapshot_path(run, 90).write_bytes(later)  # the trainer's next snapshot
    qtbot.waitUntil(lambda: s.maximum() == 2, timeout=10_000)
    assert window.snapshots.steps == [30, 60, 90] and s.value() == 2  # it follows the newest
    window.stop_following()
    window.snapshots.set_run(None)
    qtbot.waitUntil(window.snapshots.is_idle, timeout=60_000)


def test_a_damaged_snapshot_is_one_line_and_the_others_still_show(
    qtbot, window: MainWindow, run: Path
) -> None:
    snapshot_path(run, 60).write_bytes(b"\x00" * 100)
    scrubber = window.snapshots
    with qtbot.waitSignal(scrubber.failed, timeout=120_000) as failed:
        assert window.open_path(run)
    assert "step-0000060.pt is not a readable snapshot" in failed.args[0]
    assert "\n" not in failed.args[0] and "Traceback" not in failed.args[0]
    assert any("snapshots: " in line for line in window.log_view.toPlainText().splitlines())
    qtbot.waitUntil(scrubber.is_idle, timeout=120_000)
    slider(window).setValue(1)
    assert "(unreadable)" in label(window)
    with qtbot.waitSignal(scrubber.stepShown, timeout=1000):
        slider(window).setValue(0)


def test_the_just_trained_run_gets_the_slider(qtbot, window: MainWindow) -> None:
    window.set_config(CONFIG.with_overrides({"train.steps": 60}))
    with qtbot.waitSignal(window.trainingFinished, timeout=120_000) as done:
        window.start_training()
    assert done.args[0].status == "done"
    s = slider(window)
    assert s.isVisibleTo(window) and s.maximum() == 1
    assert window.snapshots.steps == [30, 60] and window.snapshots.run == window.run_dir
    qtbot.waitUntil(window.snapshots.is_idle, timeout=120_000)


def test_a_checkpoint_arriving_after_a_scrub_keeps_the_scrubbed_step(
    qtbot, window: MainWindow, run: Path
) -> None:
    """The run's checkpoint loads in a worker; if the user scrubbed to an earlier step
    meanwhile (or a followed run writes a new checkpoint), the scrubbed network stays."""
    from tests.gui.conftest import settle

    scrubber = window.snapshots
    assert window.open_path(run)
    settle(window)
    with qtbot.waitSignal(scrubber.stepShown, timeout=120_000):
        slider(window).setValue(0)
    assert same_weights(window.model, load_snapshot(run, 30))
    window.load_run_model(run)  # the checkpoint (step 90) arrives late
    settle(window)
    assert same_weights(window.model, load_snapshot(run, 30))
    assert label(window).startswith("step 30 of 90")
    # back at the newest step, a checkpoint is shown as it comes
    with qtbot.waitSignal(scrubber.stepShown, timeout=120_000):
        slider(window).setValue(2)
    window.load_run_model(run)
    settle(window)
    assert same_weights(window.model, load_snapshot(run, 90))
    qtbot.waitUntil(scrubber.is_idle, timeout=60_000)
