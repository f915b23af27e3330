"""The inspector's Compare view (metrics against noise floors, in a worker thread), the exact
density contours over the marginal histogram, the path subset, and more bad files."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from workbench.config import default_config, parse_config, to_toml
from workbench.core.wording import floor_verdict
from workbench.gui.inspector import FileView, InspectorWindow, density_at
from workbench.gui.inspector.paths import PATH_PARTICLES
from workbench.io.trajectories import TrajectoryFile, TrajectoryWriter
from workbench.jobs.sample import load_model, sample_to_file

CONFIG = """
[data]
name = "8gaussians"
n = 2000
[model]
kind = "analytic"
[sample]
n = 1000
steps = 100
record_every = 10
"""
SW = "sliced Wasserstein"


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real file sampled from the analytic 8gaussians model (n = 1000, 100 steps)."""
    config, model, dataset = load_model(parse_config(CONFIG, source="test"))
    out = tmp_path_factory.mktemp("compare") / "good.h5"
    sample_to_file(config, model, out, device="cpu", dataset=dataset)
    return out


@pytest.fixture(scope="module")
def shifted(good: Path) -> Path:
    """The same samples moved by +3 in every coordinate, written by TrajectoryWriter."""
    out = good.parent / "shifted.h5"
    with TrajectoryFile(good) as tf:
        x = tf.samples() + 3.0
        config = tf.config_text
    w = TrajectoryWriter(out, n_samples=len(x), sample_shape=(2,), config_toml=config, sampler="em")
    w.append(0, 0.0, x)
    w.close()
    return out


def compared(qtbot, view: FileView) -> dict:
    cv = view.show_view("Compare")
    qtbot.waitUntil(lambda: cv.result is not None or cv.error is not None, timeout=60_000)
    assert cv.error is None, cv.error
    qtbot.waitUntil(lambda: not cv.busy(), timeout=10_000)
    return cv.result


def test_compare_with_the_data_set(qtbot, inspector: InspectorWindow, good: Path) -> None:
    assert inspector.open(good)
    start = time.perf_counter()
    result = compared(qtbot, inspector.current())
    seconds = time.perf_counter() - start
    value, (mean, std) = result["metrics"][SW]
    print(f"good file: SW {value:.4f}, floor {mean:.4f} ± {std:.4f}; {seconds:.2f} s")
    assert result["n"] == 1000
    assert value < mean + 4 * std + 0.02  # indistinguishable from the data at n = 1000
    for name in ("MMD²", "energy distance"):
        v, (m, s) = result["metrics"][name]
        assert v < m + 6 * s + 1e-3, (name, v, m, s)
    table = inspector.current().compare_view.table
    assert table.rowCount() == 3 and table.item(0, 0).text() == SW
    # the words are the core helper's, from the z-score, in every row; not "far" for good data
    for r, (v, (m, s)) in enumerate(result["metrics"].values()):
        assert table.item(r, 3).text() == floor_verdict(v, m, s)
    assert "far above" not in table.item(0, 3).text()


def test_shifted_samples_are_far_above_the_floor(
    qtbot, inspector: InspectorWindow, shifted: Path
) -> None:
    assert inspector.open(shifted)
    result = compared(qtbot, inspector.current())
    value, (mean, std) = result["metrics"][SW]
    print(f"shifted file: SW {value:.4f}, floor {mean:.4f} ± {std:.4f}")
    assert value > mean + 20 * std and value > 1.5
    assert "far above" in inspector.current().compare_view.table.item(0, 3).text()


def test_compare_two_open_files(
    qtbot, inspector: InspectorWindow, good: Path, shifted: Path
) -> None:
    assert inspector.open(good) and inspector.open(shifted)
    first, second = inspector.views()
    assert first.compare_view.choices() == ["data set from the config", "shifted.h5"]
    assert second.compare_view.choices() == ["data set from the config", "good.h5"]
    inspector.tabs.setCurrentIndex(0)
    cv = first.compare_view
    cv.against.setCurrentIndex(1)
    result = compared(qtbot, first)
    value, floor = result["metrics"][SW]
    assert floor is not None and value > floor[0] + 20 * floor[1]
    assert "shifted.h5" in cv.label_b
    # closing the other file takes it off the list
    inspector.close_tab(1)
    assert first.compare_view.choices() == ["data set from the config"]


def test_compare_without_a_data_set_file(
    qtbot, inspector: InspectorWindow, good: Path, tmp_path: Path
) -> None:
    """A config naming a data file that is gone: a message, no exception."""
    path = tmp_path / "csv.h5"
    cfg = default_config().with_overrides(
        {"data.name": "file", "data.path": str(tmp_path / "gone.csv")}
    )
    w = TrajectoryWriter(
        path, n_samples=20, sample_shape=(2,), config_toml=to_toml(cfg), sampler="em"
    )
    w.append(0, 0.0, np.zeros((20, 2), np.float32))
    w.close()
    assert inspector.open(path)
    cv = inspector.current().show_view("Compare")
    assert cv.error is not None and "Cannot compare with the data set" in cv.error
    assert cv.message.isVisible()


def test_shutdown_waits_for_the_worker(qtbot, good: Path) -> None:
    w = InspectorWindow()
    qtbot.addWidget(w)
    w.show()
    assert w.open(good)
    cv = w.current().show_view("Compare")
    tasks = list(cv.tasks)
    assert tasks
    w.shutdown()
    assert all(not t.isRunning() for t in tasks)
    w.close()


# ------------------------------------------------------------------------------ density overlay
def test_density_contours_for_a_mixture(inspector: InspectorWindow, good: Path) -> None:
    assert inspector.open(good)
    view = inspector.current()
    sv = view.show_view("Samples")
    for row in (0, view.tf.n_saved // 2, view.tf.n_saved - 1):
        view.slider.setValue(row)
        assert len(sv.density_levels) == 2 and sv.density_levels[0] > sv.density_levels[1] > 0
        xs, _ys = sv.contours[0].getData()
        assert xs is not None and np.isfinite(xs).sum() > 20
    # at t = 0 in data units the 8 modes lie on the circle of radius ~2.83
    with TrajectoryFile(good) as tf:
        mix = density_at(tf, 0.0)
    w, mu = mix.weights.numpy(), mix.means.numpy()
    assert np.allclose(w.sum(), 1.0) and np.allclose(np.linalg.norm(mu, axis=1), 2.83, atol=0.1)


def test_no_contours_for_moons(inspector: InspectorWindow, tmp_path: Path) -> None:
    path = tmp_path / "moons.h5"
    toml = to_toml(default_config().with_overrides({"data.name": "moons"}))
    w = TrajectoryWriter(path, n_samples=200, sample_shape=(2,), config_toml=toml, sampler="em")
    rng = np.random.default_rng(0)
    for k in range(3):
        w.append(k, 1.0 - k / 2, rng.normal(size=(200, 2)).astype(np.float32))
    w.close()
    assert inspector.open(path)
    sv = inspector.current().show_view("Samples")
    assert sv.hist is not None and sv.density_levels == []
    assert sv.contours[0].getData()[0] is None or len(sv.contours[0].getData()[0]) == 0


# ------------------------------------------------------------------------------ path subset
def test_path_subset(inspector: InspectorWindow, good: Path) -> None:
    assert inspector.open(good)
    pv = inspector.current().show_view("Paths")
    assert pv.n_paths == PATH_PARTICLES and pv.first == 0
    pv.count.setValue(200)
    pv.start.setValue(900)
    assert pv.first == 900 and pv.n_paths == 100  # clipped at the last particle
    pv.count.setValue(30)
    pv.start.setValue(10)
    assert (pv.first, pv.n_paths) == (10, 30)
    assert "particles 10 to 39" in pv.plot.getPlotItem().titleLabel.text


# ------------------------------------------------------------------------------ bad files
def _banner_only(inspector: InspectorWindow, path: Path, *words: str) -> str:
    before = path.read_bytes() if os.access(path, os.R_OK) else None
    assert inspector.open(path) is False
    message = inspector.last_error
    assert message and inspector.banner.isVisible() and "\n" not in message
    for word in words:
        assert word in message, message
    if before is not None:
        assert path.read_bytes() == before  # read-only
    return message


def test_newer_format_version(inspector: InspectorWindow, good: Path, tmp_path: Path) -> None:
    path = tmp_path / "newer.h5"
    shutil.copy(good, path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = np.int64(2)
    _banner_only(inspector, path, "format version 2")


def test_wrong_number_of_dims(inspector: InspectorWindow, good: Path, tmp_path: Path) -> None:
    path = tmp_path / "dims.h5"
    shutil.copy(good, path)
    with h5py.File(path, "r+") as f:
        x = f["trajectories/x"][()]
        del f["trajectories/x"]
        f["trajectories/x"] = x.reshape(x.shape[0], -1)
    _banner_only(inspector, path, str(path))


def test_permission_denied(inspector: InspectorWindow, good: Path, tmp_path: Path) -> None:
    path = tmp_path / "locked.h5"
    shutil.copy(good, path)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: a mode-000 file stays readable")
        _banner_only(inspector, path, str(path))
        assert inspector.open(good)  # the window still works
    finally:
        path.chmod(0o644)


def test_permission_denied_simulated(
    monkeypatch, inspector: InspectorWindow, good: Path, tmp_path: Path
) -> None:
    """The same path as root: the reader's open() raises EACCES, as it would for a user."""
    import builtins

    import workbench.io.trajectories.reader as trajectories

    path = tmp_path / "locked.h5"
    shutil.copy(good, path)

    def fake_open(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(trajectories, "open", fake_open, raising=False)
    message = _banner_only(inspector, path, str(path), "Permission denied")
    assert message.startswith("cannot read")
    assert inspector.open(good)
