"""The Trajectories tab in the real main window, on real trajectory files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore

from tests.gui.conftest import settle
from workbench.config import to_toml
from workbench.gui.main_window import MainWindow
from workbench.gui.plots import trajectories
from workbench.gui.plots.trajectories import (
    DEFAULT_PATHS,
    GRID_SIDE,
    HINT,
    TIME_BANDS,
    TrajectoryTab,
    band_segments,
)
from workbench.io.trajectories import TrajectoryFile, TrajectoryWriter


def trajectory_tab(
    window: MainWindow, model_units: bool = True, **overrides: object
) -> TrajectoryTab:
    """The tab, shown; in model units (the file's own numbers) unless told otherwise."""
    if overrides:
        window.set_config(window.config.with_overrides(overrides))
        settle(window)  # the state is built in a worker
    window.units_toggle.setChecked(model_units)
    tab = window.tabs_by_name["trajectories"]
    window.tab_widget.setCurrentWidget(tab)
    assert tab.isVisible()
    return tab


def write_trajectory(
    window: MainWindow, path: Path, n: int = 600, rows: int = 26, sampler: str = "walk"
) -> Path:
    """Random walks from t = T down to ~0 in the experiment's shape, by the real writer,
    labelled as drawn by ``sampler``."""
    state = window.state
    shape = tuple(state.dataset.sample_shape)
    times = np.linspace(state.sde.T, 1e-3 * state.sde.T, rows)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    with TrajectoryWriter(
        path,
        n_samples=n,
        sample_shape=shape,
        config_toml=to_toml(window.config),
        sampler=sampler,
        normalizer=state.normalizer,
    ) as writer:
        for k, t in enumerate(times):
            writer.append(k, float(t), x)
            x = 0.9 * x + 0.2 * rng.normal(size=x.shape).astype(np.float32)
        writer.close(x, nfe=rows - 1)
    return path


def slide(window: MainWindow, value: int) -> float:
    window.time_slider.setValue(value)
    return window.current_time()


# ------------------------------------------------------------------------------------ 2-D
def test_paths_dots_subset_and_export(window: MainWindow, tmp_path: Path) -> None:
    tab = trajectory_tab(window)
    assert tab.stack.currentWidget() is tab.message and tab.message.text() == HINT
    assert not tab.play_button.isEnabled()
    path = write_trajectory(window, tmp_path / "walk.h5")
    window.open_trajectory(path)
    traj = window.trajectory
    assert tab.view is not None and tab.view.kind == "paths2d"
    assert tab.stack.currentWidget() is tab.layout_widget
    assert tab.path_count() == DEFAULT_PATHS
    assert len([i for i in tab.view.band_items if i.xData is not None and len(i.xData)]) > 1

    drawn = [i.xData for i in tab.view.band_items]
    for value in (300, 800, 0, 1000):
        t = slide(window, value)
        k = traj.index_of_time(min(max(t, traj.times.min()), traj.times.max()))
        expected = traj.row(k)[:DEFAULT_PATHS]
        assert np.allclose(tab.dot_positions(), expected)
        assert tab.shown_time() == pytest.approx(traj.times[k])
        assert f"row {k} at t = {traj.times[k]:.3f}" in tab.readout.text()
        # the slider only moves the dots: the paths are not drawn again
        assert all(i.xData is x for i, x in zip(tab.view.band_items, drawn, strict=True))
    text = tab.readout.text()
    assert all(s in text for s in ("walk.h5", "sampler walk", "nfe 25", "600 samples", "26 rows"))

    # the subset: fewer, more, and more than the file holds
    block = tab.block
    tab.subset.setValue(20)
    assert tab.path_count() == 20 and len(tab.dot_positions()) == 20
    assert tab.block is block and block.k == DEFAULT_PATHS  # a slice of what was read
    tab.subset.setValue(450)
    assert tab.path_count() == 450 and block.k == 450
    assert np.allclose(tab.dot_positions(), traj.row(traj.index_of_time(traj.times[0]))[:450])
    tab.subset.setValue(2000)
    assert tab.path_count() == 600 and len(tab.dot_positions()) == 600

    for suffix in (".png", ".svg"):
        out = tab.export(tmp_path / f"paths{suffix}")
        assert out.exists() and out.stat().st_size > 1000

    tab.set_trajectory(None)
    assert tab.view is None and tab.message.text() == HINT and tab.export_item() is None


@pytest.mark.parametrize(("sampler", "fades"), [("em", True), ("ode", False), ("walk", True)])
def test_only_a_stochastic_samplers_paths_fade_towards_the_noise(
    window: MainWindow, tmp_path: Path, sampler: str, fades: bool
) -> None:
    # a stochastic sampler's long random steps near T are drawn fainter so they do not hide
    # the structure near t = 0; a deterministic sampler's smooth paths are drawn whole (an
    # unknown sampler counts as stochastic)
    tab = trajectory_tab(window)
    window.open_trajectory(write_trajectory(window, tmp_path / f"{sampler}.h5", sampler=sampler))
    assert tab.view is not None
    alphas = [i.opts["pen"].color().alpha() for i in tab.view.band_items]
    assert len(alphas) == TIME_BANDS
    if fades:
        assert alphas[-1] < alphas[0] and alphas == sorted(alphas, reverse=True)
    else:
        assert len(set(alphas)) == 1


def test_hidden_tab_reads_when_shown(window: MainWindow, tmp_path: Path) -> None:
    tab = window.tabs_by_name["trajectories"]
    window.tab_widget.setCurrentWidget(window.tabs_by_name["loss"])
    window.open_trajectory(write_trajectory(window, tmp_path / "walk.h5", n=100, rows=6))
    assert tab.block is None  # nothing read while hidden
    slide(window, 500)
    window.tab_widget.setCurrentWidget(tab)
    assert tab.path_count() == DEFAULT_PATHS and "slider t = 0.500" in tab.readout.text()


# ------------------------------------------------------------------------------------ play
def test_play_and_stop(window: MainWindow, tmp_path: Path, qtbot) -> None:
    tab = trajectory_tab(window)
    window.open_trajectory(write_trajectory(window, tmp_path / "walk.h5", n=100, rows=41))
    top = float(tab.block.times.max())
    qtbot.mouseClick(tab.play_button, QtCore.Qt.LeftButton)
    assert tab.is_playing() and tab.play_button.text().endswith("Stop")
    assert tab.shown_time() == pytest.approx(top)
    qtbot.waitUntil(lambda: tab.shown_time() < top - 0.05, timeout=3000)
    qtbot.mouseClick(tab.play_button, QtCore.Qt.LeftButton)
    assert not tab.is_playing() and tab.play_button.text().endswith("Play")
    stopped = tab.shown_time()
    assert 0 < stopped < top

    # connected (as a main window's slider is): requests go out, the slider's t comes back
    requested: list[float] = []
    T = window.state.sde.T

    def follow(t: float) -> None:
        requested.append(t)
        window.time_slider.setValue(round(1000 * t / T))

    tab.timeRequested.connect(follow)
    try:
        tab.play_seconds = 0.3
        qtbot.mouseClick(tab.play_button, QtCore.Qt.LeftButton)
        qtbot.waitUntil(lambda: not tab.is_playing(), timeout=5000)  # it ran to t = 0
    finally:
        tab.timeRequested.disconnect(follow)
    assert requested[0] == pytest.approx(top) and requested[-1] == 0.0
    assert np.all(np.diff(requested) < 0)
    assert window.time_slider.value() == 0
    assert tab.shown_time() == pytest.approx(float(tab.block.times.min()))
    assert tab.play_button.text().endswith("Play")


# ------------------------------------------------------------------------------------ other data
def test_one_dimensional_paths(window: MainWindow, tmp_path: Path) -> None:
    tab = trajectory_tab(window, **{"data.name": "gmm1d"})
    window.open_trajectory(write_trajectory(window, tmp_path / "line.h5", n=300, rows=21))
    traj = window.trajectory
    assert tab.view.kind == "paths1d" and tab.path_count() == DEFAULT_PATHS
    t = slide(window, 400)
    k = traj.index_of_time(t)
    dots = tab.dot_positions()
    assert np.allclose(dots[:, 0], traj.times[k]) and np.allclose(
        dots[:, 1], traj.row(k)[:DEFAULT_PATHS, 0]
    )
    assert tab.view.marker.value() == pytest.approx(traj.times[k])
    # the lines run along t: every segment joins two neighbouring rows
    xs = np.concatenate([i.xData for i in tab.view.band_items if i.xData is not None])
    assert set(np.round(xs, 9)) <= set(np.round(traj.times, 9))


def test_image_grid(window: MainWindow, tmp_path: Path, monkeypatch) -> None:
    tab = trajectory_tab(window, **{"data.name": "digits", "model.kind": "unet"})
    window.open_trajectory(write_trajectory(window, tmp_path / "digits.h5", n=50, rows=5))
    assert tab.view.kind == "images" and not tab.subset.isEnabled()
    slide(window, 1000)
    first = tab.view.mosaic.copy()
    side = GRID_SIDE * (8 + 2) - 2
    assert first.shape == (side, side, 3) and first.dtype == np.uint8
    slide(window, 0)
    before = tab.view.mosaic.copy()
    assert not np.array_equal(first, before)
    out = tab.export(tmp_path / "grid.png")
    assert out.exists()
    # too big to read whole: the grid's rows are read as they are shown, with the same pictures
    monkeypatch.setattr(trajectories, "MAX_BLOCK_BYTES", 0)
    tab.set_trajectory(window.trajectory)
    assert not tab.block.whole and np.array_equal(tab.view.mosaic, before)
    slide(window, 1000)
    assert np.array_equal(tab.view.mosaic, first)


def test_vectors_of_more_than_two_coordinates(window: MainWindow, tmp_path: Path) -> None:
    tab = trajectory_tab(window)
    path = tmp_path / "three.h5"
    rng = np.random.default_rng(0)
    with TrajectoryWriter(
        path, n_samples=80, sample_shape=(3,), config_toml=to_toml(window.config), sampler="em"
    ) as writer:
        for k, t in enumerate((1.0, 0.5, 0.0)):
            writer.append(k, t, rng.normal(size=(80, 3)))
    traj = TrajectoryFile(path)  # aborted: no /samples, complete = false
    try:
        tab.set_trajectory(traj)
        assert tab.view.kind == "paths2d" and tab.path_count() == DEFAULT_PATHS
        assert tab.block.paths.shape == (3, DEFAULT_PATHS, 2) and tab.block.final.shape == (80, 2)
        tab.set_time(0.5)
        assert np.allclose(tab.dot_positions(), traj.row(1)[:DEFAULT_PATHS, :2])
        text = tab.readout.text()
        assert "three.h5 (incomplete)" in text and "the first 2 of 3 coordinates" in text
    finally:
        tab.set_trajectory(None)
        traj.close()


# ------------------------------------------------------------------------------------ bad files
def test_files_without_rows_or_unreadable(window: MainWindow, tmp_path: Path) -> None:
    tab = trajectory_tab(window)
    path = tmp_path / "aborted.h5"
    writer = TrajectoryWriter(
        path,
        n_samples=10,
        sample_shape=(2,),
        config_toml=to_toml(window.config),
        sampler="em",
    )
    writer.abort()  # killed before its first row
    window.open_trajectory(path)
    assert window.trajectory.n_saved == 0
    assert tab.view is None and tab.stack.currentWidget() is tab.message
    assert "no trajectory rows" in tab.message.text() and "\n" not in tab.problem
    assert not tab.play_button.isEnabled()
    slide(window, 300)  # no exception, still the reason
    assert "no trajectory rows" in tab.message.text()

    closed = TrajectoryFile(write_trajectory(window, tmp_path / "walk.h5", n=20, rows=3))
    closed.close()
    tab.set_trajectory(closed)
    assert tab.view is None and "closed" in tab.message.text()


def test_band_segments() -> None:
    times = np.array([1.0, 0.75, 0.5, 0.25, 0.0])
    paths = np.arange(5 * 3 * 2, dtype=np.float64).reshape(5, 3, 2)
    paths[2, 1, 0] = np.nan  # particle 1 at row 2: its two segments there are left out
    bands = band_segments(paths, times, 0.0, 1.0, bands=4)
    assert len(bands) == 4
    assert sum(len(x) for x, _ in bands) == 2 * (4 * 3 - 2)
    # the segment from row 0 to row 1 (middle time 0.875) is in the last band
    x, y = bands[3]
    assert np.array_equal(x[:2], [paths[0, 0, 0], paths[1, 0, 0]])
    assert np.array_equal(y[:2], [paths[0, 0, 1], paths[1, 0, 1]])
    t_bands = band_segments(
        paths[..., :1], times, 0.0, 1.0, bands=TIME_BANDS, abscissa_is_time=True
    )
    assert np.array_equal(np.unique(np.concatenate([x for x, _ in t_bands])), np.sort(times))
