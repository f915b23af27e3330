"""Fault injection: kill -9, a full disk and a GPU out of memory, against the real app.

- kill -9 of a real ``sde-workbench train`` process: the run resumes from its last checkpoint
  and the loss curve continues with neither a gap nor a duplicate row;
- kill -9 of a real ``sde-workbench sample`` process while it writes HDF5: the file opens,
  ``complete`` is false, every row it holds is whole;
- kill -9 of an export in the middle of writing: the destination is the old file, untouched;
- ENOSPC raised at the write call (the checkpoint's file, metrics.csv's file, an export's file,
  an HDF5 dataset write): a one-line error, and every earlier file intact;
- torch.cuda.OutOfMemoryError raised from the model's forward above a batch size: training and
  sampling end in an error that names a smaller batch / chunk (CLI: exit 1, one line), and the
  GUI offers that setting and trains / samples again with it.

The kill and the disk errors are real faults injected at the OS / library boundary; nothing of
the workbench's own code is replaced.
"""

from __future__ import annotations

import builtins
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from workbench.cli import main
from workbench.config import default_config, save_config
from workbench.errors import WorkbenchError
from workbench.io import export, runs
from workbench.io.checkpoints import load_checkpoint
from workbench.io.export import export_samples
from workbench.io.runs import read_metrics
from workbench.io.safety import DeviceOutOfMemoryError
from workbench.io.trajectories import TrajectoryFile, TrajectoryWriter
from workbench.jobs.train import train_in_folder

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 120.0


def small(**overrides: Any):
    base = {
        "data.n": 1024,
        "model.hidden": 16,
        "model.depth": 1,
        "model.embed_dim": 8,
        "train.batch_size": 64,
        "train.device": "cpu",
        "train.log_every": 5,
        "train.checkpoint_every": 20,
        "train.steps": 60,
        "sample.n": 200,
        "sample.steps": 20,
        "sample.record_every": 5,
    }
    base.update(overrides)
    return default_config().with_overrides(base)


def child(*argv: str) -> subprocess.Popen:
    """``sde-workbench ARGV`` in a process of its own, as a user would start it."""
    code = "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )


def wait_for(what: str, ready, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"the child ended before {what}: {err}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    if proc.stderr is not None:
        proc.stderr.close()


# --- kill -9 -----------------------------------------------------------------------------------
def test_kill9_during_training_resumes_without_gap_or_duplicate(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    save_config(small(**{"train.steps": 10**6}), cfg)
    run = tmp_path / "run"
    proc = child("train", str(cfg), "--out", str(run))

    def past_a_checkpoint() -> bool:
        # killed between checkpoints: rows after the last checkpoint must be dropped on resume
        steps = read_metrics(run / "metrics.csv")["step"]
        return (run / "checkpoint.pt").exists() and bool(steps) and steps[-1] % 20 >= 10

    try:
        wait_for("a checkpoint and 10 more steps", past_a_checkpoint, proc)
    finally:
        kill9(proc)
    kept = load_checkpoint(run / "checkpoint.pt")["step"]
    before = read_metrics(run / "metrics.csv")
    assert kept % 20 == 0 and before["step"][-1] > kept
    target = kept + 30
    result = train_in_folder(None, run, resume=True, steps=target)
    assert result.status == "done" and result.step == target
    after = read_metrics(run / "metrics.csv")
    # every logged step exactly once, in order, up to the target: no gap, no duplicate
    assert after["step"] == [float(s) for s in range(5, target + 1, 5)]
    # the rows up to the checkpoint are the killed process's own, unchanged
    n_kept = kept // 5
    assert after["loss"][:n_kept] == before["loss"][:n_kept]
    assert np.all(np.isfinite(after["loss"]))
    assert load_checkpoint(run / "checkpoint.pt")["step"] == target


def test_kill9_during_sampling_leaves_a_readable_incomplete_file(tmp_path: Path) -> None:
    cfg = tmp_path / "analytic.toml"
    save_config(small(**{"model.kind": "analytic", "sample.steps": 10**5}), cfg)
    out = tmp_path / "s.h5"
    proc = child("sample", str(cfg), "--out", str(out), "--record-every", "10")

    def rows() -> int:
        try:
            with TrajectoryFile(out) as f:
                return f.n_saved
        except WorkbenchError:
            return 0

    try:
        wait_for("20 rows in the file", lambda: rows() >= 20, proc)
    finally:
        kill9(proc)
    with TrajectoryFile(out) as f:
        assert not f.complete and f.n_saved >= 20
        steps, times = f.steps, f.times
        assert np.array_equal(steps, np.arange(f.n_saved) * 10)
        assert np.all(np.diff(times) < 0)  # reverse time, one row per recorded step
        for k in range(f.n_saved):
            row = f.row(k)
            assert row.shape == (200, 2) and np.all(np.isfinite(row))
        assert f.samples_from_last_row


EXPORT_CHILD = r"""
import sys, time
from workbench.io import export
export._BLOCK_BYTES = 4096  # many blocks, so the kill lands in the middle of the file
def slow(fraction):
    print(fraction, flush=True)
    time.sleep(0.05)
export.export_samples(sys.argv[1], sys.argv[2], force=True, progress=slow)
print("done", flush=True)
"""


@pytest.mark.parametrize("kind", ["npy", "h5"])
def test_kill9_during_export_leaves_the_old_file(tmp_path: Path, kind: str) -> None:
    src = tmp_path / "big.h5"
    rng = np.random.default_rng(0)
    with TrajectoryWriter(
        src, n_samples=20000, sample_shape=(2,), config_toml="", sampler="em"
    ) as w:
        w.append(0, 1.0, rng.standard_normal((20000, 2)))
        w.close()
    out = tmp_path / f"samples.{kind}"
    out.write_bytes(b"the old export")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", EXPORT_CHILD, str(src), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    seen = [proc.stdout.readline() for _ in range(5)]  # 5 of 10 blocks written
    assert all(line.strip() and line.strip() != "done" for line in seen), seen
    proc.stdout.close()
    kill9(proc)
    assert out.read_bytes() == b"the old export"
    # what a killed export can leave is its hidden temporary, never a torn destination
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in (src.name, out.name)]
    assert all(name.startswith(f".{out.name}.") and name.endswith(".tmp") for name in leftovers)
    # and an export that is let finish replaces it whole
    export_samples(src, out, force=True)
    with TrajectoryFile(src) as f:
        expected = f.samples()
    got = np.load(out) if kind == "npy" else h5py.File(out, "r")["samples"][()]
    assert np.array_equal(got, expected)


# --- a full disk ------------------------------------------------------------------------------
class FullDisk:
    """A file object whose writes fail with ENOSPC once ``budget`` bytes have been written."""

    def __init__(self, fh: Any, budget: int) -> None:
        self._fh = fh
        self._budget = budget

    def write(self, data: Any) -> int:
        size = len(data)
        if size > self._budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget -= size
        return self._fh.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


def test_a_full_disk_at_a_checkpoint_keeps_the_last_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from workbench.io import checkpoints

    real_fdopen = os.fdopen
    saves = {"n": 0}

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        fh = real_fdopen(fd, *args, **kwargs)
        if not sys._getframe(1).f_code.co_filename.endswith("checkpoints.py"):
            return fh  # the config's and metrics' own atomic writes
        saves["n"] += 1
        # the second checkpoint (step 40) meets a disk that fills after 1 KiB
        return FullDisk(fh, 1024) if saves["n"] == 2 else fh

    monkeypatch.setattr(checkpoints.os, "fdopen", fdopen)
    cfg = tmp_path / "exp.toml"
    save_config(small(), cfg)
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sde-workbench: error: could not write checkpoint")
    assert "No space left on device; the previous checkpoint, if any, is unchanged" in err[-1]
    monkeypatch.undo()
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 20
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.toml", "metrics.csv"]
    assert read_metrics(run / "metrics.csv")["step"] == [
        5.0,
        10.0,
        15.0,
        20.0,
        25.0,
        30.0,
        35.0,
        40.0,
    ]
    # space again: the run resumes from step 20 and ends whole
    assert main(["train", str(cfg), "--out", str(run), "--resume"]) == 0
    assert read_metrics(run / "metrics.csv")["step"] == [float(s) for s in range(5, 61, 5)]


def test_a_full_disk_while_logging_keeps_the_rows_so_far(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = builtins.open

    def open_metrics(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = real_open(file, mode, *args, **kwargs)
        if str(file).endswith("metrics.csv") and "a" in mode:
            # the header and about four rows fit
            return FullDisk(fh, 180)
        return fh

    monkeypatch.setattr(runs, "open", open_metrics, raising=False)
    run = tmp_path / "run"
    with pytest.raises(WorkbenchError) as info:
        train_in_folder(small(), run)
    message = str(info.value)
    assert "\n" not in message
    assert "metrics.csv: No space left on device; the rows written so far are kept" in message
    monkeypatch.undo()
    steps = read_metrics(run / "metrics.csv")["step"]
    assert steps and steps == [float(s) for s in range(5, 5 * len(steps) + 1, 5)]
    ckpt = run / "checkpoint.pt"
    assert not ckpt.exists() or load_checkpoint(ckpt)["step"] <= steps[-1]


@pytest.mark.parametrize("kind", ["npy", "csv", "h5"])
def test_a_full_disk_during_export_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    src = tmp_path / "t.h5"
    with TrajectoryWriter(
        src, n_samples=5000, sample_shape=(2,), config_toml="", sampler="em"
    ) as w:
        w.append(0, 1.0, np.ones((5000, 2)))
        w.close()
    out = tmp_path / f"o.{kind}"
    out.write_bytes(b"old")
    monkeypatch.setattr(export, "_BLOCK_BYTES", 4096)
    if kind == "h5":
        setitem = h5py.Dataset.__setitem__

        def full(self, key, value):
            if self.name == "/samples" and key.start:  # the second block on
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return setitem(self, key, value)

        monkeypatch.setattr(h5py.Dataset, "__setitem__", full)
    else:
        real_open = builtins.open
        monkeypatch.setattr(
            export,
            "open",
            lambda f, mode="r", *a, **k: FullDisk(real_open(f, mode, *a, **k), 20000),
            raising=False,
        )
    with pytest.raises(WorkbenchError, match=r"No space left on device; the old file is unchanged"):
        export_samples(src, out, force=True)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, out.name])


# --- a GPU out of memory -----------------------------------------------------------------------
class OOMAbove(nn.Module):
    """Wraps a network or a model: a batch larger than ``limit`` raises CUDA's OOM error."""

    def __init__(self, inner: nn.Module, limit: int) -> None:
        super().__init__()
        self.inner = inner
        self.limit = limit
        self.raised = 0

    def forward(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        if x.shape[0] > self.limit:
            self.raised += 1
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {x.shape[0] * 4} MiB"
            )
        return self.inner(x, *args)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)


@pytest.fixture
def oom_training(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Every score network built for training (by the trainer's call of the one recipe) fails
    above 40 samples per batch; models built elsewhere are left as they are."""
    from workbench.core import train

    build = train.experiment_of

    def build_small_gpu(*args: Any, **kwargs: Any) -> Any:
        built = build(*args, **kwargs)
        if built.model is not None:
            built.model.net = OOMAbove(built.model.net, 40)
        return built

    monkeypatch.setattr(train, "experiment_of", build_small_gpu)
    yield 40


def test_oom_in_training_names_a_smaller_batch(
    tmp_path: Path, oom_training: int, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "exp.toml"
    save_config(small(), cfg)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "ran out of memory while training (step 1) with train.batch_size = 64" in err[0]
    assert DeviceOutOfMemoryError.suggestion(err[0]) == ("train.batch_size", 32)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    save_config(small(**{"train.batch_size": 32}), cfg)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run2")]) == 0


@pytest.fixture
def analytic_oom(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The sampler's model fails above 120 samples per call."""
    from workbench.core import experiment

    build = experiment.build_score_model
    monkeypatch.setattr(
        experiment, "build_score_model", lambda *a, **k: OOMAbove(build(*a, **k), 120)
    )
    yield 120


def test_oom_in_sampling_names_a_smaller_chunk(
    tmp_path: Path, analytic_oom: int, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "analytic.toml"
    save_config(small(**{"model.kind": "analytic"}), cfg)
    out = tmp_path / "s.h5"
    assert main(["sample", str(cfg), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sde-workbench: error: the GPU ran out of memory while sampling")
    assert DeviceOutOfMemoryError.suggestion(err[-1]) == ("sample.chunk_size", 100)
    save_config(small(**{"model.kind": "analytic", "sample.chunk_size": 100}), cfg)
    assert main(["sample", str(cfg), "--out", str(out), "--force"]) == 0
    with TrajectoryFile(out) as f:
        assert f.complete and f.samples().shape == (200, 2)


# --- the GUI offers the smaller setting and keeps running --------------------------------------
@pytest.fixture
def window(qtbot, tmp_path: Path):
    from PySide6 import QtCore

    from workbench.gui.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)
    w = MainWindow(settings=settings, runs_dir=tmp_path / "runs")
    questions: list[str] = []
    w.confirm = lambda question: questions.append(question) or True
    w.questions = questions
    qtbot.addWidget(w)
    w.show()
    yield w
    if w.task is not None:
        w.task.cancel()
        w.task.wait()
    w.close()


def test_gui_offers_a_smaller_batch_then_a_smaller_chunk(qtbot, window, oom_training) -> None:
    window.set_config(small(**{"train.batch_size": 128, "train.steps": 20}))
    # 128 fails, the offer of 64 is taken and fails, 32 trains
    with qtbot.waitSignal(
        window.trainingFinished, timeout=60_000, check_params_cb=lambda r: r is not None
    ) as done:
        window.start_training()
    assert done.args[0].status == "done"
    assert window.config.train.batch_size == 32
    assert [q.split("\n")[-1] for q in window.questions] == [
        "Set train.batch_size = 64 and start training again?",
        "Set train.batch_size = 32 and start training again?",
    ]
    assert not [e for e in window.errors if "failed" in e]
    # sampling from the trained model, on a "GPU" that holds 120 samples per call
    window.set_config(window.config.with_overrides({"sample.n": 200, "sample.steps": 10}))
    window.model = OOMAbove(window._build_model(), 120)
    with qtbot.waitSignal(
        window.samplingFinished, timeout=60_000, check_params_cb=lambda r: r is not None
    ) as sampled:
        window.start_sampling()
    assert window.config.sample.chunk_size == 100
    with TrajectoryFile(sampled.args[0]) as f:
        assert f.complete and f.samples().shape == (200, 2)
    assert window.isVisible() and window.task is None
