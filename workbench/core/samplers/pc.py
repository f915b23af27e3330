"""The predictor-corrector loop (Song et al. 2021, Alg. 1) and Euler-Maruyama, its special case.

The loop works out every coefficient on the host before it starts (:class:`Schedule`) and then
does a few tensor operations per step with no host synchronisation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from workbench.core.samplers.base import AUTO_GRID, SAMPLERS, Sampler, SamplerStep, ScoreFn, _noise
from workbench.core.samplers.correctors import CORRECTORS
from workbench.core.samplers.grids import Schedule, time_grid
from workbench.core.samplers.predictors import PREDICTORS
from workbench.core.sde import SDE
from workbench.errors import ConfigError

if TYPE_CHECKING:
    from workbench.core.samplers.guides import Guide

__all__ = ["PCSampler", "EulerMaruyamaSampler"]


@SAMPLERS.register("pc")
class PCSampler(Sampler):
    """Predictor–corrector sampling (Song et al. 2021, Alg. 1; score_sde_pytorch's pc_sampler).

    At each grid time t_i (i = 0 .. N-1): the corrector's ``n_corrector_steps`` Langevin steps
    at t_i, then the predictor's step to t_{i+1}; each costs one score evaluation. Then, if
    ``denoise``, Tweedie's formula at eps. NFE = N (1 + n_corrector_steps) + denoise.
    """

    def __init__(
        self,
        sde: SDE,
        score_model: nn.Module | ScoreFn,
        *,
        steps: int = 1000,
        eps: float = 1e-3,
        grid: str = AUTO_GRID,
        rho: float = 7.0,
        predictor: str = "reverse_diffusion",
        corrector: str = "langevin",
        snr: float = 0.16,
        n_corrector_steps: int = 1,
        denoise: bool = True,
    ) -> None:
        super().__init__(sde, score_model, eps=eps, denoise=denoise)
        if not snr > 0:
            raise ConfigError("snr", f"must be > 0, got {snr!r}")
        if not isinstance(n_corrector_steps, int) or n_corrector_steps < 0:
            raise ConfigError(
                "n_corrector_steps", f"must be an integer >= 0, got {n_corrector_steps!r}"
            )
        self.times = time_grid(self._use_grid(grid), steps, sde.T, eps, rho, sde)
        self.predictor = PREDICTORS.get(predictor)(sde)
        self.corrector = CORRECTORS.get(corrector)(sde, snr, n_corrector_steps)
        self.schedule = Schedule(sde, self.times)
        self.predictor.prepare(self.schedule)
        self.corrector.prepare(self.schedule)

    param_keys: ClassVar[tuple[str, ...]] = (
        "steps",
        "eps",
        "grid",
        "rho",
        "predictor",
        "corrector",
        "snr",
        "n_corrector_steps",
        "denoise",
    )

    @property
    def n_steps(self) -> int:
        return self.schedule.n_steps

    def run(self, x_T: Tensor, generator: torch.Generator | None = None) -> Iterator[SamplerStep]:
        return self._run(x_T, generator, None)

    def _run(
        self, x_T: Tensor, generator: torch.Generator | None, guide: Guide | None
    ) -> Iterator[SamplerStep]:
        self.nfe = 0
        sc = self.schedule
        n = sc.n_steps
        t_dev = sc.device_times(x_T)
        noise = _noise(generator)
        if guide is None:

            def advance(mean: Tensor, std: float | Tensor, z: Tensor, k: int) -> Tensor:
                if isinstance(std, float):  # one fused pass, no scaled copy of z
                    return torch.add(mean, z, alpha=std)
                return mean + std * z

            x = x_T
        else:
            advance = guide.advance
            x = guide.start(x_T, sc, generator)
        yield SamplerStep(0, sc.times[0], x)
        for i in range(n):
            t = t_dev[i]
            x = self.corrector.correct(x, i, t, self._score, noise, advance)
            mean, std = self.predictor.step(x, i, t, self._score(x, t))
            x = advance(mean, std, noise(x), i + 1)
            if guide is not None and i == n - 1 and not self.denoise:
                x = guide.finish(x, exact=False)
            yield SamplerStep(i + 1, sc.times[i + 1], x)
        if self.denoise:
            x = self._denoise(x, t_dev[-1])
            if guide is not None:
                x = guide.finish(x, exact=True)
            yield SamplerStep(n + 1, 0.0, x)


@SAMPLERS.register("em")
class EulerMaruyamaSampler(PCSampler):
    """Euler–Maruyama on the reverse SDE: the ``pc`` loop with predictor ``euler_maruyama`` and
    no corrector (score_sde_pytorch's ``euler_maruyama`` + ``none``). NFE = N + denoise."""

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
        **_: Any,
    ) -> None:
        super().__init__(
            sde,
            score_model,
            steps=steps,
            eps=eps,
            grid=grid,
            rho=rho,
            predictor="euler_maruyama",
            corrector="none",
            denoise=denoise,
        )

    param_keys = ("steps", "eps", "grid", "rho", "denoise")
