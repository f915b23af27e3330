"""Reverse-time samplers: from the prior p_T back to the data, and the forward process itself.

Sampling solves, from t = T down to a small t = eps, either the reverse-time SDE
(Anderson 1982; Song et al. 2021, eq. 6)

    dX = [f(X, t) - g(t)^2 grad log p_t(X)] dt + g(t) dW_bar,

or the probability-flow ODE (Song et al. 2021, eq. 13), whose solutions have the same
marginals p_t,

    dx/dt = f(x, t) - 1/2 g(t)^2 grad log p_t(x),

with the score grad log p_t given by a score model ``model(x, t)``. The samplers here follow
score_sde_pytorch's ``sampling.py`` (predictors, correctors and the PC loop of Song et al.
2021, Alg. 1-3) and are written in the spirit of k-diffusion: a time grid is computed once,
every per-step coefficient is a plain float worked out on the host in float64 from that grid
before the loop, and the loop itself is a few tensor operations per step with no host
synchronisation (no ``.item()``; the adaptive ODE solver reads one number per step).

Registered samplers (:data:`SAMPLERS`, config key ``sampler``):

* ``em``  Euler–Maruyama on the reverse SDE (the ``pc`` loop with predictor ``euler_maruyama``
  and no corrector);
* ``pc``  predictor–corrector: a predictor (:data:`PREDICTORS`: ``euler_maruyama``,
  ``reverse_diffusion``, ``ancestral``) and a corrector (:data:`CORRECTORS`: ``langevin``,
  ``none``) per step;
* ``ode`` the probability-flow ODE with an integrator of :mod:`workbench.core.odeint`
  (``euler``, ``heun``, ``rk4`` on the time grid, or adaptive ``rk45``).

A sampler's :meth:`Sampler.run` is a generator of :class:`SamplerStep` rows: step 0 is the prior
draw at t = T, then one row per solver step, and last the final samples (denoised by Tweedie's
formula at t = eps and reported at t = 0, or the last step's state at t = eps when
``denoise`` is off). ``sampler.nfe`` counts the score evaluations so far.

Time grids (:data:`TIME_GRIDS`, config key ``grid``) run from T down to eps in ``steps`` steps.
:func:`simulate_forward` runs the forward SDE from data, :class:`ImputationSampler` samples
conditionally on known coordinates (by the replacement of Song et al. 2021, App. I.2, or by
sequential Monte Carlo after Trippe et al. 2022), and :func:`sample` draws the prior and runs a
sampler, optionally in chunks.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from workbench.core.odeint import METHODS, integrate
from workbench.core.registry import Registry
from workbench.core.sde import SDE, LinearSDE, broadcast_time
from workbench.core.simulation import checked_times
from workbench.errors import ConfigError

__all__ = [
    "SamplerStep",
    "TIME_GRIDS",
    "time_grid",
    "Schedule",
    "PREDICTORS",
    "Predictor",
    "EulerMaruyamaPredictor",
    "ReverseDiffusionPredictor",
    "AncestralPredictor",
    "CORRECTORS",
    "Corrector",
    "LangevinCorrector",
    "NoneCorrector",
    "SAMPLERS",
    "Sampler",
    "PCSampler",
    "EulerMaruyamaSampler",
    "ODESampler",
    "ImputationSampler",
    "Guide",
    "ReplacementGuide",
    "SMCGuide",
    "IMPUTATION_METHODS",
    "SAMPLER_DEFAULTS",
    "build_sampler",
    "impute",
    "sample",
    "auto_sample_chunk",
    "simulate_forward",
]

ScoreFn = Callable[[Tensor, Tensor], Tensor]


class SamplerStep(NamedTuple):
    """One row of a trajectory: the solver step, its diffusion time, the states (batch, ...)."""

    step: int
    t: float
    x: Tensor


# --------------------------------------------------------------------------------------------
# time grids
# --------------------------------------------------------------------------------------------
TIME_GRIDS: Registry[Callable[..., Tensor]] = Registry("time grid", key="grid")


@TIME_GRIDS.register("uniform")
def uniform_grid(steps: int, T: float, eps: float, rho: float = 7.0) -> Tensor:
    """t_i = T + i/N (eps - T): equal steps (score_sde_pytorch's ``linspace(T, eps, N)``)."""
    return torch.linspace(T, eps, steps + 1, dtype=torch.float64)


@TIME_GRIDS.register("quadratic")
def quadratic_grid(steps: int, T: float, eps: float, rho: float = 7.0) -> Tensor:
    """t_i = eps + (T - eps)(1 - i/N)^2: steps shrink linearly towards eps, where p_t changes
    fastest (the quadratic schedule of DDIM, Song, Meng & Ermon 2021, here in continuous t)."""
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return eps + (T - eps) * u * u


@TIME_GRIDS.register("edm")
def edm_grid(steps: int, T: float, eps: float, rho: float = 7.0) -> Tensor:
    """Karras et al. (2022, eq. 5) applied to t: t_i = (T^(1/rho) + i/N (eps^(1/rho) -
    T^(1/rho)))^rho, i = 0..N. rho = 1 is the uniform grid; larger rho crowds steps near eps
    (EDM uses rho = 7 on sigma; for VE, sigma is monotone in t, so the idea carries over)."""
    i = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    a, b = T ** (1.0 / rho), eps ** (1.0 / rho)
    return (a + i * (b - a)) ** rho


def time_grid(kind: str, steps: int, T: float, eps: float, rho: float = 7.0) -> Tensor:
    """The ``steps + 1`` times (float64, decreasing) from exactly T to exactly eps."""
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError("steps", f"must be an integer >= 1, got {steps!r}")
    if not 0 < eps < T:
        raise ConfigError("eps", f"must be > 0 and < T ({T:g}), got {eps!r}")
    if not rho > 0:
        raise ConfigError("rho", f"must be > 0, got {rho!r}")
    grid = TIME_GRIDS.get(kind)(steps, float(T), float(eps), float(rho))
    # the end points exactly, whatever the rounding of the formula
    grid[0], grid[-1] = float(T), float(eps)
    return grid


class Schedule:
    """Per-step coefficients of a linear SDE on a decreasing grid t_0 = T > ... > t_N = eps.

    Everything is float64 on the host, then kept as Python floats: the sampling loop multiplies
    by them without any device work. For step i (t_i -> t_{i+1}):

    * ``r[i] = m(t_i) / m(t_{i+1})`` and ``G2[i] = s(t_i)^2 - r[i]^2 s(t_{i+1})^2``: the exact
      forward transition from t_{i+1} to t_i is x_{t_i} = r x_{t_{i+1}} + sqrt(G2) z;
    * ``a[i]``, ``g[i]``: the drift coefficient and the diffusion at t_i;
    * ``m[k]``, ``s[k]``: the marginal coefficients at every grid time.

    For a non-linear SDE only the times (and g) are filled in.
    """

    def __init__(self, sde: SDE, times: Tensor) -> None:
        times = times.to(torch.float64)
        self.times: list[float] = times.tolist()
        self.n_steps = len(self.times) - 1
        self.g: list[float] = sde.diffusion(times).to(torch.float64).tolist()
        self.linear = isinstance(sde, LinearSDE)
        if self.linear:
            log_m = sde.log_mean_coeff(times).to(torch.float64)  # type: ignore[attr-defined]
            s = sde.std(times).to(torch.float64)  # type: ignore[attr-defined]
            self.m: list[float] = torch.exp(log_m).tolist()
            self.s: list[float] = s.tolist()
            self.a: list[float] = sde.drift_coeff(times).to(torch.float64).tolist()  # type: ignore[attr-defined]
            log_r = log_m[:-1] - log_m[1:]
            r = torch.exp(log_r)
            self.r: list[float] = r.tolist()
            self.G2: list[float] = (s[:-1] ** 2 - r**2 * s[1:] ** 2).clamp_min(0.0).tolist()

    def device_times(self, like: Tensor) -> Tensor:
        """The grid on ``like``'s device and dtype, copied once; indexing it makes 0-d views."""
        return torch.tensor(self.times, dtype=like.dtype).to(like.device)


# --------------------------------------------------------------------------------------------
# predictors and correctors
# --------------------------------------------------------------------------------------------
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
        f = sc.a[i] * x if sc.linear else self.sde.drift(x, t)
        return x + (f - (g * g) * score) * dt, g * math.sqrt(-dt)


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

    def correct(self, x, i, t, score_fn, noise, advance):  # type: ignore[no-untyped-def]
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

    def correct(self, x, i, t, score_fn, noise, advance):  # type: ignore[no-untyped-def]
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


# --------------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------------
#: the [sample] keys a sampler is built from, with the config's defaults
SAMPLER_DEFAULTS: dict[str, Any] = {
    "sampler": "em",
    "steps": 1000,
    "eps": 1e-3,
    "grid": "uniform",
    "rho": 7.0,
    "predictor": "reverse_diffusion",
    "corrector": "langevin",
    "snr": 0.16,
    "n_corrector_steps": 1,
    "integrator": "rk45",
    "rtol": 1e-5,
    "atol": 1e-5,
    "denoise": True,
}


class Sampler(ABC):
    """Runs from x_T at t = T to samples at t = eps (then optionally denoised to t = 0).

    ``nfe`` counts score evaluations since the start of the current :meth:`run`.
    ``adaptive`` samplers choose their own steps (their rows differ from run to run).
    """

    config_name: ClassVar[str] = ""
    adaptive: ClassVar[bool] = False
    direction: ClassVar[str] = "reverse"

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

    @classmethod
    @abstractmethod
    def from_params(
        cls, sde: SDE, score_model: nn.Module | ScoreFn, params: Mapping[str, Any]
    ) -> Sampler:
        """Build from the [sample] keys (missing ones take :data:`SAMPLER_DEFAULTS`)."""

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
        grid: str = "uniform",
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
        self.times = time_grid(grid, steps, sde.T, eps, rho)
        self.predictor = PREDICTORS.get(predictor)(sde)
        self.corrector = CORRECTORS.get(corrector)(sde, snr, n_corrector_steps)
        self.schedule = Schedule(sde, self.times)
        self.predictor.prepare(self.schedule)
        self.corrector.prepare(self.schedule)

    @classmethod
    def from_params(
        cls, sde: SDE, score_model: nn.Module | ScoreFn, params: Mapping[str, Any]
    ) -> PCSampler:
        p = _merged(params)
        return cls(
            sde,
            score_model,
            steps=p["steps"],
            eps=p["eps"],
            grid=p["grid"],
            rho=p["rho"],
            predictor=p["predictor"],
            corrector=p["corrector"],
            snr=p["snr"],
            n_corrector_steps=p["n_corrector_steps"],
            denoise=p["denoise"],
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
        grid: str = "uniform",
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

    @classmethod
    def from_params(
        cls, sde: SDE, score_model: nn.Module | ScoreFn, params: Mapping[str, Any]
    ) -> EulerMaruyamaSampler:
        p = _merged(params)
        return cls(
            sde,
            score_model,
            steps=p["steps"],
            eps=p["eps"],
            grid=p["grid"],
            rho=p["rho"],
            denoise=p["denoise"],
        )


@SAMPLERS.register("ode")
class ODESampler(Sampler):
    """The probability-flow ODE dx/dt = f(x, t) - 1/2 g(t)^2 score(x, t) (Song et al. 2021,
    eq. 13) from T to eps: deterministic given x_T, so all randomness is in the prior draw.

    ``integrator``: ``euler``, ``heun`` (Karras et al. 2022's second-order choice) or ``rk4``
    over the time grid, NFE = (1, 2, 4) x steps; or ``rk45``, adaptive Dormand–Prince with
    ``rtol``/``atol`` (score_sde_pytorch uses scipy's RK45 with 1e-5 for both), which yields
    every accepted step. ``denoise`` adds Tweedie's formula at eps, as for the SDE samplers.
    """

    def __init__(
        self,
        sde: SDE,
        score_model: nn.Module | ScoreFn,
        *,
        integrator: str = "rk45",
        steps: int = 1000,
        eps: float = 1e-3,
        grid: str = "uniform",
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
            self.times = time_grid(grid, steps, sde.T, eps, rho)
        self._time_list: list[float] = self.times.tolist()

    @classmethod
    def from_params(
        cls, sde: SDE, score_model: nn.Module | ScoreFn, params: Mapping[str, Any]
    ) -> ODESampler:
        p = _merged(params)
        return cls(
            sde,
            score_model,
            integrator=p["integrator"],
            steps=p["steps"],
            eps=p["eps"],
            grid=p["grid"],
            rho=p["rho"],
            rtol=p["rtol"],
            atol=p["atol"],
            denoise=p["denoise"],
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


# --------------------------------------------------------------------------------------------
# conditional sampling by imputation
# --------------------------------------------------------------------------------------------
class Guide(ABC):
    """How imputation steers one run of the ``pc`` loop (a fresh guide per run).

    ``start`` sets up x_T, ``advance(mean, std, z, k)`` makes the state at grid index k from a
    Gaussian update, ``finish`` makes the final samples (``exact``: after denoising, t = 0).
    """

    def __init__(self, known: Tensor, mask: Tensor, generator: torch.Generator | None) -> None:
        self.known_in, self.mask_in, self.generator = known, mask, generator

    def start(self, x_T: Tensor, sched: Schedule, generator: torch.Generator | None) -> Tensor:
        self.sched = sched
        self.known = self.known_in.to(device=x_T.device, dtype=x_T.dtype)
        self.mask = torch.broadcast_to(self.mask_in.to(x_T.device), x_T.shape)
        return x_T

    @abstractmethod
    def advance(self, mean: Tensor, std: float | Tensor, z: Tensor, k: int) -> Tensor: ...

    def finish(self, x: Tensor, exact: bool) -> Tensor:
        return torch.where(self.mask, self.known, x) if exact else x

    def _randn(self, shape: Sequence[int], like: Tensor) -> Tensor:
        return torch.randn(
            tuple(shape), generator=self.generator, dtype=like.dtype, device=like.device
        )


class ReplacementGuide(Guide):
    """Song et al. (2021, App. I.2): after every update at time t_k, the known coordinates are
    replaced by a fresh draw m(t_k) y + s(t_k) z from the forward process started at y.

    This takes p_t(x_free | y) to be p_t(x_free | x_known(t)) for one draw x_known(t) from
    p_t(. | y): exact as t -> 0 but not in between, so the free coordinates follow p(x_free | y)
    only approximately (for a 2-D Gaussian mixture the conditional variance can come out
    tens of percent off). It works for any known values, one set per sample included.
    """

    def start(self, x_T: Tensor, sched: Schedule, generator: torch.Generator | None) -> Tensor:
        x = super().start(x_T, sched, generator)
        return self._replace(x, 0)

    def _replace(self, x: Tensor, k: int) -> Tensor:
        noised = self.sched.m[k] * self.known + self.sched.s[k] * self._randn(x.shape, x)
        return torch.where(self.mask, noised, x)

    def advance(self, mean: Tensor, std: float | Tensor, z: Tensor, k: int) -> Tensor:
        return self._replace(mean + std * z, k)


def _systematic_resample(log_w: Tensor, generator: torch.Generator | None) -> Tensor:
    """Indices of systematic resampling (Kitagawa 1996): one uniform, n evenly spaced points."""
    n = log_w.shape[0]
    cdf = torch.cumsum(torch.softmax(log_w, 0), 0)
    cdf = cdf / cdf[-1]
    u0 = torch.rand((), generator=generator, dtype=log_w.dtype, device=log_w.device)
    u = (torch.arange(n, dtype=log_w.dtype, device=log_w.device) + u0) / n
    return torch.searchsorted(cdf, u).clamp_(max=n - 1)


class SMCGuide(Guide):
    """Sequential Monte Carlo imputation (SMCDiff, Trippe et al. 2022), exact as n -> infinity.

    The batch is one population of particles that all share the known values y. One path of
    the known coordinates is drawn from the forward process started at y, backwards in time by
    its exact Gaussian bridges: y_T ~ N(m_T y, s_T^2), then y_{k+1} | y_k, y from
    N(v (m_{k+1} y / s_{k+1}^2 + r_k y_k / G2_k), v), 1/v = 1/s_{k+1}^2 + r_k^2 / G2_k.
    Each step the particles' free coordinates take the sampler's own step, the known ones are
    set to y_{k+1}, and each particle's log-weight gains the log-density of y_{k+1} under its
    predictor kernel N(mean, std^2) restricted to the known coordinates. When the effective
    sample size falls below ``threshold * n`` the particles are resampled (systematically;
    chosen on the device, with no host sync), and once more at the end, so the final rows are
    equally weighted. Why this is exact: in the forward process the known coordinates' path
    after t = 0 is independent of everything but y, so p(x_free(0) | y, path) = p(x_free | y),
    and the weights turn the reverse chain into the law of the free coordinates given that path.

    Needs the known values to be the same for every sample (no batch axis) and a corrector of
    ``none`` (a corrector's moves have no counterpart in the forward path).
    """

    def __init__(
        self,
        known: Tensor,
        mask: Tensor,
        generator: torch.Generator | None,
        threshold: float = 0.5,
    ) -> None:
        super().__init__(known, mask, generator)
        self.threshold = float(threshold)

    def start(self, x_T: Tensor, sched: Schedule, generator: torch.Generator | None) -> Tensor:
        if self.known_in.ndim >= x_T.ndim or self.mask_in.ndim >= x_T.ndim:
            raise ConfigError(
                "known",
                "SMC imputation needs one set of known values for the whole batch (shaped like "
                "one sample); use method 'replace' for per-sample known values",
            )
        x = super().start(x_T, sched, generator)
        self.known = torch.broadcast_to(self.known, x.shape[1:])
        self.k = 0
        self.path = sched.m[0] * self.known + sched.s[0] * self._randn(x.shape[1:], x)
        self.log_w = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        self.n_resampled = torch.zeros((), dtype=torch.int64, device=x.device)
        self._sum_dims = tuple(range(1, x.ndim))
        return torch.where(self.mask, self.path, x)

    def _bridge(self, k: int) -> Tensor:
        """y_{k} given y_{k-1} and y, from the forward process's exact Gaussians."""
        sc = self.sched
        r, G2, m, s2 = sc.r[k - 1], sc.G2[k - 1], sc.m[k], sc.s[k] ** 2
        if G2 <= 0.0:
            return self.path / r
        den = G2 + r * r * s2
        mean = (m * G2 * self.known + r * s2 * self.path) / den
        return mean + math.sqrt(s2 * G2 / den) * self._randn(self.path.shape, self.path)

    def advance(self, mean: Tensor, std: float | Tensor, z: Tensor, k: int) -> Tensor:
        if k != self.k + 1:
            raise ConfigError("corrector", "SMC imputation needs corrector = 'none'")
        self.k = k
        self.path = self._bridge(k)
        if isinstance(std, Tensor) or std > 0:
            resid = torch.where(self.mask, (self.path - mean) / std, 0.0)
            self.log_w = self.log_w - 0.5 * resid.pow(2).sum(self._sum_dims).to(torch.float64)
        x = torch.where(self.mask, self.path, mean + std * z)
        return self._maybe_resample(x, force=False)

    def _maybe_resample(self, x: Tensor, force: bool) -> Tensor:
        n = x.shape[0]
        idx = _systematic_resample(self.log_w, self.generator)
        if not force:
            w = torch.softmax(self.log_w, 0)
            do = (1.0 / (w * w).sum()) < self.threshold * n
            idx = torch.where(do, idx, torch.arange(n, device=x.device))
            self.log_w = torch.where(do, torch.zeros_like(self.log_w), self.log_w)
            self.n_resampled = self.n_resampled + do
        else:
            self.log_w = torch.zeros_like(self.log_w)
        return x[idx]

    def finish(self, x: Tensor, exact: bool) -> Tensor:
        return super().finish(self._maybe_resample(x, force=True), exact)


IMPUTATION_METHODS: Registry[type[Guide]] = Registry("imputation method", key="method")
IMPUTATION_METHODS.register("replace")(ReplacementGuide)
IMPUTATION_METHODS.register("smc")(SMCGuide)


class ImputationSampler(Sampler):
    """Conditional sampling given known coordinates: imputation, or inpainting for images.

    ``known`` and ``mask`` (bool, True where known) are in model units, shaped like one sample
    or like the whole batch (n, *sample_shape), and broadcast against the states. Wraps an SDE
    sampler (``em`` or ``pc``, linear SDE) and steers every update by ``method``:

    * ``replace`` (default): Song et al. (2021, App. I.2), :class:`ReplacementGuide`: the known
      coordinates are replaced by fresh forward-noised values m(t) y + s(t) z after every
      update. Any known values (per sample too); approximate (see the class).
    * ``smc``: :class:`SMCGuide`, sequential Monte Carlo over the batch (Trippe et al. 2022):
      consistent in the number of samples, for known values shared by the whole batch, with
      corrector ``none``.

    The final row holds the known coordinates exactly (with ``denoise``; without it they are
    at the noise level of eps). NFE are those of the wrapped sampler. Run through
    :func:`sample` with ``chunk_size``, per-sample known values are cut to each chunk, and with
    ``smc`` every chunk is a population of its own.
    """

    def __init__(
        self,
        sampler: Sampler,
        known: Tensor,
        mask: Tensor,
        method: str = "replace",
        *,
        threshold: float = 0.5,
    ) -> None:
        if not isinstance(sampler, PCSampler):
            raise ConfigError(
                "sampler",
                "conditional sampling by imputation needs a stochastic sampler ('em' or 'pc'); "
                "replacing coordinates with noise does not fit the deterministic ODE",
            )
        if not isinstance(sampler.sde, LinearSDE):
            raise ConfigError("kind", "imputation needs a linear SDE (Gaussian transitions)")
        guide_cls = IMPUTATION_METHODS.get(method)
        if guide_cls is SMCGuide and sampler.corrector.nfe_per_step:
            raise ConfigError("corrector", "SMC imputation needs corrector = 'none'")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError("threshold", f"must be in [0, 1], got {threshold!r}")
        super().__init__(sampler.sde, sampler.score_model, eps=sampler.eps, denoise=False)
        self.denoise = sampler.denoise
        self.base = copy.copy(sampler)
        self.known = torch.as_tensor(known)
        self.mask = torch.as_tensor(mask).to(torch.bool)
        self.method = method
        self.threshold = float(threshold)
        self.guide: Guide | None = None

    @classmethod
    def from_params(cls, sde, score_model, params):  # type: ignore[no-untyped-def]
        raise TypeError("build an ImputationSampler with impute() or from a built sampler")

    @property
    def n_steps(self) -> int | None:
        return self.base.n_steps

    @property
    def nfe(self) -> int:  # type: ignore[override]
        return self.base.nfe if "base" in self.__dict__ else 0

    @nfe.setter
    def nfe(self, value: int) -> None:
        if "base" in self.__dict__:
            self.base.nfe = value

    def _make_guide(self, generator: torch.Generator | None) -> Guide:
        if self.method == "smc":
            return SMCGuide(self.known, self.mask, generator, self.threshold)
        return IMPUTATION_METHODS.get(self.method)(self.known, self.mask, generator)

    def run(self, x_T: Tensor, generator: torch.Generator | None = None) -> Iterator[SamplerStep]:
        self.guide = self._make_guide(generator)
        return self.base._run(x_T, generator, self.guide)

    def _for_chunk(self, rows: slice, batch_ndim: int) -> Sampler:
        chunk = copy.copy(self)
        chunk.base = copy.copy(self.base)
        # per-sample known values and masks are cut to the chunk's rows; per-sample-shape
        # ones (fewer axes than a batch) apply to every chunk as they are
        if self.known.ndim == batch_ndim:
            chunk.known = self.known[rows]
        if self.mask.ndim == batch_ndim:
            chunk.mask = self.mask[rows]
        return chunk

    def with_score_model(self, score_model: nn.Module | ScoreFn) -> Sampler:
        other = copy.copy(self)
        other.base = self.base.with_score_model(score_model)
        other.score_model = score_model
        return other


def impute(
    sde: SDE,
    score_model: nn.Module | ScoreFn,
    params: Mapping[str, Any] | None,
    known: Tensor,
    mask: Tensor,
    method: str = "replace",
) -> ImputationSampler:
    """:func:`build_sampler` from the [sample] keys, made conditional on ``known`` at ``mask``."""
    return ImputationSampler(build_sampler(sde, score_model, params), known, mask, method)


# --------------------------------------------------------------------------------------------
# running: prior draw and chunks
# --------------------------------------------------------------------------------------------
def sample(
    sampler: Sampler,
    n: int,
    sample_shape: Sequence[int],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    chunk_size: int | None = None,
    *,
    fast_path: str = "off",
    precision: str = "fp32",
) -> Iterator[SamplerStep]:
    """Draw x_T ~ p_T (``sde.prior_sample``) for ``n`` samples and run ``sampler`` on it.

    ``fast_path`` (:data:`workbench.core.fast.FAST_PATHS`; ``auto``: CUDA graphs on CUDA, plain
    elsewhere) and ``precision`` (``bf16``: the network under bfloat16 autocast, the states
    and the update in ``dtype``) change how the score network is evaluated, not the maths:
    with fp32 the samples equal the plain path's to float rounding (same seed, same noise).

    With ``chunk_size`` < n the batch is split into chunks that advance in lockstep, one step
    of each chunk in turn, and each row is yielded concatenated: the score model sees at most
    ``chunk_size`` samples at a time (so peak activation memory, the large part on a GPU,
    scales with the chunk), while the states of all n samples stay in memory (n x dim, needed
    for the rows anyway). The prior draw is the same as without chunks; the later noise is
    drawn chunk by chunk, so the samples differ from an unchunked run (same seed, same result).
    Fixed-grid samplers give rows that line up exactly. An adaptive sampler (``ode`` with
    ``rk45``) chooses different steps per chunk: chunks are then run one after another and
    only two rows come out, step 0 (the prior) and the final samples (its step is the largest
    step count of the chunks). ``sampler.nfe`` is then the largest count among the chunks.
    ``chunk_size = 0`` chooses the chunk from the device's free memory
    (:func:`workbench.core.fast.auto_chunk_size`): no chunks where everything fits.
    """
    from workbench.core import fast  # fast imports nothing of ours but errors; keep it lazy

    shape = (int(n), *(int(d) for d in sample_shape))
    dev = torch.device(device) if device is not None else torch.device("cpu")
    path = fast.resolve_fast_path(fast_path, dev, "sample.fast_path")
    if chunk_size is not None and chunk_size < 0:
        raise ConfigError("chunk_size", f"must be >= 0 (0: automatic), got {chunk_size!r}")
    if chunk_size == 0:
        chunk_size = auto_sample_chunk(sampler.score_model, n, shape[1:], dev, dtype)
    x_T = sampler.sde.prior_sample(shape, generator=generator, dtype=dtype, device=device)
    if path != "off" or precision != "fp32":
        # under auto, a model that cannot be captured (one that reads values back) runs plainly
        scorer = fast.FastScore(
            sampler.score_model, path, precision, dev, fallback=fast_path == "auto"
        )
        runner = sampler.with_score_model(scorer)
        for row in _run_chunks(runner, x_T, n, generator, chunk_size):
            sampler.nfe = runner.nfe
            yield row
        sampler.nfe = runner.nfe
        return
    yield from _run_chunks(sampler, x_T, n, generator, chunk_size)


def auto_sample_chunk(
    score_model: nn.Module | ScoreFn,
    n: int,
    sample_shape: Sequence[int],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> int:
    """How many samples one network call may take on ``device``: its free memory against the
    model's measured activation bytes per sample, beside the states of all ``n`` samples (the
    state, the noise, the mean and the next state: four copies of each)."""
    from workbench.core import fast

    shape = tuple(int(d) for d in sample_shape)
    per_sample = fast.activation_bytes_per_sample(score_model, shape, device, dtype)
    state = 4 * math.prod(shape) * torch.finfo(dtype).bits // 8
    return fast.auto_chunk_size(
        n, per_sample, fast.available_memory(device), state_bytes_per_sample=state
    )


def _run_chunks(
    sampler: Sampler,
    x_T: Tensor,
    n: int,
    generator: torch.Generator | None,
    chunk_size: int | None,
) -> Iterator[SamplerStep]:
    if chunk_size is None or chunk_size >= n:
        yield from sampler.run(x_T, generator)
        return
    slices = [slice(i, min(i + chunk_size, n)) for i in range(0, n, chunk_size)]
    chunks = [sampler._for_chunk(sl, x_T.ndim) for sl in slices]
    runs = [c.run(x_T[sl], generator) for c, sl in zip(chunks, slices, strict=True)]
    if sampler.adaptive:
        firsts: list[SamplerStep] = []
        lasts: list[SamplerStep] = []
        for run in runs:
            rows = iter(run)
            first = last = next(rows)
            for last in rows:  # noqa: B007
                pass
            firsts.append(first)
            lasts.append(last)
            sampler.nfe = max(c.nfe for c in chunks)
        yield SamplerStep(0, firsts[0].t, torch.cat([r.x for r in firsts]))
        step = max(r.step for r in lasts)
        yield SamplerStep(step, lasts[0].t, torch.cat([r.x for r in lasts]))
        return
    for rows in zip(*runs, strict=True):
        sampler.nfe = max(c.nfe for c in chunks)
        yield SamplerStep(rows[0].step, rows[0].t, torch.cat([r.x for r in rows]))


# --------------------------------------------------------------------------------------------
# the forward process
# --------------------------------------------------------------------------------------------
def simulate_forward(
    sde: SDE,
    x0: Tensor,
    times: Tensor | Sequence[float],
    generator: torch.Generator | None = None,
    *,
    max_dt: float = 1e-3,
) -> Iterator[SamplerStep]:
    """Paths of the forward SDE from data x0 at t = 0, one row per entry of ``times``.

    ``times`` increase from 0 (a first time of 0 yields x0 itself). For a linear SDE every
    transition is exact: from t to t' > t,

        x_{t'} = r x_t + sqrt(s(t')^2 - r^2 s(t)^2) z,   r = m(t') / m(t),

    so each row has exactly the marginal p_t (m(t) x0 + s(t) z) and successive rows form one
    consistent path. A non-linear SDE is integrated by Euler–Maruyama with steps of at most
    ``max_dt`` between the requested times. Rows come as :class:`SamplerStep` with the index
    into ``times`` as the step (direction "forward").
    """
    ts = checked_times(times, sde.T)
    noise = _noise(generator)
    x, t_prev = x0, 0.0
    if isinstance(sde, LinearSDE):
        grid = torch.tensor([0.0, *ts], dtype=torch.float64)
        log_m = sde.log_mean_coeff(grid).to(torch.float64).tolist()
        var = (sde.std(grid).to(torch.float64) ** 2).tolist()
        for k, t in enumerate(ts):
            if t > t_prev:
                r = math.exp(log_m[k + 1] - log_m[k])
                v = max(var[k + 1] - r * r * var[k], 0.0)
                x = r * x + math.sqrt(v) * noise(x)
            t_prev = t
            yield SamplerStep(k, t, x)
        return
    for k, t in enumerate(ts):
        if t > t_prev:
            n_sub = max(1, math.ceil((t - t_prev) / max_dt - 1e-9))
            h = (t - t_prev) / n_sub
            for j in range(n_sub):
                tj = torch.full((), t_prev + j * h, dtype=x.dtype, device=x.device)
                g = broadcast_time(sde.diffusion(tj), x)
                x = x + sde.drift(x, tj) * h + g * math.sqrt(h) * noise(x)
        t_prev = t
        yield SamplerStep(k, t, x)
