"""The Densities tab in the real main window: forward histograms, the exact p_t, trajectories."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.gui.conftest import settle
from workbench.config import to_toml
from workbench.core.clouds import ForwardCloud
from workbench.core.sde import SDE
from workbench.gui.main_window import MainWindow
from workbench.gui.plots.density import BINS_1D, BINS_2D, GRID_SIDE, TIMES_1D, DensityTab
from workbench.gui.state import ExperimentState
from workbench.io.trajectories import TrajectoryFile, TrajectoryWriter


def density_tab(window: MainWindow, **overrides: object) -> DensityTab:
    if overrides:
        window.set_config(window.config.with_overrides(overrides))
        settle(window)  # the state is built in a worker
    tab = window.tabs_by_name["density"]
    window.tab_widget.setCurrentWidget(tab)
    assert tab.isVisible()
    return tab


def slide(window: MainWindow, value: int) -> float:
    window.time_slider.setValue(value)
    return window.current_time()


def exact_trajectory(window: MainWindow, path: Path, n: int = 4000, rows: int = 21) -> Path:
    """A trajectory file whose rows are exact draws from p_t, written by the real writer."""
    state = window.state
    T = state.sde.T
    times = np.linspace(T, 1e-3 * T, rows)
    generator = torch.Generator().manual_seed(7)
    with TrajectoryWriter(
        path,
        n_samples=n,
        sample_shape=state.dataset.sample_shape,
        config_toml=to_toml(window.config),
        sampler="exact",
        normalizer=state.normalizer,
    ) as writer:
        for k, t in enumerate(times):
            if state.truth is not None:
                x = state.truth.sample(n, float(t), generator)
            else:  # the forward process itself, from data
                cloud = ForwardCloud(state, n=n, seed=k)
                x = torch.from_numpy(cloud.at(float(t))).float()
            writer.append(k, float(t), x.reshape(n, *state.dataset.sample_shape))
        writer.close()
    return path


# ------------------------------------------------------------------------------------ 2-D
def test_forward_histogram_follows_the_slider_and_matches_the_truth(window: MainWindow) -> None:
    tab = density_tab(window, **{"model.kind": "analytic"})
    slide(window, 50)
    first = tab.view.images["forward"].image.copy()
    assert first.shape == (BINS_2D, BINS_2D)
    slide(window, 500)
    assert not np.allclose(first, tab.view.images["forward"].image)
    assert "t = 0.500" in tab.readout.text()
    for value in (10, 400):
        slide(window, value)
        view = tab.view
        area = (2 * view.half / BINS_2D) ** 2
        mass = view.forward_density.sum() * area  # particles inside the window
        assert 0.99 <= mass <= 1.0 + 1e-12
        assert view.exact.sum() * area == pytest.approx(1.0, abs=0.01)
        d, noise = view.distances["forward"]
        # exact draws: the distance is the sampling noise's (expected value ``noise``)
        assert d < 1.3 * noise, (value, d, noise)
        assert "forward vs exact: L1" in tab.readout.text()
    # the contours of the exact p_t are drawn on both histograms
    segments = tab.view.contours["forward"][0].getData()[0]
    assert segments is not None and len(segments) > 10
    # ... but not over an empty reverse panel, where they would cross its note
    assert tab.view.no_reverse.isVisible()
    empty = tab.view.contours["reverse"][0].getData()[0]
    assert empty is None or len(empty) == 0
    # a change that leaves data and SDE alone keeps the view and its particles
    view, cloud = tab.view, tab.cloud
    window.set_config(window.config.with_overrides({"train.lr": 1e-4}))
    settle(window)  # the state is built in a worker
    assert tab.view is view and tab.cloud is cloud and view.state is window.state
    window.set_config(window.config.with_overrides({"sde.kind": "ve"}))
    settle(window)  # the state is built in a worker
    assert tab.view is not view and tab.cloud.x0 is cloud.x0  # same data: same x0
    # a hidden tab only draws when shown again
    window.tab_widget.setCurrentWidget(window.tabs_by_name["loss"])
    slide(window, 300)
    assert tab.redraw_pending
    window.tab_widget.setCurrentWidget(tab)
    assert not tab.redraw_pending and "t = 0.300" in tab.readout.text()


def test_reverse_panel_shows_the_trajectory_row(window: MainWindow, tmp_path: Path) -> None:
    tab = density_tab(window, **{"model.kind": "analytic"})
    slide(window, 200)
    assert tab.view.reverse_density is None and tab.view.no_reverse.isVisible()
    traj = TrajectoryFile(exact_trajectory(window, tmp_path / "exact.h5"))
    try:
        window.trajectory = traj
        tab.set_trajectory(traj)
        view = tab.view
        assert not view.no_reverse.isVisible()
        assert view.reverse_density.shape == (BINS_2D, BINS_2D)
        d, noise = view.distances["reverse"]
        assert d < 1.3 * noise
        assert f"row {traj.index_of_time(0.2)} of 21" in tab.readout.text()
        slide(window, 0)  # below the file's first time: its nearest row, no error
        assert view.reverse_density is not None
        # another SDE: the file's rows are draws of another p_t, so they are not shown
        window.set_config(window.config.with_overrides({"sde.beta_max": 10.0}))
        settle(window)  # the state is built in a worker
        assert tab.view.reverse_density is None and tab.view.no_reverse.isVisible()
        assert (
            "'vp' SDE; this experiment's p_t is another one"
            in tab.view.no_reverse.textItem.toPlainText()
        )
        assert "reverse" not in tab.view.distances
    finally:
        tab.set_trajectory(None)
        window.trajectory = None
        traj.close()


def test_marginals_under_the_panels_are_those_of_the_panels(
    window: MainWindow, tmp_path: Path
) -> None:
    """The row under the 2-D panels shows p_t(x1) and p_t(x2) of the forward and reverse
    histograms and of the exact p_t, in the units shown, each keeping its grid's mass."""
    tab = density_tab(window, **{"model.kind": "analytic"})
    traj = TrajectoryFile(exact_trajectory(window, tmp_path / "exact.h5"))
    try:
        window.trajectory = traj
        tab.set_trajectory(traj)
        for model_units in (False, True):
            window.units_toggle.setChecked(model_units)
            slide(window, 300)
            view = tab.view
            shown = view.marginals.shown
            assert set(shown) == {"forward", "reverse", "exact"}
            units = view.units
            low, high = units.window(view.half, 2)
            cell = (high - low) / BINS_2D
            p = units.density(view.exact, 2)
            for axis in range(2):
                x, m = shown["exact"][axis]
                np.testing.assert_allclose(m, p.sum(axis=1 - axis) * cell[1 - axis])
                assert (x[0] - cell[axis] / 2, x[-1] + cell[axis] / 2) == pytest.approx(
                    (low[axis], high[axis])
                )
                # the window holds nearly all of p_t, and a marginal keeps the grid's mass
                assert m.sum() * cell[axis] == pytest.approx(1.0, abs=0.01)
                for name in ("forward", "reverse"):
                    xh, mh = shown[name]
                    merged = cell[axis] * (BINS_2D // len(xh[1]))
                    assert mh[1].sum() * merged == pytest.approx(1.0, abs=0.02), name
                    # exact draws: the histogram's marginal follows the exact one
                    coarse = m.reshape(len(xh[1]), -1).mean(1)
                    assert np.abs(mh[1] - coarse).max() < 0.25 * coarse.max(), name
            curve = view.marginals.curves[0]["forward"]
            assert len(curve.getData()[0]) > 0
        assert "exact" in view.marginals.key.text and "reverse" in view.marginals.key.text
        # no samples: the reverse curves are empty
        tab.set_trajectory(None)
        tab.flush_redraw()
        assert "reverse" not in tab.view.marginals.shown
        assert tab.view.marginals.curves[1]["reverse"].getData()[0] is None or not len(
            tab.view.marginals.curves[1]["reverse"].getData()[0]
        )
    finally:
        tab.set_trajectory(None)
        window.trajectory = None
        traj.close()


def test_a_narrow_window_keeps_the_panels_apart(window: MainWindow, qtbot) -> None:
    """Long titles over three narrow panels are wrapped to the panels' width: no title holds
    its panel wider than the layout gives it, so the panels never overlap."""
    tab = density_tab(window, **{"model.kind": "analytic"})
    window.resize(1000, 800)
    qtbot.wait(200)
    tab.flush_redraw()
    qtbot.wait(100)
    plots = list(tab.view.plots.values())
    boxes = [plot.vb.sceneBoundingRect() for plot in plots]
    assert all(b.width() > 20 for b in boxes)
    for left, right in itertools.pairwise(boxes):
        assert left.right() <= right.left() + 1.0, (left, right)
    for plot in plots:
        title = plot.titleLabel
        assert title.item.boundingRect().width() <= plot.width() + 1.0
        assert title.minimumWidth() <= plot.width() + 1.0
    # wrapped to two lines or not, the titles share one height: the panels start level
    assert any("<br>" in plot.titleLabel.text for plot in plots)
    assert any("<br>" not in plot.titleLabel.text for plot in plots)
    assert max(b.top() for b in boxes) - min(b.top() for b in boxes) <= 1.0, boxes
    window.resize(1500, 900)
    qtbot.wait(200)
    # wide again: the title is on one line again
    assert "<br>" not in plots[0].titleLabel.text


# ------------------------------------------------------------------------------------ 1-D
def test_one_dimensional_heat_maps(window: MainWindow, tmp_path: Path) -> None:
    tab = density_tab(window, **{"data.name": "gmm1d", "model.kind": "analytic"})
    t = slide(window, 250)
    view = tab.view
    for name in ("forward", "exact"):
        heat = view.heat[name]
        assert heat.shape == (TIMES_1D, BINS_1D)
        assert np.allclose(heat.max(axis=1), 1.0)  # each column scaled to its peak
    assert all(line.value() == pytest.approx(t) for line in view.markers)
    # the forward particles' map and the exact map agree, column by column
    assert np.abs(view.heat["forward"] - view.heat["exact"]).mean() < 0.05
    d, noise = view.distances["forward"]
    assert d < 1.3 * noise
    traj = TrajectoryFile(exact_trajectory(window, tmp_path / "exact1d.h5", rows=41))
    try:
        tab.set_trajectory(traj)
        assert view.heat["reverse"].shape == (TIMES_1D, BINS_1D)
        assert np.isfinite(view.heat["reverse"]).all()
        assert "reverse vs exact" in tab.readout.text()
    finally:
        tab.set_trajectory(None)
        traj.close()


# ------------------------------------------------------------------------------------ images
def test_digit_grids(window: MainWindow, tmp_path: Path) -> None:
    tab = density_tab(window, **{"data.name": "digits", "model.kind": "unet"})
    slide(window, 0)
    side = GRID_SIDE * (8 + 2) - 2
    clean = tab.view.mosaics["forward"].copy()
    assert clean.shape == (side, side, 3) and clean.dtype == np.uint8
    slide(window, 900)
    noisy = tab.view.mosaics["forward"]
    assert not np.array_equal(clean, noisy)
    assert "reverse" not in tab.view.mosaics
    traj = TrajectoryFile(exact_trajectory(window, tmp_path / "digits.h5", n=40, rows=5))
    try:
        tab.set_trajectory(traj)
        assert tab.view.mosaics["reverse"].shape == (side, side, 3)
    finally:
        tab.set_trajectory(None)
        traj.close()


# ------------------------------------------------------------------------------------ SDEs
class CubicDrift(SDE):
    """dX = -X^3 dt + dW: non-linear, no Gaussian transition kernel (a test SDE)."""

    def drift(self, x, t):
        return -(x**3)

    def diffusion(self, t):
        return torch.ones_like(torch.as_tensor(t, dtype=torch.float64))

    def prior_sample(self, shape, generator=None, **kw):
        return torch.randn(shape, generator=generator)

    def prior_logp(self, z):
        return -0.5 * z.pow(2).sum(-1)


def test_every_sde_kind_other_data_and_export(window: MainWindow, tmp_path: Path) -> None:
    tab = density_tab(window, **{"model.kind": "analytic"})
    for kind in ("vp", "subvp", "ve", "cosine", "linear"):
        window.set_config(window.config.with_overrides({"sde.kind": kind}))
        settle(window)  # the state is built in a worker
        for value in (0, 1000):
            slide(window, value)
            assert np.isfinite(tab.view.forward_density).all(), kind
            assert np.isfinite(tab.view.exact).all(), kind
            assert tab.view.forward_density.sum() > 0, kind
            assert f"t = {window.current_time():.3f}" in tab.readout.text()
    for suffix in (".png", ".svg"):
        out = tab.export(tmp_path / f"densities{suffix}")
        assert out.exists() and out.stat().st_size > 1000

    # a non-linear SDE: a message, no crash
    base = window.state
    state = ExperimentState(base.config, base.dataset, base.normalizer, CubicDrift(), None)
    tab.set_experiment(state)
    tab.set_time(0.5)
    assert tab.view is None and tab.stack.currentWidget() is tab.message
    assert "not a linear SDE" in tab.message.text()
    assert tab.export_item() is None

    # data without an exact density
    window.set_config(
        window.config.with_overrides({"data.name": "checkerboard", "model.kind": "mlp"})
    )
    settle(window)  # the state is built in a worker
    assert tab.stack.currentWidget() is tab.layout_widget
    slide(window, 100)
    assert "exact" not in tab.view.images and tab.view.forward_density.sum() > 0
    assert "no exact density" in tab.readout.text()
