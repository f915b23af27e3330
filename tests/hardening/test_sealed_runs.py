"""A run folder is a sealed record: faults against it, through the real CLI and real files.

- concurrent writers: two real ``train`` processes on one folder (the second refuses at once,
  naming the first), and a lock left by a killed process (taken over, with a note);
- edited configs: a config.toml edited against its checkpoint is refused by ``sample``,
  ``nll`` and ``--resume`` in one line naming every differing key; safe edits pass;
- replaced data files: a data file changed since training is named (size, or sha256);
- deleted data files: a trained run samples without its data (with the stored normaliser, to
  the bit), and what needs the data (nll, a custom SDE's prior) says so in one line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from workbench.cli import main
from workbench.config import ExperimentConfig, default_config, load_config, save_config
from workbench.errors import WorkbenchError
from workbench.io.checkpoints import load_checkpoint, save_checkpoint
from workbench.io.lock import RunLock
from workbench.io.runs import read_metrics
from workbench.jobs.train import train_in_folder

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 120.0


def small(**overrides: Any) -> ExperimentConfig:
    base = {
        "data.n": 512,
        "model.hidden": 16,
        "model.depth": 1,
        "model.embed_dim": 8,
        "train.batch_size": 64,
        "train.device": "cpu",
        "train.log_every": 5,
        "train.checkpoint_every": 10,
        "train.steps": 10,
        "sample.n": 64,
        "sample.steps": 10,
        "sample.record_every": 0,
    }
    base.update(overrides)
    return default_config().with_overrides(base)


def child(*argv: str) -> subprocess.Popen:
    code = "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("sde-workbench: error:"), err
    assert "\n" not in err and "Traceback" not in err, err
    return err


def csv_data(path: Path, n: int = 400, seed: int = 0, scale: float = 1.0, dim: int = 2) -> Path:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n, 2)) * np.array([3.0, 0.5]) * scale + np.array([10.0, -2.0])
    header = "x,y" if dim == 2 else "x"
    np.savetxt(path, points[:, :dim], delimiter=",", header=header, comments="")
    return path


def file_run(tmp_path: Path, dim: int = 2, **overrides: Any) -> tuple[Path, Path]:
    """A short run trained on a real CSV file; returns (run folder, data file)."""
    data = csv_data(tmp_path / "points.csv", dim=dim)
    cfg = small(**{"data.name": "file", "data.path": str(data), "data.n": 400, **overrides})
    run = tmp_path / "run"
    assert train_in_folder(cfg, run, on_note=lambda note: None).status == "done"
    return run, data


def edit(run: Path, **changes: Any) -> None:
    """Edit the run's config.toml as a user would (through the config, saved back)."""
    cfg = load_config(run / "config.toml")
    save_config(cfg.with_overrides(changes), run / "config.toml")


# --- concurrent writers --------------------------------------------------------------------------
def test_a_second_train_on_a_folder_in_use_refuses_at_once_naming_the_first(
    tmp_path: Path,
) -> None:
    exp = tmp_path / "exp.toml"
    save_config(small(**{"train.steps": 10**6, "train.checkpoint_every": 10**6}), exp)
    run = tmp_path / "run"
    first = child("train", str(exp), "--out", str(run))
    try:
        deadline = time.monotonic() + WAIT_S
        while not read_metrics(run / "metrics.csv")["step"]:  # the first is training
            assert first.poll() is None, first.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the first train never logged a step"
            time.sleep(0.05)
        second = child("train", str(exp), "--out", str(run))
        _, err = second.communicate(timeout=WAIT_S)
        assert second.returncode == 1
        line = err.decode().strip()
        assert "\n" not in line and line.startswith("sde-workbench: error:"), line
        assert f"pid {first.pid}" in line and socket.gethostname() in line and "in use" in line
        assert first.poll() is None  # the first goes on, untouched
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        first.stderr.close()  # type: ignore[union-attr]
    # one writer: the curve is the first process's alone, every step once and in order
    steps = read_metrics(run / "metrics.csv")["step"]
    assert steps == sorted(set(steps)) and steps[0] == 5

    # the killed process's lock is free (the kernel dropped it) but still names it; it never
    # reached a checkpoint, so a new train may use the folder: it takes the lock over with a
    # note naming the dead holder, and trains
    holder = json.loads((run / ".lock").read_text())
    assert holder["pid"] == first.pid and not (run / "checkpoint.pt").exists()
    again = child("train", str(exp), "--out", str(run), "--steps", "10")
    _, err = again.communicate(timeout=WAIT_S)
    assert again.returncode == 0, err.decode()
    assert "took over the lock" in err.decode() and f"pid {first.pid}" in err.decode()
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 10
    assert not (run / ".lock").exists()  # a clean end leaves nothing stale


def test_a_stale_lock_of_a_dead_pid_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is free now (and not reused within this test on any sane system)
    run = tmp_path / "run"
    run.mkdir()
    stale = {"pid": dead.pid, "host": socket.gethostname(), "started": "earlier", "what": "x"}
    (run / ".lock").write_text(json.dumps(stale))
    notes: list[str] = []
    assert train_in_folder(small(), run, on_note=notes.append).status == "done"
    assert len(notes) == 1 and f"pid {dead.pid}" in notes[0] and "no longer running" in notes[0]


def test_a_lock_of_another_host_is_not_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    other = {"pid": 4242, "host": "elsewhere.example", "started": "t", "what": "x"}
    (run / ".lock").write_text(json.dumps(other))
    with pytest.raises(WorkbenchError, match=r"pid 4242 on host elsewhere\.example.*delete"):
        train_in_folder(small(), run)
    assert not (run / "checkpoint.pt").exists()


def test_a_folder_locked_in_this_process_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with (
        RunLock(run, "SDE Workbench GUI training"),
        pytest.raises(WorkbenchError, match=rf"pid {os.getpid()} .*GUI training"),
    ):
        train_in_folder(small(), run)
    assert train_in_folder(small(), run).status == "done"  # released: free again


# --- edited configs ------------------------------------------------------------------------------
@pytest.fixture
def vp_run(tmp_path: Path) -> Path:
    run = tmp_path / "vp"
    assert train_in_folder(small(), run).status == "done"
    return run


def test_an_sde_edit_is_refused_by_sample_nll_and_resume(
    vp_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(vp_run, **{"sde.kind": "ve"})
    out = tmp_path / "s.h5"
    assert main(["sample", str(vp_run), "--out", str(out)]) == 1
    line = one_error_line(capsys)
    assert "config.toml differs from its checkpoint in sde.kind ('ve' vs 'vp')" in line
    assert not out.exists()
    assert main(["nll", str(vp_run), "--n", "10"]) == 1
    assert "sde.kind ('ve' vs 'vp')" in one_error_line(capsys)
    assert main(["train", str(vp_run / "config.toml"), "--out", str(vp_run), "--resume"]) == 1
    assert "sde.kind ('ve' vs 'vp')" in one_error_line(capsys)
    with pytest.raises(WorkbenchError, match=r"sde\.kind"):
        train_in_folder(None, vp_run, resume=True)


def test_every_differing_key_is_named_in_one_line(
    vp_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        vp_run,
        **{
            "model.output": "score",
            "loss.weighting": "none",
            "data.n": 256,
            "train.seed": 3,
            "sde.beta_max": 10.0,
        },
    )
    assert main(["sample", str(vp_run), "--out", str(tmp_path / "s.h5")]) == 1
    line = one_error_line(capsys)
    for named in (
        "data.n (256 vs 512)",
        "sde.beta_max (10.0 vs 20.0)",
        "model.output ('score' vs 'eps')",
        "loss.weighting ('none' vs 'sigma2')",
        "train.seed (3 vs 0)",
    ):
        assert named in line, (named, line)


def test_safe_edits_pass_and_training_only_keys_pass_only_sampling(
    vp_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        vp_run,
        **{
            "train.steps": 20,
            "train.lr": 1e-3,
            "train.schedule": "cosine",
            "train.log_every": 2,
            "train.checkpoint_every": 4,
            "sample.n": 32,
            "sample.sampler": "ode",
            "sample.integrator": "euler",
        },
    )
    assert main(["sample", str(vp_run), "--out", str(tmp_path / "a.h5")]) == 0
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["samples"].shape == (32, 2)
    assert train_in_folder(None, vp_run, resume=True).step == 20
    assert read_metrics(vp_run / "metrics.csv")["step"][-1] == 20

    edit(vp_run, **{"train.batch_size": 32, "train.optimizer": "adamw"})
    assert main(["sample", str(vp_run), "--out", str(tmp_path / "b.h5")]) == 0
    capsys.readouterr()
    assert main(["train", str(vp_run / "config.toml"), "--out", str(vp_run), "--resume"]) == 1
    line = one_error_line(capsys)
    assert "train.batch_size (32 vs 64)" in line and "train.optimizer ('adamw' vs 'adam')" in line


# --- replaced and deleted data files -------------------------------------------------------------
def test_a_replaced_data_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, data = file_run(tmp_path)
    csv_data(data, n=500)  # more points: another size
    assert main(["sample", str(run), "--out", str(tmp_path / "s.h5")]) == 1
    line = one_error_line(capsys)
    assert f"data file {data} changed since training (size" in line
    assert main(["train", str(run / "config.toml"), "--out", str(run), "--resume"]) == 1
    assert "changed since training" in one_error_line(capsys)

    csv_data(data)  # the trained file again, byte for byte
    original = data.read_text()
    tweaked = original[:-2] + ("1" if original[-2] != "1" else "2") + original[-1]
    data.write_text(tweaked)  # the same size, one digit changed
    assert data.stat().st_size == len(original.encode())
    assert main(["nll", str(run), "--n", "10"]) == 1
    assert "same size, different sha256" in one_error_line(capsys)

    data.write_text(original)  # put back: usable again
    assert main(["sample", str(run), "--out", str(tmp_path / "back.h5")]) == 0


def test_moved_data_with_the_path_edited_passes(tmp_path: Path) -> None:
    run, data = file_run(tmp_path)
    moved = tmp_path / "moved.csv"
    data.rename(moved)
    edit(run, **{"data.path": str(moved)})
    assert main(["sample", str(run), "--out", str(tmp_path / "s.h5")]) == 0
    csv_data(tmp_path / "other.csv", seed=5)
    edit(run, **{"data.path": str(tmp_path / "other.csv")})
    with pytest.raises(WorkbenchError, match=r"data\.path \('.*other\.csv' vs '.*points\.csv'\)"):
        from workbench.jobs.sample import load_model

        load_model(run)


def test_a_run_samples_without_its_data_file_with_the_stored_normaliser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, data = file_run(tmp_path)
    with_data = tmp_path / "with.h5"
    assert main(["sample", str(run), "--out", str(with_data)]) == 0
    data.unlink()
    without = tmp_path / "without.h5"
    assert main(["sample", str(run), "--out", str(without)]) == 0
    with h5py.File(with_data, "r") as a, h5py.File(without, "r") as b:
        assert np.array_equal(a["samples"][()], b["samples"][()])
        # the file records the normaliser it mapped back with: the checkpoint's
        stored = load_checkpoint(run / "checkpoint.pt")["data"]["normalizer"]
        assert np.array_equal(b["trajectories"].attrs["shift"], stored["shift"])
        assert np.array_equal(b["trajectories"].attrs["scale"], stored["scale"])
    capsys.readouterr()
    assert main(["nll", str(run), "--n", "10"]) == 1
    line = one_error_line(capsys)
    assert "training data" in line and str(data) in line and "gone" in line
    with pytest.raises(WorkbenchError, match="no such file"):
        train_in_folder(None, run, resume=True, steps=20)


def test_a_custom_sde_run_without_its_data_says_why_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, data = file_run(
        tmp_path,
        dim=1,  # the custom SDE's default drift has one component
        **{
            "sde.kind": "custom",
            "loss.kind": "ssm",
            "loss.weighting": "none",
            "model.output": "score",
            "sample.denoise": False,
        },
    )
    data.unlink()
    assert main(["sample", str(run), "--out", str(tmp_path / "s.h5")]) == 1
    line = one_error_line(capsys)
    assert "'custom' SDE" in line and "prior" in line and str(data) in line


def test_a_replaced_data_file_no_longer_rescales_the_samples(tmp_path: Path) -> None:
    """The old failure: the normaliser recomputed from a replaced file rescaled every sample.
    Now the replacement is refused, and the checkpoint's normaliser is the trained one."""
    run, data = file_run(tmp_path)
    stored = load_checkpoint(run / "checkpoint.pt")["data"]["normalizer"]
    points = np.loadtxt(data, delimiter=",", skiprows=1)
    assert np.allclose(stored["shift"], points.mean(0)) and stored["mode"] == "standardise"
    csv_data(data, scale=100.0)
    with pytest.raises(WorkbenchError, match="changed since training"):
        from workbench.jobs.sample import load_model

        load_model(run)


def test_an_old_checkpoint_without_the_stored_data_still_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = file_run(tmp_path)
    state = load_checkpoint(run / "checkpoint.pt")
    del state["data"]
    save_checkpoint(
        {k: v for k, v in state.items() if k not in ("format", "format_version")},
        run / "checkpoint.pt",
    )
    assert main(["sample", str(run), "--out", str(tmp_path / "s.h5")]) == 0
    assert torch.isfinite(torch.as_tensor(h5py.File(tmp_path / "s.h5", "r")["samples"][()])).all()


def test_a_torchrun_job_is_refused_by_a_folder_in_use(tmp_path: Path) -> None:
    """Rank 0 takes the lock before it joins the group: a held folder ends the job at once,
    with the holder named, and nothing of the folder changes."""
    exp = tmp_path / "exp.toml"
    save_config(small(), exp)
    run = tmp_path / "run"
    run.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", SDE_WORKBENCH_DIST_TIMEOUT="20", PYTHONPATH=str(ROOT))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "--monitor-interval",
        "0.2",
        "-m",
        "workbench",
        "train",
        str(exp),
        "--out",
        str(run),
    ]
    with RunLock(run, "a test holder"):
        proc = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=300)
    assert proc.returncode != 0
    assert f"in use by pid {os.getpid()}" in proc.stderr.decode()
    assert sorted(p.name for p in run.iterdir()) == []


def test_the_gui_refuses_an_edited_run_folder_and_samples_with_the_stored_normaliser(
    qtbot, tmp_path: Path
) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore

    from tests.gui.conftest import settle
    from workbench.core.data import Normalizer
    from workbench.gui.main_window import MainWindow

    run, _ = file_run(tmp_path)
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)
    window = MainWindow(settings=settings, runs_dir=tmp_path / "runs")
    qtbot.addWidget(window)
    try:
        assert window.open_path(run)
        settle(window)  # the state and the run's model are built in workers
        stored = Normalizer.from_attrs(load_checkpoint(run / "checkpoint.pt")["data"]["normalizer"])
        assert window._run_dataset(window.config).normalizer() == stored
        # an experiment changed in the form is no longer the run's: its own normaliser
        changed = window.config.with_overrides({"sde.kind": "ve"})
        assert window._run_dataset(changed) is None

        edit(run, **{"sde.kind": "ve", "model.hidden": 8})
        assert not window.open_path(run)
        assert "sde.kind ('ve' vs 'vp')" in window.errors[-1]
        assert "model.hidden (8 vs 16)" in window.errors[-1]
    finally:
        window.close()
