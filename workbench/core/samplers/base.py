"""What every sampler shares: the rows it yields, the base class, the registry, the defaults.

:data:`SAMPLERS` maps the config's ``sampler`` names to classes: a sampler is added by
registering its class, as :mod:`~workbench.core.samplers.pc` (``pc``, ``em``) and
:mod:`~workbench.core.samplers.ode` (``ode``) do, and :func:`build_sampler` finds it there.
(``workbench/config.py`` still repeats the names in its ``Choice`` for ``sample.sampler``.)
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from workbench.core.registry import Registry
from workbench.core.sde import SDE, LinearSDE
from workbench.errors import ConfigError

__all__ = [
    "AUTO_GRID",
    "ScoreFn",
    "SamplerStep",
    "SAMPLER_DEFAULTS",
    "Sampler",
    "SAMPLERS",
    "build_sampler",
]

ScoreFn = Callable[[Tensor, Tensor], Tensor]


class SamplerStep(NamedTuple):
    """One row of a trajectory: the solver step, its diffusion time, the states (batch, ...)."""

    step: int
    t: float
    x: Tensor


#: ``grid`` = this: the sampler's own :attr:`Sampler.default_grid`
AUTO_GRID = "auto"

#: the [sample] keys a sampler is built from, with the config's defaults
SAMPLER_DEFAULTS: dict[str, Any] = {
    "sampler": "em",
    "steps": 1000,
    "eps": 1e-3,
    "grid": AUTO_GRID,
    "rho": 7.0,
    "predictor": "reverse_diffusion",
    "corrector": "langevin",
    "snr": 0.16,
    "n_corrector_steps": 1,
    "integrator": "rk45",
    "rtol": 1e-5,
    "atol": 1e-5,
    "denoise": True,
    "eta": 0.0,
    "s_churn": 0.0,
    "s_tmin": 0.0,
    "s_tmax": 1e30,  # Karras's infinity, as a finite number a config can hold
    "s_noise": 1.0,
}


class Sampler(ABC):
    """Runs from x_T at t = T to samples at t = eps (then optionally denoised to t = 0).

    ``nfe`` counts score evaluations since the start of the current :meth:`run`.
    ``adaptive`` samplers choose their own steps (their rows differ from run to run).
    """

    config_name: ClassVar[str] = ""
    adaptive: ClassVar[bool] = False
    #: False: the run is a deterministic function of x_T (an ODE solver); its error against a
    #: tight-tolerance solution from the same x_T is then measurable (the study's pathwise error)
    stochastic: bool = True
    direction: ClassVar[str] = "reverse"
    #: written in m(t), s(t): refused for a non-linear SDE (by ``SDE.check_experiment`` too)
    linear_only: ClassVar[bool] = False
    #: the time grid ``grid = "auto"`` (the config's default) means for this sampler: the one
    #: its accuracy per NFE was checked on. A config that names a grid gets that grid, so a
    #: file that set one means what it meant before samplers had defaults of their own.
    default_grid: ClassVar[str] = "uniform"
    #: the grid that ran ("auto" resolved); "" for a sampler that builds none (adaptive rk45)
    grid: str = ""

    @classmethod
    def resolve_grid(cls, grid: str) -> str:
        """``grid`` itself, or this class's :attr:`default_grid` for ``"auto"``."""
        return cls.default_grid if grid == AUTO_GRID else grid

    def _use_grid(self, grid: str) -> str:
        self.grid = self.resolve_grid(grid)
        return self.grid

    def __init__(
        self, sde: SDE, score_model: nn.Module | ScoreFn, *, eps: float = 1e-3, denoise: bool = True
    ) -> None:
        if not 0 < eps < sde.T:
            raise ConfigError("eps", f"must be > 0 and < T ({sde.T:g}), got {eps!r}")
        if denoise and not isinstance(sde, LinearSDE):
            raise ConfigError(
                "denoise",
                f"the final denoising step (Tweedie's formula) needs a linear SDE; "
                f"{sde.describe()} is not: set denoise = false",
            )
        self.sde = sde
        self.score_model = score_model
        self.eps = float(eps)
        self.denoise = bool(denoise)
        self.nfe = 0
        # m(eps), s(eps) as host floats, worked out once: the run itself reads nothing back
        self._tweedie = (1.0, 0.0)
        if isinstance(sde, LinearSDE):
            m, s = sde.marginal_coeffs(torch.tensor(self.eps, dtype=torch.float64))
            self._tweedie = (float(m), float(s))

    #: the [sample] keys the constructor takes, by the same names
    param_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_params(
        cls, sde: SDE, score_model: nn.Module | ScoreFn, params: Mapping[str, Any]
    ) -> Sampler:
        """Build from the [sample] keys named by :attr:`param_keys` (missing ones take
        :data:`SAMPLER_DEFAULTS`)."""
        p = _merged(params)
        return cls(sde, score_model, **{k: p[k] for k in cls.param_keys})

    @property
    def n_steps(self) -> int | None:
        """Solver steps from T to eps, None for an adaptive sampler."""
        return None

    def _score(self, x: Tensor, t: Tensor) -> Tensor:
        # no_grad per call rather than around the loop: grad mode set inside a generator would
        # leak into the caller's code between two yields
        self.nfe += 1
        with torch.no_grad():
            return self.score_model(x, t)

    def _denoise(self, x: Tensor, t_eps: Tensor) -> Tensor:
        """Tweedie's formula at eps: E[x_0 | x_eps] = (x + s(eps)^2 score(x, eps)) / m(eps)
        (Efron 2011; the noise-removal step of Song et al. 2021 with the exact posterior mean)."""
        m, s = self._tweedie
        return (x + (s * s) * self._score(x, t_eps)) / m

    @abstractmethod
    def run(self, x_T: Tensor, generator: torch.Generator | None = None) -> Iterator[SamplerStep]:
        """Yield step 0 (x_T at T), every solver step, and last the final samples."""

    def _for_chunk(self, rows: slice, batch_ndim: int) -> Sampler:
        """An independent copy for ``rows`` of a batch of states with ``batch_ndim`` axes
        (its own ``nfe``; the model and the SDE are shared)."""
        return copy.copy(self)

    def with_score_model(self, score_model: nn.Module | ScoreFn) -> Sampler:
        """A copy that evaluates ``score_model`` instead (a fast path of the same model)."""
        other = copy.copy(self)
        other.score_model = score_model
        return other


SAMPLERS: Registry[type[Sampler]] = Registry("sampler", key="sampler")


def _noise(generator: torch.Generator | None) -> Callable[[Tensor], Tensor]:
    def draw(x: Tensor) -> Tensor:
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)

    return draw


def _merged(params: Mapping[str, Any]) -> dict[str, Any]:
    return {**SAMPLER_DEFAULTS, **{k: v for k, v in params.items() if k in SAMPLER_DEFAULTS}}


def build_sampler(
    sde: SDE, score_model: nn.Module | ScoreFn, params: Mapping[str, Any] | None = None
) -> Sampler:
    """The sampler named by ``params["sampler"]``, built from the [sample] keys.

    Keys the samplers do not use (``n``, ``record_every``, ``seed``, ...) are ignored; missing
    ones take :data:`SAMPLER_DEFAULTS` (the config's defaults). Bad values raise
    :class:`ConfigError` with the key unprefixed (the caller adds ``sample.``).
    """
    p = _merged(params or {})
    return SAMPLERS.get(p["sampler"]).from_params(sde, score_model, p)
