"""The GUI follows a run folder that another process is writing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.gui.follow import CheckpointInfo, RunFollower, follow_in_window
from workbench.io.runs import METRICS_COLUMNS, read_metrics

TINY = """
[data]
name = "8gaussians"
n = 2000
[model]
kind = "mlp"
hidden = 32
depth = 2
[train]
steps = 600
batch_size = 64
log_every = 20
checkpoint_every = 200
device = "cpu"
seed = 1
"""


def test_window_follows_a_training_subprocess(qtbot, window, tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    run = tmp_path / "run"
    # the folder does not exist yet: the follower waits for it
    follower = follow_in_window(window, run, interval_ms=40)
    batches: list[int] = []
    checkpoints: list[CheckpointInfo] = []
    follower.rowsAdded.connect(lambda rows: batches.append(len(rows["step"])))
    follower.checkpointChanged.connect(checkpoints.append)
    curve_before = len(window.loss_tab.runs)
    # one thread: a tiny model on a busy 2-core machine runs ~100x slower with two (OpenMP
    # threads waiting on each other), and the GUI process needs a core of its own
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "train", str(config), "--out", str(run)],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with qtbot.waitSignal(follower.checkpointChanged, timeout=60_000):
            pass
        assert checkpoints[0].step in (200, 400, 600) and "ema" in checkpoints[0].state
        # the window loads it in a worker
        qtbot.waitUntil(lambda: window.model is not None, timeout=60_000)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    qtbot.waitUntil(lambda: follower.checkpoint_step == 600, timeout=10_000)
    follower.poll()
    follower.stop()

    written = read_metrics(run / "metrics.csv")
    assert follower.columns == written  # every row, once, in order
    assert len(written["step"]) == 30
    assert len(batches) >= 2, "the rows arrived in one piece: nothing was followed live"
    assert [c.step for c in checkpoints][-1] == 600
    assert len(window.loss_tab.runs) == curve_before  # one curve, grown in place
    assert list(window.loss_tab.runs[-1].steps) == written["step"]
    assert window.config.train.steps == 600  # the run's experiment is shown


def _row(step: int) -> str:
    return f"{step},{0.1 * step:.4f},{1.0 / step!r},0.001,0.5\n"


def test_partial_lines_wait_and_a_replaced_file_starts_again(qtbot, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    metrics = run / "metrics.csv"
    follower = RunFollower(run, load_checkpoints=False)
    assert follower.poll() == 0  # nothing there yet

    header = ",".join(METRICS_COLUMNS) + "\n"
    metrics.write_text(header + _row(1) + _row(2) + "3,0.3")  # the writer is mid-row
    with qtbot.waitSignal(follower.rowsAdded) as blocker:
        assert follower.poll() == 2
    assert blocker.args[0]["step"] == [1.0, 2.0]
    assert follower.poll() == 0  # the torn row is not taken
    with open(metrics, "a") as fh:
        fh.write("000," + _row(3).split(",", 2)[2] + _row(4))
    assert follower.poll() == 2
    assert follower.columns["step"] == [1.0, 2.0, 3.0, 4.0]
    assert follower.columns["wall_time"][2] == pytest.approx(0.3)

    # a resume rewrites the file (atomically, a new inode) without the rows past its checkpoint
    replacement = run / "new.csv"
    replacement.write_text(header + _row(1) + _row(2) + _row(3))
    replacement.replace(metrics)
    with qtbot.waitSignal(follower.metricsReset):
        assert follower.poll() == 3
    assert follower.columns["step"] == [1.0, 2.0, 3.0]


def test_a_damaged_checkpoint_is_reported_and_retried(qtbot, tmp_path: Path) -> None:
    from workbench.config import load_config
    from workbench.jobs.train import train_in_folder

    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    run = tmp_path / "run"
    train_in_folder(load_config(config), run, steps=2)
    good = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(good[: len(good) // 2])
    follower = RunFollower(run)
    with qtbot.waitSignal(follower.failed) as blocker:
        follower.poll()
    assert "not readable yet" in blocker.args[0]
    assert follower.checkpoint_step is None
    (run / "checkpoint.pt").write_bytes(good)
    with qtbot.waitSignal(follower.checkpointChanged) as blocker:
        follower.poll()
    assert blocker.args[0].step == 2


def test_window_follow_action(window, tmp_path):
    """File > Follow run folder attaches a follower; following another folder replaces it."""
    from PySide6 import QtGui

    action = window.findChild(QtGui.QAction, "followRunAction")
    assert action is not None and action.text().startswith("&Follow")
    run = tmp_path / "not-yet"
    assert window.follow_run(run)  # a folder that does not exist yet is waited for
    first = window.follower
    assert first is not None and first.path == run
    assert window.follow_run(tmp_path)  # following another folder replaces the first follower
    assert window.follower is not first
    window.stop_following()
    assert window.follower is None
    (tmp_path / "file.txt").write_text("x")
    assert not window.follow_run(tmp_path / "file.txt")
    assert any("not a folder" in e for e in window.errors)
