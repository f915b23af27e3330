"""The README screenshot tools drive a real window: a click right after a config change found
Train disabled (the experiment is built in a worker), was ignored, and the tool then waited for
a training that never started. ``tools.screenshots.press`` waits for the state, and a button
still disabled fails at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PySide6 import QtGui, QtWidgets

from tools.screenshots import press
from tools.screenshots_flow import take_flow_screenshots
from workbench.gui.main_window import MainWindow


def test_press_waits_for_the_new_experiment_then_trains(window: MainWindow, qapp) -> None:
    window.set_config(
        window.config.with_overrides(
            {"train.device": "cpu", "train.steps": 20, "data.n": 1024, "model.hidden": 32}
        )
    )
    # the situation the flow tool met: a bare click here would be lost
    assert not window.train_button.isEnabled()
    result = press(qapp, window, window.train_button, window.trainingFinished, 120)
    assert result is not None, window.errors
    assert window.run_dir is not None and (Path(window.run_dir) / "config.toml").is_file()


def test_press_names_a_button_that_stays_disabled(window: MainWindow, qapp) -> None:
    button = QtWidgets.QPushButton("Go", window)
    button.setObjectName("goButton")
    button.setEnabled(False)
    with pytest.raises(RuntimeError, match="'goButton' button is disabled"):
        press(qapp, window, button, window.trainingFinished, 600)


def test_the_flow_tool_writes_its_three_pictures(tmp_path: Path, qapp) -> None:
    threads = torch.get_num_threads()
    try:
        saved = take_flow_screenshots(tmp_path, steps=20)
    finally:
        torch.set_num_threads(threads)
    names = ["flow_trajectories.png", "flow_schedule.png", "flow_study.png"]
    assert [p.name for p in saved] == names
    for path in saved:
        image = QtGui.QImage(str(path))
        assert not image.isNull() and image.width() > 400 and image.height() > 300, path
