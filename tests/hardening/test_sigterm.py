"""SIGTERM is handled like Ctrl-C: real ``python -m workbench`` processes are sent SIGTERM once
they show progress, and must stop cleanly with exit status 143 (128 + SIGTERM), no traceback,
every file they write closed and readable, and no hidden ``.*.tmp`` left behind."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from workbench.cli import EXIT_TERMINATED
from workbench.config import default_config, save_config
from workbench.io.checkpoints import load_checkpoint
from workbench.io.trajectories import TrajectoryFile, TrajectoryWriter

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 120.0


def small(**overrides: object):
    base = {
        "data.n": 1024,
        "model.hidden": 16,
        "model.depth": 1,
        "model.embed_dim": 8,
        "train.batch_size": 64,
        "train.device": "cpu",
        "train.log_every": 5,
        "train.checkpoint_every": 20,
        "sample.n": 200,
        "sample.record_every": 10,
    }
    base.update(overrides)
    return default_config().with_overrides(base)


class Child:
    """``python -m workbench ARGV`` with its stderr read line by line as it comes."""

    def __init__(self, *argv: str, cwd: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        self.err = ""

    def wait_for_stderr(self, text: str) -> None:
        """Block until ``text`` appears on stderr (bounded by WAIT_S)."""
        assert self.proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + WAIT_S
        while text not in self.err:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {text!r}; stderr so far: {self.err}"
            if sel.select(timeout=min(left, 1.0)):
                chunk = os.read(self.proc.stderr.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"the child ended before printing {text!r}: {self.err}")
                self.err += chunk.decode(errors="replace")
        sel.close()

    def wait_for(self, what: str, ready) -> None:
        deadline = time.monotonic() + WAIT_S
        while not ready():
            assert self.proc.poll() is None, f"the child ended before {what}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    def terminate(self) -> tuple[int, str]:
        """SIGTERM; the exit status and all of stderr."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise AssertionError("the child did not stop after SIGTERM") from None
        self.err += err.decode(errors="replace")
        return self.proc.returncode, self.err


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.tmp"))


def test_exit_status_after_sigterm_is_documented() -> None:
    from workbench.cli import EPILOG

    assert EXIT_TERMINATED == 128 + signal.SIGTERM == 143
    assert "143 stopped by SIGTERM" in EPILOG


def test_sigterm_stops_training_after_the_step_with_a_checkpoint(tmp_path: Path) -> None:
    save_config(small(**{"train.steps": 10**6}), tmp_path / "exp.toml")
    child = Child("train", "exp.toml", "--out", "run", cwd=tmp_path)
    child.wait_for_stderr("train ")
    status, err = child.terminate()
    assert status == EXIT_TERMINATED, err
    assert "Traceback" not in err
    assert "stopping after this step" in err
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] >= 1
    assert temporaries(tmp_path) == []


def test_sigterm_closes_a_new_trajectory_file_incomplete(tmp_path: Path) -> None:
    save_config(
        small(**{"model.kind": "analytic", "sample.steps": 10**5}), tmp_path / "analytic.toml"
    )
    child = Child("sample", "analytic.toml", "--out", "s.h5", cwd=tmp_path)
    child.wait_for_stderr("sample ")

    def has_rows() -> bool:
        try:
            with TrajectoryFile(tmp_path / "s.h5") as f:
                return f.n_saved >= 2
        except Exception:
            return False

    child.wait_for("two rows in the file", has_rows)
    status, err = child.terminate()
    assert status == EXIT_TERMINATED, err
    assert "Traceback" not in err and "marked incomplete" in err
    with TrajectoryFile(tmp_path / "s.h5") as f:
        assert not f.complete and f.n_saved >= 2
        assert np.array_equal(f.steps, np.arange(f.n_saved) * 10)
        assert np.all(np.isfinite(f.row(-1)))
    assert temporaries(tmp_path) == []


def test_sigterm_during_a_forced_replacement_keeps_the_old_file(tmp_path: Path) -> None:
    save_config(
        small(**{"model.kind": "analytic", "sample.steps": 10**5}), tmp_path / "analytic.toml"
    )
    old = tmp_path / "s.h5"
    with TrajectoryWriter(
        old, n_samples=3, sample_shape=(2,), config_toml="", sampler="em"
    ) as writer:
        writer.append(0, 1.0, np.zeros((3, 2)))
        writer.close(np.ones((3, 2)))
    before = old.read_bytes()
    child = Child("sample", "analytic.toml", "--out", "s.h5", "--force", cwd=tmp_path)
    child.wait_for_stderr("sample ")
    child.wait_for("the replacement's temporary", lambda: temporaries(tmp_path) != [])
    status, err = child.terminate()
    assert status == EXIT_TERMINATED, err
    assert "Traceback" not in err and "unchanged" in err
    assert old.read_bytes() == before
    assert temporaries(tmp_path) == []


def test_sigterm_stops_the_fokker_planck_solver_without_a_file(tmp_path: Path) -> None:
    save_config(small(), tmp_path / "exp.toml")
    child = Child("fpk", "exp.toml", "--out", "p.h5", "--grid", "256", cwd=tmp_path)
    child.wait_for_stderr("fpk ")
    status, err = child.terminate()
    assert status == EXIT_TERMINATED, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "sde-workbench: terminated (SIGTERM)"
    assert not (tmp_path / "p.h5").exists() and temporaries(tmp_path) == []


def test_sigterm_stops_nll(tmp_path: Path) -> None:
    save_config(small(**{"model.kind": "analytic"}), tmp_path / "analytic.toml")
    child = Child("nll", "analytic.toml", "--n", "200000", cwd=tmp_path)
    child.wait_for_stderr("nll ")
    status, err = child.terminate()
    assert status == EXIT_TERMINATED, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "sde-workbench: terminated (SIGTERM)"


@pytest.mark.parametrize("force", [False, True])
def test_sigterm_during_an_export_leaves_no_temporary(tmp_path: Path, force: bool) -> None:
    # two million samples: the csv export takes seconds, long enough to be caught mid-write
    n = 2_000_000
    with TrajectoryWriter(
        tmp_path / "big.h5", n_samples=n, sample_shape=(2,), config_toml="", sampler="em"
    ) as writer:
        writer.append(0, 1.0, np.zeros((n, 2), np.float32))
        writer.close(np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32))
    out = tmp_path / "x.csv"
    argv = ["export", "big.h5", "--out", "x.csv"]
    if force:
        out.write_text("old\n")
        argv.append("--force")
    child = Child(*argv, cwd=tmp_path)
    child.wait_for("the export's temporary", lambda: temporaries(tmp_path) != [])
    status, err = child.terminate()
    assert status == EXIT_TERMINATED, err
    assert "Traceback" not in err
    assert temporaries(tmp_path) == []
    if force:
        assert out.read_text() == "old\n"
    else:
        assert not out.exists()
