"""The row recorder: rows reach the file exactly and in order, the sampling thread never
touches HDF5, errors of the writer's thread come back to the caller, and threads are joined.

The CUDA part (pinned buffers, a side stream, events) runs only where a GPU is present.
"""

import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from workbench.config import default_config
from workbench.core.data import build_dataset
from workbench.core.nets import AnalyticScoreModel
from workbench.core.samplers import build_sampler, sample
from workbench.core.sde import build_sde
from workbench.errors import WorkbenchError
from workbench.io.recorder import RowRecorder
from workbench.io.trajectories import TrajectoryFile, TrajectoryWriter
from workbench.jobs.sample import sample_params, sample_to_file


def writer(path: Path, n: int = 50, dim: int = 2) -> TrajectoryWriter:
    return TrajectoryWriter(path, n_samples=n, sample_shape=(dim,), config_toml="", sampler="em")


def read_rows(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        g = f["trajectories"]
        return g["x"][()], g["t"][()], g["step"][()]


def test_rows_equal_the_synchronous_writers_in_order(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    rows = [torch.randn(50, 2, generator=gen) for _ in range(12)]
    with writer(tmp_path / "sync.h5") as w:
        for k, x in enumerate(rows):
            w.append(k * 10, 1.0 - k / 12, x)
        w.close(nfe=1, samples=np.zeros((50, 2)))
    state = torch.empty(50, 2)
    with writer(tmp_path / "rec.h5") as w:
        with RowRecorder(w, "cpu", depth=2) as rec:
            for k, x in enumerate(rows):
                state.copy_(x)  # a solver that updates its state in place
                rec.record(k * 10, 1.0 - k / 12, state)
        assert not rec._thread.is_alive()
        w.close(nfe=1, samples=np.zeros((50, 2)))
    for a, b in zip(read_rows(tmp_path / "sync.h5"), read_rows(tmp_path / "rec.h5"), strict=True):
        assert np.array_equal(a, b)
    assert list(read_rows(tmp_path / "rec.h5")[2]) == [10 * k for k in range(12)]


def test_a_writer_error_reaches_the_sampling_call_and_the_thread_is_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setitem = h5py.Dataset.__setitem__

    def full_disk(self, key, value):
        if self.name == "/trajectories/x" and self.shape[0] > 3:
            raise OSError(28, "No space left on device")
        return setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", full_disk)
    w = writer(tmp_path / "full.h5")
    rec = RowRecorder(w, "cpu", depth=2)
    with pytest.raises(WorkbenchError, match="No space left on device") as err, w, rec:
        for k in range(200):  # the error surfaces within a few rows, not at the end
            rec.record(k, 0.0, torch.ones(50, 2))
            w.flush()
    assert "\n" not in str(err.value)
    assert not rec._thread.is_alive()
    monkeypatch.undo()
    with TrajectoryFile(tmp_path / "full.h5") as f:
        assert f.n_saved == 3 and not f.complete


def test_close_raises_an_error_that_came_after_the_last_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = writer(tmp_path / "late.h5")
    gate = threading.Event()
    original = w.append

    def failing_append(step, t, x):
        gate.wait()
        raise WorkbenchError("could not write row 0: disk gone")

    monkeypatch.setattr(w, "append", failing_append)
    rec = RowRecorder(w, "cpu")
    rec.record(0, 1.0, torch.zeros(50, 2))  # returns at once: the writer is stalled
    gate.set()
    with pytest.raises(WorkbenchError, match="disk gone"):
        rec.close()
    assert not rec._thread.is_alive()
    monkeypatch.setattr(w, "append", original)
    w.abort()


def analytic_config(tmp_path: Path, **over: object):
    return default_config().with_overrides(
        {
            "data.name": "8gaussians",
            "model.kind": "analytic",
            "train.device": "cpu",
            "sample.n": 300,
            "sample.steps": 30,
            "sample.record_every": 4,
            **over,
        }
    )


def test_sample_to_file_records_every_row_off_the_sampling_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file holds exactly the rows of the sampler (same seed), and no HDF5 write of a
    trajectory row happens on the thread that runs the sampler."""
    cfg = analytic_config(tmp_path)
    data = build_dataset("8gaussians", {})
    norm = data.normalizer()
    sde = build_sde("vp", {})
    model = AnalyticScoreModel(norm.to_model_mixture(data.mixture()), sde)
    writers: set[str] = set()
    setitem = h5py.Dataset.__setitem__

    def spy(self, key, value):
        if self.name.startswith("/trajectories/"):
            writers.add(threading.current_thread().name)
        return setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", spy)
    result = sample_to_file(cfg, model, tmp_path / "s.h5")
    monkeypatch.undo()
    assert result.status == "done"
    assert writers and threading.current_thread().name not in writers

    sampler = build_sampler(sde, model, sample_params(cfg))
    gen = torch.Generator().manual_seed(cfg.sample.seed)
    with torch.no_grad():
        every = list(sample(sampler, 300, (2,), gen))
    expected = [r for r in every if r.step % 4 == 0]
    last = every[-1]
    x, t, step = read_rows(tmp_path / "s.h5")
    assert list(step) == [r.step for r in expected] + ([last.step] if last.step % 4 else [])
    for k, r in enumerate(expected):
        np.testing.assert_array_equal(x[k], r.x.numpy())
        assert t[k] == r.t
    np.testing.assert_array_equal(x[-1], last.x.numpy())  # the final row is always kept


@pytest.mark.gpu
def test_cuda_rows_arrive_through_pinned_buffers(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the pinned side-stream copy is not tested here")
    rows = [torch.randn(50, 2, device="cuda") for _ in range(20)]
    with writer(tmp_path / "gpu.h5") as w:
        with RowRecorder(w, "cuda", depth=2) as rec:
            x = torch.empty(50, 2, device="cuda")
            for k, r in enumerate(rows):
                x.copy_(r)  # in place: the recorder must have ordered its copy first
                rec.record(k, 0.0, x)
        w.close(nfe=1, samples=np.zeros((50, 2)))
    got = read_rows(tmp_path / "gpu.h5")[0]
    for k, r in enumerate(rows):
        assert np.array_equal(got[k], r.cpu().numpy())
