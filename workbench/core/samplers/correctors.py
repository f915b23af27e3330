"""Correctors: MCMC steps at a fixed grid time t_i (Song et al. 2021, Alg. 4 and 5)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from workbench.core.registry import Registry
from workbench.core.samplers.base import ScoreFn
from workbench.core.samplers.grids import Schedule
from workbench.core.sde import SDE

__all__ = ["Advance", "Corrector", "CORRECTORS", "NoneCorrector", "LangevinCorrector"]

#: (mean, std, z, grid index the new state is at) -> the new state
Advance = Callable[[Tensor, "float | Tensor", Tensor, int], Tensor]


class Corrector(ABC):
    """MCMC steps at a fixed time t_i that move x towards p_{t_i}."""

    config_name: ClassVar[str] = ""

    def __init__(self, sde: SDE, snr: float, n_steps: int) -> None:
        self.sde = sde
        self.snr = float(snr)
        self.n_steps = int(n_steps)

    @property
    def nfe_per_step(self) -> int:
        return self.n_steps

    def prepare(self, sched: Schedule) -> None:  # noqa: B027  (optional hook)
        """Precompute what the steps need from the schedule."""

    @abstractmethod
    def correct(
        self,
        x: Tensor,
        i: int,
        t: Tensor,
        score_fn: ScoreFn,
        noise: Callable[[Tensor], Tensor],
        advance: Advance,
    ) -> Tensor:
        """x after the corrector's steps at t_i; each step's new state is
        ``advance(mean, std, z, i)`` (mean + std z, unless imputation changes it)."""


CORRECTORS: Registry[type[Corrector]] = Registry("corrector", key="corrector")


@CORRECTORS.register("none")
class NoneCorrector(Corrector):
    """No correction (the ``em`` sampler, or ``pc`` with a predictor alone)."""

    @property
    def nfe_per_step(self) -> int:
        return 0

    def correct(
        self,
        x: Tensor,
        i: int,
        t: Tensor,
        score_fn: ScoreFn,
        noise: Callable[[Tensor], Tensor],
        advance: Advance,
    ) -> Tensor:
        return x


@CORRECTORS.register("langevin")
class LangevinCorrector(Corrector):
    """Annealed Langevin dynamics at t_i (Song et al. 2021, Alg. 4 and 5):

        x <- x + e_i score(x, t_i) + sqrt(2 e_i) z,   e_i = 2 alpha_i (snr ||z|| / ||score||)^2.

    As in score_sde_pytorch, ||z|| and ||score|| are the batch means of the per-sample norms, so
    e_i is one number per step. (A per-sample ratio is unstable in low dimension: in 2-D a
    sample near a mode has a tiny ||score|| and would be thrown far away.)

    alpha_i: score_sde_pytorch takes the discrete alpha_i = 1 - beta_i for VP and 1 otherwise,
    which is wrong for sub-VP and undefined for other schedules. Here, for any linear SDE,
    alpha_i = (m(t_i) / m(t_{i+1}))^2 = r_i^2, the squared one-step mean coefficient of the
    grid's next step: for VP, r_i^2 = exp(-int beta) = 1 - beta_i to first order in the step;
    for VE it is exactly 1; sub-VP, cosine and the user's linear SDE get the same natural scale.
    A non-linear SDE uses alpha_i = 1.
    """

    def prepare(self, sched: Schedule) -> None:
        self.alphas = [r * r for r in sched.r] if sched.linear else [1.0] * sched.n_steps

    def correct(
        self,
        x: Tensor,
        i: int,
        t: Tensor,
        score_fn: ScoreFn,
        noise: Callable[[Tensor], Tensor],
        advance: Advance,
    ) -> Tensor:
        alpha = self.alphas[i]
        n = x.shape[0]
        for _ in range(self.n_steps):
            grad = score_fn(x, t)
            z = noise(x)
            grad_norm = torch.linalg.vector_norm(grad.reshape(n, -1), dim=-1).mean()
            noise_norm = torch.linalg.vector_norm(z.reshape(n, -1), dim=-1).mean()
            # a 0-d device tensor: no sync; clamp keeps a zero score from dividing by zero
            step = 2.0 * alpha * (self.snr * noise_norm / grad_norm.clamp_min(1e-30)) ** 2
            x = advance(x + step * grad, torch.sqrt(2.0 * step), z, i)
        return x
