"""The probability-flow ODE sampler, on an integrator of :mod:`workbench.core.odeint`."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from workbench.core.odeint import METHODS, integrate
from workbench.core.samplers.base import AUTO_GRID, SAMPLERS, Sampler, SamplerStep, ScoreFn
from workbench.core.samplers.grids import time_grid
from workbench.core.sde import SDE
from workbench.errors import ConfigError

__all__ = ["ODESampler"]


@SAMPLERS.register("ode")
class ODESampler(Sampler):
    """The probability-flow ODE dx/dt = f(x, t) - 1/2 g(t)^2 score(x, t) (Song et al. 2021,
    eq. 13) from T to eps: deterministic given x_T, so all randomness is in the prior draw.

    ``integrator``: ``euler``, ``heun`` (Karras et al. 2022's second-order choice) or ``rk4``
    over the time grid, NFE = (1, 2, 4) x steps; or ``rk45``, adaptive Dormand–Prince with
    ``rtol``/``atol`` (score_sde_pytorch uses scipy's RK45 with 1e-5 for both), which yields
    every accepted step. ``denoise`` adds Tweedie's formula at eps, as for the SDE samplers.
    """

    stochastic = False

    def __init__(
        self,
        sde: SDE,
        score_model: nn.Module | ScoreFn,
        *,
        integrator: str = "rk45",
        steps: int = 1000,
        eps: float = 1e-3,
        grid: str = AUTO_GRID,
        rho: float = 7.0,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        denoise: bool = True,
    ) -> None:
        super().__init__(sde, score_model, eps=eps, denoise=denoise)
        METHODS.get(integrator)  # an unknown name fails here, naming the key
        if not (rtol > 0 and atol > 0):
            raise ConfigError("rtol" if not rtol > 0 else "atol", "must be > 0")
        self.integrator = integrator
        self.rtol, self.atol = float(rtol), float(atol)
        if integrator == "rk45":
            self.times = torch.tensor([sde.T, self.eps], dtype=torch.float64)
        else:
            self.times = time_grid(self._use_grid(grid), steps, sde.T, eps, rho, sde)
        self._time_list: list[float] = self.times.tolist()

    param_keys = (
        "integrator",
        "steps",
        "eps",
        "grid",
        "rho",
        "rtol",
        "atol",
        "denoise",
    )

    @property
    def adaptive(self) -> bool:  # type: ignore[override]
        return self.integrator == "rk45"

    @property
    def n_steps(self) -> int | None:
        return None if self.adaptive else len(self.times) - 1

    def velocity(self, t: Tensor, x: Tensor) -> Tensor:
        """The probability-flow velocity, as the ODE solver calls it."""
        return self.sde.probability_flow_drift(x, t, self._score)

    def run(self, x_T: Tensor, generator: torch.Generator | None = None) -> Iterator[SamplerStep]:
        self.nfe = 0
        times = self._time_list
        yield SamplerStep(0, times[0], x_T)
        x, step = x_T, 0
        for row in integrate(
            self.velocity, x_T, times, self.integrator, rtol=self.rtol, atol=self.atol
        ):
            x, step = row.y, row.step
            yield SamplerStep(step, row.t, x)
        if self.denoise:
            t_eps = torch.full((), self.eps, dtype=x.dtype, device=x.device)
            yield SamplerStep(step + 1, 0.0, self._denoise(x, t_eps))
