"""HDF5 trajectory files: the contract of docs/format.md, crash safety, and every bad input.

The chunk-shape benchmark on a 1000 x 100000 x 2 file is skipped unless SDE_WORKBENCH_BENCH=1
(it writes ~700 MB): ``SDE_WORKBENCH_BENCH=1 pytest tests/io/test_trajectories.py -k bench -s``.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from workbench.config import default_config, to_toml
from workbench.core.data import Normalizer
from workbench.errors import WorkbenchError
from workbench.io import trajectories
from workbench.io.trajectories import (
    FORMAT,
    FileBeingWrittenError,
    TrajectoryFile,
    TrajectoryWriter,
    chunk_shape,
    read_while_written,
)

CONFIG = to_toml(default_config())
NORM = Normalizer.standardise([1.0, -2.0], [3.0, 0.5], (2,))


def rows_for(n_rows: int, n: int, dim: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, dim)).astype(np.float32) for _ in range(n_rows)]


def write_file(
    path: Path,
    rows: list[np.ndarray],
    *,
    sample_shape: tuple[int, ...] = (2,),
    normalizer: Normalizer | None = NORM,
    samples: np.ndarray | None = None,
    logp: np.ndarray | None = None,
    close: bool = True,
    **kwargs,
) -> Path:
    n = len(rows[0]) if rows else (len(samples) if samples is not None else 4)
    w = TrajectoryWriter(
        path,
        n_samples=n,
        sample_shape=sample_shape,
        config_toml=CONFIG,
        sampler="em",
        normalizer=normalizer,
        **kwargs,
    )
    for k, row in enumerate(rows):
        w.append(10 * k, 1.0 - k / max(len(rows), 1), row)
    if close:
        w.close(samples, nfe=7, logp=logp)
    else:
        w.abort()
    return path


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


# ---------------------------------------------------------------------------------------------
# round trip and the contract
# ---------------------------------------------------------------------------------------------
def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    rows = rows_for(6, 50, 2)
    samples = np.random.default_rng(1).standard_normal((50, 2)).astype(np.float32)
    logp = np.random.default_rng(2).standard_normal(50)
    path = write_file(tmp_path / "t.h5", rows, samples=samples, logp=logp)
    with TrajectoryFile(path) as f:
        assert (f.n_saved, f.n_samples, f.dim, f.sample_shape) == (6, 50, 2, (2,))
        for k, row in enumerate(rows):
            assert np.array_equal(f.row(k), row)
            assert f.row(k).dtype == np.float32
        assert np.array_equal(f.row(-1), rows[-1])
        assert np.array_equal(f.times, [1.0 - k / 6 for k in range(6)])
        assert f.steps.tolist() == [0, 10, 20, 30, 40, 50]
        assert f.times.dtype == np.float64 and f.steps.dtype == np.int64
        assert np.array_equal(f.samples(), samples) and not f.samples_from_last_row
        assert f.has_logp and np.array_equal(f.logp(), logp)
        assert np.array_equal(f.particle_path(3), np.stack([r[3] for r in rows]))
        picked = f.particles([7, 2, 7])
        assert picked.shape == (6, 3, 2)
        assert np.array_equal(picked[:, 0], picked[:, 2])
        assert np.array_equal(picked[:, 1], np.stack([r[2] for r in rows]))
        assert f.complete and f.nfe == 7 and f.sampler == "em" and f.direction == "reverse"
        assert f.normalizer == NORM
        assert np.allclose(f.row(2, denormalise=True), rows[2] * [3.0, 0.5] + [1.0, -2.0])
        assert f.read_config() == default_config()
        assert f.index_of_step(30) == 3 and f.index_of_time(0.52) == 3


def test_every_attribute_of_the_contract(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t.h5", rows_for(3, 8, 2), logp=np.zeros(8))
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == FORMAT == "sde-workbench/trajectories"
        assert a["format_version"] == 1
        assert a["software"].startswith("sde-workbench ")
        assert a["complete"] == True  # noqa: E712 - numpy bool
        assert a["NX_class"] == "NXroot" and a["default"] == "entry"
        created = a["created"]
        assert time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")  # ISO 8601
        assert f["config"].attrs["experiment"] == CONFIG
        g = f["trajectories"]
        assert g.attrs["NX_class"] == "NXdata" and g.attrs["signal"] == "x"
        assert list(g.attrs["axes"]) == ["t", ".", "."] and g.attrs["t_indices"] == 0
        assert g.attrs["direction"] == "reverse" and g.attrs["sampler"] == "em"
        assert g.attrs["nfe"] == 7
        assert list(g.attrs["sample_shape"]) == [2]
        assert list(g.attrs["shift"]) == [1.0, -2.0] and list(g.attrs["scale"]) == [3.0, 0.5]
        assert g.attrs["mode"] == "standardise"
        x, t, step = g["x"], g["t"], g["step"]
        assert x.dtype == np.float32 and x.shape == (3, 8, 2) and x.maxshape == (None, 8, 2)
        assert x.chunks is not None and x.compression == "gzip" and x.compression_opts == 4
        assert t.dtype == np.float64 and t.shape == (3,) and t.maxshape == (None,)
        assert step.dtype == np.int64 and step.shape == (3,) and step.maxshape == (None,)
        assert f["samples"].dtype == np.float32 and f["samples"].shape == (8, 2)
        assert f["logp"].dtype == np.float64 and f["logp"].shape == (8,)


def test_images_are_stored_flat_with_their_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    images = [torch.from_numpy(rng.random((5, 1, 3, 4), dtype=np.float32)) for _ in range(2)]
    path = write_file(
        tmp_path / "img.h5", images, sample_shape=(1, 3, 4), normalizer=None, compression="lzf"
    )
    with TrajectoryFile(path) as f:
        assert f.sample_shape == (1, 3, 4) and f.dim == 12
        assert np.array_equal(f.row(1), images[1].numpy().reshape(5, 12))
        assert f.normalizer == Normalizer.identity((1, 3, 4))


def test_close_without_samples_stores_the_denormalised_last_row(tmp_path: Path) -> None:
    rows = rows_for(3, 10, 2)
    path = write_file(tmp_path / "t.h5", rows)
    with TrajectoryFile(path) as f:
        assert f.has_samples and not f.has_logp
        expected = (rows[-1].astype(np.float64) * [3.0, 0.5] + [1.0, -2.0]).astype(np.float32)
        assert np.array_equal(f.samples(), expected)
        with pytest.raises(WorkbenchError, match=r"no log-likelihoods"):
            f.logp()


def test_append_copies_the_row_and_accepts_any_float_input(tmp_path: Path) -> None:
    w = TrajectoryWriter(
        tmp_path / "t.h5", n_samples=4, sample_shape=(2,), config_toml="", sampler="ode"
    )
    x = torch.zeros(4, 2, dtype=torch.float64)
    w.append(0, 1.0, x)
    x += 5  # a sampler updating its state in place must not change the stored row
    w.append(1, 0.5, x.numpy())
    w.append(2, 0.0, [[1, 2]] * 4)
    with pytest.raises(ValueError, match=r"4 samples of 2 values"):
        w.append(3, 0.0, torch.zeros(3, 2))
    w.close(np.zeros((4, 2)), nfe=3)
    with TrajectoryFile(tmp_path / "t.h5") as f:
        assert f.row(0).tolist() == [[0.0, 0.0]] * 4
        assert f.row(1).tolist() == [[5.0, 5.0]] * 4
        assert f.row(2).tolist() == [[1.0, 2.0]] * 4


@pytest.mark.gpu
def test_a_cuda_row_is_copied_to_the_host(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: appending GPU tensors is untested here")
    x = torch.randn(6, 2, device="cuda")
    w = TrajectoryWriter(
        tmp_path / "g.h5", n_samples=6, sample_shape=(2,), config_toml="", sampler="em"
    )
    w.append(0, 1.0, x)
    expected = x.cpu().numpy()
    x.add_(1.0)  # reused on the device: the stored row keeps the old values
    w.close(x, nfe=1)
    with TrajectoryFile(tmp_path / "g.h5") as f:
        assert np.array_equal(f.row(0), expected)
        assert np.array_equal(f.samples(), x.cpu().numpy())


def test_writer_arguments_are_checked(tmp_path: Path) -> None:
    common = {"config_toml": "", "sampler": "em"}
    with pytest.raises(ValueError, match=r"direction"):
        TrajectoryWriter(
            tmp_path / "a.h5", n_samples=2, sample_shape=(2,), direction="up", **common
        )
    with pytest.raises(ValueError, match=r"compression"):
        TrajectoryWriter(
            tmp_path / "a.h5", n_samples=2, sample_shape=(2,), compression="zstd", **common
        )
    with pytest.raises(ValueError, match=r"normaliser"):
        TrajectoryWriter(
            tmp_path / "a.h5", n_samples=2, sample_shape=(3,), normalizer=NORM, **common
        )
    assert not (tmp_path / "a.h5").exists()
    w = TrajectoryWriter(tmp_path / "a.h5", n_samples=2, sample_shape=(2,), **common)
    with pytest.raises(ValueError, match=r"no rows were appended"):
        w.close()
    with pytest.raises(ValueError, match=r"logp"):
        w.close(np.zeros((2, 2)), logp=np.zeros(3))
    w.close(np.zeros((2, 2)))  # still usable after refused arguments
    with pytest.raises(WorkbenchError, match=r"already closed"):
        w.append(0, 0.0, np.zeros((2, 2)))


def test_chunks_are_one_row_deep_and_about_32_kib() -> None:
    assert chunk_shape(100_000, 2) == (1, 4000, 2)
    assert chunk_shape(5000, 2) == (1, 2500, 2)  # equal chunks across the row
    assert chunk_shape(100, 2) == (40, 100, 2)  # tiny rows share a chunk
    assert chunk_shape(64, 784) == (1, 10, 784)  # images: a few per chunk
    assert chunk_shape(3, 3 * 256 * 256) == (1, 1, 3 * 256 * 256)
    assert chunk_shape(100_000, 2, chunk_rows=16) == (16, 4000, 2)
    for n, d in [(100_000, 2), (1000, 2), (64, 784), (7, 3)]:
        r, c, _ = chunk_shape(n, d)
        assert r * c * d * 4 <= trajectories.CHUNK_BYTES


# ---------------------------------------------------------------------------------------------
# live files and crashes
# ---------------------------------------------------------------------------------------------
def test_a_reader_follows_a_live_writer_with_refresh(tmp_path: Path) -> None:
    path = tmp_path / "live.h5"
    rows = rows_for(4, 6, 2)
    w = TrajectoryWriter(path, n_samples=6, sample_shape=(2,), config_toml=CONFIG, sampler="em")
    w.append(0, 1.0, rows[0])
    w.flush()
    with TrajectoryFile(path) as f:
        assert f.n_saved == 1 and not f.complete
        assert f.samples_from_last_row and np.array_equal(f.samples(), rows[0])
        for k in range(1, 4):
            w.append(k, 1.0 - k / 4, rows[k])
        w.flush()
        f.refresh()
        assert f.n_saved == 4 and np.array_equal(f.row(3), rows[3])
        w.close(nfe=4)
        f.refresh()
        assert f.complete and f.has_samples


CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from workbench.io.trajectories import TrajectoryWriter

    w = TrajectoryWriter(sys.argv[1], n_samples=300, sample_shape=(2,), config_toml="",
                         sampler="em")
    k = 0
    while True:
        row = np.random.default_rng(k).standard_normal((300, 2)).astype(np.float32)
        w.append(k, 1.0 / (k + 1), row)
        w.flush()
        if k < 32:  # no more: a full stdout pipe, which nobody reads, would stop the writer
            print(k, flush=True)
        k += 1
    """
)


def test_a_killed_writer_leaves_every_flushed_row(tmp_path: Path) -> None:
    path = tmp_path / "killed.h5"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reported = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            reported = int(line) + 1
            if reported == 25:
                break
        assert reported == 25, child.stderr.read() if child.stderr else ""
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()  # type: ignore[union-attr]
        child.stderr.close()  # type: ignore[union-attr]
    with TrajectoryFile(path) as f:
        assert not f.complete
        assert f.n_saved >= reported
        for k in range(f.n_saved):
            expected = np.random.default_rng(k).standard_normal((300, 2)).astype(np.float32)
            assert np.array_equal(f.row(k), expected)
            assert f.steps[k] == k and f.times[k] == 1.0 / (k + 1)
        assert f.samples_from_last_row
        assert np.array_equal(f.samples(), f.row(-1))
        assert f.summary()["complete"] is False


def test_a_full_disk_is_reported_and_the_file_keeps_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while writing row 3: the next call says so, and rows 0-2 survive intact."""
    setitem = h5py.Dataset.__setitem__

    def full_disk(self, key, value):
        if self.name == "/trajectories/x" and self.shape[0] > 3:
            raise OSError(28, "No space left on device")
        return setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", full_disk)
    path = tmp_path / "full.h5"
    rows = rows_for(6, 5, 2)
    w = TrajectoryWriter(path, n_samples=5, sample_shape=(2,), config_toml="", sampler="em")
    with pytest.raises(WorkbenchError) as err, w:
        for k, row in enumerate(rows):
            w.append(k, 0.0, row)
            w.flush()
    message = str(err.value)
    assert "\n" not in message
    assert "No space left on device" in message
    assert "stays valid up to the last flushed row (3 rows)" in message
    with pytest.raises(WorkbenchError, match=r"already closed"):
        w.close()
    monkeypatch.undo()
    with TrajectoryFile(path) as f:
        assert f.n_saved == 3 and not f.complete
        assert f.read("/trajectories/x").shape == (3, 5, 2)  # the half-written row is undone
        for k in range(3):
            assert np.array_equal(f.row(k), rows[k])


def test_an_error_during_close_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.h5"
    w = TrajectoryWriter(path, n_samples=5, sample_shape=(2,), config_toml="", sampler="em")
    w.append(0, 1.0, np.ones((5, 2)))
    monkeypatch.setattr(
        h5py.Group, "create_dataset", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space"))
    )
    with pytest.raises(WorkbenchError, match=r"could not finish .*No space.*incomplete"):
        w.close(np.zeros((5, 2)), nfe=1)
    monkeypatch.undo()
    with TrajectoryFile(path) as f:
        assert f.n_saved == 1 and not f.complete


def test_append_blocks_only_when_the_queue_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    row_bytes = 10 * 2 * 4
    w = TrajectoryWriter(
        tmp_path / "q.h5",
        n_samples=10,
        sample_shape=(2,),
        config_toml="",
        sampler="em",
        max_pending_bytes=2 * row_bytes,
    )
    release = threading.Event()
    write_row = w._write_row

    def stalled_disk(*args):
        release.wait()
        write_row(*args)

    monkeypatch.setattr(w, "_write_row", stalled_disk)
    for k in range(2):  # two rows fit in the queue; the disk takes none of them
        w.append(k, 0.0, np.zeros((10, 2)))
    third = threading.Thread(target=w.append, args=(2, 0.0, np.zeros((10, 2))))
    third.start()
    third.join(timeout=0.3)
    assert third.is_alive(), "append should wait while the queue is full"
    release.set()
    third.join(timeout=10)
    assert not third.is_alive()
    w.close(nfe=3)
    assert w.rows_written == 3


# ---------------------------------------------------------------------------------------------
# overwriting
# ---------------------------------------------------------------------------------------------
def test_an_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t.h5", rows_for(2, 4, 2))
    before = snapshot(path)
    with pytest.raises(WorkbenchError, match=r"already exists"):
        write_file(path, rows_for(3, 4, 2, seed=9))
    assert snapshot(path) == before


def test_overwrite_replaces_only_when_the_new_file_is_finished(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t.h5", rows_for(2, 4, 2))
    os.chmod(path, 0o640)
    before = snapshot(path)
    # aborted: the old file stays, the temporary goes
    with (
        pytest.raises(RuntimeError),
        TrajectoryWriter(
            path, n_samples=4, sample_shape=(2,), config_toml="", sampler="em", overwrite=True
        ) as w,
    ):
        w.append(0, 1.0, np.ones((4, 2)))
        w.flush()
        assert path.read_bytes() == before[0]
        raise RuntimeError("sampler crashed")
    assert snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.h5"]
    # finished: the new file takes the old one's place and mode
    new_rows = rows_for(5, 4, 2, seed=4)
    write_file(path, new_rows, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.h5"]
    assert path.stat().st_mode & 0o777 == 0o640
    with TrajectoryFile(path) as f:
        assert f.n_saved == 5 and np.array_equal(f.row(4), new_rows[4])


@pytest.mark.parametrize("overwrite", [False, True])
def test_only_a_regular_file_is_ever_replaced(tmp_path: Path, overwrite: bool) -> None:
    """A directory, a FIFO, a symlink (dangling or not) or a name ending in a slash is refused
    even with overwrite: nothing is written through the link or into the folder."""
    os.mkfifo(tmp_path / "pipe.h5")
    (tmp_path / "folder.h5").mkdir()
    (tmp_path / "target.h5").write_bytes(b"the target")
    os.symlink("target.h5", tmp_path / "link.h5")
    os.symlink("missing.h5", tmp_path / "dangling.h5")
    cases = {
        "pipe.h5": "is a named pipe",
        "folder.h5": "is a directory",
        "link.h5": "is a symbolic link",
        "dangling.h5": "which does not exist",
        "new/": "ends in a slash",
    }
    listing = sorted(p.name for p in tmp_path.iterdir())
    for name, reason in cases.items():
        with pytest.raises(WorkbenchError, match=reason):
            write_file(f"{tmp_path}/{name}", rows_for(2, 4, 2), overwrite=overwrite)
    assert sorted(p.name for p in tmp_path.iterdir()) == listing
    assert (tmp_path / "target.h5").read_bytes() == b"the target"
    assert not (tmp_path / "missing.h5").exists()


def test_opening_never_modifies_the_file(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t.h5", rows_for(3, 20, 2), close=False)
    before = snapshot(path)
    with TrajectoryFile(path) as f:
        f.row(0), f.particle_path(1), f.samples(), f.summary(), f.nodes()
        f.refresh()
    assert snapshot(path) == before


# ---------------------------------------------------------------------------------------------
# bad files
# ---------------------------------------------------------------------------------------------
def edit(path: Path, change) -> Path:
    with h5py.File(path, "r+") as f:
        change(f)
    return path


def test_missing_empty_text_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match=r"no such file"):
        TrajectoryFile(tmp_path / "nope.h5")
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(WorkbenchError, match=r"is empty, not an HDF5 file"):
        TrajectoryFile(tmp_path / "empty.h5")
    (tmp_path / "notes.h5").write_text("step,t\n1,0.5\n")
    with pytest.raises(WorkbenchError, match=r"is not an HDF5 file"):
        TrajectoryFile(tmp_path / "notes.h5")
    with pytest.raises(WorkbenchError, match=r"is a directory"):
        TrajectoryFile(tmp_path)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.995])
def test_a_truncated_file_is_reported_as_such(tmp_path: Path, keep: float) -> None:
    path = write_file(tmp_path / "t.h5", rows_for(10, 200, 2))
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: int(len(data) * keep)])
    with (
        pytest.raises(WorkbenchError, match=r"truncated or corrupt") as err,
        TrajectoryFile(cut) as f,
    ):
        for k in range(f.n_saved):
            f.row(k)
        f.samples()
    assert "\n" not in str(err.value)


def test_damaged_chunks_give_a_clear_error_when_read(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t.h5", rows_for(3, 20_000, 2))
    with h5py.File(path, "r") as f:
        x = f["trajectories/x"]
        assert x.chunks[0] == 1
        info = x.id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[info.byte_offset : info.byte_offset + 64] = bytes(64)  # zeroes: not a gzip stream
    path.write_bytes(bytes(data))
    with TrajectoryFile(path) as f:
        row = info.chunk_offset[0]
        with pytest.raises(WorkbenchError, match=r"cannot read row .* truncated or corrupt"):
            f.row(row)
        with pytest.raises(WorkbenchError, match=r"truncated or corrupt"):
            f.particle_path(info.chunk_offset[1])


def test_a_foreign_hdf5_file_is_refused_unless_browsing(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(6).reshape(2, 3)
        f["data"].attrs["units"] = "m"
    with pytest.raises(WorkbenchError, match=r"not an SDE Workbench trajectory file"):
        TrajectoryFile(path)
    with TrajectoryFile(path, foreign_ok=True) as f:
        assert not f.is_trajectory_file
        nodes = {n["name"]: n for n in f.nodes()}
        assert nodes["/data"]["shape"] == [2, 3] and nodes["/data"]["attrs"] == {"units": "m"}
        assert f.read("/data", (1,)).tolist() == [3, 4, 5]
        with pytest.raises(WorkbenchError, match=r"not an SDE Workbench trajectory file"):
            f.row(0)
    edit(path, lambda f: f.attrs.__setitem__("format", "sde-workbench/fpk"))
    with pytest.raises(WorkbenchError, match=r"its format is 'sde-workbench/fpk'"):
        TrajectoryFile(path)


def test_a_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = edit(
        write_file(tmp_path / "t.h5", rows_for(1, 3, 2)),
        lambda f: f.attrs.__setitem__("format_version", 2),
    )
    with pytest.raises(WorkbenchError, match=r"written by a newer version .* version 2"):
        TrajectoryFile(path)


def _reshape_x(f: h5py.File) -> None:
    del f["trajectories/x"]
    f["trajectories/x"] = np.zeros((2, 6), np.float32)


def _drop_t_row(f: h5py.File) -> None:
    f["trajectories/t"].resize(1, axis=0)


def _wrong_shape(f: h5py.File) -> None:
    f["trajectories"].attrs["sample_shape"] = [3]


def _drop_x(f: h5py.File) -> None:
    del f["trajectories/x"]


def _bad_samples(f: h5py.File) -> None:
    del f["samples"]
    f["samples"] = np.zeros((2, 2), np.float32)


def _bad_normaliser(f: h5py.File) -> None:
    f["trajectories"].attrs["scale"] = [-1.0, 1.0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_reshape_x, r"/trajectories/x must be 3-D .* shape \(2, 6\)"),
        (_drop_t_row, "/trajectories/t has 1 rows .* x has 2"),
        (_wrong_shape, r"sample_shape \(3,\) has 3 values, but x rows have dim 2"),
        (_drop_x, "the dataset /trajectories/x is missing"),
        (_bad_samples, r"/samples must have shape \(3, 2\)"),
        (_bad_normaliser, "normalisation .* is invalid"),
    ],
)
def test_mis_shaped_files_name_the_problem(tmp_path: Path, change, message: str) -> None:
    path = edit(write_file(tmp_path / "t.h5", rows_for(2, 3, 2)), change)
    with pytest.raises(WorkbenchError, match=message) as err:
        TrajectoryFile(path)
    assert "\n" not in str(err.value)


def test_an_incomplete_file_uses_the_rows_present_in_every_dataset(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t.h5", rows_for(3, 3, 2), close=False)
    edit(path, _drop_t_row)
    with TrajectoryFile(path) as f:
        assert f.n_saved == 1 and len(f.times) == 1 and f.particle_path(0).shape == (1, 2)


def test_an_empty_trajectory_opens_but_has_no_rows(tmp_path: Path) -> None:
    samples = np.ones((4, 2), np.float32)
    path = write_file(tmp_path / "t.h5", [], samples=samples)
    with TrajectoryFile(path) as f:
        assert f.n_saved == 0 and f.complete
        assert np.array_equal(f.samples(), samples)
        with pytest.raises(WorkbenchError, match=r"holds no trajectory rows"):
            f.row(0)
        with pytest.raises(WorkbenchError, match=r"holds no trajectory rows"):
            f.index_of_time(0.5)
        assert f.summary()["t_range"] is None


def test_out_of_range_indices_name_the_valid_range(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t.h5", rows_for(5, 3, 2))
    with TrajectoryFile(path) as f:
        with pytest.raises(WorkbenchError, match=r"row 5 is out of range: .* rows 0 to 4"):
            f.row(5)
        with pytest.raises(WorkbenchError, match=r"row -6 is out of range"):
            f.row(-6)
        with pytest.raises(WorkbenchError, match=r"particle 3 is out of range: .* 0 to 2"):
            f.particle_path(3)
        with pytest.raises(WorkbenchError, match=r"step 45 is out of range: .* steps 0 to 40"):
            f.index_of_step(45)
        with pytest.raises(WorkbenchError, match=r"step 15 was not recorded .* 10 and 20"):
            f.index_of_step(15)
        with pytest.raises(WorkbenchError, match=r"time 1.5 is out of range: .* 0.2 to 1"):
            f.index_of_time(1.5)


def test_a_bad_config_is_a_workbench_error(tmp_path: Path) -> None:
    path = edit(
        write_file(tmp_path / "t.h5", rows_for(1, 3, 2)),
        lambda f: f["config"].attrs.__setitem__("experiment", "[data]\nname = 'nope'\n"),
    )
    with TrajectoryFile(path) as f, pytest.raises(WorkbenchError, match=r"data.name"):
        f.read_config()


def test_summary_is_json_and_ignores_non_finite_values(tmp_path: Path) -> None:
    samples = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 4.0]], np.float32)
    path = write_file(tmp_path / "t.h5", rows_for(2, 3, 2), samples=samples, logp=np.ones(3))
    with TrajectoryFile(path) as f:
        s = json.loads(json.dumps(f.summary(), allow_nan=False))
    assert s["complete"] is True and s["n_saved"] == 2 and s["sample_shape"] == [2]
    assert s["t_range"] == [1.0, 0.5] and s["nfe"] == 7 and s["logp_mean"] == 1.0
    stats = s["samples"]
    assert stats["mean"] == [3.0, 3.0] and stats["min"] == [1.0, 2.0] and stats["max"] == [5.0, 4.0]
    assert stats["std"][0] == pytest.approx(math.sqrt(8 / 3)) and stats["nonfinite"] == 1


# ---------------------------------------------------------------------------------------------
# other tools
# ---------------------------------------------------------------------------------------------
def test_h5dump_reads_the_file(tmp_path: Path) -> None:
    h5dump = shutil.which("h5dump")
    if h5dump is None:
        pytest.skip(
            "h5dump is not installed (apt-get install hdf5-tools) - HDF5 tools check skipped"
        )
    path = write_file(tmp_path / "t.h5", rows_for(3, 5, 2))
    header = subprocess.run([h5dump, "-H", str(path)], capture_output=True, text=True)
    assert header.returncode == 0, header.stderr
    for name in (
        'GROUP "trajectories"',
        'DATASET "x"',
        'DATASET "samples"',
        'ATTRIBUTE "complete"',
    ):
        assert name in header.stdout
    # the compressed data too, not just the header
    data = subprocess.run(
        [h5dump, "-d", "/trajectories/step", str(path)], capture_output=True, text=True
    )
    assert data.returncode == 0 and "0, 10, 20" in data.stdout


# ---------------------------------------------------------------------------------------------
# NeXus: viewers find the plottable data with no plug-in
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["complete", "aborted", "no rows"])
def test_the_nexus_default_chain_leads_to_the_trajectories(
    tmp_path: Path, nexus_chain, state: str
) -> None:
    rows = [] if state == "no rows" else rows_for(3, 8, 2)
    path = write_file(
        tmp_path / "t.h5",
        rows,
        samples=np.zeros((8, 2), np.float32) if state == "no rows" else None,
        close=state != "aborted",
    )
    chain = nexus_chain(path, "trajectories")
    assert chain["signal"] == "/entry/trajectories/x"
    assert chain["shape"] == (len(rows), 8, 2)
    assert chain["axes"] == ["t", ".", "."] and chain["lengths"] == {"t": len(rows)}
    # the soft link adds no second name: browsing lists each dataset once, as before
    with TrajectoryFile(path) as f:
        names = [node["name"] for node in f.nodes()]
        assert f.complete == (state != "aborted")
    assert names.count("/trajectories/x") == 1 and "/entry" in names
    assert not any(n.startswith("/entry/") for n in names)


def test_a_file_joining_shards_virtually_keeps_the_chain(tmp_path: Path, nexus_chain) -> None:
    from workbench.jobs.distributed import join_shards_virtual, shard_path

    out = tmp_path / "s.h5"
    parts = [shard_path(out, r) for r in range(2)]
    for r, part in enumerate(parts):
        write_file(part, rows_for(3, 4 + r, 2, seed=r))
    join_shards_virtual(parts, out)
    chain = nexus_chain(out, "trajectories")
    assert chain["shape"] == (3, 9, 2) and chain["lengths"] == {"t": 3}
    with h5py.File(out, "r") as f:
        assert f["trajectories/x"].is_virtual
        assert np.array_equal(f["entry/trajectories/x"][:, 4:], rows_for(3, 5, 2, seed=1))


def _old_layout(f: h5py.File) -> None:
    """A file as written before the NeXus entry: root default named the NXdata group."""
    del f["entry"]
    for name in ("creator", "file_time"):
        del f.attrs[name]
    f.attrs["default"] = "trajectories"
    del f["trajectories"].attrs["t_indices"]


def test_files_written_before_the_nexus_entry_still_read(tmp_path: Path) -> None:
    rows = rows_for(4, 6, 2)
    path = edit(write_file(tmp_path / "t.h5", rows, logp=np.ones(6)), _old_layout)
    with h5py.File(path, "r") as f:
        assert "entry" not in f and f.attrs["default"] == "trajectories"
    with TrajectoryFile(path) as f:
        assert f.complete and f.format_version == 1 and f.n_saved == 4
        assert np.array_equal(f.row(2), rows[2]) and f.normalizer == NORM
        assert f.summary()["n_saved"] == 4
    # and the command line, as a user runs it
    cli = subprocess.run(
        [sys.executable, "-m", "workbench", "inspect", str(path), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["n_saved"] == 4


def test_inspect_reads_a_file_with_the_nexus_entry(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t.h5", rows_for(3, 5, 2))
    cli = subprocess.run(
        [sys.executable, "-m", "workbench", "inspect", str(path), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert cli.returncode == 0, cli.stderr
    summary = json.loads(cli.stdout)
    assert summary["n_saved"] == 3 and summary["complete"] is True


def test_nexusformat_plots_the_trajectories(tmp_path: Path) -> None:
    nexus = pytest.importorskip(
        "nexusformat.nexus",
        reason="nexusformat is not installed (pip install nexusformat): NeXus check skipped",
    )
    rows = rows_for(3, 8, 2)
    path = write_file(tmp_path / "t.h5", rows)
    root = nexus.nxload(str(path), "r")
    try:
        data = root.plottable_data
        assert data is not None and data.nxpath == "/entry/trajectories"
        assert data.nxsignal.nxname == "x" and data.nxsignal.shape == (3, 8, 2)
        t = data.nxaxes[0]
        assert t.nxname == "t" and np.array_equal(t.nxvalue, [1.0 - k / 3 for k in range(3)])
        assert np.array_equal(data.nxsignal.nxvalue[1], rows[1])
    finally:
        root.nxfile.close()


def test_silx_finds_the_default_plot(tmp_path: Path) -> None:
    nxdata = pytest.importorskip(
        "silx.io.nxdata", reason="silx is not installed (pip install silx): NeXus check skipped"
    )
    path = write_file(tmp_path / "t.h5", rows_for(3, 8, 2))
    with h5py.File(path, "r") as f:
        data = nxdata.get_default(f)  # what `silx view` plots on opening the file
        assert data is not None and data.is_valid, getattr(data, "issues", None)
        assert data.signal.name == "/entry/trajectories/x" and data.signal.shape == (3, 8, 2)
        assert data.axes_dataset_names == ["t", None, None]
        assert np.array_equal(data.axes[0][()], f["trajectories/t"][()])


# ---------------------------------------------------------------------------------------------
# benchmark (skipped by default)
# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(
    os.environ.get("SDE_WORKBENCH_BENCH") != "1",
    reason="benchmark: set SDE_WORKBENCH_BENCH=1 to write and time a 1000 x 100000 x 2 file",
)
@pytest.mark.bench
def test_bench_chunk_layout(tmp_path: Path) -> None:
    """Write 1000 rows of 100000 2-D particles, then time a time slice and a particle path."""
    n_rows, n = 1000, 100_000
    path = Path(os.environ.get("SDE_WORKBENCH_BENCH_DIR", tmp_path)) / "bench.h5"
    path.unlink(missing_ok=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 2), dtype=np.float32)
    noise = rng.standard_normal((64, n, 2), dtype=np.float32)
    start = time.perf_counter()
    w = TrajectoryWriter(path, n_samples=n, sample_shape=(2,), config_toml="", sampler="em")
    for k in range(n_rows):
        x = 0.99 * x + 0.1 * noise[k % 64]  # an OU-like path: realistic compressibility
        w.append(k, 1.0 - k / n_rows, x)
    w.close(nfe=n_rows)
    write_s = time.perf_counter() - start
    size = path.stat().st_size
    with TrajectoryFile(path) as f:
        slices = []
        for k in (0, 333, 666, 999, 500):
            t0 = time.perf_counter()
            f.row(k)
            slices.append(time.perf_counter() - t0)
        paths, neighbours = [], []
        for i in (12_345, 54_321, 98_765, 31_000, 77_777):
            t0 = time.perf_counter()
            f.particle_path(i)
            paths.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            f.particle_path(i + 1)  # same chunks: served from the chunk cache
            neighbours.append(time.perf_counter() - t0)
    path.unlink()
    print(
        f"\nchunks {w.chunks}: write {write_s:.1f} s ({n_rows / write_s:.0f} rows/s), "
        f"file {size / 2**20:.0f} MiB of {n_rows * n * 8 / 2**20:.0f} MiB raw; "
        f"time slice median {np.median(slices) * 1e3:.1f} ms; particle path median "
        f"{np.median(paths) * 1e3:.0f} ms, its neighbour {np.median(neighbours) * 1e3:.1f} ms"
    )


# ---------------------------------------------------------------------------------------------
# a file another process is writing is read, never called corrupt
# ---------------------------------------------------------------------------------------------
LIVE_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from workbench.io.trajectories import TrajectoryWriter

    # small rows: several share a chunk, so every flush re-compresses and moves a chunk,
    # which is what tears a reader's view of the file between two flushes
    w = TrajectoryWriter(sys.argv[1], n_samples=300, sample_shape=(2,), config_toml="",
                         sampler="em")
    k = 0
    while True:
        row = np.random.default_rng(k).standard_normal((300, 2)).astype(np.float32)
        w.append(k, 1.0 / (k + 1), row)
        w.flush()
        if k < 32:  # no more: a full stdout pipe, which nobody reads, would stop the writer
            print(k, flush=True)
        k += 1
    """
)


def test_inspect_reads_a_file_another_process_is_writing(tmp_path: Path) -> None:
    """A writer in one process holds the file open and keeps appending; `inspect` in others
    reads it every time. Before, about half the reads failed with 'truncated or corrupt'."""
    path = tmp_path / "live.h5"
    writer = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        for line in writer.stdout:
            if int(line) >= 20:
                break
        seen = []
        for args in [[], ["--json"]] * 2:
            done = subprocess.run(
                [sys.executable, "-m", "workbench", "inspect", str(path), *args],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert writer.poll() is None, "the writer must still be writing"
            assert done.returncode == 0, done.stderr
            assert "corrupt" not in done.stdout + done.stderr
            if args:
                summary = json.loads(done.stdout)
                assert summary["complete"] is False
                seen.append(summary["n_saved"])
        assert seen[-1] > seen[0] >= 21  # it was read while it grew
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()  # type: ignore[union-attr]
        writer.stderr.close()  # type: ignore[union-attr]


def test_read_while_written_retries_torn_reads_only(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    with TrajectoryWriter(path, n_samples=3, sample_shape=(2,), config_toml="", sampler="em") as w:
        w.append(0, 1.0, np.zeros((3, 2)))
        w.close()
    calls = []

    def torn_twice(tf: TrajectoryFile) -> int:
        calls.append(1)
        if len(calls) <= 2:
            raise FileBeingWrittenError("torn")
        return tf.n_saved

    assert read_while_written(path, torn_twice) == 1 and len(calls) == 3

    def always_torn(tf: TrajectoryFile) -> int:
        raise FileBeingWrittenError("torn")

    with pytest.raises(FileBeingWrittenError, match="being written by another process") as info:
        read_while_written(path, always_torn, attempts=3)
    assert "corrupt" not in str(info.value)

    def damaged(tf: TrajectoryFile) -> int:  # an ordinary error is not retried
        calls.append(1)
        raise WorkbenchError("damaged")

    calls.clear()
    with pytest.raises(WorkbenchError, match="damaged"):
        read_while_written(path, damaged)
    assert len(calls) == 1


def test_an_idle_damaged_file_is_still_called_corrupt(tmp_path: Path) -> None:
    """The torn-read rule needs the file to change: a file nobody writes keeps its verdict."""
    path = tmp_path / "t.h5"
    with TrajectoryWriter(
        path, n_samples=3000, sample_shape=(2,), config_toml="", sampler="em"
    ) as w:
        for k in range(8):
            w.append(k, 1.0 / (k + 1), np.random.default_rng(k).standard_normal((3000, 2)))
        w.close()
    data = bytearray(path.read_bytes())
    with h5py.File(path, "r") as f:
        offset = f["trajectories/x"].id.get_chunk_info(3).byte_offset
    data[offset : offset + 64] = b"\xff" * 64  # one compressed chunk of x garbled
    path.write_bytes(bytes(data))
    with TrajectoryFile(path) as tf, pytest.raises(WorkbenchError) as info:
        tf.row(3)
    assert not isinstance(info.value, FileBeingWrittenError)
    assert "corrupt" in str(info.value)
