"""Samplers written in the marginal coefficients m(t), s(t) of a linear SDE, k-diffusion style.

Every linear SDE has x_t = m(t) x0 + s(t) z, so the scaled state y = x/m is x0 + sigma z with
the noise level sigma(t) = s/m: one VE process, whatever the SDE (VP, sub-VP, VE, cosine or the
user's linear SDE). Karras et al. (2022, eq. 4-5) and Lu et al. (2022) write their solvers on it,
with the half-log-SNR lambda = log(m/s) = -log sigma. The network enters through the data
prediction (Tweedie's formula) and the noise prediction,

    x0^(x, t) = (x + s^2 score(x, t)) / m,        eps^(x, t) = -s score = (x - m x0^) / s,

and the probability-flow ODE is dy/dsigma = (y - x0^)/sigma = eps^. A solver step in y maps back
to x exactly (x = m y), so nothing here is specific to one SDE. Samplers that need a non-linear
SDE's drift (``em``, ``pc``, ``ode``) live elsewhere; these refuse one.

As in k-diffusion, each solver is a few lines: the per-step coefficients are host floats worked
out in float64 from the grid before the loop. Four of them share one loop, each step being

    x_{i+1} = a_i x_i + b_i D_i + d_i (D_i - D_{i-1}) + c_i z,     D_i = x0^(x_i, t_i),

and differ only in (a, b, c, d); ``heun_churn`` has its own loop. NFE = steps (``heun_churn``:
2 steps), plus one for the final denoising (Tweedie's formula at eps) when ``denoise`` is on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from workbench.core.samplers.base import AUTO_GRID, SAMPLERS, Sampler, SamplerStep, ScoreFn, _noise
from workbench.core.samplers.grids import Schedule, invert_sigma, time_grid
from workbench.core.sde import SDE, LinearSDE
from workbench.errors import ConfigError

__all__ = [
    "LinearSolver",
    "DDIMSampler",
    "EulerAncestralSampler",
    "DPMPP2MSampler",
    "DPMPP2MSDESampler",
    "HeunChurnSampler",
]


class LinearSolver(Sampler):
    """The grid and m_i, s_i, sigma_i = s_i/m_i, lambda_i = log(m_i/s_i) on the host."""

    linear_only = True
    #: the [sample] keys a subclass takes beyond the grid's
    param_keys: ClassVar[tuple[str, ...]] = ("steps", "eps", "grid", "rho", "denoise")

    def __init__(
        self,
        sde: SDE,
        score_model: nn.Module | ScoreFn,
        *,
        steps: int = 1000,
        eps: float = 1e-3,
        grid: str = AUTO_GRID,
        rho: float = 7.0,
        denoise: bool = True,
    ) -> None:
        if not isinstance(sde, LinearSDE):
            raise ConfigError(
                "sampler",
                f"{self.config_name!r} is written in the marginal coefficients m(t), s(t) of a "
                f"linear SDE, which {sde.describe()} has not; use 'em', 'pc' or 'ode'",
            )
        super().__init__(sde, score_model, eps=eps, denoise=denoise)
        self.times = time_grid(self._use_grid(grid), steps, sde.T, eps, rho, sde)
        sched = Schedule(sde, self.times)
        self.t, self.m, self.s = sched.times, sched.m, sched.s
        self.sigma = [s / m for m, s in zip(self.m, self.s, strict=True)]
        self.lam = [math.log(m / s) for m, s in zip(self.m, self.s, strict=True)]

    @property
    def n_steps(self) -> int:
        return len(self.t) - 1

    def _x0(self, x: Tensor, t: Tensor, m: float, s: float) -> Tensor:
        """Tweedie's data prediction x0^ = (x + s^2 score(x, t)) / m (one score evaluation)."""
        return (x + (s * s) * self._score(x, t)) / m

    def _finish(self, x: Tensor, t_dev: Tensor) -> Iterator[SamplerStep]:
        if self.denoise:
            yield SamplerStep(self.n_steps + 1, 0.0, self._denoise(x, t_dev[-1]))


class AffineSolver(LinearSolver):
    """x_{i+1} = a_i x_i + b_i D_i + d_i (D_i - D_{i-1}) + c_i z: the subclass fills a, b, c, d."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.coeffs: list[tuple[float, float, float, float]] = [
            self.coefficients(i) for i in range(self.n_steps)
        ]

    def coefficients(self, i: int) -> tuple[float, float, float, float]:
        """(a_i, b_i, c_i, d_i) of step i (t_i -> t_{i+1})."""
        raise NotImplementedError

    def run(self, x_T: Tensor, generator: torch.Generator | None = None) -> Iterator[SamplerStep]:
        self.nfe = 0
        noise = _noise(generator)
        t_dev = torch.tensor(self.t, dtype=x_T.dtype).to(x_T.device)
        x, d_prev = x_T, None
        yield SamplerStep(0, self.t[0], x)
        for i, (a, b, c, d) in enumerate(self.coeffs):
            d_i = self._x0(x, t_dev[i], self.m[i], self.s[i])
            x_next = a * x + b * d_i
            if d != 0.0 and d_prev is not None:
                x_next = x_next + d * (d_i - d_prev)
            if c > 0.0:
                x_next = x_next + c * noise(x)
            x, d_prev = x_next, d_i
            yield SamplerStep(i + 1, self.t[i + 1], x)
        yield from self._finish(x, t_dev)


def _ancestral_split(sigma: float, sigma_next: float, eta: float) -> tuple[float, float]:
    """(sigma_down, sigma_up) with sigma_down^2 + sigma_up^2 = sigma_next^2 (k-diffusion's
    get_ancestral_step): sigma_up^2 = eta^2 sigma'^2 (sigma^2 - sigma'^2) / sigma^2 is the
    variance, in y = x/m, of the exact posterior q(x_{t'} | x_t, x0) when eta = 1."""
    up = min(sigma_next, eta * math.sqrt(max(sigma_next**2 * (1 - sigma_next**2 / sigma**2), 0)))
    return math.sqrt(max(sigma_next**2 - up * up, 0.0)), up


@SAMPLERS.register("ddim")
class DDIMSampler(AffineSolver):
    """DDIM (Song, Meng & Ermon 2021, eq. 12) for any linear SDE. With D = x0^, eps^ = (x - m D)/s
    and primes for t_{i+1},

        x' = m' D + sqrt(s'^2 - sigma_eta^2) eps^ + sigma_eta z,
        sigma_eta^2 = eta^2 s'^2 (1 - (m s')^2 / (m' s)^2)
                    = eta^2 m'^2 sigma'^2 (1 - sigma'^2/sigma^2).

    At eta = 1, sigma_eta^2 is the variance of the exact forward posterior
    q(x_{t'} | x_t, x0) = N(., s'^2 (s^2 - r^2 s'^2)/s^2), r = m/m', so the step is ancestral
    sampling; for VP (s^2 = 1 - m^2, alpha = m^2) it is eq. 16's
    (1 - alpha')/(1 - alpha) (1 - alpha/alpha'). eta = 0 is deterministic: Euler's method on
    dy/dsigma = eps^ in y = x/m (as Karras et al. 2022, §3, read DDIM), a first-order solver of
    the probability-flow ODE. ``eta`` in [0, 1].
    """

    param_keys = (*LinearSolver.param_keys, "eta")

    def __init__(self, *args: Any, eta: float = 0.0, **kwargs: Any) -> None:
        if not 0.0 <= eta <= 1.0:
            raise ConfigError("eta", f"must be between 0 and 1, got {eta!r}")
        self.eta = float(eta)
        self.stochastic = self.eta > 0
        super().__init__(*args, **kwargs)

    def coefficients(self, i: int) -> tuple[float, float, float, float]:
        m, s, m1 = self.m[i], self.s[i], self.m[i + 1]
        down, up = _ancestral_split(self.sigma[i], self.sigma[i + 1], self.eta)
        c_eps = m1 * down  # sqrt(s'^2 - sigma_eta^2)
        return c_eps / s, m1 - c_eps * m / s, m1 * up, 0.0


@SAMPLERS.register("euler_ancestral")
class EulerAncestralSampler(AffineSolver):
    """k-diffusion's sample_euler_ancestral (eta = 1) in y = x/m and sigma = s/m: an Euler step
    of dy/dsigma = (y - D)/sigma down to sigma_down, then noise sigma_up,

        y' = y + (sigma_down - sigma)(y - D)/sigma + sigma_up z,   x' = m' y',

    with (sigma_down, sigma_up) the ancestral split of sigma' (sigma_down^2 + sigma_up^2 =
    sigma'^2, sigma_up^2 = sigma'^2 (sigma^2 - sigma'^2)/sigma^2). Written out,
    y' = D + sigma_down eps^ + sigma_up z: the same step as ``ddim`` with eta = 1 (for VE also
    SMLD's ancestral chain, the ``pc`` sampler's ``ancestral`` predictor).
    """

    def coefficients(self, i: int) -> tuple[float, float, float, float]:
        sig, m, m1 = self.sigma[i], self.m[i], self.m[i + 1]
        down, up = _ancestral_split(sig, self.sigma[i + 1], 1.0)
        return m1 * down / (m * sig), m1 * (1.0 - down / sig), m1 * up, 0.0


@SAMPLERS.register("dpmpp_2m")
class DPMPP2MSampler(AffineSolver):
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2): multistep, data prediction,
    exact in the linear part. With h_i = lambda_{i+1} - lambda_i and r_i = h_{i-1}/h_i,

        x_{i+1} = (s_{i+1}/s_i) x_i - m_{i+1} (e^{-h_i} - 1) D^_i,
        D^_0 = D_0,   D^_i = (1 + 1/(2 r_i)) D_i - 1/(2 r_i) D_{i-1}  (i >= 1),

    second order in h. As k-diffusion's sample_dpmpp_2m (which does it in y = x/m).

    Its default grid is ``quadratic``: on 8 Gaussians with the exact score at 20 NFE it lands
    within the noise floor there (and on ``power_t``), while the uniform t grid leaves the last
    stretch near eps, where log-SNR moves fastest, too few steps and over-sharpens the modes
    (tests/core/test_study_truth.py).
    """

    stochastic = False
    default_grid = "quadratic"

    def coefficients(self, i: int) -> tuple[float, float, float, float]:
        h = self.lam[i + 1] - self.lam[i]
        b = -self.m[i + 1] * math.expm1(-h)
        d = 0.0 if i == 0 else b * h / (2.0 * (self.lam[i] - self.lam[i - 1]))
        return self.s[i + 1] / self.s[i], b, 0.0, d


@SAMPLERS.register("dpmpp_2m_sde")
class DPMPP2MSDESampler(AffineSolver):
    """SDE-DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++"; as k-diffusion's
    sample_dpmpp_2m_sde with eta = 1, solver_type "midpoint"). Integrating the linear part of
    the reverse SDE exactly in lambda, with x0^ held fixed, gives the first-order step
    (s'/s) e^{-h} x + m' (1 - e^{-2h}) x0^ + s' sqrt(1 - e^{-2h}) z; the multistep term
    corrects x0^ by its slope in lambda:

        x_{i+1} = (s_{i+1}/s_i) e^{-h} x_i + m_{i+1} (1 - e^{-2h}) D_i
                  + 1/2 m_{i+1} (1 - e^{-2h}) / r_i (D_i - D_{i-1}) + s_{i+1} sqrt(1 - e^{-2h}) z,

    h = lambda_{i+1} - lambda_i, r_i = h_{i-1}/h_i (the correction from step 1 on). In y = x/m
    these are k-diffusion's coefficients, sigma' e^{-h}/sigma, 1 - e^{-2h} and
    sigma' sqrt(1 - e^{-2h}), times m'.
    """

    def coefficients(self, i: int) -> tuple[float, float, float, float]:
        h = self.lam[i + 1] - self.lam[i]
        one_m = -math.expm1(-2.0 * h)
        b = self.m[i + 1] * one_m
        d = 0.0 if i == 0 else 0.5 * b * h / (self.lam[i] - self.lam[i - 1])
        a = self.s[i + 1] / self.s[i] * math.exp(-h)
        return a, b, self.s[i + 1] * math.sqrt(one_m), d


@SAMPLERS.register("heun_churn")
class HeunChurnSampler(LinearSolver):
    """Karras et al. (2022, Alg. 2): Heun's method on dy/dsigma = (y - D(y, sigma))/sigma in
    y = x/m, sigma = s/m, with stochastic churn. At step i, where s_tmin <= sigma_i <= s_tmax,

        gamma_i = min(s_churn/N, sqrt(2) - 1),  sigma^ = (1 + gamma_i) sigma_i,
        y^ = y + s_noise sqrt(sigma^^2 - sigma_i^2) z,
        d = (y^ - D(y^, sigma^))/sigma^,  y' = y^ + (sigma_{i+1} - sigma^) d,
        d' = (y' - D(y', sigma_{i+1}))/sigma_{i+1},
        y_{i+1} = y^ + (sigma_{i+1} - sigma^)(d + d')/2,

    where D(y, sigma) is x0^ at x = m(t) y, t = sigma^-1(sigma) (found by bisection, on the host,
    before the loop). gamma is capped so that sigma^ <= sigma(T): the model knows no noise level
    beyond T. s_churn = 0 is Heun's deterministic second-order solver. NFE = 2 N.
    """

    param_keys = (*LinearSolver.param_keys, "s_churn", "s_tmin", "s_tmax", "s_noise")

    def __init__(
        self,
        *args: Any,
        s_churn: float = 0.0,
        s_tmin: float = 0.0,
        s_tmax: float = 1e30,
        s_noise: float = 1.0,
        **kwargs: Any,
    ) -> None:
        for key, value in (("s_churn", s_churn), ("s_tmin", s_tmin), ("s_noise", s_noise)):
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(key, f"must be a number >= 0, got {value!r}")
        if not s_tmax > 0:
            raise ConfigError("s_tmax", f"must be > 0, got {s_tmax!r}")
        super().__init__(*args, **kwargs)
        n, sig = self.n_steps, self.sigma
        gam = [
            min(s_churn / n, math.sqrt(2.0) - 1.0, sig[0] / sig[i] - 1.0)
            if s_tmin <= sig[i] <= s_tmax
            else 0.0
            for i in range(n)
        ]
        self.stochastic = any(g > 0 for g in gam)
        self.sig_hat = [sig[i] * (1.0 + gam[i]) for i in range(n)]
        self.churn = [
            s_noise * math.sqrt(max(h * h - sig[i] ** 2, 0.0)) for i, h in enumerate(self.sig_hat)
        ]
        t_hat = list(self.t[:n])
        raised = [i for i in range(n) if gam[i] > 0.0]
        if raised:
            found = invert_sigma(
                self.sde,  # type: ignore[arg-type]
                torch.tensor([self.sig_hat[i] for i in raised], dtype=torch.float64),
                self.eps,
                self.sde.T,
            ).tolist()
            for i, t in zip(raised, found, strict=True):
                t_hat[i] = t
        self.t_hat = t_hat
        m_hat, s_hat = self.sde.marginal_coeffs(torch.tensor(t_hat, dtype=torch.float64))  # type: ignore[attr-defined]
        self.m_hat: list[float] = m_hat.to(torch.float64).tolist()
        self.s_hat: list[float] = s_hat.to(torch.float64).tolist()
        for i in range(n):  # where gamma = 0, exactly the grid's own coefficients
            if gam[i] == 0.0:
                self.m_hat[i], self.s_hat[i], self.sig_hat[i] = self.m[i], self.s[i], sig[i]

    def run(self, x_T: Tensor, generator: torch.Generator | None = None) -> Iterator[SamplerStep]:
        self.nfe = 0
        noise = _noise(generator)
        t_dev = torch.tensor(self.t, dtype=x_T.dtype).to(x_T.device)
        th_dev = torch.tensor(self.t_hat, dtype=x_T.dtype).to(x_T.device)
        sig, x = self.sigma, x_T
        yield SamplerStep(0, self.t[0], x)
        for i in range(self.n_steps):
            y = x / self.m[i]
            if self.churn[i] > 0.0:
                y = y + self.churn[i] * noise(y)
            mh, sh, sh_sig = self.m_hat[i], self.s_hat[i], self.sig_hat[i]
            d = (y - self._x0(mh * y, th_dev[i], mh, sh)) / sh_sig
            dsig = sig[i + 1] - sh_sig
            y1 = y + dsig * d
            m1, s1 = self.m[i + 1], self.s[i + 1]
            d1 = (y1 - self._x0(m1 * y1, t_dev[i + 1], m1, s1)) / sig[i + 1]
            x = m1 * (y + (0.5 * dsig) * (d + d1))
            yield SamplerStep(i + 1, self.t[i + 1], x)
        yield from self._finish(x, t_dev)
