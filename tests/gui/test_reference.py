"""The reference chooser: Fokker–Planck, analytic and empirical truth in the density and score
views, solved in a worker (progress, cancel, cache), in the real main window."""

from __future__ import annotations

import numpy as np

from tests.gui.conftest import custom, settle
from workbench.core.reference import (
    AnalyticReference,
    EmpiricalReference,
    FPKReference,
    reference_grid,
)
from workbench.gui.main_window import MainWindow
from workbench.gui.plots.density import BINS_2D

GRID = 48  # small grids: a 2-D solve takes well under a second


def choose(qtbot, window: MainWindow, kind: str, timeout: int = 20000):
    """Pick ``kind`` in the chooser and wait for the reference to arrive."""
    combo = window.reference_combo
    with qtbot.waitSignal(
        window.references.referenceChanged,
        timeout=timeout,
        check_params_cb=lambda ref: ref is not None,
    ):
        combo.setCurrentIndex(combo.findData(kind))
    return window.references.reference


def show(window: MainWindow, name: str):
    tab = window.tabs_by_name[name]
    window.tab_widget.setCurrentWidget(tab)
    return tab


def score_drawn(qtbot, window: MainWindow):
    tab = show(window, "score")
    qtbot.waitUntil(tab.is_idle, timeout=20000)
    with qtbot.waitSignal(tab.fieldUpdated, timeout=20000):
        tab.request()
    return tab


def test_fpk_matches_the_analytic_truth_in_the_views(qtbot, window: MainWindow) -> None:
    window.references.grid_n = GRID
    window.set_config(window.config.with_overrides({"model.kind": "analytic"}))
    settle(window)  # the state is built in a worker
    assert window.references.reference.kind == "analytic"  # the default for GMM data
    ref = choose(qtbot, window, "fpk")
    assert isinstance(ref, FPKReference) and ref.grid_n == GRID
    assert not window.reference_progress.isVisible()  # the solve is over
    analytic = AnalyticReference(window.state)

    # the FPK p_t against the exact mixture: L1 on the views' grid, a discretisation error
    for t in (0.1, 0.5, 0.9):
        h = 3.5
        fpk = reference_grid(ref, t, h, 64)
        exact = reference_grid(analytic, t, h, 64)
        l1 = np.abs(fpk - exact).sum() * (2 * h / 64) ** 2
        assert l1 < 0.06, (t, l1)

    tab = show(window, "density")
    window.time_slider.setValue(500)
    view = tab.view
    assert view.truth is ref and view.exact.shape == (BINS_2D, BINS_2D)
    text = tab.readout.text()
    assert "forward vs FPK: L1" in text and "Fokker–Planck on a 48×48 grid" in text
    d, noise = view.distances["forward"]
    # 20000 particles against the FPK p_t: sampling noise plus the grid's own error
    assert d < noise + 0.06, (d, noise)
    assert view.plots["exact"].titleLabel.text == "Fokker–Planck p_t"

    # the score tab: the analytic model against the FPK score, masked below the floor
    window.set_model(window._build_model())
    tab = score_drawn(qtbot, window)
    r = tab.view.result
    assert r["reference"] is ref and r["true"] is not None
    assert "Fokker–Planck" in tab.readout.text()
    assert r["mean_error"] < 0.15, r["mean_error"]  # s(t)|Δ|: FD on a 48² grid


def test_solves_are_cached_per_data_and_sde_and_dropped_on_change(
    qtbot, window: MainWindow
) -> None:
    window.references.grid_n = GRID
    first = choose(qtbot, window, "fpk")
    assert window.references.solves == 1
    analytic = choose(qtbot, window, "analytic")
    assert analytic.kind == "analytic"
    # back to FPK: the cached solve, no new thread
    combo = window.reference_combo
    with qtbot.waitSignal(window.references.referenceChanged, timeout=2000) as blocker:
        combo.setCurrentIndex(combo.findData("fpk"))
    assert blocker.args[0] is first and window.references.solves == 1
    # training settings do not change p_t: the same reference stays
    window.set_config(window.config.with_overrides({"train.steps": 321}))
    settle(window)  # the state is built in a worker
    assert window.references.reference is first
    assert window.tabs_by_name["density"].reference is first
    # another SDE does: the old one is dropped at once and a new solve starts
    with qtbot.waitSignal(
        window.references.referenceChanged,
        timeout=20000,
        check_params_cb=lambda ref: ref is not None,
    ):
        window.set_config(window.config.with_overrides({"sde.beta_max": 10.0}))
        settle(window)  # the state is built in a worker
        assert window.tabs_by_name["density"].reference is None
    assert window.references.solves == 2
    assert window.references.reference is not first


def test_a_solve_can_be_cancelled_and_the_window_keeps_working(qtbot, window: MainWindow) -> None:
    window.references.grid_n = 200  # slow enough (seconds) to cancel midway
    combo = window.reference_combo
    with qtbot.waitSignal(window.references.progress, timeout=20000):
        combo.setCurrentIndex(combo.findData("fpk"))
    assert window.references.is_busy() and window.reference_cancel.isVisibleTo(window)
    window.time_slider.setValue(300)  # the GUI thread is free while it solves
    assert window.time_label.text() == "t = 0.300"
    with qtbot.waitSignal(window.references.busyChanged, timeout=20000):
        window.reference_cancel.click()
    assert not window.references.is_busy() and window.references.reference is None
    assert window.references.error is None  # a cancel is not a failure
    assert not window.reference_progress.isVisibleTo(window)


def test_custom_sde_gets_fpk_and_simulated_particles(qtbot, window: MainWindow) -> None:
    window.references.grid_n = 128
    with qtbot.waitSignal(
        window.references.referenceChanged,
        timeout=30000,
        check_params_cb=lambda ref: ref is not None,
    ):
        custom(window, **{"data.name": "gmm1d", "sde.drift": "-4*x*(x^2 - 1)", "sde.g": "1"})
    ref = window.references.reference
    assert ref.kind == "fpk" and ref.cloud is not None  # chosen by default: nothing else can
    # the analytic and empirical kinds need a linear SDE: greyed out with the reason
    model = window.reference_combo.model()
    analytic = model.item(window.reference_combo.findData("analytic"))
    assert not analytic.isEnabled() and "linear" in analytic.toolTip()

    tab = show(window, "density")
    window.time_slider.setValue(500)
    assert tab.view is not None and tab.view.truth is ref
    d, noise = tab.view.distances["forward"]
    # Euler–Maruyama particles (weak error O(dt)) against the FPK p_t on 100 bins
    assert d < 2 * noise + 0.03, (d, noise)
    assert "simulated" in tab.readout.text()
    # the double well splits the mass: p_t is bimodal around ±1 at t = 0.5
    x = np.linspace(-2, 2, 401)[:, None]
    p = ref.density(0.5, x)
    assert abs(float((p * 0.01).sum()) - 1.0) < 0.02
    assert p[np.abs(x[:, 0] - 1).argmin()] > p[np.abs(x[:, 0]).argmin()]

    tab = score_drawn(qtbot, window)
    true = tab.view.result["true"]
    assert np.isfinite(true).any()
    assert "s(t)" not in tab.readout.text().split("truth")[0]  # no s(t) for a non-linear SDE


def test_empirical_reference_for_any_data_under_a_linear_sde(qtbot, window: MainWindow) -> None:
    window.set_config(
        window.config.with_overrides({"data.name": "moons", "data.n": 500, "train.batch_size": 256})
    )
    settle(window)  # the state is built in a worker
    ref = choose(qtbot, window, "empirical")
    assert isinstance(ref, EmpiricalReference) and ref.marginal.data.shape == (500, 2)
    tab = show(window, "density")
    window.time_slider.setValue(800)
    assert "forward vs empirical: L1" in tab.readout.text()
    # at t = 0.8 the noise dominates: the 500-point mixture is close to the forward particles
    d, noise = tab.view.distances["forward"]
    assert d < noise + 0.05
    tab = score_drawn(qtbot, window)
    assert tab.view.result["true"] is not None
    assert "empirical" in tab.readout.text()


def test_unavailable_kinds_say_why(window: MainWindow) -> None:
    from workbench.core.reference import unavailable_reason

    window.set_config(window.config.with_overrides({"data.name": "digits"}))
    settle(window)  # the state is built in a worker
    assert unavailable_reason("empirical", window.state) is None
    assert "1-D and 2-D" in unavailable_reason("fpk", window.state)
    assert "Gaussian-mixture" in unavailable_reason("analytic", window.state)
