import math

import pytest
import torch

from workbench.core.analytic import AnalyticMarginal
from workbench.core.mixture import GaussianMixture
from workbench.core.sde import build_sde

F64 = torch.float64
KINDS = ["vp", "subvp", "ve", "cosine", "linear"]


def mixture(d: int, seed: int = 0) -> GaussianMixture:
    gen = torch.Generator().manual_seed(seed)
    k = 3
    a = torch.randn(k, d, d, generator=gen, dtype=F64)
    covs = 0.3 * a @ a.transpose(-1, -2) / d + 0.05 * torch.eye(d, dtype=F64)
    means = 1.5 * torch.randn(k, d, generator=gen, dtype=F64)
    return GaussianMixture.full(means, covs, torch.tensor([0.2, 0.5, 0.3], dtype=F64))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", [1, 2, 5])
def test_score_equals_autograd_of_log_density(kind: str, d: int) -> None:
    truth = AnalyticMarginal(mixture(d, seed=d), build_sde(kind))
    gen = torch.Generator().manual_seed(1)
    x = (3 * torch.randn(64, d, generator=gen, dtype=F64)).requires_grad_(True)
    t = torch.rand(64, generator=gen, dtype=F64) * 0.999 + 0.001
    (grad,) = torch.autograd.grad(truth.log_prob(x, t).sum(), x)
    torch.testing.assert_close(truth.score(x.detach(), t), grad, rtol=1e-9, atol=1e-10)


def test_at_time_zero_it_is_the_data() -> None:
    gmm = mixture(2)
    truth = AnalyticMarginal(gmm, build_sde("vp"))
    x = torch.randn(10, 2, dtype=F64)
    torch.testing.assert_close(truth.log_prob(x, 0.0), gmm.log_prob(x))


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_marginal_is_the_law_of_noised_data(kind: str) -> None:
    sde = build_sde(kind)
    gmm = mixture(2, seed=4)
    truth = AnalyticMarginal(gmm, sde)
    n, t = 200_000, 0.3
    gen = torch.Generator().manual_seed(2)
    x0 = gmm.sample(n, gen, dtype=F64)
    xt = sde.perturb(
        x0, torch.full((n,), t, dtype=F64), torch.randn(n, 2, generator=gen, dtype=F64)
    )
    p_t = truth.mixture_at(t)
    sd = torch.sqrt(torch.diagonal(p_t.covariance()))
    assert torch.all((xt.mean(0) - p_t.mean()).abs() < 5 * sd / math.sqrt(n))
    assert torch.all((xt.std(0) - sd).abs() < 5 * sd / math.sqrt(n) * 2)
    # and its own sampler agrees
    ys = truth.sample(n, t, gen, dtype=F64)
    assert torch.all((ys.mean(0) - p_t.mean()).abs() < 5 * sd / math.sqrt(n))


def _fpk_residual_1d(kind: str, t: float) -> float:
    """Relative L1 residual of dp/dt + d(f p)/dx - g^2/2 d2p/dx2 on a grid, all by differences."""
    sde = build_sde(kind)
    gmm = GaussianMixture.isotropic([[-1.5], [0.5], [2.0]], [0.3, 0.5, 0.4], [0.3, 0.4, 0.3])
    truth = AnalyticMarginal(gmm, sde)
    m, s = (float(v) for v in sde.marginal_coeffs(torch.tensor(t, dtype=F64)))
    half = 8 * math.sqrt(m * m * 0.25 + s * s) + 2.5 * m
    x = torch.linspace(-half, half, 8001, dtype=F64)[:, None]
    h = float(x[1, 0] - x[0, 0])
    dt = 1e-5 * max(t, 0.01)
    p = lambda u: torch.exp(truth.log_prob(x, u))  # noqa: E731
    dpdt = (p(t + dt) - p(t - dt)) / (2 * dt)
    pt = p(t)
    fp = sde.drift(x, torch.tensor(t, dtype=F64))[:, 0] * pt
    g2 = float(sde.diffusion(torch.tensor(t, dtype=F64))) ** 2
    div = (fp[2:] - fp[:-2]) / (2 * h)
    lap = (pt[2:] - 2 * pt[1:-1] + pt[:-2]) / h**2
    rhs = -div + 0.5 * g2 * lap
    lhs = dpdt[1:-1]
    return float((lhs - rhs).abs().sum() / lhs.abs().sum())


@pytest.mark.parametrize("kind", ["vp", "subvp", "ve"])
@pytest.mark.parametrize("t", [0.05, 0.3, 0.7])
def test_marginal_solves_fokker_planck_1d(kind: str, t: float) -> None:
    assert _fpk_residual_1d(kind, t) < 1e-3


@pytest.mark.parametrize("kind", ["vp", "subvp", "ve"])
def test_marginal_solves_fokker_planck_2d(kind: str) -> None:
    sde = build_sde(kind)
    gmm = GaussianMixture.full(
        [[-1.0, 0.5], [1.0, -0.5]],
        [[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.4]]],
        [0.4, 0.6],
    )
    truth = AnalyticMarginal(gmm, sde)
    t = 0.2
    m, s = (float(v) for v in sde.marginal_coeffs(torch.tensor(t, dtype=F64)))
    half = 7 * math.sqrt(m * m * 0.4 + s * s) + 1.2 * m
    n = 601
    axis = torch.linspace(-half, half, n, dtype=F64)
    h = float(axis[1] - axis[0])
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    pts = torch.stack([xx, yy], -1)
    dt = 1e-5
    p = lambda u: torch.exp(truth.log_prob(pts, u))  # noqa: E731
    dpdt = ((p(t + dt) - p(t - dt)) / (2 * dt))[1:-1, 1:-1]
    pt = p(t)
    a = float(sde.drift_coeff(torch.tensor(t, dtype=F64)))
    g2 = float(sde.diffusion(torch.tensor(t, dtype=F64))) ** 2
    fx, fy = a * xx * pt, a * yy * pt
    div = (fx[2:, 1:-1] - fx[:-2, 1:-1]) / (2 * h) + (fy[1:-1, 2:] - fy[1:-1, :-2]) / (2 * h)
    lap = (pt[2:, 1:-1] + pt[:-2, 1:-1] + pt[1:-1, 2:] + pt[1:-1, :-2] - 4 * pt[1:-1, 1:-1]) / h**2
    rhs = -div + 0.5 * g2 * lap
    assert float((dpdt - rhs).abs().sum() / dpdt.abs().sum()) < 1e-3


def test_image_shaped_points_are_flattened() -> None:
    gmm = mixture(4)
    truth = AnalyticMarginal(gmm, build_sde("vp"))
    x = torch.randn(6, 1, 2, 2, dtype=F64)
    score = truth.score(x, 0.5)
    assert score.shape == x.shape
    torch.testing.assert_close(score.reshape(6, 4), truth.score(x.reshape(6, 4), 0.5))
