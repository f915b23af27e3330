"""Bad input through the real command line, in child processes: one line, never a traceback
or a hang.

- the computer's memory running out (under an address-space limit, RLIMIT_AS, set in the
  child once it has imported everything): ``sample``, ``nll`` and ``train`` end with exit
  status 1 and one line naming the setting to make smaller;
- special files where a config, a data file or a run's metrics.csv is expected (a FIFO,
  ``/dev/zero``, a directory): refused at once, and the run folder keeps what it had.

Every child has a time limit: a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.config import default_config, save_config
from workbench.io.safety import OutOfMemoryError
from workbench.jobs.train import train_in_folder

ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 240

# The child imports what the commands import, then limits its address space to what it maps
# now plus HEADROOM, then runs the real CLI: the limit is the same headroom on any machine,
# whatever torch's libraries map at import.
_LIMITED_CLI = """
import resource, sys
import torch
import workbench.jobs.nll, workbench.jobs.sample, workbench.jobs.train, workbench.terminal
from workbench.cli import main
vm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:")][0]
limit = vm + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.exit(main(sys.argv[2:]))
"""
HEADROOM = 1 << 30


def cli(*argv: str, headroom: int | None = None) -> subprocess.CompletedProcess[str]:
    """``sde-workbench ARGV`` in a child (under a memory limit with ``headroom``)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    if headroom is None:
        code = "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"
        args = [sys.executable, "-c", code, *argv]
    else:
        args = [sys.executable, "-c", _LIMITED_CLI, str(headroom), *argv]
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=CHILD_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The last stderr line of a failed command, checked: exit 1, no traceback."""
    assert done.returncode == 1, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("sde-workbench: error: "), done.stderr[-3000:]
    return last


def small(**overrides):
    base = {
        "data.n": 512,
        "model.hidden": 16,
        "model.depth": 1,
        "model.embed_dim": 8,
        "train.batch_size": 64,
        "train.device": "cpu",
        "train.steps": 4,
        "train.checkpoint_every": 2,
        "train.log_every": 1,
        "sample.n": 100,
        "sample.steps": 2,
    }
    base.update(overrides)
    return default_config().with_overrides(base)


# --- the computer's memory runs out -------------------------------------------------------------
def test_sampling_out_of_memory_names_a_smaller_sample_n(tmp_path: Path) -> None:
    cfg = tmp_path / "analytic.toml"
    save_config(small(**{"model.kind": "analytic"}), cfg)
    done = cli(
        "sample", str(cfg), "--out", str(tmp_path / "s.h5"), "--n", "100000000",
        headroom=HEADROOM,
    )  # fmt: skip
    line = one_error_line(done)
    assert "the computer ran out of memory while sampling 100000000 samples" in line
    key, value = OutOfMemoryError.suggestion(line)
    assert key == "sample.n" and 1 <= value < 100_000_000


def test_nll_out_of_memory_names_fewer_points(tmp_path: Path) -> None:
    cfg = tmp_path / "analytic.toml"
    save_config(small(**{"model.kind": "analytic"}), cfg)
    line = one_error_line(cli("nll", str(cfg), "--n", "100000000", headroom=HEADROOM))
    assert "ran out of memory while evaluating the NLL of 100000000 data points" in line
    assert "nll --n 50000000" in line


def test_training_out_of_memory_names_a_smaller_batch(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    # 4 Mi points per step through 256-wide layers: GiBs of activations at step 1
    batch = 1 << 22
    save_config(small(**{"data.n": batch, "train.batch_size": batch, "model.hidden": 256}), cfg)
    line = one_error_line(cli("train", str(cfg), "--out", str(tmp_path / "run"), headroom=HEADROOM))
    assert "the computer ran out of memory while training (step 1)" in line
    assert OutOfMemoryError.suggestion(line) == ("train.batch_size", batch // 2)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_training_data_larger_than_memory_names_a_smaller_data_n(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    save_config(small(**{"data.n": 10**9}), cfg)
    line = one_error_line(cli("train", str(cfg), "--out", str(tmp_path / "run"), headroom=HEADROOM))
    assert "ran out of memory while setting up the training with data.n = 1000000000" in line
    key, value = OutOfMemoryError.suggestion(line)
    assert key == "data.n" and 1 <= value < 10**9


# --- special files where files are expected ----------------------------------------------------
def _special(path: Path, kind: str) -> None:
    if path.is_dir():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"step,wall_time,loss,lr,grad_norm\n1,\xff\xfe,0,0,0\n")


KINDS = ["fifo", "dev_zero", "directory"]


@pytest.mark.parametrize("kind", KINDS)
def test_check_refuses_a_special_file_as_config(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "exp.toml"
    _special(path, kind)
    line = one_error_line(cli("check", str(path)))
    assert "exp.toml" in line


@pytest.mark.parametrize("kind", KINDS)
def test_train_refuses_a_special_file_as_data(tmp_path: Path, kind: str) -> None:
    data = tmp_path / "points.npy"
    _special(data, kind)
    cfg = tmp_path / "exp.toml"
    save_config(small(**{"data.name": "file", "data.path": str(data)}), cfg)
    line = one_error_line(cli("train", str(cfg), "--out", str(tmp_path / "run")))
    assert "points.npy" in line


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run") / "run"
    train_in_folder(small(), run)
    return run


@pytest.mark.parametrize("kind", [*KINDS, "not_utf8"])
def test_resume_refuses_a_special_metrics_csv_and_keeps_the_run(
    tmp_path: Path, trained: Path, kind: str
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    checkpoint = (run / "checkpoint.pt").read_bytes()
    _special(run / "metrics.csv", kind)
    done = cli("train", str(run / "config.toml"), "--out", str(run), "--resume", "--steps", "6")
    line = one_error_line(done)
    assert "metrics.csv" in line
    assert (run / "checkpoint.pt").read_bytes() == checkpoint
    if kind == "not_utf8":
        assert "not UTF-8" in line
        assert b"\xff\xfe" in (run / "metrics.csv").read_bytes()  # refused, not rewritten
