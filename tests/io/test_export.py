"""Sample export: every format round-trips, writes are atomic, and bad requests are refused."""

import csv
import struct
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from workbench.core.data import Normalizer
from workbench.errors import WorkbenchError
from workbench.io import export
from workbench.io.export import FORMATS, export_samples, format_for, png_bytes, run_export
from workbench.io.trajectories import TrajectoryFile, TrajectoryWriter

NORM = Normalizer.standardise([1.0, -2.0], [3.0, 0.5], (2,))


def make_file(
    path: Path,
    *,
    n: int = 30,
    sample_shape: tuple[int, ...] = (2,),
    normalizer: Normalizer | None = NORM,
    rows: int = 4,
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    w = TrajectoryWriter(
        path,
        n_samples=n,
        sample_shape=sample_shape,
        config_toml="",
        sampler="em",
        normalizer=normalizer,
    )
    for k in range(rows):
        w.append(5 * k, 1.0 - 0.25 * k, rng.standard_normal((n, *sample_shape)))
    w.close(rng.standard_normal((n, *sample_shape)) * 10, nfe=rows)
    return path


@pytest.fixture
def traj(tmp_path: Path) -> Path:
    return make_file(tmp_path / "traj.h5")


def read_back(path: Path, kind: str) -> np.ndarray:
    if kind == "npy":
        return np.load(path)
    if kind == "npz":
        with np.load(path) as z:
            return z["samples"]
    if kind == "csv":
        with open(path, newline="") as fh:
            lines = list(csv.reader(fh))
        assert lines[0] == [f"x{i + 1}" for i in range(len(lines[0]))]
        return np.array(lines[1:], dtype=np.float64).astype(np.float32)
    with h5py.File(path, "r") as f:
        return f["samples"][()]


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["npy", "npz", "csv", "h5"])
def test_final_samples_round_trip(traj: Path, tmp_path: Path, kind: str) -> None:
    out = export_samples(traj, tmp_path / f"out.{kind}")
    with TrajectoryFile(traj) as f:
        expected = f.samples()
    got = read_back(out, kind)
    assert got.dtype == np.float32 and np.array_equal(got, expected)


@pytest.mark.parametrize("kind", ["npy", "npz", "csv", "h5"])
@pytest.mark.parametrize("denormalise", [True, False])
def test_a_row_by_step_round_trips(
    traj: Path, tmp_path: Path, kind: str, denormalise: bool
) -> None:
    out = export_samples(traj, tmp_path / f"out.{kind}", step=10, n=12, denormalise=denormalise)
    with TrajectoryFile(traj) as f:
        expected = f.row(2, denormalise=denormalise)[:12]
    assert np.array_equal(read_back(out, kind), expected)


def test_time_picks_the_nearest_row_and_model_units_apply_to_samples(
    traj: Path, tmp_path: Path
) -> None:
    out = export_samples(traj, tmp_path / "t.npy", time=0.3)
    with TrajectoryFile(traj) as f:
        assert np.array_equal(np.load(out), f.row(3, denormalise=True))  # t = 0.25
        samples = f.samples()
    model = np.load(export_samples(traj, tmp_path / "m.npy", denormalise=False))
    assert np.allclose(model, (samples - [1.0, -2.0]) / [3.0, 0.5], rtol=1e-6)


def test_h5_export_records_where_the_samples_came_from(traj: Path, tmp_path: Path) -> None:
    out = export_samples(traj, tmp_path / "o.hdf5", step=15)
    with h5py.File(out, "r") as f:
        a = f.attrs
        assert a["format"] == "sde-workbench/samples" and a["units"] == "data"
        assert a["step"] == 15 and a["t"] == 0.25 and a["selection"] == "trajectory row"
        assert a["source"] == str(traj)


def test_images_keep_their_shape(tmp_path: Path) -> None:
    shape = (1, 3, 4)
    path = make_file(tmp_path / "img.h5", n=7, sample_shape=shape, normalizer=None)
    with TrajectoryFile(path) as f:
        expected = f.samples().reshape(7, *shape)
    for kind in ("npy", "npz", "h5"):
        got = read_back(export_samples(path, tmp_path / f"o.{kind}"), kind)
        assert got.shape == (7, *shape) and np.array_equal(got, expected)
    flat = read_back(export_samples(path, tmp_path / "o.csv"), "csv")
    assert flat.shape == (7, 12) and np.array_equal(flat, expected.reshape(7, 12))


def test_large_exports_go_in_blocks_with_progress(
    traj: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "_BLOCK_BYTES", 7 * 2 * 4)  # 7 samples per block
    seen: list[float] = []
    for kind in ("npy", "npz", "csv", "h5"):
        seen.clear()
        out = export_samples(traj, tmp_path / f"b.{kind}", progress=seen.append)
        assert seen == [7 / 30, 14 / 30, 21 / 30, 28 / 30, 1.0]
        with TrajectoryFile(traj) as f:
            assert np.array_equal(read_back(out, kind), f.samples())


def test_an_open_trajectory_file_can_be_passed(traj: Path, tmp_path: Path) -> None:
    with TrajectoryFile(traj) as f:
        export_samples(f, tmp_path / "o.npy")
        assert f.n_saved == 4  # still open: the caller's file is not closed
    assert np.load(tmp_path / "o.npy").shape == (30, 2)


# ---------------------------------------------------------------------------------------------
# png
# ---------------------------------------------------------------------------------------------
def decode_png(data: bytes) -> np.ndarray:
    """A minimal decoder for what png_bytes writes: 8-bit, filter 0, CRCs checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body)
        if tag == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None and tag == b"IEND"
    w, h, depth, colour = header[:4]
    channels = {0: 1, 2: 3, 6: 4}[colour]
    assert depth == 8
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * channels)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, channels)


def test_png_bytes_encodes_grey_and_rgb() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(decode_png(png_bytes(grey))[:, :, 0], grey)
    rgb = np.random.default_rng(0).integers(0, 256, (5, 2, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(png_bytes(rgb)), rgb)


def test_png_grid_of_images(tmp_path: Path) -> None:
    norm = Normalizer.minmax(0.0, 16.0, (1, 3, 4))
    path = make_file(tmp_path / "d.h5", n=100, sample_shape=(1, 3, 4), normalizer=norm)
    pixels = decode_png(export_samples(path, tmp_path / "g.png").read_bytes())
    # 64 images by default: an 8 x 8 grid of 3 x 4 tiles with 2-pixel gaps
    assert pixels.shape == (8 * 5 + 2, 8 * 6 + 2, 1)
    with TrajectoryFile(path) as f:
        first = f.samples()[0].reshape(3, 4)
    # minmax data: [0, 16] is black to white
    expected = np.rint(np.clip(first / 16.0, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(pixels[2:5, 2:6, 0], expected)
    rgb_path = make_file(tmp_path / "c.h5", n=5, sample_shape=(3, 2, 2), normalizer=None)
    rgb = decode_png(export_samples(rgb_path, tmp_path / "c.png", n=5).read_bytes())
    assert rgb.shape == (2 * 4 + 2, 3 * 4 + 2, 3)  # 5 images: 2 rows of 3 columns


def test_png_refuses_vectors_and_too_many_images(traj: Path, tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match=r"png export needs image samples .* npy, npz"):
        export_samples(traj, tmp_path / "o.png")
    path = make_file(tmp_path / "img.h5", n=1100, sample_shape=(1, 2, 2), normalizer=None)
    with pytest.raises(WorkbenchError, match=r"n = 1100 is out of range: choose 1 to 1024"):
        export_samples(path, tmp_path / "o.png", n=1100)
    assert not (tmp_path / "o.png").exists()


# ---------------------------------------------------------------------------------------------
# refusals and atomicity
# ---------------------------------------------------------------------------------------------
def test_formats_come_from_the_extension_or_the_argument(tmp_path: Path) -> None:
    assert [format_for(f"a.{k}") for k in FORMATS] == list(FORMATS)
    assert format_for("a.HDF5") == "h5" and format_for("a.dat", "CSV") == "csv"
    with pytest.raises(WorkbenchError, match=r"unknown export format 'tiff'; .* npy, npz, csv"):
        format_for("a.npy", "tiff")
    with pytest.raises(WorkbenchError, match=r"cannot tell the export format from 'a.txt'"):
        format_for("a.txt")


def test_bad_selections_name_the_valid_range(traj: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.npy"
    with pytest.raises(WorkbenchError, match=r"step 99 is out of range: .* steps 0 to 15"):
        export_samples(traj, out, step=99)
    with pytest.raises(WorkbenchError, match=r"step 7 was not recorded .* 5 and 10"):
        export_samples(traj, out, step=7)
    with pytest.raises(WorkbenchError, match=r"time 2 is out of range: .* times 0.25 to 1"):
        export_samples(traj, out, time=2.0)
    with pytest.raises(WorkbenchError, match=r"n = 31 is out of range: choose 1 to 30"):
        export_samples(traj, out, n=31)
    with pytest.raises(WorkbenchError, match=r"not both"):
        export_samples(traj, out, step=5, time=0.5)
    with pytest.raises(WorkbenchError, match=r"no such file"):
        export_samples(tmp_path / "missing.h5", out)
    assert not out.exists()


def test_existing_files_are_kept_without_force(traj: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    out.write_text("precious\n")
    with pytest.raises(WorkbenchError, match=r"already exists; use --force"):
        export_samples(traj, out)
    assert out.read_text() == "precious\n"
    export_samples(traj, out, force=True)
    assert read_back(out, "csv").shape == (30, 2)
    with pytest.raises(WorkbenchError, match=r"is the trajectory file being exported from"):
        export_samples(traj, traj, fmt="h5", force=True)
    with TrajectoryFile(traj) as f:
        assert f.complete


@pytest.mark.parametrize("kind", ["npy", "npz", "csv", "h5", "png"])
def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    shape = (1, 2, 2) if kind == "png" else (2,)
    traj = make_file(tmp_path / "traj.h5", sample_shape=shape, normalizer=None)
    out = tmp_path / f"o.{kind}"
    out.write_bytes(b"old contents")
    monkeypatch.setattr(export, "_BLOCK_BYTES", 4 * 4 * 4)
    samples = TrajectoryFile.samples
    calls = 0

    def failing(self, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError(28, "No space left on device")
        return samples(self, **kwargs)

    monkeypatch.setattr(TrajectoryFile, "samples", failing)
    with pytest.raises(WorkbenchError, match=r"No space left on device; the old file is unchanged"):
        export_samples(traj, out, force=True)
    assert out.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["traj.h5", out.name])


def test_an_interrupted_export_leaves_nothing(
    traj: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cancel(fraction: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_samples(traj, tmp_path / "o.npy", progress=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["traj.h5"]


def test_temporaries_left_by_killed_exports_are_cleared(traj: Path, tmp_path: Path) -> None:
    """A kill -9 mid-export leaves ``.NAME.*.tmp``; the next export to NAME removes it once it
    has sat untouched for an hour, and leaves a younger one (it may be a live export)."""
    import os
    import time

    stale = tmp_path / ".o.npy.abc123.tmp"
    live = tmp_path / ".o.npy.def456.tmp"
    other = tmp_path / ".other.npy.ghi789.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"torn")
    old = time.time() - export.STALE_TEMPORARY_S - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    export_samples(traj, tmp_path / "o.npy")
    assert not stale.exists()
    assert live.exists() and other.exists()  # too young, or another destination's


def test_exported_files_are_readable_by_others(traj: Path, tmp_path: Path) -> None:
    out = export_samples(traj, tmp_path / "o.npy")
    assert out.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600


def test_model_units_of_a_file_with_the_identity_normaliser(tmp_path: Path) -> None:
    path = make_file(tmp_path / "t.h5", normalizer=None)
    with TrajectoryFile(path) as f:
        expected = f.samples()
    got = np.load(export_samples(path, tmp_path / "o.npy", denormalise=False))
    assert np.array_equal(got, expected)


# ---------------------------------------------------------------------------------------------
# incomplete files, and saying what was exported
# ---------------------------------------------------------------------------------------------
def make_incomplete(path: Path, rows: int = 4, n: int = 30) -> Path:
    """A file whose sampler stopped after ``rows`` rows: no /samples, complete = false."""
    rng = np.random.default_rng(5)
    w = TrajectoryWriter(
        path, n_samples=n, sample_shape=(2,), config_toml="", sampler="em", normalizer=NORM
    )
    for k in range(rows):
        w.append(5 * k, 1.0 - 0.25 * k, rng.standard_normal((n, 2)))
    w.abort()
    return path


def test_an_incomplete_file_needs_an_explicit_row(tmp_path: Path) -> None:
    traj = make_incomplete(tmp_path / "stopped.h5")
    out = tmp_path / "o.npy"
    with pytest.raises(WorkbenchError) as caught:
        export_samples(traj, out)
    message = str(caught.value)
    assert "\n" not in message
    assert "is incomplete" in message and "no final samples" in message
    assert "row 3, step 15, t=0.25" in message  # where it stopped
    assert "--step K (0 to 15) or --time T" in message  # how to export a row instead
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["stopped.h5"]
    with TrajectoryFile(traj) as f:
        last, middle = f.row(3, denormalise=True), f.row(1, denormalise=True)
    result = run_export(traj, out, step=15)
    assert np.array_equal(np.load(out), last)
    assert (result.row, result.step, result.t, result.count) == (3, 15, 0.25, 30)
    assert result.describe() == f"wrote 30 samples (row 3, step 15, t=0.25) to {out}"
    result = run_export(traj, out, time=0.8, force=True)
    assert np.array_equal(np.load(out), middle) and result.row == 1
    empty = make_incomplete(tmp_path / "empty.h5", rows=0)
    with pytest.raises(WorkbenchError, match=r"stopped before writing a row"):
        export_samples(empty, tmp_path / "e.npy")


def test_every_export_says_which_samples_it_wrote(traj: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.csv"
    result = run_export(traj, out, n=12)
    assert (result.path, result.count, result.row) == (out, 12, None)
    # the final samples carry the time of the last recorded row
    assert result.describe() == f"wrote 12 samples (final samples, t=0.25) to {out}"
    result = run_export(traj, tmp_path / "r.npy", step=5, denormalise=False)
    assert result.describe() == (
        f"wrote 30 samples (row 1, step 5, t=0.75, model units) to {tmp_path / 'r.npy'}"
    )
