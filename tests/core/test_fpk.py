"""The Fokker–Planck solver against analytic marginals, the Boltzmann law and its own limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.core.analytic import AnalyticMarginal
from workbench.core.data import build_dataset
from workbench.core.fpk import (
    FPKCancelledError,
    density_from_data,
    resolution_check,
    score_on_grid,
    solve_fpk,
)
from workbench.core.sde import SDE, build_sde
from workbench.errors import WorkbenchError

TIMES = (0.0, 0.1, 0.5, 1.0)


def _model_mixture(name: str):
    ds = build_dataset(name, {})
    return ds, ds.normalizer().to_model_mixture(ds.mixture())


def _solve(name: str, kind: str, params: dict, n: int):
    _ds, mix = _model_mixture(name)
    sde = build_sde(kind, params)
    x = mix.sample(20000, torch.Generator().manual_seed(0)).numpy()

    def p0(points: np.ndarray) -> np.ndarray:
        return torch.exp(mix.log_prob(torch.as_tensor(points))).numpy()

    sol = solve_fpk(sde, p0, n, TIMES, samples=x)
    return sol, AnalyticMarginal(mix, sde)


def _exact(sol, am: AnalyticMarginal, k: int) -> np.ndarray:
    mesh = np.stack(np.meshgrid(*sol.axes, indexing="ij"), -1).reshape(-1, sol.dim)
    logp = am.log_prob(torch.as_tensor(mesh), float(sol.times[k]))
    return torch.exp(logp).numpy().reshape(sol.p[k].shape)


# VE with a small sigma_max: a uniform grid must resolve both p_0 and the spread at T.
CASES = [
    ("gmm1d", "vp", {}, 512, 1e-2),
    ("gmm1d", "ve", {"sigma_min": 0.05, "sigma_max": 2.0}, 1024, 1e-2),
    ("8gaussians", "vp", {}, 128, 2e-2),
    ("8gaussians", "ve", {"sigma_min": 0.05, "sigma_max": 1.0}, 192, 2e-2),
]


@pytest.mark.parametrize(("name", "kind", "params", "n", "tol"), CASES)
def test_matches_analytic_marginals(name, kind, params, n, tol) -> None:
    sol, am = _solve(name, kind, params, n)
    assert np.all(sol.p >= 0)
    assert np.all(np.abs(sol.mass - 1.0) < 1e-6)
    assert sol.clipped < 1e-10
    for k, t in enumerate(sol.times):
        if t == 0:
            continue
        l1 = np.abs(sol.p[k] - _exact(sol, am, k)).sum() * sol.cell_volume
        assert l1 < tol, (name, kind, t, l1)


def test_score_matches_analytic_in_the_bulk() -> None:
    sol, am = _solve("gmm1d", "vp", {}, 512)
    k = 2  # t = 0.5
    score = score_on_grid(sol, k, floor=1e-8)
    assert score.shape == (512, 1)
    x = torch.as_tensor(sol.axes[0][:, None])
    exact = am.score(x, 0.5).numpy()
    bulk = sol.p[k] > 1e-3
    assert np.all(np.isfinite(score[bulk]))
    rel = np.abs(score[bulk] - exact[bulk]).max() / np.abs(exact[bulk]).max()
    assert rel < 2e-2
    assert np.isnan(score[sol.p[k] <= 1e-8]).all()


class DoubleWell(SDE):
    """dX = -4 X (X^2 - 1) dt + g dW: U = x^4 - 2 x^2, stationary law exp(-2U/g^2)/Z."""

    def __init__(self, g: float = 1.0, T: float = 10.0) -> None:
        self.g = g
        self.T = T

    def drift(self, x, t):
        return -4.0 * x * (x * x - 1.0)

    def diffusion(self, t):
        return torch.full_like(torch.as_tensor(t, dtype=torch.float64), self.g)

    def prior_sample(self, shape, generator=None, **kw):
        return torch.randn(shape, generator=generator)

    def prior_logp(self, z):
        return -0.5 * z.pow(2).sum(-1)


def test_double_well_reaches_boltzmann() -> None:
    sde = DoubleWell()
    # symmetric start: the slow inter-well exchange (Kramers time ~4) is not needed
    samples = np.random.default_rng(0).normal(0.0, 0.5, size=(4000, 1))
    samples = np.concatenate([samples, -samples])
    sol = solve_fpk(sde, samples, 200, [0.0, 10.0], bounds=[(-2.2, 2.2)], max_dt=0.01)
    x = sol.axes[0]
    u = x**4 - 2 * x**2
    boltz = np.exp(-2 * u / sde.g**2)
    boltz /= boltz.sum() * sol.cell_volume
    l1 = np.abs(sol.p[-1] - boltz).sum() * sol.cell_volume
    assert l1 < 1e-2, l1
    assert abs(sol.mass[-1] - 1) < 1e-6
    assert np.all(sol.p >= 0)


def test_grid_sized_by_simulation_for_nonlinear_sde() -> None:
    samples = np.random.default_rng(1).normal(0.0, 0.3, size=(2000, 1))
    sol = solve_fpk(DoubleWell(T=1.0), samples, 128, [0.5])
    assert sol.axes[0][0] < -1.2 and sol.axes[0][-1] > 1.2


def test_too_large_grid_refused_with_size() -> None:
    sde = build_sde("vp", {})
    with pytest.raises(WorkbenchError, match=r"20000\^2 = 4e\+08 cells .* GiB"):
        solve_fpk(sde, lambda p: np.ones(len(p)), 20000, [0.0, 1.0], bounds=[(-1, 1)] * 2)


def test_cancel_raises_and_progress_reaches_one() -> None:
    sde = build_sde("vp", {})
    seen: list[float] = []
    p0 = lambda p: np.exp(-0.5 * (p**2).sum(-1))  # noqa: E731
    solve_fpk(sde, p0, 64, [0.0, 0.2], bounds=[(-6, 6)], progress=seen.append)
    assert seen and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)
    with pytest.raises(FPKCancelledError, match="cancelled"):
        solve_fpk(sde, p0, 64, [1.0], bounds=[(-6, 6)], cancel=lambda: True)


def test_density_from_data_kde_and_exact() -> None:
    ds, _mix = _model_mixture("8gaussians")
    axes = [np.linspace(-3, 3, 61)] * 2
    exact = density_from_data(ds, ds.normalizer(), axes)
    dx = 0.1
    assert exact.shape == (61, 61)
    assert abs(exact.sum() * dx * dx - 1) < 2e-2
    moons = build_dataset("moons", {})
    kde = density_from_data(moons, moons.normalizer(), axes)
    assert np.all(kde >= 0) and abs(kde.sum() * dx * dx - 1) < 5e-2
    assert math.isfinite(float(kde.max()))


def test_custom_double_well_reaches_boltzmann_from_an_asymmetric_start() -> None:
    # f = -U', U = x^4 - 2 x^2, g = sqrt(2): stationary law exp(-2U/g^2)/Z = exp(-U)/Z. The
    # start puts ~90% of the mass in the right well, so the slow exchange between the wells
    # (Kramers rate ~0.33 each way, relaxation ~exp(-0.66 t)) must happen: by t = 12 the
    # imbalance left is ~3e-4.
    sde = build_sde("custom", {"drift": "-4*x*(x^2 - 1)", "g": "sqrt(2)", "T": 12.0})

    def p0(points: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * ((points[:, 0] - 0.5) / 0.3) ** 2)

    sol = solve_fpk(sde, p0, 160, [0.0, 12.0], bounds=[(-2.4, 2.4)], max_dt=0.02)
    x = sol.axes[0]
    boltz = np.exp(-(x**4 - 2 * x**2))
    boltz /= boltz.sum() * sol.cell_volume
    right = sol.p[0][x > 0].sum() * sol.cell_volume
    assert right > 0.9  # the start is far from the stationary 50/50
    l1 = np.abs(sol.p[-1] - boltz).sum() * sol.cell_volume
    assert l1 < 1e-2, l1
    assert abs(sol.mass[-1] - 1) < 1e-6


def test_custom_sde_in_2d_uses_its_drift_per_coordinate() -> None:
    # independent coordinates: a double well in x1 and an OU pull to 0.5 in x2 (g = 1). The
    # symmetric start leaves the wells equally filled and x1 relaxes within them at rate ~8:
    # by t = 3 its law is exp(-2 U(x1))/Z. x2 is OU from N(0, 1/4): N(0.5 (1 - e^-3),
    # 1/2 - 1/4 e^-6) exactly.
    sde = build_sde("custom", {"drift": "-4*x1*(x1^2 - 1); -(x2 - 0.5)", "g": "1", "T": 3.0})

    def p0(points: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * ((points / 0.5) ** 2).sum(-1))

    sol = solve_fpk(sde, p0, 64, [3.0], bounds=[(-2.0, 2.0), (-2.5, 3.5)], max_dt=0.02)
    x1, x2 = np.meshgrid(*sol.axes, indexing="ij")
    mean, var = 0.5 * (1 - math.exp(-3)), 0.5 - 0.25 * math.exp(-6)
    want = np.exp(-2 * (x1**4 - 2 * x1**2)) * np.exp(-0.5 * (x2 - mean) ** 2 / var)
    want /= want.sum() * sol.cell_volume
    l1 = np.abs(sol.p[0] - want).sum() * sol.cell_volume
    # the grid's error: 9.5e-3 measured with 64 cells per axis, 4.5e-3 with 96
    assert l1 < 1.5e-2, l1


def test_resolution_check_names_the_under_resolved_times_for_ve() -> None:
    sde = build_sde("ve", {"sigma_min": 0.01, "sigma_max": 50.0})
    # a grid wide enough for p_T (half-width ~300) has cells of ~2.3 with 256 cells: p_t with
    # features 0.15 wide is resolved only once sigma(t) has grown past ~2 cells
    first, warning = resolution_check(sde, 0.15, [600 / 256], [0.0, 0.25, 0.5, 0.75, 1.0])
    assert warning is not None and "t = 0, 0.25, 0.5" in warning and "t >= 0.75" in warning
    assert first == 0.75
    first, warning = resolution_check(sde, 0.15, [0.05], [0.0, 0.5, 1.0])
    assert (first, warning) == (0.0, None)
    # the solver puts the same line in its warnings
    sol = solve_fpk(
        build_sde("ve", {"sigma_min": 0.01, "sigma_max": 5.0}),
        lambda p: np.exp(-0.5 * (p[:, 0] / 0.15) ** 2),
        64,
        [0.0, 1.0],
        bounds=[(-30.0, 30.0)],
        width0=0.15,
    )
    assert len(sol.warnings) == 1 and "t = 0:" in sol.warnings[0]


# a(t) = -20 t (1 - t) vanishes at t = 0 and t = 1 and nowhere between: the drift must be taken
# over the whole interval, not judged from f at the first and last times (which read "no drift").
# Both SDEs have the same law, the linear one's in closed form: from N(mu, v), p_t is
# N(m(t) mu, m(t)^2 v + s(t)^2), with m(0.5) = exp(-5/3) ~ 0.19.
VANISHING_AT_ENDS = [
    ("linear", {"a": "-20*t*(1-t)", "g": "1"}),
    ("custom", {"drift": "-20*t*(1-t)*x", "g": "1"}),
]


@pytest.mark.parametrize(("kind", "params"), VANISHING_AT_ENDS)
def test_drift_vanishing_at_both_ends_is_still_applied(kind, params) -> None:
    sde = build_sde(kind, params)
    assert not sde.drift_free
    law = build_sde("linear", {"a": "-20*t*(1-t)", "g": "1"})
    mu, v = 1.0, 0.3**2

    def p0(points: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * (points[:, 0] - mu) ** 2 / v)

    sol = solve_fpk(sde, p0, 512, [0.5, 1.0], bounds=[(-4.0, 4.0)])
    x = sol.axes[0]
    for k, t in enumerate(sol.times):
        m, s = (float(c) for c in law.marginal_coeffs(torch.tensor(t, dtype=torch.float64)))
        var = m * m * v + s * s
        exact = np.exp(-0.5 * (x - m * mu) ** 2 / var) / math.sqrt(2 * math.pi * var)
        l1 = np.abs(sol.p[k] - exact).sum() * sol.cell_volume
        assert l1 < 1e-2, (kind, t, l1)  # 1.27 at t = 0.5 when the drift was skipped


def test_only_exactly_drift_free_sdes_declare_it() -> None:
    assert build_sde("ve", {}).drift_free
    assert build_sde("linear", {"a": "0", "g": "1"}).drift_free
    assert build_sde("linear", {"a": "0*t", "g": "1"}).drift_free is False  # in t: not judged
    assert not build_sde("linear", {"a": "-1e-12", "g": "1"}).drift_free
    assert not build_sde("vp", {}).drift_free
    assert not build_sde("custom", {"drift": "0", "g": "1"}).drift_free
