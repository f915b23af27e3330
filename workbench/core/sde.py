"""Forward SDEs dX = f(X, t) dt + g(t) dW on t in [0, T], and what the solvers need of them.

As in score_sde_pytorch's ``sde_lib``, an SDE only states its coefficients; samplers, losses and
likelihoods live elsewhere and ask it for f, g, and (for linear SDEs) the transition kernel.

Every built-in SDE is linear, f(x, t) = a(t) x, so the transition kernel is Gaussian
(Särkkä & Solin 2019, eq. 6.2):

    p_t(x | x0) = N(m(t) x0, s(t)^2 I),   m(t) = exp(int_0^t a),
    s(t)^2 = m(t)^2 int_0^t g(u)^2 / m(u)^2 du.

The reverse-time SDE (Anderson 1982) and the probability-flow ODE (Song et al. 2021, eq. 13):

    dX = [f(X, t) - g(t)^2 grad log p_t(X)] dt + g(t) dW_bar     (t running from T down)
    dx/dt = f(x, t) - 1/2 g(t)^2 grad log p_t(x).

Times are tensors of shape () or (batch,); states are (batch, *sample_shape). Every method is
torch in, torch out and keeps the dtype and device of its inputs (float64 works throughout).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from workbench.core.expr import Expression
from workbench.core.params import Choice, Float, Param, Text, validate_params
from workbench.core.registry import Registry
from workbench.errors import ConfigError, ExpressionError, WorkbenchError

__all__ = [
    "SDE",
    "LinearSDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "CosineVPSDE",
    "ExpressionLinearSDE",
    "CustomSDE",
    "SDES",
    "build_sde",
    "validate_sde_params",
    "broadcast_time",
    "check_times",
    "MAX_PRIOR_SNR",
]

ScoreFn = Callable[[Tensor, Tensor], Tensor]

SDES: Registry[type[SDE]] = Registry("SDE", key="kind")


def _time(t: Tensor | float, like: Tensor | None = None) -> Tensor:
    if isinstance(t, Tensor):
        return t
    if like is not None:
        return torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return torch.as_tensor(t, dtype=torch.get_default_dtype())


def broadcast_time(c: Tensor, x: Tensor) -> Tensor:
    """Shape a per-sample coefficient (), (batch,) or (batch, 1...) to multiply ``x``."""
    if c.ndim == 0:
        return c.to(x.dtype)
    c = c.reshape(c.shape[0], *([1] * (x.ndim - 1)))
    return c.to(x.dtype)


class SDE(ABC):
    """A forward SDE on [0, T]: drift f(x, t), diffusion g(t), a prior p_T to start sampling from.

    Subclasses declare ``params`` (their config keys) and take them as constructor arguments.
    """

    params: ClassVar[tuple[Param, ...]] = ()
    config_name: ClassVar[str] = ""
    T: float = 1.0
    # True only where f(x, t) = 0 for every x and every t in [0, T] by construction (VE), so
    # solvers may skip the drift: declared, never guessed from f at a few times (a drift such
    # as a(t) = -20 t (1 - t) x vanishes at t = 0 and t = 1 and nowhere between).
    drift_free: bool = False

    @abstractmethod
    def drift(self, x: Tensor, t: Tensor | float) -> Tensor:
        """f(x, t)."""

    @abstractmethod
    def diffusion(self, t: Tensor | float) -> Tensor:
        """g(t), the same for every coordinate."""

    @abstractmethod
    def prior_sample(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draws from the distribution the reverse process starts from at t = T."""

    @abstractmethod
    def prior_logp(self, z: Tensor) -> Tensor:
        """log density of the prior, summed over all but the first axis."""

    def reverse_drift(self, x: Tensor, t: Tensor | float, score_fn: ScoreFn) -> Tensor:
        """f - g^2 score: the drift of the reverse-time SDE (Anderson 1982), in forward time."""
        t = _time(t, x)
        g = broadcast_time(self.diffusion(t), x)
        return self.drift(x, t) - g * g * score_fn(x, t)

    def probability_flow_drift(self, x: Tensor, t: Tensor | float, score_fn: ScoreFn) -> Tensor:
        """f - 1/2 g^2 score: the probability-flow ODE's velocity (Song et al. 2021, eq. 13)."""
        t = _time(t, x)
        g = broadcast_time(self.diffusion(t), x)
        return self.drift(x, t) - 0.5 * g * g * score_fn(x, t)

    def describe(self) -> str:
        return type(self).__name__

    @classmethod
    def check_experiment(cls, config: Any) -> None:
        """The rules this SDE sets for the rest of an experiment (an ``ExperimentConfig``).

        Raises :class:`ConfigError` with the full dotted key. A non-linear SDE has no Gaussian
        kernel p(x_t | x0), so everything built on m(t), s(t) is refused here, where the user
        sees it, rather than when training or sampling starts.
        """
        if issubclass(cls, LinearSDE):
            return
        what = f"the {config.sde.kind!r} SDE is not linear, so p(x_t|x_0) has no closed form"
        if config.loss.kind == "dsm":
            raise ConfigError(
                "loss.kind",
                f"denoising score matching needs the Gaussian kernel p(x_t|x_0), and {what}; "
                "use 'ssm' (or 'ssm_vr', or 'esm' in low dimension), which train on simulated x_t",
            )
        if config.loss.kind == "fm":
            raise ConfigError(
                "loss.kind",
                f"flow matching regresses the velocity of x_t = m(t) x0 + s(t) z, and {what}; "
                "use 'ssm' (or 'ssm_vr', or 'esm' in low dimension)",
            )
        if config.loss.weighting == "sigma2":
            raise ConfigError(
                "loss.weighting",
                f"'sigma2' is lambda(t) = s(t)^2, the variance of p(x_t|x_0), and {what}; "
                "use 'none' or 'likelihood'",
            )
        if config.loss.importance_sampling:
            raise ConfigError(
                "loss.importance_sampling", f"q(t) ~ g^2/s^2 needs s(t), and {what}; set false"
            )
        if config.model.output != "score" and config.model.kind != "analytic":
            raise ConfigError(
                "model.output",
                f"{config.model.output!r} converts through m(t), s(t), and {what}; use 'score'",
            )
        from workbench.core.samplers import SAMPLERS  # lazy: the samplers import this module

        sampler = config.sample.sampler
        if sampler in SAMPLERS.names() and SAMPLERS.get(sampler).linear_only:
            raise ConfigError(
                "sample.sampler",
                f"{sampler!r} is written in m(t), s(t), and {what}; use 'em', 'pc' or 'ode'",
            )
        grid = config.sample.grid
        if sampler in SAMPLERS.names():  # "auto": the sampler's own grid
            grid = SAMPLERS.get(sampler).resolve_grid(grid)
        if grid == "edm":
            raise ConfigError(
                "sample.grid",
                f"'edm' spaces sigma = s(t)/m(t), and {what}; use 'power_t' (the same in t)",
            )
        if config.sample.denoise:
            raise ConfigError(
                "sample.denoise",
                f"the final Tweedie denoising step needs m(t), s(t), and {what}; set false",
            )


class LinearSDE(SDE):
    """f(x, t) = a(t) x: Gaussian transitions with mean m(t) x0 and std s(t)."""

    @abstractmethod
    def drift_coeff(self, t: Tensor | float) -> Tensor:
        """a(t)."""

    @abstractmethod
    def log_mean_coeff(self, t: Tensor | float) -> Tensor:
        """log m(t) = int_0^t a(u) du."""

    @abstractmethod
    def std(self, t: Tensor | float) -> Tensor:
        """s(t), the standard deviation of p_t(x | x0)."""

    def mean_coeff(self, t: Tensor | float) -> Tensor:
        """m(t)."""
        return torch.exp(self.log_mean_coeff(t))

    def marginal_coeffs(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """(m(t), s(t))."""
        return self.mean_coeff(t), self.std(t)

    def marginal_rates(self, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """(m'(t), s'(t)): the conditional velocity of x_t = m x0 + s z is m' x0 + s' z.

        m' = a m, and d(s^2)/dt = 2 a s^2 + g^2 gives s' = a s + g^2 / (2 s). A subclass with
        closed forms (the rectified path: m' = -1, s' = 1) overrides this.
        """
        t = _time(t)
        a = self.drift_coeff(t)
        m, s = self.marginal_coeffs(t)
        g = self.diffusion(t)
        return a * m, a * s + g * g / (2.0 * s)

    def drift(self, x: Tensor, t: Tensor | float) -> Tensor:
        return broadcast_time(self.drift_coeff(_time(t, x)), x) * x

    def perturb(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = m(t) x0 + s(t) noise, a draw from p_t(x | x0) given standard normal noise."""
        m, s = self.marginal_coeffs(t)
        return broadcast_time(m, x0) * x0 + broadcast_time(s, x0) * noise

    def snr(self, t: Tensor | float) -> Tensor:
        """m(t)^2 / s(t)^2, the signal-to-noise ratio."""
        m, s = self.marginal_coeffs(t)
        return (m / s) ** 2

    def prior_std(self) -> float:
        """sqrt(m(T)^2 + s(T)^2): the std of p_T for data standardised to mean 0, variance 1.

        For VP this is exactly 1 (score_sde_pytorch's N(0, I)); for VE it is
        sqrt(sigma_max^2 - sigma_min^2 + 1), within 2e-4 of score_sde_pytorch's sigma_max.
        """
        t = torch.tensor(self.T, dtype=torch.float64)
        m, s = self.marginal_coeffs(t)
        return float(torch.sqrt(m * m + s * s))

    # the key a user changes to fix a prior far from p_T, and how (see check_prior)
    prior_key: ClassVar[str] = "T"
    prior_hint: ClassVar[str] = "run the diffusion longer (a larger T)"

    def check_prior(self) -> None:
        """ConfigError unless p_T is close to the prior N(0, (m(T)^2 + s(T)^2) I).

        In model units the data are standardised (E x0_i^2 <= 1: per-coordinate standardising,
        or images mapped to [-1, 1]), and x_T = m x0 + s z. By the convexity of KL,

            KL(p_T || prior) <= E_x0 KL(N(m x0, s^2) || N(0, m^2 + s^2))
                             <= d/2 ln(1 + m(T)^2 / s(T)^2)           (d coordinates),

        whatever the data. So SNR(T) = m(T)^2/s(T)^2 bounds how far sampling starts from the
        law it should: refused above MAX_PRIOR_SNR (1/4: noise less than twice the signal
        left at T, up to 0.11 nats per coordinate), where the data's shape visibly survives.
        Every built-in default is below 5e-4. s(T) = 0 (no noise at all) is refused the same
        way: there is nothing to learn.
        """
        t = torch.tensor(self.T, dtype=torch.float64)
        m, s = (float(v) for v in self.marginal_coeffs(t))
        if s > 0 and m * m <= MAX_PRIOR_SNR * s * s:
            return
        # s^2 underflows to 0 for s below 1e-162 (T = 5e-324 on the rectified path)
        snr = "infinite" if s * s == 0 else f"{m * m / (s * s):.3g}"
        raise ConfigError(
            self.prior_key,
            f"the sampler starts from N(0, {m * m + s * s:.4g}·I), but at T = {self.T:g} the "
            f"data are still there: m(T) = {m:.4g}, s(T) = {s:.4g}, so m(T)^2/s(T)^2 = {snr} "
            f"> {MAX_PRIOR_SNR:g} (p_T is then far from the prior); {self.prior_hint}",
        )

    def prior_sample(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        return self.prior_std() * z

    def prior_logp(self, z: Tensor) -> Tensor:
        sd = self.prior_std()
        n = z[0].numel() if z.ndim else 1
        flat = z.reshape(z.shape[0], -1) if z.ndim > 1 else z.reshape(-1, 1)
        return -0.5 * (flat / sd).pow(2).sum(-1) - n * (math.log(sd) + 0.5 * math.log(2 * math.pi))


# The largest m(T)^2/s(T)^2 a linear SDE may leave at T (LinearSDE.check_prior).
MAX_PRIOR_SNR = 0.25


def check_times(times: Iterable[float], T: float, what: str = "time") -> tuple[float, ...]:
    """``times`` as floats, each finite and within the SDE's [0, T]; WorkbenchError naming the
    first one outside (the diffusion is not defined there, and a solver asked for it would
    run on for nothing)."""
    values = tuple(float(t) for t in times)
    slack = 1e-12 * max(1.0, abs(float(T)))  # T itself, after a round trip through text
    for t in values:
        if not (math.isfinite(t) and 0.0 <= t <= T + slack):
            outside = sum(not (math.isfinite(v) and 0.0 <= v <= T + slack) for v in values)
            more = f" ({outside} of the {len(values)} given are)" if outside > 1 else ""
            raise WorkbenchError(
                f"{what} {t:g} is outside [0, T] = [0, {T:g}], the times the SDE is defined "
                f"on{more}"
            )
    return values


# --------------------------------------------------------------------------------------------
_T_PARAM = Param("T", Float(1e-6, 1e6), 1.0, "the end time of the diffusion")


def _check_order(low_key: str, low: float, high_key: str, high: float) -> None:
    if not high > low:
        raise ConfigError(high_key, f"must be greater than {low_key} ({low:g}), got {high:g}")


@SDES.register("vp")
class VPSDE(LinearSDE):
    """Variance preserving (Song et al. 2021, eq. 11): beta(t) = b0 + t (b1 - b0),

    a = -beta/2, g = sqrt(beta), log m = -t^2 (b1 - b0)/4 - t b0/2, s = sqrt(1 - m^2).
    """

    prior_key = "beta_max"
    prior_hint = "raise beta_max (or T)"
    params = (
        Param("beta_min", Float(0.0, None, low_open=True), 0.1, "beta(0)"),
        Param("beta_max", Float(0.0, None, low_open=True), 20.0, "beta(t) at t = 1"),
        _T_PARAM,
    )

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0) -> None:
        if beta_min <= 0:
            raise ConfigError("beta_min", f"must be > 0, got {beta_min:g}")
        _check_order("beta_min", beta_min, "beta_max", beta_max)
        self.beta_0 = float(beta_min)
        self.beta_1 = float(beta_max)
        self.T = float(T)

    def beta(self, t: Tensor | float) -> Tensor:
        return self.beta_0 + _time(t) * (self.beta_1 - self.beta_0)

    def drift_coeff(self, t: Tensor | float) -> Tensor:
        return -0.5 * self.beta(t)

    def diffusion(self, t: Tensor | float) -> Tensor:
        return torch.sqrt(self.beta(t))

    def log_mean_coeff(self, t: Tensor | float) -> Tensor:
        t = _time(t)
        return -0.25 * t * t * (self.beta_1 - self.beta_0) - 0.5 * t * self.beta_0

    def std(self, t: Tensor | float) -> Tensor:
        # 1 - m^2 by expm1 keeps full relative precision at small t, where s ~ sqrt(b0 t).
        return torch.sqrt(-torch.expm1(2.0 * self.log_mean_coeff(t)))


@SDES.register("subvp")
class SubVPSDE(VPSDE):
    """sub-VP (Song et al. 2021, eq. 12): VP's drift, g^2 = beta(t)(1 - exp(-2 b0 t - (b1-b0) t^2)).

    Then s(t) = 1 - m(t)^2, below VP's sqrt(1 - m^2) at every t.
    """

    def diffusion(self, t: Tensor | float) -> Tensor:
        t = _time(t)
        return torch.sqrt(self.beta(t) * -torch.expm1(4.0 * self.log_mean_coeff(t)))

    def std(self, t: Tensor | float) -> Tensor:
        return -torch.expm1(2.0 * self.log_mean_coeff(t))


@SDES.register("ve")
class VESDE(LinearSDE):
    """Variance exploding (Song et al. 2021, eq. 9): sigma(t) = smin (smax/smin)^t,

    a = 0, g = sigma(t) sqrt(2 ln(smax/smin)), m = 1 and s^2 = sigma(t)^2 - smin^2 exactly.
    score_sde_pytorch takes s = sigma(t), which is off by smin^2 (it assumes the diffusion
    started at t = -inf); here s(0) = 0, so p_0 is the data itself.
    """

    prior_key = "sigma_max"
    prior_hint = "raise sigma_max above 2 (the data are standardised to std 1)"
    drift_free = True
    params = (
        Param("sigma_min", Float(0.0, None, low_open=True), 0.01, "sigma at t = 0"),
        Param("sigma_max", Float(0.0, None, low_open=True), 50.0, "sigma at t = T"),
        _T_PARAM,
    )

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0) -> None:
        if sigma_min <= 0:
            raise ConfigError("sigma_min", f"must be > 0, got {sigma_min:g}")
        _check_order("sigma_min", sigma_min, "sigma_max", sigma_max)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.T = float(T)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t: Tensor | float) -> Tensor:
        return self.sigma_min * torch.exp(_time(t) / self.T * self._log_ratio)

    def drift_coeff(self, t: Tensor | float) -> Tensor:
        return torch.zeros_like(_time(t))

    def diffusion(self, t: Tensor | float) -> Tensor:
        return self.sigma(t) * math.sqrt(2.0 * self._log_ratio / self.T)

    def log_mean_coeff(self, t: Tensor | float) -> Tensor:
        return torch.zeros_like(_time(t))

    def std(self, t: Tensor | float) -> Tensor:
        # sigma^2 - smin^2 = smin^2 (exp(2 t L) - 1): expm1 keeps precision near t = 0.
        return self.sigma_min * torch.sqrt(torch.expm1(2.0 * _time(t) / self.T * self._log_ratio))


@SDES.register("cosine")
class CosineVPSDE(LinearSDE):
    """VP with the cosine schedule of Nichol & Dhariwal (2021, eq. 17) in continuous time.

    alpha_bar(t) = m(t)^2 = cos(theta(t))^2 / cos(theta_0)^2 with theta running linearly from
    theta_0 = s/(1+s) pi/2 to the angle where alpha_bar reaches ``alpha_bar_min`` at t = T.
    (The original schedule reaches alpha_bar = 0 at T, where beta is infinite; Nichol & Dhariwal
    clip beta in discrete time, here the end point is moved instead so every formula stays exact.)
    beta(t) = -d/dt log alpha_bar = 2 tan(theta(t)) theta', a = -beta/2, g = sqrt(beta).
    """

    prior_key = "alpha_bar_min"
    prior_hint = "lower alpha_bar_min below 0.2"
    params = (
        Param("s", Float(0.0, 1.0), 0.008, "the offset s of the cosine schedule"),
        Param(
            "alpha_bar_min",
            Float(0.0, 0.5, low_open=True, high_open=True),
            1e-4,
            "m(T)^2, where the schedule ends",
        ),
        _T_PARAM,
    )

    def __init__(self, s: float = 0.008, alpha_bar_min: float = 1e-4, T: float = 1.0) -> None:
        self.s = float(s)
        self.alpha_bar_min = float(alpha_bar_min)
        self.T = float(T)
        self.theta_0 = self.s / (1.0 + self.s) * math.pi / 2
        self.theta_1 = math.acos(math.sqrt(self.alpha_bar_min) * math.cos(self.theta_0))
        self._rate = (self.theta_1 - self.theta_0) / self.T

    def theta(self, t: Tensor | float) -> Tensor:
        return self.theta_0 + self._rate * _time(t)

    def beta(self, t: Tensor | float) -> Tensor:
        return 2.0 * self._rate * torch.tan(self.theta(t))

    def drift_coeff(self, t: Tensor | float) -> Tensor:
        return -0.5 * self.beta(t)

    def diffusion(self, t: Tensor | float) -> Tensor:
        return torch.sqrt(self.beta(t))

    def log_mean_coeff(self, t: Tensor | float) -> Tensor:
        # cos(theta_0 + d)/cos(theta_0) = 1 - 2 sin^2(d/2) - tan(theta_0) sin(d): log1p of the
        # small part keeps full relative precision near t = 0, where log(cos) - log(cos) cancels.
        d = self._rate * _time(t)
        return torch.log1p(-2.0 * torch.sin(0.5 * d) ** 2 - math.tan(self.theta_0) * torch.sin(d))

    def std(self, t: Tensor | float) -> Tensor:
        return torch.sqrt((-torch.expm1(2.0 * self.log_mean_coeff(t))).clamp_min(0.0))


@SDES.register("linear")
class ExpressionLinearSDE(LinearSDE):
    """dX = a(t) X dt + g(t) dW with a and g typed by the user as expressions in t.

    m(t) and s(t) come from quadrature on a grid of ``n_grid`` panels: Gauss–Legendre (8 nodes)
    on every panel gives log m and I(t) = int_0^t g^2/m^2 to near machine precision, and
    between grid points they are interpolated by cubic Hermite polynomials using their exact
    derivatives a(t) and g(t)^2/m(t)^2 (error O(h^4)). Then s(t)^2 = m(t)^2 I(t).
    """

    prior_key = "g"
    prior_hint = "make g(t) larger, a(t) more negative or T longer"
    params = (
        Param("a", Text(), "-0.5*(0.1 + 19.9*t)", "drift coefficient a(t) in f(x, t) = a(t) x"),
        Param("g", Text(), "sqrt(0.1 + 19.9*t)", "diffusion g(t)"),
        _T_PARAM,
    )
    n_grid: ClassVar[int] = 2048

    def __init__(
        self, a: str = "-0.5*(0.1 + 19.9*t)", g: str = "sqrt(0.1 + 19.9*t)", T: float = 1.0
    ) -> None:
        self.T = float(T)
        self.a_text, self.g_text = a, g
        try:
            self._a = Expression(a, ("t",))
        except ExpressionError as exc:
            raise ConfigError("a", str(exc)) from None
        try:
            self._g = Expression(g, ("t",))
        except ExpressionError as exc:
            raise ConfigError("g", str(exc)) from None
        # a(t) typed as a constant that is zero (e.g. "0") is zero at every t, exactly; an
        # expression in t is never taken as zero, however small it is on a grid
        self.drift_free = "t" not in self._a.used and not np.any(
            np.asarray(self._a(t=np.zeros(1)), dtype=np.float64)
        )
        self._tabulate()

    def _tabulate(self) -> None:
        # Overflow is detected from the results below; numpy's warnings would only be noise.
        with np.errstate(all="ignore"):
            self._tabulate_unchecked()

    def _tabulate_unchecked(self) -> None:
        n = self.n_grid
        grid = np.linspace(0.0, self.T, n + 1)
        nodes, weights = np.polynomial.legendre.leggauss(8)
        a_grid = np.asarray(self._a(t=grid), dtype=np.float64)
        g_grid = np.asarray(self._g(t=grid), dtype=np.float64)
        if not np.all(np.isfinite(a_grid)):
            bad = grid[~np.isfinite(a_grid)][0]
            raise ConfigError("a", f"a(t) = {self.a_text!r} is not finite at t = {bad:.6g}")
        if not np.all(np.isfinite(g_grid)) or np.any(g_grid < 0):
            bad = grid[~(np.isfinite(g_grid) & (g_grid >= 0))][0]
            raise ConfigError(
                "g",
                f"g(t) = {self.g_text!r} must be finite and >= 0 on [0, T]; fails at t = {bad:.6g}",
            )

        if not np.any(g_grid > 0):
            raise ConfigError(
                "g",
                f"g(t) = {self.g_text!r} is zero on all of [0, T]: without noise p_t stays the "
                "data moved by a(t), so there is no score to learn and nothing to reverse",
            )

        def panel_integral(func: Callable[[np.ndarray], np.ndarray], lo, hi) -> np.ndarray:
            half = (hi - lo) / 2
            mid = (hi + lo) / 2
            pts = mid[..., None] + half[..., None] * nodes
            return half * (func(pts) * weights).sum(-1)

        a_fn = lambda u: np.asarray(self._a(t=u), dtype=np.float64)  # noqa: E731
        lo, hi = grid[:-1], grid[1:]
        log_m = np.concatenate([[0.0], np.cumsum(panel_integral(a_fn, lo, hi))])

        # log m at Gauss nodes inside each panel: log m(lo) + int_lo^u a, itself by Gauss–Legendre.
        half = (hi - lo) / 2
        u = (hi + lo)[:, None] / 2 + half[:, None] * nodes  # (n, 8)
        log_m_u = log_m[:-1, None] + panel_integral(a_fn, np.broadcast_to(lo[:, None], u.shape), u)
        g2 = np.asarray(self._g(t=u), dtype=np.float64) ** 2
        if not np.all(np.isfinite(g2)):
            raise ConfigError("g", f"g(t) = {self.g_text!r} is not finite on [0, T]")
        # I(t) = int_0^t g^2 exp(-2 log m): kept relative to m(t) panel by panel so neither
        # factor overflows: J_i = s(t_i)^2 = m_i^2 I_i, J_{i+1} = m_{i+1}^2/m_i^2 J_i + panel.
        panel = half * (g2 * np.exp(2 * (log_m[1:, None] - log_m_u)) * weights).sum(-1)
        growth = np.exp(2 * (log_m[1:] - log_m[:-1]))
        var = np.zeros(n + 1)
        for i in range(n):
            var[i + 1] = growth[i] * var[i] + panel[i]
        if not np.all(np.isfinite(log_m)) or not np.all(np.isfinite(var)):
            raise ConfigError("a", "m(t) or s(t) overflows on [0, T]; check a(t) and g(t)")
        self._grid_h = self.T / n
        self._log_m = torch.from_numpy(log_m)
        self._a_tab = torch.from_numpy(a_grid)
        self._var = torch.from_numpy(var)
        # d(s^2)/dt = 2 a s^2 + g^2
        self._dvar = torch.from_numpy(2 * a_grid * var + g_grid**2)

    def _hermite(self, t: Tensor, values: Tensor, slopes: Tensor) -> Tensor:
        t = _time(t)
        h = self._grid_h
        pos = (t.to(torch.float64) / h).clamp(0.0, self.n_grid)
        idx = pos.floor().clamp(max=self.n_grid - 1).long()
        u = (pos - idx).to(t.dtype)
        vals = values.to(device=t.device, dtype=t.dtype)
        der = slopes.to(device=t.device, dtype=t.dtype)
        y0, y1 = vals[idx], vals[idx + 1]
        d0, d1 = der[idx] * h, der[idx + 1] * h
        u2, u3 = u * u, u * u * u
        return (
            (2 * u3 - 3 * u2 + 1) * y0
            + (u3 - 2 * u2 + u) * d0
            + (-2 * u3 + 3 * u2) * y1
            + (u3 - u2) * d1
        )

    def drift_coeff(self, t: Tensor | float) -> Tensor:
        return self._a(t=_time(t))

    def diffusion(self, t: Tensor | float) -> Tensor:
        return self._g(t=_time(t))

    def log_mean_coeff(self, t: Tensor | float) -> Tensor:
        return self._hermite(_time(t), self._log_m, self._a_tab)

    def std(self, t: Tensor | float) -> Tensor:
        return torch.sqrt(self._hermite(_time(t), self._var, self._dvar).clamp_min(0.0))


def validate_sde_params(kind: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check an ``[sde]`` section (without ``kind``); returns every key with its value.

    Errors are :class:`ConfigError` with the key unprefixed (the config adds ``sde.``).
    Building the SDE is part of the check, since cross-key rules (beta_max > beta_min,
    a parseable, finite g) live in the constructors; a linear SDE must also leave p_T close to
    the prior it samples from (:meth:`LinearSDE.check_prior`). That check is made here, for
    experiments (``check``, ``train``, the GUI), not in the constructors, so that code and tests
    may still build a weak SDE on purpose.
    """
    cls = SDES.get(kind)
    values = validate_params(cls.params, params or {}, what=f"SDE {kind!r}")
    sde = cls(**values)
    if isinstance(sde, LinearSDE):
        sde.check_prior()
    return values


def build_sde(kind: str, params: Mapping[str, Any] | None = None) -> SDE:
    """The SDE named ``kind`` with the given parameters, validated."""
    cls = SDES.get(kind)
    return cls(**validate_params(cls.params, params or {}, what=f"SDE {kind!r}"))


# --------------------------------------------------------------------------------------------
# Non-linear SDEs typed by the user
# --------------------------------------------------------------------------------------------
def _drift_text(value: Any) -> str:
    """The ``drift`` key: one string with components separated by ';', or a list of strings.

    Normalised to one string ("c1; c2"), so the config stays hashable and round-trips TOML.
    """
    if isinstance(value, (list, tuple)):
        if not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise ValueError(
                f"must be a list of non-empty expressions, one per coordinate, got {value!r}"[:120]
            )
        return "; ".join(v.strip() for v in value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            "must be an expression per coordinate, separated by ';' (or a list of them), "
            f"got {value!r}"[:120]
        )
    return value


class _DriftCheck:
    def describe(self) -> str:
        return "expressions in x1..xd and t, one per coordinate, separated by ';'"

    def __call__(self, value: Any) -> str:
        return _drift_text(value)


_PRIORS = ("simulation", "gaussian", "fpk")


@SDES.register("custom")
class CustomSDE(SDE):
    """dX = f(X, t) dt + g(t) dW with f typed per coordinate and g(t) typed by the user.

    ``drift`` holds d expressions f_i(x1, ..., xd, t) separated by ';' (in 1-D ``x`` may stand
    for ``x1``); d must equal the data's dimension (the config checks it). Nothing here is in
    closed form: p_t(x | x0) is not Gaussian, so training draws x_t from forward simulations
    (:mod:`workbench.core.simulation`), DSM and the s(t)-based parts (sigma2 weighting, eps/x0
    outputs, Tweedie denoising) are refused, and the prior p_T is the law of simulated
    particles: the *terminal bank* x_T, made by simulating the training data to T
    (:func:`workbench.core.simulation.terminal_bank`) and given with :meth:`set_terminal_bank`.

    ``prior = "simulation"`` resamples the bank with replacement (exact up to the simulation's
    weak error and the bank's size); ``"gaussian"`` draws from N(mean, cov) fitted to the bank
    (right when p_T is close to Gaussian, e.g. an OU process run long enough). In both modes
    :meth:`prior_logp` is the fitted Gaussian's log-density, an approximation of log p_T (used
    only by likelihoods). ``"fpk"`` (1-D and 2-D data) draws from the Fokker–Planck solution at
    T on a grid, given with :meth:`set_prior_density`: a cell with probability p_i dx, then a
    uniform point in it; :meth:`prior_logp` is then log p of the cell (piecewise constant).
    """

    params = (
        Param(
            "drift",
            _DriftCheck(),
            "-4*x*(x^2 - 1)",
            "drift f(x, t): one expression per coordinate in x1..xd and t, separated by ';' "
            "(1-D: x or x1). E.g. double well '-4*x*(x^2 - 1)'; rotation '-x2; x1'",
        ),
        Param("g", Text(), "1", "diffusion g(t) >= 0, an expression in t"),
        _T_PARAM,
        Param(
            "prior",
            Choice(_PRIORS),
            "simulation",
            "p_T: 'simulation' resamples simulated x_T, 'gaussian' fits N(m, C) to them, "
            "'fpk' samples the Fokker-Planck solution at T (1-D, 2-D)",
        ),
        Param(
            "dt",
            Float(1e-6, 0.1),
            1e-3,
            "Euler–Maruyama step of the forward simulations (training data, prior)",
        ),
    )

    def __init__(
        self,
        drift: str = "-4*x*(x^2 - 1)",
        g: str = "1",
        T: float = 1.0,
        prior: str = "simulation",
        dt: float = 1e-3,
    ) -> None:
        self.T = float(T)
        self.drift_text = _drift_text(drift)
        self.g_text = g
        self.prior = prior
        if prior not in _PRIORS:
            raise ConfigError("prior", f"must be one of {', '.join(map(repr, _PRIORS))}")
        self.dt = float(dt)
        if not 0 < self.dt <= self.T:
            raise ConfigError("dt", f"must be in (0, T] = (0, {self.T:g}], got {self.dt:g}")
        parts = [p.strip() for p in self.drift_text.split(";")]
        self.dim = len(parts)
        names = [f"x{i + 1}" for i in range(self.dim)]
        variables = (*names, "t", *(("x",) if self.dim == 1 else ()))
        self._f: list[Expression] = []
        for i, text in enumerate(parts):
            where = f"component {i + 1} of {self.dim}" if self.dim > 1 else "f(x, t)"
            if not text:
                raise ConfigError(
                    "drift", f"{where} is empty; give one expression per coordinate, ';' between"
                )
            try:
                self._f.append(Expression(text, variables))
            except ExpressionError as exc:
                raise ConfigError("drift", f"{where}: {exc}") from None
        try:
            self._g = Expression(g, ("t",))
        except ExpressionError as exc:
            raise ConfigError("g", str(exc)) from None
        grid = np.linspace(0.0, self.T, 1025)
        with np.errstate(all="ignore"):
            g_grid = np.asarray(self._g(t=grid), dtype=np.float64)
        bad = ~(np.isfinite(g_grid) & (g_grid >= 0))
        if bad.any():
            raise ConfigError(
                "g",
                f"g(t) = {g!r} must be finite and >= 0 on [0, T]; fails at t = {grid[bad][0]:.6g}",
            )
        if not np.any(g_grid > 0):
            raise ConfigError("g", f"g(t) = {g!r} is zero on all of [0, T]: nothing to reverse")
        self._bank: Tensor | None = None
        self._fit: tuple[Tensor, Tensor, Tensor] | None = None
        self._grid: tuple[list[Tensor], Tensor, Tensor] | None = None

    @classmethod
    def check_experiment(cls, config: Any) -> None:
        """The non-linear rules, then: one drift component per data coordinate (``sde.drift``).

        The data's dimension is known without reading a file for every set but the array-backed
        ones (a user's file, digits); for those the count is checked when training starts.
        """
        super().check_experiment(config)
        from workbench.core.array_data import ArrayDataSet
        from workbench.core.data import DATASETS
        from workbench.core.experiment import dataset_of

        if issubclass(DATASETS.get(config.data.name), ArrayDataSet):
            return
        dim = dataset_of(config).dim
        try:
            cls(**dict(config.sde.params)).check_dim(dim)
        except ConfigError as exc:
            raise exc.within("sde") from None
        if config.sde.params.get("prior") == "fpk" and dim > 2:
            raise ConfigError(
                "sde.prior",
                f"'fpk' solves the Fokker-Planck equation on a grid, in 1-D and 2-D only; the "
                f"data have {dim} dimensions: use 'simulation'",
            )

    # coefficients ----------------------------------------------------------------------------
    def check_dim(self, dim: int) -> None:
        """ConfigError naming ``drift`` unless it has one component per data coordinate."""
        if dim != self.dim:
            raise ConfigError(
                "drift",
                f"has {self.dim} component(s) but the data have {dim} dimension(s); give one "
                "expression per coordinate, separated by ';'",
            )

    @property
    def autonomous(self) -> bool:
        """Whether f does not depend on t (then solvers may evaluate it once per point)."""
        return all("t" not in f.used for f in self._f)

    def drift(self, x: Tensor, t: Tensor | float) -> Tensor:
        flat = x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(-1, 1)
        if flat.shape[1] != self.dim:
            self.check_dim(flat.shape[1])
        t = _time(t, x).to(dtype=x.dtype, device=x.device)
        if t.ndim > 1:
            t = t.reshape(-1)
        env: dict[str, Tensor] = {f"x{i + 1}": flat[:, i] for i in range(self.dim)}
        if self.dim == 1:
            env["x"] = flat[:, 0]
        env["t"] = t
        # Only the variables a component uses (plus x1, which fixes the batch shape): passing
        # all d of them would add d broadcasts per component for nothing.
        comps = [f(**{k: v for k, v in env.items() if k in f.used or k == "x1"}) for f in self._f]
        out = torch.stack([c.expand(flat.shape[0]) for c in comps], -1)
        return out.reshape(x.shape)

    def diffusion(self, t: Tensor | float) -> Tensor:
        return self._g(t=_time(t))

    def describe(self) -> str:
        return f"the custom SDE (f = {self.drift_text!r}, g = {self.g_text!r})"

    # the prior: simulated particles at T ----------------------------------------------------------
    @property
    def terminal_bank(self) -> Tensor | None:
        """The simulated x_T particles the prior draws from (None until set)."""
        return self._bank

    def set_terminal_bank(self, x_T: Tensor) -> None:
        """Use the particles ``x_T`` (n, *sample_shape), simulated from data to T, as p_T."""
        if x_T.ndim < 1 or x_T.shape[0] < 2:
            raise WorkbenchError("the terminal bank needs at least 2 particles")
        if not bool(torch.isfinite(x_T).all()):
            raise WorkbenchError("the terminal bank holds non-finite values")
        self._bank = x_T.detach().to("cpu", torch.float64)
        flat = self._bank.reshape(len(self._bank), -1)
        mean = flat.mean(0)
        cov = torch.atleast_2d(torch.cov(flat.T))
        # a little jitter keeps the Cholesky factor defined for a degenerate bank
        cov = cov + 1e-9 * torch.eye(cov.shape[0], dtype=cov.dtype) * max(1.0, float(cov.trace()))
        chol = torch.linalg.cholesky(cov)
        self._fit = (mean, cov, chol)

    def set_prior_density(self, axes: list[Any], p: Any) -> None:
        """Use a density on a grid (cell centres ``axes``, equally spaced; ``p`` of shape
        (len(axes[0]), ...)), e.g. the Fokker–Planck p_T, for the ``fpk`` prior."""
        ax = [torch.as_tensor(np.asarray(a), dtype=torch.float64) for a in axes]
        dens = torch.as_tensor(np.asarray(p), dtype=torch.float64).clamp_min(0.0)
        if dens.shape != tuple(len(a) for a in ax) or any(len(a) < 2 for a in ax):
            raise WorkbenchError("the prior density must have one value per grid cell")
        if not bool(torch.isfinite(dens).all()) or not float(dens.sum()) > 0:
            raise WorkbenchError("the prior density must be finite and not all zero")
        vol = math.prod(float(a[1] - a[0]) for a in ax)
        dens = dens / (dens.sum() * vol)
        cdf = torch.cumsum((dens * vol).reshape(-1), 0)
        self._grid = (ax, dens, cdf / cdf[-1])

    def _need_bank(self) -> Tensor:
        if self._bank is None:
            raise WorkbenchError(
                "the custom SDE's prior p_T comes from simulated particles, and none are set: "
                "simulate the data to T first (workbench.core.simulation.terminal_bank)"
            )
        return self._bank

    def prior_sample(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        dtype = dtype or torch.get_default_dtype()
        n = int(shape[0])
        draw_device = generator.device if generator is not None else torch.device(device or "cpu")
        if self.prior == "fpk":
            out = self._grid_sample(n, generator, draw_device)
            return out.reshape(shape).to(device=device or draw_device, dtype=dtype)
        bank = self._need_bank()
        if self.prior == "gaussian":
            mean, _, chol = self._fit  # type: ignore[misc]
            z = torch.randn(
                (n, mean.shape[0]), generator=generator, device=draw_device, dtype=torch.float64
            )
            out = mean.to(draw_device) + z @ chol.to(draw_device).T
        else:
            idx = torch.randint(len(bank), (n,), generator=generator, device=draw_device)
            out = bank.to(draw_device)[idx]
        return out.reshape(shape).to(device=device or draw_device, dtype=dtype)

    def _need_grid(self) -> tuple[list[Tensor], Tensor, Tensor]:
        if self._grid is None:
            raise WorkbenchError(
                "the custom SDE's 'fpk' prior needs the Fokker-Planck solution at T, and none "
                "is set (set_prior_density)"
            )
        return self._grid

    def _grid_sample(
        self, n: int, generator: torch.Generator | None, device: torch.device
    ) -> Tensor:
        axes, dens, cdf = self._need_grid()
        u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        flat = torch.searchsorted(cdf.to(device), u).clamp_max(cdf.numel() - 1)
        idx = torch.unravel_index(flat, dens.shape)
        jitter = torch.rand((n, len(axes)), generator=generator, device=device, dtype=torch.float64)
        cols = [
            a.to(device)[i] + (jitter[:, k] - 0.5) * float(a[1] - a[0])
            for k, (a, i) in enumerate(zip(axes, idx, strict=True))
        ]
        return torch.stack(cols, -1)

    def prior_logp(self, z: Tensor) -> Tensor:
        """log N(z; mean, cov) of the Gaussian fitted to the bank, an approximation of log p_T;
        with the ``fpk`` prior, log p_T of the grid cell holding z (log 1e-300 outside)."""
        if self.prior == "fpk":
            axes, dens, _ = self._need_grid()
            flat = (z.reshape(z.shape[0], -1) if z.ndim > 1 else z.reshape(-1, 1)).to("cpu")
            idx = []
            for k, a in enumerate(axes):
                i = torch.round((flat[:, k].to(torch.float64) - a[0]) / (a[1] - a[0])).long()
                idx.append(i)
            inside = torch.stack([(i >= 0) & (i < len(a)) for i, a in zip(idx, axes, strict=True)])
            inside = inside.all(0)
            safe = [i.clamp(0, len(a) - 1) for i, a in zip(idx, axes, strict=True)]
            p = torch.where(inside, dens[tuple(safe)], torch.zeros((), dtype=torch.float64))
            return torch.log(p.clamp_min(1e-300)).to(device=z.device, dtype=z.dtype)
        self._need_bank()
        mean, _, chol = self._fit  # type: ignore[misc]
        flat = (z.reshape(z.shape[0], -1) if z.ndim > 1 else z.reshape(-1, 1)).to(torch.float64)
        diff = (flat - mean.to(flat.device)).T
        sol = torch.linalg.solve_triangular(chol.to(flat.device), diff, upper=False)
        d = mean.shape[0]
        log_det = 2.0 * torch.log(torch.diagonal(chol)).sum().to(flat.device)
        out = -0.5 * (sol * sol).sum(0) - 0.5 * log_det - 0.5 * d * math.log(2 * math.pi)
        return out.to(z.dtype)


# The rectified-flow path registers itself (as "rectified") from its own module.
from workbench.core import sde_flow as _sde_flow  # noqa: E402, F401
