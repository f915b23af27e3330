"""A drawn data set's file: written once, never over another file unasked, and read back by
the ``file`` data set as the very values drawn."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from workbench.core.data import build_dataset
from workbench.core.drawing import Drawing
from workbench.errors import WorkbenchError
from workbench.io.drawn import free_name, write_drawn


def _drawing(dim: int) -> np.ndarray:
    d = Drawing(dim, seed=7)
    d.place((0.1, -0.2))
    d.begin_brush((-1.0, 1.0), 0.35, 30.0)
    d.brush_to((2.0, -0.5))
    d.end_stroke()
    return d.points()


@pytest.mark.parametrize("dim", [1, 2])
def test_drawn_points_round_trip_through_the_file_data_set(tmp_path: Path, dim: int) -> None:
    points = _drawing(dim)
    path = write_drawn(tmp_path / "drawn.npy", points)
    raw = np.load(path, allow_pickle=False)
    assert raw.dtype == np.float64 and raw.shape == (
        (len(points),) if dim == 1 else (len(points), 2)
    )
    data = build_dataset("file", {"path": str(path)})
    assert data.sample_shape == (dim,) and not data.is_image
    loaded = data.values.numpy()
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, points)  # every float equal, not just close
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_an_existing_file_is_kept_unless_replacing_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "drawn.npy"
    np.save(path, np.arange(3.0))
    with pytest.raises(WorkbenchError, match="already exists"):
        write_drawn(path, _drawing(2))
    np.testing.assert_array_equal(np.load(path), np.arange(3.0))
    write_drawn(path, _drawing(2), overwrite=True)
    assert np.load(path).shape == (len(_drawing(2)), 2)
    assert [p.name for p in tmp_path.iterdir()] == ["drawn.npy"]  # no temporary left


def test_free_name_skips_every_taken_name(tmp_path: Path) -> None:
    base = tmp_path / "exp-drawn.npy"
    assert free_name(base) == base
    base.write_bytes(b"")
    (tmp_path / "exp-drawn-2.npy").write_bytes(b"")
    os.symlink(tmp_path / "nowhere", tmp_path / "exp-drawn-3.npy")  # a dangling link is taken
    assert free_name(base) == tmp_path / "exp-drawn-4.npy"


@pytest.mark.parametrize(
    ("name", "points", "match"),
    [
        ("drawn.csv", np.zeros((3, 2)), "saved as .npy"),
        ("drawn.npy", np.zeros((3, 3)), r"\(n, 1\) or \(n, 2\)"),
        ("sub/", np.zeros((3, 2)), "names a folder"),
    ],
)
def test_bad_destinations_and_shapes_are_one_line_errors(
    tmp_path: Path, name: str, points: np.ndarray, match: str
) -> None:
    with pytest.raises(WorkbenchError, match=match):
        write_drawn(str(tmp_path / name) + ("/" if name.endswith("/") else ""), points)


def test_a_symlink_is_never_written_through(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.npy"
    np.save(target, np.arange(2.0))
    link = tmp_path / "drawn.npy"
    os.symlink(target, link)
    with pytest.raises(WorkbenchError, match="symbolic link"):
        write_drawn(link, _drawing(2), overwrite=True)
    np.testing.assert_array_equal(np.load(target), np.arange(2.0))
