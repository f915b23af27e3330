"""Predictors: one step of the reverse SDE from t_i to t_{i+1} (Song et al. 2021, App. E-F).

A predictor returns the mean and the standard deviation of its Gaussian kernel; the ``pc``
loop (:mod:`workbench.core.samplers.pc`) draws the noise, so that imputation can steer it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from workbench.core.registry import Registry
from workbench.core.samplers.grids import Schedule
from workbench.core.sde import SDE, LinearSDE
from workbench.errors import ConfigError

__all__ = [
    "Update",
    "Predictor",
    "PREDICTORS",
    "EulerMaruyamaPredictor",
    "ReverseDiffusionPredictor",
    "AncestralPredictor",
]

#: a Gaussian update: the new state is mean + std * z, z standard normal
Update = tuple[Tensor, "float | Tensor"]


class Predictor(ABC):
    """One step of the reverse SDE from t_i to t_{i+1}, given the score at (x, t_i).

    A step returns the mean and the standard deviation of the Gaussian kernel
    x_{t_{i+1}} | x_{t_i} rather than a draw: the loop adds the noise, and imputation can
    replace known coordinates or weigh particles by the kernel's density.
    """

    config_name: ClassVar[str] = ""

    def __init__(self, sde: SDE) -> None:
        self.sde = sde

    def prepare(self, sched: Schedule) -> None:  # noqa: B027  (optional hook)
        """Precompute what the steps need from the schedule."""

    @abstractmethod
    def step(self, x: Tensor, i: int, t: Tensor, score: Tensor) -> Update:
        """(mean, std) of x at t_{i+1}; ``t`` is t_i on the device."""


PREDICTORS: Registry[type[Predictor]] = Registry("predictor", key="predictor")


@PREDICTORS.register("euler_maruyama")
class EulerMaruyamaPredictor(Predictor):
    """Euler–Maruyama on the reverse SDE, with dt = t_{i+1} - t_i < 0:

    x <- x + [f(x, t_i) - g_i^2 score] dt + g_i sqrt(-dt) z   (score_sde_pytorch's).
    """

    def prepare(self, sched: Schedule) -> None:
        self.sched = sched

    def step(self, x: Tensor, i: int, t: Tensor, score: Tensor) -> Update:
        sc = self.sched
        dt = sc.times[i + 1] - sc.times[i]
        g = sc.g[i]
        std = g * math.sqrt(-dt)
        if sc.linear:  # x (1 + a dt) - g^2 dt score: two passes over the batch, not four
            return torch.add(x * (1.0 + sc.a[i] * dt), score, alpha=-(g * g) * dt), std
        f = self.sde.drift(x, t)
        return x + (f - (g * g) * score) * dt, std


@PREDICTORS.register("reverse_diffusion")
class ReverseDiffusionPredictor(Predictor):
    """The reverse diffusion predictor (Song et al. 2021, eq. 46 and App. E).

    Discretise the forward SDE on the grid as x_{t_i} = x_{t_{i+1}} + f_i(x_{t_{i+1}}) + G_i z
    and reverse that chain: x_{t_{i+1}} = x_{t_i} - f_i(x_{t_i}) + G_i^2 score + G_i z.
    For a linear SDE the discretisation is the exact transition, f_i(x) = (r_i - 1) x and
    G_i^2 = s(t_i)^2 - r_i^2 s(t_{i+1})^2 with r_i = m(t_i)/m(t_{i+1}); for VP this is
    score_sde_pytorch's f_i = (sqrt(1 - beta_i) - 1) x, G_i = sqrt(beta_i) with
    beta_i = 1 - r_i^2, and for VE f_i = 0, G_i^2 = sigma_i^2 - sigma_{i+1}^2. A non-linear
    SDE uses the Euler discretisation f_i = f(x, t_i) |dt|, G_i = g_i sqrt(|dt|).
    """

    def prepare(self, sched: Schedule) -> None:
        self.sched = sched

    def step(self, x: Tensor, i: int, t: Tensor, score: Tensor) -> Update:
        sc = self.sched
        if sc.linear:
            G2 = sc.G2[i]
            return (2.0 - sc.r[i]) * x + G2 * score, math.sqrt(G2)
        dt = sc.times[i] - sc.times[i + 1]
        G2 = sc.g[i] ** 2 * dt
        return x - self.sde.drift(x, t) * dt + G2 * score, math.sqrt(G2)


def _ancestral_family(sde: SDE) -> str | None:
    """``"vp"`` if m^2 + s^2 = 1 on [0, T] (DDPM), ``"ve"`` if m = 1 (SMLD), else None.

    Decided from the coefficients, not the class, so that a user's linear SDE that is VP or
    VE is accepted, and sub-VP (m^2 + s^2 != 1) or a general linear SDE is not.
    """
    if not isinstance(sde, LinearSDE):
        return None
    t = torch.linspace(0.0, sde.T, 129, dtype=torch.float64)
    m, s = sde.marginal_coeffs(t)
    m, s = m.to(torch.float64), s.to(torch.float64)
    if bool(torch.all((m - 1.0).abs() < 1e-9)):
        return "ve"
    if bool(torch.all((m * m + s * s - 1.0).abs() < 1e-6)):
        return "vp"
    return None


@PREDICTORS.register("ancestral")
class AncestralPredictor(Predictor):
    """Ancestral sampling (Song et al. 2021, App. F; Ho et al. 2020, Alg. 2), with the discrete
    chain read off the grid:

    * VP (DDPM), beta_i = 1 - r_i^2, r_i = m(t_i)/m(t_{i+1}):
      x <- (x + beta_i score) / sqrt(1 - beta_i) + sqrt(beta_i) z;
    * VE (SMLD), with s_i = s(t_i):
      x <- x + (s_i^2 - s_{i+1}^2) score + sqrt(s_{i+1}^2 (s_i^2 - s_{i+1}^2) / s_i^2) z.

    Only VP-type (m^2 + s^2 = 1, e.g. vp, cosine) and VE-type (m = 1) SDEs have this chain;
    any other SDE is refused with a ConfigError on ``predictor``.
    """

    def __init__(self, sde: SDE) -> None:
        super().__init__(sde)
        family = _ancestral_family(sde)
        if family is None:
            raise ConfigError(
                "predictor",
                f"'ancestral' sampling is defined for VP (DDPM) and VE (SMLD) SDEs only, not "
                f"{sde.describe()}; use 'reverse_diffusion' or 'euler_maruyama'",
            )
        self.family = family

    def prepare(self, sched: Schedule) -> None:
        self.coeffs: list[tuple[float, float, float]] = []
        for i in range(sched.n_steps):
            if self.family == "vp":
                r = sched.r[i]
                beta = 1.0 - r * r
                self.coeffs.append((1.0 / r, beta / r, math.sqrt(beta)))
            else:
                s2, s2_next = sched.s[i] ** 2, sched.s[i + 1] ** 2
                var = s2_next * (s2 - s2_next) / s2 if s2 > 0 else 0.0
                self.coeffs.append((1.0, s2 - s2_next, math.sqrt(max(var, 0.0))))

    def step(self, x: Tensor, i: int, t: Tensor, score: Tensor) -> Update:
        cx, cs, cz = self.coeffs[i]
        return cx * x + cs * score, cz
