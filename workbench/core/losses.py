"""Score-matching losses: denoising, sliced (plain and variance-reduced) and exact.

Every loss trains a score model s_theta(x, t) ~ grad_x log p_t(x) over diffusion times
t ~ U(eps, T) with a time weighting lambda(t) (Song et al. 2021, eq. 7):

    L(theta) = E_t [ lambda(t) E_{x_t ~ p_t} [ J_theta(x_t, t) ] ],

where J is one of

* **DSM** (denoising; Vincent 2011, the objective J_DSM): for linear SDEs
  x_t = m(t) x0 + s(t) z with z ~ N(0, I), grad log p_t(x_t | x0) = -z / s, and the
  per-sample objective is

      lambda(t) / s(t)^2 * 1/2 || s(t) s_theta(x_t, t) + z ||^2.

  It equals 1/2 lambda E || s_theta - grad log p_t ||^2 up to a constant free of theta
  (Vincent 2011). ``s * s_theta`` comes from ``model.sigma_score``, so a network that
  predicts the noise never has its output divided by a small s(t).
* **SSM** (sliced; Song, Garg, Shi & Ermon 2019): with random projections v, E[v v^T] = I,
  J = v^T (grad_x s_theta) v + 1/2 (v^T s_theta)^2, averaged over ``n_projections`` draws.
* **SSM-VR** (ibid., the variance-reduced form):
  J = v^T (grad_x s_theta) v + 1/2 ||s_theta||^2; the second term is taken exactly rather
  than by projection, which removes part of the variance.
* **ESM** (implicit/exact; Hyvärinen 2005, Theorem 1):
  J = tr(grad_x s_theta) + 1/2 ||s_theta||^2, the trace exact by one backward pass per
  dimension.

* **FM** (conditional flow matching; Lipman et al. 2023, Liu, Gong & Liu 2023): for linear
  SDEs, 1/2 || v_theta(x_t, t) - (m'(t) x0 + s'(t) z) ||^2 with v_theta = a x - 1/2 g^2 s_theta
  the model's probability-flow velocity. Since a x_t - m' x0 - s' z = -g^2/(2 s) z, the
  residual is -1/2 g^2 (s_theta + z/s), so FM is DSM with lambda(t) = g(t)^4 / 4 exactly;
  ``weighting`` is not used (the velocity error is weighted 1, as published).

SSM, SSM-VR and ESM equal 1/2 E ||s_theta - grad log p_t||^2 up to a constant (Hyvärinen 2005,
Theorem 1; Song et al. 2019) and need only samples x_t, not the kernel p(x_t | x0): they
obtain x_t from :meth:`Loss.noised`, which is exact for linear SDEs and an Euler–Maruyama
simulation otherwise.

Weightings lambda(t): ``sigma2`` = s(t)^2 (Song et al. 2021: lambda proportional to
1/E||grad log p(x_t|x0)||^2), ``likelihood`` = g(t)^2, which makes the DSM loss a bound on the
negative log-likelihood (Song, Durkan, Murray & Ermon 2021, "Maximum likelihood training of
score-based diffusion models", Theorem 1), and ``none`` = 1.

With ``importance_sampling`` (likelihood weighting only) t is drawn from q(t) proportional to
g(t)^2 / s(t)^2 instead of uniformly, and each sample is weighted by
lambda(t) / ((T - eps) q(t)) (the variance reduction of Song, Durkan, Murray & Ermon 2021):
the expectation is unchanged, and the 1/t blow-up of g^2/s^2 near t = 0 no longer dominates
the variance.

Randomness (t, z, projections, simulation increments) comes from the ``generator`` passed in,
so a fixed seed reproduces a loss bit for bit. Nothing reads values back to the host, so the
trainer decides when to synchronise.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from workbench.core.params import Bool, Choice, Float, Int, Param, validate_params
from workbench.core.registry import Registry
from workbench.core.sde import SDE, LinearSDE, broadcast_time
from workbench.errors import ConfigError

__all__ = [
    "Loss",
    "DenoisingScoreMatching",
    "SlicedScoreMatching",
    "SlicedScoreMatchingVR",
    "ExactScoreMatching",
    "FlowMatching",
    "ScoreModelLike",
    "Weighting",
    "WEIGHTINGS",
    "PROJECTIONS",
    "LOSSES",
    "LOSS_KIND",
    "LOSS_PARAMS",
    "ESM_MAX_DIM",
    "build_loss",
    "simulate_forward",
]


class ScoreModelLike(Protocol):
    """What a loss asks of a model: ``model(x, t)`` is the score, ``sigma_score`` is s(t) times it.

    ``t`` has shape (batch,); ``x`` has shape (batch, *sample_shape), and so do both outputs.
    """

    def __call__(self, x: Tensor, t: Tensor) -> Tensor: ...

    def sigma_score(self, x: Tensor, t: Tensor) -> Tensor: ...


# --------------------------------------------------------------------------------------------
# Weightings lambda(t)


@dataclass(frozen=True)
class Weighting:
    """lambda(t) as a function of the SDE and a batch of times.

    ``needs_std``: the weighting is defined through s(t), which only linear SDEs have.
    """

    fn: Callable[[SDE, Tensor], Tensor]
    needs_std: bool
    help: str


def _std(sde: SDE, t: Tensor) -> Tensor:
    return sde.std(t)  # type: ignore[attr-defined]


WEIGHTINGS: dict[str, Weighting] = {
    "sigma2": Weighting(lambda sde, t: _std(sde, t) ** 2, True, "s(t)^2"),
    "likelihood": Weighting(lambda sde, t: sde.diffusion(t) ** 2, False, "g(t)^2"),
    "none": Weighting(lambda sde, t: torch.ones_like(t), False, "1"),
}


# --------------------------------------------------------------------------------------------
# Projections for the sliced losses: any law with E[v v^T] = I gives an unbiased slice.


def _rademacher(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    # Among projections with i.i.d. unit-variance entries, Rademacher ones give v^T A v the
    # least variance (Hutchinson 1990), which is why they are the default.
    bits = torch.randint(0, 2, shape, generator=generator, device=like.device, dtype=like.dtype)
    return 2 * bits - 1


def _gaussian(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


PROJECTIONS: dict[str, Callable[[tuple[int, ...], torch.Generator | None, Tensor], Tensor]] = {
    "rademacher": _rademacher,
    "gaussian": _gaussian,
}

# Exact score matching takes one backward pass per dimension; past this it is the wrong tool.
ESM_MAX_DIM = 64

#: The ``[loss]`` keys every loss takes, with their defaults and ranges: the one declaration
#: (the config's ``[loss]`` section is :data:`LOSS_KIND` followed by these).
LOSS_PARAMS: tuple[Param, ...] = (
    Param(
        "weighting",
        Choice(WEIGHTINGS.keys),
        "sigma2",
        "lambda(t): s(t)^2, g(t)^2 (likelihood weighting) or 1",
    ),
    # (0, T) is what the loss needs; T belongs to the SDE, so the upper end is checked where the
    # SDE is known (the experiment config and Loss itself)
    Param("eps", Float(0.0, None, low_open=True), 1e-5, "smallest diffusion time trained on"),
    # the sliced losses copy the batch once per projection: 256 copies is already far past the
    # point of diminishing variance, and a larger count would only exhaust memory
    # ``extra["when"]``: the keys and values under which a parameter is used (a form shows it
    # only then; the config accepts and keeps it either way)
    Param(
        "n_projections",
        Int(1, 256),
        1,
        "random projections per sample (sliced losses)",
        {"when": {"kind": ("ssm", "ssm_vr")}},
    ),
    Param(
        "projection",
        Choice(PROJECTIONS.keys),
        "rademacher",
        "distribution of the projections (sliced losses)",
        {"when": {"kind": ("ssm", "ssm_vr")}},
    ),
    Param(
        "importance_sampling",
        Bool(),
        False,
        "draw t from q(t) ~ g^2/s^2 (likelihood weighting only)",
        {"when": {"weighting": ("likelihood",)}},
    ),
)


def _flat_sum(x: Tensor) -> Tensor:
    """Sum over every axis but the batch axis."""
    return x.reshape(x.shape[0], -1).sum(-1)


def _repeat_batch(x: Tensor, times: int) -> Tensor:
    return x.repeat(times, *([1] * (x.ndim - 1)))


def simulate_forward(
    sde: SDE,
    x0: Tensor,
    t: Tensor,
    noise: Tensor,
    steps: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A draw of x_t given x0 by ``steps`` Euler–Maruyama steps of dX = f dt + g dW on [0, t].

    Each sample has its own t, so its own step h = t / steps. ``noise`` is the standard normal
    increment of the last step (the others come from ``generator``), which keeps the pair
    (x0, noise) meaningful for SDEs without a closed-form kernel. The weak error is O(h).
    """
    h = broadcast_time(t / steps, x0)
    root_h = torch.sqrt(h)
    x = x0
    for k in range(steps):
        tau = t * (k / steps)
        dw = (
            noise
            if k == steps - 1
            else torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        )
        g = broadcast_time(sde.diffusion(tau), x0)
        x = x + sde.drift(x, tau) * h + g * root_h * dw
    return x


# --------------------------------------------------------------------------------------------
class _TimeProposal:
    """q(t) proportional to g(t)^2 / s(t)^2 on [eps, T], tabulated for inverse-CDF sampling.

    The density is tabulated on a grid that is log-spaced near eps (g^2/s^2 ~ 1/t there, smooth
    in log t) merged with a uniform grid (for the rest); the CDF is the trapezoid rule's, and
    inverting it with linear interpolation draws t from the piecewise-constant density
    q_tab(t) = cell integral / (cell width Z). Importance weights use that same q_tab, so the
    weighted loss is exactly unbiased whatever the grid; q_tab is within ~1e-3 of q.
    """

    n_grid: ClassVar[int] = 4096

    def __init__(self, sde: SDE, eps: float) -> None:
        lo, hi = float(eps), float(sde.T)
        grid = torch.cat(
            [
                torch.logspace(math.log10(lo), math.log10(hi), self.n_grid, dtype=torch.float64),
                torch.linspace(lo, hi, self.n_grid, dtype=torch.float64),
            ]
        )
        grid = torch.unique(grid.clamp(lo, hi))  # sorted, end points exactly lo and hi
        grid[0], grid[-1] = lo, hi
        dens = sde.diffusion(grid) ** 2 / _std(sde, grid) ** 2
        if not bool(torch.isfinite(dens).all()):
            raise ConfigError(
                "importance_sampling",
                f"g(t)^2 / s(t)^2 is not finite on [eps, T] = [{lo:g}, {hi:g}]",
            )
        cell = 0.5 * (dens[1:] + dens[:-1]) * (grid[1:] - grid[:-1])
        cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(cell, 0)])
        self.Z = float(cdf[-1])
        if not self.Z > 0:
            raise ConfigError("importance_sampling", "g(t) is zero on all of [eps, T]")
        self.lo, self.hi = lo, hi
        self.grid = grid
        self.cdf = cdf / self.Z
        # q_tab on each cell; a cell of zero mass gets a tiny density only to avoid 0/0 in
        # the weights: no sample ever lands in it.
        self.cell_density = (cell / self.Z / (grid[1:] - grid[:-1])).clamp_min(1e-300)
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor, Tensor]] = {}

    def _tables(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        # Searching a float16 grid would lose the structure near eps; float32 is plenty.
        dtype = torch.promote_types(dtype, torch.float32)
        key = (device, dtype)
        if key not in self._cache:
            self._cache[key] = (
                self.grid.to(device=device, dtype=dtype),
                self.cdf.to(device=device, dtype=dtype),
                self.cell_density.to(device=device, dtype=dtype),
            )
        return self._cache[key]

    def sample(
        self,
        batch: int,
        device: torch.device,
        dtype: torch.dtype,
        generator: torch.Generator | None,
    ) -> Tensor:
        grid, cdf, _ = self._tables(device, dtype)
        u = torch.rand(batch, generator=generator, device=device, dtype=grid.dtype)
        idx = (torch.searchsorted(cdf, u, right=True) - 1).clamp(0, grid.shape[0] - 2)
        c0, c1 = cdf[idx], cdf[idx + 1]
        frac = ((u - c0) / (c1 - c0).clamp_min(torch.finfo(grid.dtype).tiny)).clamp(0.0, 1.0)
        t = grid[idx] + frac * (grid[idx + 1] - grid[idx])
        return t.to(dtype)

    def density(self, t: Tensor) -> Tensor:
        """q_tab(t), the density the samples actually follow."""
        grid, _, dens = self._tables(t.device, t.dtype)
        idx = (torch.searchsorted(grid, t.to(grid.dtype), right=True) - 1).clamp(
            0, grid.shape[0] - 2
        )
        return dens[idx].to(t.dtype)


# --------------------------------------------------------------------------------------------
class Loss(ABC):
    """A score-matching objective; ``loss(model, x0, generator)`` is the batch mean.

    Every loss takes every ``[loss]`` key (the config's keys are fixed); a key a loss has no
    use for (``n_projections`` for DSM) is accepted and ignored.
    """

    params: ClassVar[tuple[Param, ...]] = LOSS_PARAMS
    config_name: ClassVar[str] = ""
    #: settings of the :class:`~workbench.core.simulation.SimulationCache` that non-linear
    #: SDEs train from (paths, grid times, refresh period in calls, refreshed fraction)
    cache_options: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        sde: SDE,
        *,
        weighting: str,
        eps: float,
        n_projections: int,
        projection: str,
        importance_sampling: bool,
    ) -> None:
        # no defaults here: they are LOSS_PARAMS', filled in by build_loss
        if weighting not in WEIGHTINGS:
            raise ConfigError("weighting", f"must be one of {', '.join(map(repr, WEIGHTINGS))}")
        if projection not in PROJECTIONS:
            raise ConfigError("projection", f"must be one of {', '.join(map(repr, PROJECTIONS))}")
        if not 0 < eps < sde.T:
            raise ConfigError("eps", f"must be in (0, T) = (0, {sde.T:g}), got {eps:g}")
        if n_projections < 1:
            raise ConfigError("n_projections", f"must be >= 1, got {n_projections}")
        linear = isinstance(sde, LinearSDE)
        if WEIGHTINGS[weighting].needs_std and not linear:
            raise ConfigError(
                "weighting",
                f"{weighting!r} weighting is lambda(t) = s(t)^2, the variance of p(x_t|x_0), "
                f"which {sde.describe()} does not have in closed form; use 'likelihood' or 'none'",
            )
        if importance_sampling and weighting != "likelihood":
            raise ConfigError(
                "importance_sampling",
                f"importance sampling of t is for the 'likelihood' weighting (q(t) ~ g^2/s^2); "
                f"with {weighting!r} weighting set it to false",
            )
        if importance_sampling and not linear:
            raise ConfigError(
                "importance_sampling",
                f"q(t) ~ g(t)^2/s(t)^2 needs s(t), which {sde.describe()} does not have in "
                "closed form; set it to false",
            )
        self.sde = sde
        self.weighting = weighting
        self.eps = float(eps)
        self.n_projections = int(n_projections)
        self.projection = projection
        self.importance_sampling = bool(importance_sampling)
        self._weight_fn = WEIGHTINGS[weighting].fn
        self._project = PROJECTIONS[projection]
        self.proposal = _TimeProposal(sde, self.eps) if importance_sampling else None
        self.cache: Any = None  # the SimulationCache of a non-linear SDE, made on first use

    # randomness -----------------------------------------------------------------------------
    def sample_time(
        self,
        batch: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """t for one batch: U(eps, T), or q(t) ~ g^2/s^2 with importance sampling."""
        device = torch.device(device) if device is not None else torch.device("cpu")
        dtype = dtype or torch.get_default_dtype()
        if self.proposal is not None:
            return self.proposal.sample(batch, device, dtype, generator)
        u = torch.rand(batch, generator=generator, device=device, dtype=dtype)
        return self.eps + (self.sde.T - self.eps) * u

    def projections(
        self, shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Random vectors v with E[v v^T] = I, of the configured law, shaped ``shape``."""
        return self._project(tuple(shape), generator, like)

    # time weighting -------------------------------------------------------------------------
    def weight(self, t: Tensor) -> Tensor:
        """lambda(t)."""
        return self._weight_fn(self.sde, t)

    def time_weight(self, t: Tensor) -> Tensor:
        """lambda(t) times the importance weight 1 / ((T - eps) q(t)) when t ~ q.

        Then E_{t~q}[time_weight(t) J(t)] = E_{t~U(eps,T)}[lambda(t) J(t)], the uniform loss.
        """
        w = self.weight(t)
        if self.proposal is not None:
            w = w / ((self.sde.T - self.eps) * self.proposal.density(t))
        return w

    # the pair (x_t, t) -------------------------------------------------------------------------
    def noised(
        self, x0: Tensor, t: Tensor, noise: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """A draw of x_t ~ p(x_t | x0): exact m x0 + s noise for linear SDEs, else simulated.

        A non-linear SDE draws from a :class:`~workbench.core.simulation.SimulationCache` of
        forward paths (made on the first call, refreshed from the batches' x0 as calls go): the
        result is a draw from p_t of the data law, not a path from this particular x0, which is
        all the sample-based losses (SSM, SSM-VR, ESM) need. Override this to train on x_t from
        elsewhere (a better simulator, stored paths).
        """
        if isinstance(self.sde, LinearSDE):
            return self.sde.perturb(x0, t, noise)
        if self.cache is None:
            from workbench.core.simulation import SimulationCache

            self.cache = SimulationCache(self.sde, **self.cache_options)
        return self.cache.draw(x0, t, noise, generator)

    # the loss -------------------------------------------------------------------------------
    @abstractmethod
    def per_sample(
        self,
        model: nn.Module | ScoreModelLike,
        x0: Tensor,
        t: Tensor,
        noise: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The weighted objective of each sample at fixed t and noise: shape (batch,).

        Its mean over t from :meth:`sample_time` and standard normal noise is the loss.
        """

    def __call__(
        self,
        model: nn.Module | ScoreModelLike,
        x0: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The batch-mean loss with t, noise (and projections) drawn from ``generator``."""
        t = self.sample_time(x0.shape[0], x0.device, x0.dtype, generator)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return self.per_sample(model, x0, t, noise, generator).mean()

    def describe(self) -> str:
        extra = ", importance-sampled t" if self.importance_sampling else ""
        return f"{self.config_name} ({self.weighting} weighting{extra})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(weighting={self.weighting!r}, eps={self.eps:g}, "
            f"n_projections={self.n_projections}, projection={self.projection!r}, "
            f"importance_sampling={self.importance_sampling})"
        )


LOSSES: Registry[type[Loss]] = Registry("loss", key="kind")

#: ``[loss] kind``: its choices are whatever :data:`LOSSES` holds when asked
LOSS_KIND = Param(
    "kind",
    Choice(LOSSES.names),
    "dsm",
    "score matching: denoising, sliced, sliced variance-reduced, exact; flow matching",
)


def _sigma_score(model: Any, x: Tensor, t: Tensor, s: Tensor) -> Tensor:
    """s(t) * score, from the model's own stable form where it has one."""
    sigma_score = getattr(model, "sigma_score", None)
    if sigma_score is not None:
        return sigma_score(x, t)
    return broadcast_time(s, x) * model(x, t)


@LOSSES.register("dsm")
class DenoisingScoreMatching(Loss):
    """lambda(t)/s(t)^2 * 1/2 ||s(t) s_theta(x_t, t) + z||^2, x_t = m(t) x0 + s(t) z.

    Vincent (2011), J_DSM, in the continuous-time form of Song et al. (2021), eq. 7. Needs
    the Gaussian kernel p(x_t | x0) in closed form, so only linear SDEs.
    """

    def __init__(self, sde: SDE, **kw: Any) -> None:
        if not isinstance(sde, LinearSDE):
            raise ConfigError(
                "kind",
                "denoising score matching needs the transition density p(x_t|x_0) in closed "
                f"form, which only linear SDEs have ({sde.describe()} is not linear); use "
                "'ssm' or 'ssm_vr' (or 'esm' in low dimension)",
            )
        super().__init__(sde, **kw)

    def per_sample(
        self,
        model: nn.Module | ScoreModelLike,
        x0: Tensor,
        t: Tensor,
        noise: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        s = self.sde.std(t)  # type: ignore[attr-defined]
        x_t = self.noised(x0, t, noise, generator)
        residual = _sigma_score(model, x_t, t, s) + noise
        return self.time_weight(t) / (s * s) * 0.5 * _flat_sum(residual * residual)


def _velocity(model: Any, x: Tensor, t: Tensor, sde: LinearSDE) -> Tensor:
    """The model's probability-flow velocity, from its own stable form where it has one."""
    velocity = getattr(model, "velocity", None)
    if velocity is not None:
        return velocity(x, t)
    return sde.probability_flow_drift(x, t, model)


@LOSSES.register("fm")
class FlowMatching(Loss):
    """1/2 ||v_theta(x_t, t) - (m'(t) x0 + s'(t) z)||^2, x_t = m(t) x0 + s(t) z.

    Conditional flow matching (Lipman et al. 2023, eq. 9; for m = 1 - t, s = t the rectified
    flow of Liu, Gong & Liu 2023, whose target is z - x0). The minimiser over v_theta is the
    marginal velocity E[m' x0 + s' z | x_t] = a x - 1/2 g^2 grad log p_t, the probability-flow
    velocity, so the score follows exactly (the ``v`` output). The target's coefficients come
    from :meth:`LinearSDE.marginal_rates` (closed forms where the SDE has them), not from the
    difference a x_t - ..., which cancels badly where a is large (t near 1 on the rectified
    path). lambda(t) = 1 on the velocity error whatever ``weighting`` says (the objective as
    published; in score terms that is DSM with lambda = g^4/4); with importance sampling the
    draws of t are reweighted to this uniform-in-t objective.
    """

    def __init__(self, sde: SDE, **kw: Any) -> None:
        if not isinstance(sde, LinearSDE):
            raise ConfigError(
                "kind",
                "flow matching regresses the conditional velocity of x_t = m(t) x0 + s(t) z, "
                f"which only linear SDEs have in closed form ({sde.describe()} is not linear); "
                "use 'ssm' or 'ssm_vr' (or 'esm' in low dimension)",
            )
        super().__init__(sde, **kw)

    def weight(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def target(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """The conditional velocity m'(t) x0 + s'(t) z."""
        dm, ds = self.sde.marginal_rates(t)  # type: ignore[attr-defined]
        return broadcast_time(dm, x0) * x0 + broadcast_time(ds, x0) * noise

    def per_sample(
        self,
        model: nn.Module | ScoreModelLike,
        x0: Tensor,
        t: Tensor,
        noise: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        x_t = self.noised(x0, t, noise, generator)
        residual = _velocity(model, x_t, t, self.sde) - self.target(x0, t, noise)  # type: ignore[arg-type]
        return self.time_weight(t) * 0.5 * _flat_sum(residual * residual)

    def describe(self) -> str:
        extra = ", importance-sampled t" if self.importance_sampling else ""
        return f"{self.config_name} (velocity error, unweighted{extra})"


class _GradientLoss(Loss):
    """Losses whose objective differentiates the score in x (SSM, SSM-VR, ESM).

    The input-gradients assume the model treats samples independently (no batch norm): the
    gradient of a batch sum is then every sample's own gradient.
    """

    def per_sample(
        self,
        model: nn.Module | ScoreModelLike,
        x0: Tensor,
        t: Tensor,
        noise: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        x_t = self.noised(x0, t, noise, generator).detach()
        # grad_x is needed even when the caller evaluates under no_grad (a validation loss).
        with torch.enable_grad():
            objective = self.objective(model, x_t, t, generator)
        return self.time_weight(t) * objective

    @abstractmethod
    def objective(
        self,
        model: nn.Module | ScoreModelLike,
        x_t: Tensor,
        t: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        """J(x_t, t) per sample, unweighted; x_t is detached."""


class _SlicedBase(_GradientLoss):
    #: whether 1/2 ||s||^2 is taken exactly (SSM-VR) or by projection, 1/2 (v^T s)^2 (SSM)
    variance_reduced: ClassVar[bool] = False

    def objective(
        self,
        model: nn.Module | ScoreModelLike,
        x_t: Tensor,
        t: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        n, p = x_t.shape[0], self.n_projections
        # One copy of the batch per projection, as in Song et al.'s reference code: one
        # backward pass for all projections instead of one per projection.
        x = _repeat_batch(x_t, p).requires_grad_(True)
        tt = t.repeat(p)
        score = model(x, tt)
        v = self.projections(tuple(x.shape), x, generator)
        sv = _flat_sum(v * score)
        (grad_sv,) = torch.autograd.grad(sv.sum(), x, create_graph=True)
        vjv = _flat_sum(v * grad_sv)
        half_sq = 0.5 * (_flat_sum(score * score) if self.variance_reduced else sv * sv)
        return (vjv + half_sq).reshape(p, n).mean(0)


@LOSSES.register("ssm")
class SlicedScoreMatching(_SlicedBase):
    """lambda(t) * mean_v [v^T grad_x(v^T s_theta) + 1/2 (v^T s_theta)^2].

    Song, Garg, Shi & Ermon (2019), "Sliced score matching" (the objective on noise-perturbed
    data, made continuous in t).
    """

    variance_reduced = False


@LOSSES.register("ssm_vr")
class SlicedScoreMatchingVR(_SlicedBase):
    """lambda(t) * [mean_v v^T grad_x(v^T s_theta) + 1/2 ||s_theta||^2].

    Song, Garg, Shi & Ermon (2019), SSM-VR: valid when E[v v^T] = I (Rademacher or Gaussian v).
    """

    variance_reduced = True


@LOSSES.register("esm")
class ExactScoreMatching(_GradientLoss):
    """lambda(t) * [tr(grad_x s_theta) + 1/2 ||s_theta||^2], the trace exact.

    Hyvärinen (2005), "Estimation of non-normalized statistical models by score matching",
    Theorem 1. The trace takes one backward pass per dimension, so data with more
    than ``ESM_MAX_DIM`` values per sample are refused.
    """

    def objective(
        self,
        model: nn.Module | ScoreModelLike,
        x_t: Tensor,
        t: Tensor,
        generator: torch.Generator | None,
    ) -> Tensor:
        n = x_t.shape[0]
        dim = x_t[0].numel() if x_t.ndim > 1 else 1
        if dim > ESM_MAX_DIM:
            raise ConfigError(
                "kind",
                "exact score matching needs one backward pass per dimension; the data have "
                f"{dim} dimensions; use 'ssm' or 'ssm_vr'",
            )
        x = x_t.clone().requires_grad_(True)
        score = model(x, t)
        flat = score.reshape(n, -1)
        trace = torch.zeros(n, dtype=flat.dtype, device=flat.device)
        for i in range(dim):
            (grad_i,) = torch.autograd.grad(flat[:, i].sum(), x, create_graph=True)
            trace = trace + grad_i.reshape(n, -1)[:, i]
        return trace + 0.5 * (flat * flat).sum(-1)


def build_loss(kind: str, params: Mapping[str, Any] | None, sde: SDE) -> Loss:
    """The loss named ``kind`` with the ``[loss]`` keys in ``params``, validated, for ``sde``.

    A ``kind`` key in ``params`` is ignored (``kind`` names the class). Errors are
    :class:`ConfigError` with the key unprefixed (the config adds ``loss.``).
    """
    cls = LOSSES.get(kind)
    given = {k: v for k, v in (params or {}).items() if k != "kind"}
    values = validate_params(cls.params, given, what=f"loss {kind!r}")
    return cls(sde, **values)
