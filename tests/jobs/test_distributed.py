"""Distributed training and sampling under a real ``torchrun`` (2 processes, Gloo, CPU).

Each test starts torchrun as a subprocess on 127.0.0.1 with a free port (``--standalone``), so
the whole path runs: the CLI's dispatch, the process group, DDP, rank 0's files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from workbench.config import load_config
from workbench.errors import ConfigError
from workbench.io.runs import read_metrics
from workbench.io.trajectories import TrajectoryFile
from workbench.jobs.distributed import (
    DistEnv,
    gather_shards,
    launched_by_torchrun,
    shard_path,
    shard_sizes,
    train_distributed_in_folder,
)
from workbench.jobs.train import train_in_folder

TINY = """
[data]
name = "8gaussians"
n = 2000
[model]
kind = "mlp"
hidden = 32
depth = 2
[train]
steps = 10
batch_size = 64
log_every = 1
checkpoint_every = 5
device = "cpu"
seed = 3
"""


def torchrun(*args: str, cwd: Path) -> list[str]:
    return [
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
        *args,
    ]


def worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", SDE_WORKBENCH_DIST_TIMEOUT="20", PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The in-process runs on one thread, as the workers: on a busy 2-core machine two OpenMP
    threads make a tiny model's step ~100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_env_detection() -> None:
    assert launched_by_torchrun({"RANK": "1", "WORLD_SIZE": "2"})
    assert not launched_by_torchrun({"WORLD_SIZE": "2"})
    env = DistEnv.from_environ({"RANK": "1", "WORLD_SIZE": "3", "LOCAL_RANK": "1"})
    assert (env.rank, env.world_size, env.is_main) == (1, 3, False)
    assert shard_sizes(7, 3) == [3, 2, 2] and sum(shard_sizes(1000, 7)) == 1000


def test_two_gloo_ranks_match_one_process_and_resume_with_one(
    tmp_path: Path, tiny: Path, one_thread: None
) -> None:
    """2 ranks x 32 = one process x 64: the same loss curve and weights to float tolerance;
    the 2-rank checkpoint then resumes in one process exactly as the 1-process run does."""
    two, one = tmp_path / "two", tmp_path / "one"
    proc = subprocess.run(
        torchrun("train", str(tiny), "--out", str(two), cwd=tmp_path),
        cwd=tmp_path,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on 2 processes" in proc.stdout
    train_in_folder(load_config(tiny), one)

    m2, m1 = read_metrics(two / "metrics.csv"), read_metrics(one / "metrics.csv")
    assert m2["step"] == m1["step"] == [float(s) for s in range(1, 11)]  # rank 0 alone wrote
    # float32 losses of O(1) summed in another order: a few ulps
    np.testing.assert_allclose(m2["loss"], m1["loss"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m2["grad_norm"], m1["grad_norm"], rtol=1e-4, atol=1e-6)
    c2 = torch.load(two / "checkpoint.pt", weights_only=True)
    c1 = torch.load(one / "checkpoint.pt", weights_only=True)
    assert c2["step"] == c1["step"] == 10
    assert torch.equal(c2["generator"], c1["generator"])  # the same randomness was consumed
    for key in c1["model"]:
        torch.testing.assert_close(c2["model"][key], c1["model"][key], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(c2["ema"][key], c1["ema"][key], rtol=1e-4, atol=1e-5)

    # resume both with a single process: the state holds nothing that depends on N
    train_in_folder(None, two, resume=True, steps=20)
    train_in_folder(None, one, resume=True, steps=20)
    m2, m1 = read_metrics(two / "metrics.csv"), read_metrics(one / "metrics.csv")
    assert len(m2["step"]) == 20
    np.testing.assert_allclose(m2["loss"], m1["loss"], rtol=1e-4, atol=1e-6)
    c2 = torch.load(two / "checkpoint.pt", weights_only=True)
    c1 = torch.load(one / "checkpoint.pt", weights_only=True)
    for key in c1["model"]:
        torch.testing.assert_close(c2["model"][key], c1["model"][key], rtol=1e-4, atol=1e-5)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _rank_of(pid: int) -> int | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_a_killed_rank_ends_the_job_with_a_clear_message(
    tmp_path: Path, tiny: Path, one_thread: None
) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen(
        torchrun("train", str(tiny), "--out", str(run), "--steps", "10000000", cwd=tmp_path),
        cwd=tmp_path,
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        # training is under way once rank 0 has logged a few steps and saved a checkpoint
        while (
            len(read_metrics(run / "metrics.csv")["step"]) < 8
            or not (run / "checkpoint.pt").is_file()
        ):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.1)
        victim = next(p for p in _children(proc.pid) if _rank_of(p) == 1)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert took < 15, f"the job took {took:.1f} s to end after a rank died"
    # torchrun names the dead rank; the survivor says why it stopped, in one line
    assert "rank      : 1" in err and "SIGKILL" in err
    assert "sde-workbench: error: rank 0 of 2 lost contact with the other ranks" in err
    # the last checkpoint is kept, and one process resumes it: the rows written after it (by
    # the dead job) are replaced, so the curve goes on without a gap or a duplicate
    saved = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert saved >= 5 and saved % 5 == 0
    result = train_in_folder(None, run, resume=True, steps=saved + 3)
    assert result.status == "done"
    assert read_metrics(run / "metrics.csv")["step"] == [float(s) for s in range(1, saved + 4)]


ANALYTIC = """
[data]
name = "gmm"
means = [[-2.0, 0.0], [2.0, 0.0]]
stds = [0.5, 0.5]
[model]
kind = "analytic"
[sample]
sampler = "em"
steps = 40
n = 101
record_every = 10
"""


def test_sampling_shards_joined_virtually_and_gathered(tmp_path: Path) -> None:
    config = tmp_path / "analytic.toml"
    config.write_text(ANALYTIC)
    out = tmp_path / "s.h5"
    proc = subprocess.run(
        torchrun("sample", str(config), "--out", str(out), "--shards", cwd=tmp_path),
        cwd=tmp_path,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parts = [shard_path(out, r) for r in range(2)]
    sizes, rows = [], []
    for p in parts:
        with h5py.File(p, "r") as f:
            sizes.append(f["samples"].shape[0])
            rows.append(f["trajectories/x"].shape[0])
            assert f.attrs["complete"]
    assert sizes == [51, 50] and rows[0] == rows[1] >= 5  # every 10th of 40 steps, and the last
    with h5py.File(out, "r") as f:
        assert f["samples"].is_virtual and f["trajectories/x"].is_virtual
    with TrajectoryFile(out) as joined:
        assert joined.n_samples == 101 and joined.complete
        assert joined.n_saved == rows[0]
        samples = joined.samples()
        x_last = joined.row(joined.n_saved - 1)
    with h5py.File(parts[0], "r") as a, h5py.File(parts[1], "r") as b:
        np.testing.assert_array_equal(samples, np.concatenate([a["samples"], b["samples"]]))
        # the ranks drew different particles (their own seeds)
        assert not np.allclose(a["samples"][:50], b["samples"][:50])
    assert x_last.shape == (101, 2) and np.isfinite(x_last).all()

    # the gathering mode over the same shards: one ordinary file with the same particles
    gathered = tmp_path / "g.h5"
    gather_shards(parts, gathered, load_config(config))
    with TrajectoryFile(gathered) as g:
        assert g.n_samples == 101 and g.n_saved == rows[0] and g.complete
        np.testing.assert_array_equal(g.samples(), samples)
    with h5py.File(gathered, "r") as f:
        assert not f["samples"].is_virtual


def test_batch_that_does_not_split_is_a_config_error(tmp_path: Path, tiny: Path) -> None:
    # checked before the process group is joined, on every rank alike: nobody waits for a peer
    cfg = load_config(tiny).with_overrides({"train.batch_size": 63})
    with pytest.raises(ConfigError, match="does not split evenly over 2 processes") as info:
        train_distributed_in_folder(cfg, tmp_path / "r", env=DistEnv(0, 2, 0))
    assert info.value.key == "train.batch_size"
    assert not (tmp_path / "r").exists()
