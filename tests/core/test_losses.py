"""Score-matching losses: closed forms, the identities that make them score matching, errors.

Statistical checks compare a sample mean with its target within 5 standard errors estimated
from the per-sample values (fixed seeds, so each run is the same run).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from workbench.core.analytic import AnalyticMarginal
from workbench.core.losses import (
    ESM_MAX_DIM,
    LOSSES,
    WEIGHTINGS,
    DenoisingScoreMatching,
    Loss,
    build_loss,
    simulate_forward,
)
from workbench.core.mixture import GaussianMixture
from workbench.core.sde import SDE, LinearSDE, build_sde
from workbench.errors import ConfigError

F64 = torch.float64
KINDS = ["dsm", "ssm", "ssm_vr", "esm", "fm"]
B0, B1 = 0.1, 20.0  # the VP defaults, used for hand-computed coefficients


# --------------------------------------------------------------------------------------------
# score models with the ScoreModel interface: model(x, t) = score, sigma_score = s(t) * score


class LinearScore(nn.Module):
    """score(x, t) = -x A + b + c t, whose divergence is -tr(A) everywhere."""

    def __init__(self, sde: LinearSDE, d: int, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.sde = sde
        a = torch.randn(d, d, generator=gen, dtype=F64) / math.sqrt(d)
        self.A = nn.Parameter(torch.eye(d, dtype=F64) + 0.3 * a)
        self.b = nn.Parameter(0.2 * torch.randn(d, generator=gen, dtype=F64))
        self.c = nn.Parameter(0.2 * torch.randn(d, generator=gen, dtype=F64))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        return (-flat @ self.A + self.b + t[:, None] * self.c).reshape(x.shape)

    score = forward

    def sigma_score(self, x: Tensor, t: Tensor) -> Tensor:
        s = self.sde.std(t).reshape(-1, *([1] * (x.ndim - 1)))
        return s * self(x, t)


class EpsMLP(nn.Module):
    """A small tanh MLP predicting the noise: score = -net / s(t), sigma_score = -net."""

    def __init__(self, sde: LinearSDE, d: int, seed: int = 0, width: int = 32) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.sde = sde
        self.net = nn.Sequential(
            nn.Linear(d + 1, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
            nn.Linear(width, d),
        ).to(F64)  # fmt: skip

    def eps(self, x: Tensor, t: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        return self.net(torch.cat([flat, t[:, None]], 1)).reshape(x.shape)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        s = self.sde.std(t).reshape(-1, *([1] * (x.ndim - 1)))
        return -self.eps(x, t) / s

    score = forward

    def sigma_score(self, x: Tensor, t: Tensor) -> Tensor:
        return -self.eps(x, t)


class ScoreMLP(nn.Module):
    """A small tanh MLP predicting the score itself (works for any SDE), minus ``stiffness`` x."""

    def __init__(self, d: int, seed: int = 0, width: int = 32, stiffness: float = 0.0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stiffness = stiffness
        self.net = nn.Sequential(
            nn.Linear(d + 1, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
            nn.Linear(width, d),
        ).to(F64)  # fmt: skip

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        out = self.net(torch.cat([flat, t[:, None]], 1)) - self.stiffness * flat
        return out.reshape(x.shape)

    score = forward

    def sigma_score(self, x: Tensor, t: Tensor) -> Tensor:
        raise AssertionError("only DSM uses sigma_score, and only on linear SDEs")


class AnalyticScore(nn.Module):
    """The exact score of p_t, plus an optional constant shift ``delta``."""

    def __init__(self, truth: AnalyticMarginal, delta: Tensor | None = None) -> None:
        super().__init__()
        self.truth = truth
        self.delta = delta

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        score = self.truth.score(x, t)
        return score if self.delta is None else score + self.delta

    score = forward

    def sigma_score(self, x: Tensor, t: Tensor) -> Tensor:
        return self.truth.sde.std(t)[:, None] * self(x, t)


class CubicSDE(SDE):
    """dX = -X^3 dt + dW: not linear, no closed-form kernel."""

    def drift(self, x: Tensor, t: Tensor | float) -> Tensor:
        return -(x**3)

    def diffusion(self, t: Tensor | float) -> Tensor:
        return torch.ones_like(torch.as_tensor(t))

    def prior_sample(self, shape: tuple[int, ...], generator: Any = None, **kw: Any) -> Tensor:
        return torch.randn(shape, generator=generator)

    def prior_logp(self, z: Tensor) -> Tensor:
        return -0.5 * z.reshape(z.shape[0], -1).pow(2).sum(-1)


class OUNotLinear(CubicSDE):
    """dX = -X dt + dW, declared as a plain SDE so the losses must simulate it."""

    def drift(self, x: Tensor, t: Tensor | float) -> Tensor:
        return -x


def mixture2d() -> GaussianMixture:
    means = torch.tensor([[-1.5, 0.5], [1.0, 1.0], [0.5, -1.5]], dtype=F64)
    covs = torch.tensor(
        [[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.4]], [[0.2, -0.05], [-0.05, 0.1]]],
        dtype=F64,
    )
    return GaussianMixture.full(means, covs, torch.tensor([0.3, 0.5, 0.2], dtype=F64))


def vp_coeffs(t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """m, s, g^2 of the default VP SDE, by hand (not through sde.py)."""
    log_m = -0.25 * t * t * (B1 - B0) - 0.5 * t * B0
    m = torch.exp(log_m)
    return m, torch.sqrt(1 - m * m), B0 + t * (B1 - B0)


def within(samples: Tensor, target: float | Tensor, k: float = 5.0) -> bool:
    mean = samples.mean()
    se = samples.std() / math.sqrt(samples.numel())
    return bool((mean - target).abs() < k * se)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------
# DSM


@pytest.mark.parametrize("weighting", ["sigma2", "likelihood", "none"])
def test_dsm_per_sample_matches_closed_form(weighting: str) -> None:
    sde = build_sde("vp")
    model = LinearScore(sde, 3)
    loss = build_loss("dsm", {"weighting": weighting}, sde)
    g = gen(0)
    x0 = torch.randn(50, 3, generator=g, dtype=F64)
    z = torch.randn(50, 3, generator=g, dtype=F64)
    t = torch.rand(50, generator=g, dtype=F64) * 0.99 + 0.01

    m, s, g2 = vp_coeffs(t)
    lam = {"sigma2": s * s, "likelihood": g2, "none": torch.ones_like(t)}[weighting]
    xt = m[:, None] * x0 + s[:, None] * z
    score = -xt @ model.A + model.b + t[:, None] * model.c
    expected = lam / s**2 * 0.5 * ((s[:, None] * score + z) ** 2).sum(1)

    got = loss.per_sample(model, x0, t, z)
    assert got.shape == (50,)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_dsm_uses_sigma_score_not_a_division_by_s() -> None:
    sde = build_sde("vp")
    model = EpsMLP(sde, 2)

    class NoPlainScore(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: Tensor, t: Tensor) -> Tensor:
            return torch.full_like(x, float("nan"))

        def sigma_score(self, x: Tensor, t: Tensor) -> Tensor:
            return self.inner.sigma_score(x, t)

    loss = build_loss("dsm", {}, sde)
    x0 = torch.randn(20, 2, dtype=F64, generator=gen(1))
    z = torch.randn(20, 2, dtype=F64, generator=gen(2))
    t = torch.full((20,), 1e-5, dtype=F64)
    got = loss.per_sample(NoPlainScore(), x0, t, z)
    expected = 0.5 * ((z - model.eps(sde.perturb(x0, t, z), t)) ** 2).sum(1)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("t_value", [0.05, 0.4])
def test_dsm_is_smallest_at_the_true_score(t_value: float) -> None:
    sde = build_sde("vp")
    truth = AnalyticMarginal(mixture2d(), sde)
    delta = torch.tensor([0.3, -0.2], dtype=F64)
    loss = build_loss("dsm", {"weighting": "sigma2"}, sde)
    n = 20_000
    g = gen(3)
    x0 = mixture2d().sample(n, g, dtype=F64)
    z = torch.randn(n, 2, generator=g, dtype=F64)
    t = torch.full((n,), t_value, dtype=F64)
    best = loss.per_sample(AnalyticScore(truth), x0, t, z)
    worse = loss.per_sample(AnalyticScore(truth, delta), x0, t, z)
    diff = worse - best
    se = diff.std() / math.sqrt(n)
    assert diff.mean() > 5 * se
    # and by the amount Vincent's identity says: 1/2 lambda ||delta||^2
    s2 = sde.std(torch.tensor(t_value, dtype=F64)) ** 2
    assert within(diff, 0.5 * s2 * (delta**2).sum())


@pytest.mark.parametrize("weighting", ["sigma2", "likelihood", "none"])
def test_dsm_differences_equal_explicit_score_matching_differences(weighting: str) -> None:
    # Vincent (2011): E[DSM_A] - E[DSM_B] = E_{x~p_t} 1/2 lambda (||A - true||^2 - ||B - true||^2)
    sde = build_sde("vp")
    truth = AnalyticMarginal(mixture2d(), sde)
    model_a, model_b = LinearScore(sde, 2, seed=1), EpsMLP(sde, 2, seed=2)
    loss = build_loss("dsm", {"weighting": weighting}, sde)
    n = 40_000
    for i, t_value in enumerate([0.05, 0.3, 0.8]):
        g = gen(10 + i)
        x0 = mixture2d().sample(n, g, dtype=F64)
        z = torch.randn(n, 2, generator=g, dtype=F64)
        t = torch.full((n,), t_value, dtype=F64)
        with torch.no_grad():
            lhs = loss.per_sample(model_a, x0, t, z) - loss.per_sample(model_b, x0, t, z)
            xt = sde.perturb(x0, t, z)
            true = truth.score(xt, t)
            lam = loss.weight(t)
            rhs = (
                0.5
                * lam
                * (((model_a(xt, t) - true) ** 2).sum(1) - ((model_b(xt, t) - true) ** 2).sum(1))
            )
        # the comparison is not vacuous: the two models really differ by many errors
        assert rhs.mean().abs() > 10 * rhs.std() / math.sqrt(n)
        assert within(lhs - rhs, 0.0)


# --------------------------------------------------------------------------------------------
# ESM and the sliced losses


@pytest.mark.parametrize("shape", [(3,), (1, 2, 3)])
def test_esm_trace_is_the_divergence_of_the_linear_model(shape: tuple[int, ...]) -> None:
    sde = build_sde("vp")
    d = math.prod(shape)
    model = LinearScore(sde, d, seed=4)
    g = gen(5)
    x0 = torch.randn(30, *shape, generator=g, dtype=F64)
    z = torch.randn(30, *shape, generator=g, dtype=F64)
    t = torch.rand(30, generator=g, dtype=F64) * 0.9 + 0.05
    xt = sde.perturb(x0, t, z)
    score = model(xt, t).reshape(30, -1)
    plain = -torch.trace(model.A) + 0.5 * (score**2).sum(1)
    esm_none = build_loss("esm", {"weighting": "none"}, sde).per_sample(model, x0, t, z)
    torch.testing.assert_close(esm_none, plain, rtol=1e-12, atol=1e-12)
    esm_s2 = build_loss("esm", {"weighting": "sigma2"}, sde).per_sample(model, x0, t, z)
    torch.testing.assert_close(esm_s2, sde.std(t) ** 2 * plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["ssm", "ssm_vr"])
@pytest.mark.parametrize("projection", ["rademacher", "gaussian"])
def test_sliced_per_sample_matches_closed_form_for_given_projections(
    kind: str, projection: str
) -> None:
    sde = build_sde("vp")
    model = LinearScore(sde, 3, seed=6)
    n, p = 8, 5
    loss = build_loss(
        kind, {"weighting": "likelihood", "n_projections": p, "projection": projection}, sde
    )
    g = gen(7)
    x0 = torch.randn(n, 3, generator=g, dtype=F64)
    z = torch.randn(n, 3, generator=g, dtype=F64)
    t = torch.rand(n, generator=g, dtype=F64) * 0.9 + 0.05
    got = loss.per_sample(model, x0, t, z, generator=gen(8))

    # the same projections: the linear SDE's x_t takes nothing from the generator
    xt = sde.perturb(x0, t, z)
    v = loss.projections((p * n, 3), xt, gen(8)).reshape(p, n, 3)
    if projection == "rademacher":
        assert set(v.unique().tolist()) == {-1.0, 1.0}
    score = model(xt, t)
    vjv = -torch.einsum("pni,ij,pnj->pn", v, model.A, v)
    sv = (v * score).sum(-1)
    half = 0.5 * (score**2).sum(-1).expand(p, n) if kind == "ssm_vr" else 0.5 * sv**2
    expected = vp_coeffs(t)[2] * (vjv + half).mean(0)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["ssm", "ssm_vr"])
@pytest.mark.parametrize("projection", ["rademacher", "gaussian"])
def test_sliced_losses_agree_with_exact_score_matching_in_expectation(
    kind: str, projection: str
) -> None:
    sde = build_sde("ve")
    d = 3
    # The stiffness gives a trace far from 0; large weights make the Jacobian far from
    # diagonal, so the projections matter.
    model = ScoreMLP(d, seed=9, stiffness=3.0)
    with torch.no_grad():
        for layer in model.net:
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(2.5)
    sliced = build_loss(kind, {"weighting": "none", "projection": projection}, sde)
    esm = build_loss("esm", {"weighting": "none"}, sde)
    g = gen(11)
    points = 0.5 * torch.randn(4, d, generator=g, dtype=F64)
    t_points = torch.tensor([0.1, 0.3, 0.5, 0.9], dtype=F64)
    zero = torch.zeros_like(points)
    exact = esm.per_sample(model, points, t_points, zero).detach()
    half = 0.5 * (model(points, t_points) ** 2).sum(1).detach()

    n = 20_000  # draws of v at each fixed x_t (VE has m = 1, so zero noise makes x_t = x0)
    x0 = points.repeat_interleave(n, 0)
    t = t_points.repeat_interleave(n)
    with torch.no_grad():
        values = sliced.per_sample(model, x0, t, torch.zeros_like(x0), generator=gen(12))
    for k in range(4):
        at_k = values[k * n : (k + 1) * n]
        assert within(at_k, exact[k])
        # not vacuous: a slice that lost the trace term would be many errors away
        assert (exact[k] - half[k]).abs() > 10 * at_k.std() / math.sqrt(n)


def test_more_projections_keep_the_mean_and_cut_the_variance() -> None:
    sde = build_sde("ve")
    model = ScoreMLP(2, seed=13)
    x0 = torch.randn(1, 2, generator=gen(14), dtype=F64).expand(4000, 2)
    t = torch.full((4000,), 0.4, dtype=F64)
    z = torch.zeros_like(x0)
    one, many = (
        build_loss("ssm", {"weighting": "none", "n_projections": p}, sde)
        .per_sample(model, x0, t, z, generator=gen(15))
        .detach()
        for p in (1, 16)
    )
    se = math.sqrt(one.var() / one.numel() + many.var() / many.numel())
    assert (one.mean() - many.mean()).abs() < 5 * se
    assert many.var() < one.var() / 4


# --------------------------------------------------------------------------------------------
# importance sampling of t


def _vp_q_table(eps: float, n: int = 200_001) -> tuple[np.ndarray, np.ndarray]:
    """t grid (log-spaced) and the normalised CDF of q ~ g^2/s^2 for VP, by hand."""
    t = np.geomspace(eps, 1.0, n)
    log_m = -0.25 * t * t * (B1 - B0) - 0.5 * t * B0
    dens = (B0 + t * (B1 - B0)) / -np.expm1(2 * log_m)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(t))])
    return t, cdf / cdf[-1]


def test_importance_sampled_times_follow_q() -> None:
    eps = 1e-5
    loss = build_loss(
        "dsm", {"weighting": "likelihood", "importance_sampling": True}, build_sde("vp")
    )
    n = 200_000
    t = loss.sample_time(n, "cpu", F64, gen(16))
    assert t.min() >= eps and t.max() <= 1.0
    grid, cdf = _vp_q_table(eps)
    # E_q[t] = int t dF = T - int F dt
    mean_q = 1.0 - float(np.sum(0.5 * (cdf[1:] + cdf[:-1]) * np.diff(grid)))
    assert within(t, mean_q)
    # and the distribution, not just the mean: P(t <= c) at a few quantiles, binomial errors
    for c in [1e-4, 1e-2, 0.1, 0.5]:
        p = float(np.interp(c, grid, cdf))
        frac = (t <= c).to(F64).mean()
        assert abs(float(frac) - p) < 5 * math.sqrt(p * (1 - p) / n)
    # most of q's mass is near eps, far from where uniform times would be
    assert float(np.interp(0.01, grid, cdf)) > 0.3


def _linear_dsm_expectation(model: LinearScore, mix: GaussianMixture, t: Tensor) -> Tensor:
    """E_{x0, z}[DSM at time t] for the linear score model, likelihood weighting, exactly."""
    a, b, c = model.A.detach(), model.b.detach(), model.c.detach()
    mu = mix.mean()
    m2 = mix.covariance() + torch.outer(mu, mu)
    m, s, g2 = vp_coeffs(t)
    beta = b + t[:, None] * c
    eye = torch.eye(a.shape[0], dtype=F64)
    quad = torch.trace(a.T @ m2 @ a)
    frob = ((eye[None] - (s * s)[:, None, None] * a[None]) ** 2).sum((1, 2))
    mean_sq = (
        (s * m) ** 2 * quad + frob + s**2 * (beta**2).sum(1) - 2 * s**2 * m * (beta @ (mu @ a))
    )
    return g2 / s**2 * 0.5 * mean_sq


def test_importance_sampled_dsm_has_the_uniform_expectation() -> None:
    eps = 1e-3
    sde = build_sde("vp")
    mix = mixture2d()
    model = LinearScore(sde, 2, seed=17)
    # exact target: (1/(T-eps)) int_eps^T E[DSM(t)] dt, by the trapezoid rule on a log grid
    tq = torch.from_numpy(np.geomspace(eps, 1.0, 100_001))
    lt = _linear_dsm_expectation(model, mix, tq)
    target = float(torch.trapezoid(lt, tq)) / (1.0 - eps)

    n = 200_000
    values = {}
    for is_on in (False, True):
        loss = build_loss(
            "dsm", {"weighting": "likelihood", "eps": eps, "importance_sampling": is_on}, sde
        )
        g = gen(18)
        x0 = mix.sample(n, g, dtype=F64)
        t = loss.sample_time(n, "cpu", F64, g)
        z = torch.randn(n, 2, generator=g, dtype=F64)
        with torch.no_grad():
            values[is_on] = loss.per_sample(model, x0, t, z)
    assert within(values[False], target)
    assert within(values[True], target)
    # ... which is the point: the importance-sampled estimate is much less noisy
    assert values[True].var() < values[False].var() / 10


def test_importance_weight_is_close_to_z_over_interval() -> None:
    sde = build_sde("vp")
    loss = build_loss("dsm", {"weighting": "likelihood", "importance_sampling": True}, sde)
    t = loss.sample_time(10_000, "cpu", F64, gen(19))
    factor = loss.time_weight(t) / sde.std(t) ** 2  # lambda / (s^2 (T - eps) q)
    grid, _ = _vp_q_table(1e-5)
    log_m = -0.25 * grid**2 * (B1 - B0) - 0.5 * grid * B0
    dens = (B0 + grid * (B1 - B0)) / -np.expm1(2 * log_m)
    z = float(np.sum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid)))
    torch.testing.assert_close(factor, torch.full_like(factor, z / (1 - 1e-5)), rtol=3e-3, atol=0)


# --------------------------------------------------------------------------------------------
# randomness, gradients, shapes


def _model_for(kind: str, sde: LinearSDE, d: int) -> nn.Module:
    return EpsMLP(sde, d, seed=20) if kind == "dsm" else ScoreMLP(d, seed=20)


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_loss_and_other_seed_other_loss(kind: str) -> None:
    sde = build_sde("vp")
    model = _model_for(kind, sde, 2)
    loss = build_loss(kind, {"n_projections": 2}, sde)
    x0 = torch.randn(64, 2, generator=gen(21), dtype=F64)
    first = loss(model, x0, gen(22))
    again = loss(model, x0, gen(22))
    other = loss(model, x0, gen(23))
    assert first.ndim == 0
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("weighting", ["sigma2", "likelihood"])
def test_gradients_reach_every_parameter(kind: str, weighting: str) -> None:
    sde = build_sde("vp")
    model = _model_for(kind, sde, 2)
    loss = build_loss(kind, {"weighting": weighting}, sde)
    loss(model, torch.randn(32, 2, generator=gen(24), dtype=F64), gen(25)).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", ["esm", "ssm", "ssm_vr"])
def test_gradient_includes_the_divergence_term(kind: str) -> None:
    # Without create_graph the -v^T A v (or -tr A) term would give no gradient to A.
    sde = build_sde("ve")
    model = LinearScore(sde, 3, seed=26)
    loss = build_loss(kind, {"weighting": "none", "n_projections": 3}, sde)
    g = gen(27)
    x0 = torch.randn(16, 3, generator=g, dtype=F64)
    t = torch.rand(16, generator=g, dtype=F64) * 0.5 + 0.1
    z = torch.randn(16, 3, generator=g, dtype=F64)
    loss.per_sample(model, x0, t, z, generator=gen(28)).mean().backward()
    got = model.A.grad.clone()

    a = model.A.detach().clone().requires_grad_(True)
    xt = sde.perturb(x0, t, z)
    score = -xt @ a + model.b.detach() + t[:, None] * model.c.detach()
    if kind == "esm":
        value = -torch.trace(a) + 0.5 * (score**2).sum(1)
    else:
        v = loss.projections((3 * 16, 3), xt, gen(28)).reshape(3, 16, 3)
        sv = (v * score).sum(-1)
        half = 0.5 * (score**2).sum(-1) if kind == "ssm_vr" else 0.5 * sv**2
        value = (-torch.einsum("pni,ij,pnj->pn", v, a, v) + half).mean(0)
    value.mean().backward()
    torch.testing.assert_close(got, a.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_image_shaped_data(kind: str) -> None:
    sde = build_sde("vp")
    model = _model_for(kind, sde, 9)
    loss = build_loss(kind, {}, sde)
    x0 = torch.randn(6, 1, 3, 3, generator=gen(29), dtype=F64)
    t = torch.full((6,), 0.5, dtype=F64)
    z = torch.randn(6, 1, 3, 3, generator=gen(30), dtype=F64)
    out = loss.per_sample(model, x0, t, z, gen(31))
    assert out.shape == (6,)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("kind", ["ssm", "ssm_vr", "esm"])
def test_gradient_losses_evaluate_under_no_grad(kind: str) -> None:
    sde = build_sde("vp")
    loss = build_loss(kind, {}, sde)
    with torch.no_grad():
        value = loss(ScoreMLP(2), torch.randn(8, 2, dtype=F64), gen(32))
    assert torch.isfinite(value)


def test_float32_times_and_defaults() -> None:
    sde = build_sde("vp")
    loss = build_loss("dsm", {"kind": "dsm"}, sde)  # a config's own kind key is tolerated
    assert isinstance(loss, DenoisingScoreMatching)
    assert (loss.weighting, loss.eps, loss.n_projections) == ("sigma2", 1e-5, 1)
    assert (loss.projection, loss.importance_sampling) == ("rademacher", False)
    t = loss.sample_time(10_000, "cpu", torch.float32, gen(33))
    assert t.dtype == torch.float32
    assert float(t.min()) >= 1e-5 and float(t.max()) <= 1.0
    assert set(LOSSES.names()) == set(KINDS)
    assert set(WEIGHTINGS) == {"sigma2", "likelihood", "none"}


# --------------------------------------------------------------------------------------------
# non-linear SDEs


def test_euler_maruyama_simulation_has_the_scheme_s_exact_moments() -> None:
    # For dX = -X dt + dW, EM with k steps of h gives mean (1-h)^k x0 and
    # variance h (1 - (1-h)^(2k)) / (1 - (1-h)^2): compare with 4 steps, far from exact OU.
    n, k = 100_000, 4
    x0 = torch.full((n, 1), 2.0, dtype=F64)
    t = torch.full((n,), 1.0, dtype=F64)
    noise = torch.randn(n, 1, generator=gen(34), dtype=F64)
    xt = simulate_forward(OUNotLinear(), x0, t, noise, k, gen(35)).squeeze(1)
    h = 1.0 / k
    r = 1 - h
    mean, var = 2.0 * r**k, h * (1 - r ** (2 * k)) / (1 - r * r)
    assert within(xt, mean)
    assert within((xt - mean) ** 2, var)
    assert abs(mean - 2 * math.exp(-1)) > 20 * math.sqrt(var / n)  # EM, not the exact OU law


@pytest.mark.parametrize("kind", ["ssm", "ssm_vr", "esm"])
def test_sample_based_losses_train_on_a_non_linear_sde(kind: str) -> None:
    model = ScoreMLP(2, seed=36)
    loss = build_loss(kind, {"weighting": "likelihood"}, CubicSDE())
    value = loss(model, torch.randn(16, 2, generator=gen(37), dtype=F64), gen(38))
    value.backward()
    assert torch.isfinite(value)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# --------------------------------------------------------------------------------------------
# errors


def _error(fn: Any, *args: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        fn(*args)
    return info.value


def test_unknown_kind_suggests_the_closest() -> None:
    err = _error(build_loss, "dsn", {}, build_sde("vp"))
    assert err.key == "kind"
    assert "did you mean 'dsm'" in str(err)


@pytest.mark.parametrize("weighting", ["sigma2", "none"])
def test_importance_sampling_needs_likelihood_weighting(weighting: str) -> None:
    err = _error(
        build_loss, "dsm", {"weighting": weighting, "importance_sampling": True}, build_sde("vp")
    )
    assert err.key == "importance_sampling"


def test_esm_refuses_high_dimensional_data_at_call_time() -> None:
    sde = build_sde("vp")
    loss = build_loss("esm", {}, sde)  # the shape is unknown until called
    d = 100
    assert d > ESM_MAX_DIM
    err = _error(loss, ScoreMLP(d), torch.randn(4, d, dtype=F64), gen(39))
    assert err.key == "kind"
    assert "100 dimensions" in err.message and "'ssm'" in err.message


def test_dsm_refuses_a_non_linear_sde() -> None:
    err = _error(build_loss, "dsm", {"weighting": "likelihood"}, CubicSDE())
    assert err.key == "kind"
    assert "closed form" in err.message and "'ssm'" in err.message


def test_other_setting_errors_name_their_key() -> None:
    sde = build_sde("vp")
    assert _error(build_loss, "ssm", {"weighting": "sigma"}, sde).key == "weighting"
    assert _error(build_loss, "ssm", {"projections": 2}, sde).key == "projections"
    assert _error(build_loss, "ssm", {"n_projections": 0}, sde).key == "n_projections"
    assert _error(build_loss, "ssm", {"eps": 1.5}, sde).key == "eps"
    # s(t)^2 weighting needs s(t): a non-linear SDE has none
    assert _error(build_loss, "ssm", {}, CubicSDE()).key == "weighting"
    err = _error(
        build_loss, "ssm", {"weighting": "likelihood", "importance_sampling": True}, CubicSDE()
    )
    assert err.key == "importance_sampling"


def test_every_registered_loss_is_a_loss() -> None:
    for name, cls in LOSSES.items():
        assert issubclass(cls, Loss)
        assert cls.config_name == name
