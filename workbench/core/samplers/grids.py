"""Time grids from T down to eps, and the per-step coefficients a sampler reads off them.

A grid (:data:`TIME_GRIDS`, config key ``grid``) is ``steps + 1`` decreasing float64 times from
exactly T to exactly eps. :class:`Schedule` turns a grid and a linear SDE into host floats
(mean and standard-deviation coefficients, one-step transitions) once, before the loop, so the
sampling loop does no device work to find them (the k-diffusion style).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from workbench.core.registry import Registry
from workbench.core.sde import SDE, LinearSDE
from workbench.errors import ConfigError

__all__ = ["TIME_GRIDS", "time_grid", "invert_sigma", "Schedule"]

TIME_GRIDS: Registry[Callable[..., Tensor]] = Registry("time grid", key="grid")


@TIME_GRIDS.register("uniform")
def uniform_grid(
    steps: int, T: float, eps: float, rho: float = 7.0, sde: SDE | None = None
) -> Tensor:
    """t_i = T + i/N (eps - T): equal steps (score_sde_pytorch's ``linspace(T, eps, N)``)."""
    return torch.linspace(T, eps, steps + 1, dtype=torch.float64)


@TIME_GRIDS.register("quadratic")
def quadratic_grid(
    steps: int, T: float, eps: float, rho: float = 7.0, sde: SDE | None = None
) -> Tensor:
    """t_i = eps + (T - eps)(1 - i/N)^2: steps shrink linearly towards eps, where p_t changes
    fastest (the quadratic schedule of DDIM, Song, Meng & Ermon 2021, here in continuous t)."""
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return eps + (T - eps) * u * u


@TIME_GRIDS.register("edm")
def edm_grid(steps: int, T: float, eps: float, rho: float = 7.0, sde: SDE | None = None) -> Tensor:
    """Karras et al. (2022, eq. 5): the noise level sigma = s/m spaced as

        sigma_i = (sigma_max^(1/rho) + i/N (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,

    sigma_max = sigma(T), sigma_min = sigma(eps), then t_i = sigma^-1(sigma_i). sigma(t) is the
    noise level of the scaled state x/m = x0 + sigma z, so this is EDM's grid for any linear
    SDE (for VE, sigma = s). The inverse is numerical (:func:`invert_sigma`).
    """
    if not isinstance(sde, LinearSDE):
        what = "no SDE" if sde is None else sde.describe()
        raise ConfigError(
            "grid",
            f"'edm' spaces sigma = s(t)/m(t), which needs a linear SDE, not {what}; "
            "use 'power_t' for the same spacing in t",
        )
    ends = torch.tensor([T, eps], dtype=torch.float64)
    m, s = sde.marginal_coeffs(ends)
    sig_max, sig_min = (s / m).to(torch.float64).tolist()
    i = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    a, b = sig_max ** (1.0 / rho), sig_min ** (1.0 / rho)
    return invert_sigma(sde, (a + i * (b - a)) ** rho, eps, T)


@TIME_GRIDS.register("power_t")
def power_t_grid(
    steps: int, T: float, eps: float, rho: float = 7.0, sde: SDE | None = None
) -> Tensor:
    """The rho-power spacing of Karras et al. (2022, eq. 5) applied to t instead of sigma:
    t_i = (T^(1/rho) + i/N (eps^(1/rho) - T^(1/rho)))^rho. rho = 1 is the uniform grid;
    larger rho crowds steps near eps. This was the ``edm`` grid before it spaced sigma; for
    VE (100 steps, rho = 7) it puts 72% of the times below sigma = 0.1, against EDM's 25%.
    """
    i = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    a, b = T ** (1.0 / rho), eps ** (1.0 / rho)
    return (a + i * (b - a)) ** rho


def invert_sigma(sde: LinearSDE, sigma: Tensor, lo: float, hi: float) -> Tensor:
    """t in [lo, hi] with s(t)/m(t) = sigma, elementwise, by bisection in float64.

    sigma(t) = s/m is increasing for every linear SDE here (its square is the inverse SNR,
    which a forward diffusion only raises); a user's SDE where it is not is refused rather
    than inverted wrongly. 64 halvings of [lo, hi] leave the bracket at float64 resolution.
    """
    probe = torch.linspace(lo, hi, 257, dtype=torch.float64)
    m, s = sde.marginal_coeffs(probe)
    ratio = (s / m).to(torch.float64)
    if not bool((ratio.diff() > 0).all()):
        raise ConfigError(
            "grid",
            f"s(t)/m(t) of {sde.describe()} does not increase on [{lo:g}, {hi:g}], "
            "so there is no grid in sigma; use 'power_t' or 'uniform'",
        )
    a = torch.full_like(sigma, lo)
    b = torch.full_like(sigma, hi)
    for _ in range(64):
        mid = 0.5 * (a + b)
        mm, ss = sde.marginal_coeffs(mid)
        above = (ss / mm).to(torch.float64) > sigma
        b = torch.where(above, mid, b)
        a = torch.where(above, a, mid)
    return 0.5 * (a + b)


def time_grid(
    kind: str, steps: int, T: float, eps: float, rho: float = 7.0, sde: SDE | None = None
) -> Tensor:
    """The ``steps + 1`` times (float64, decreasing) from exactly T to exactly eps.

    ``sde`` is needed by grids spaced in the SDE's own noise level (``edm``)."""
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError("steps", f"must be an integer >= 1, got {steps!r}")
    if not 0 < eps < T:
        raise ConfigError("eps", f"must be > 0 and < T ({T:g}), got {eps!r}")
    if not rho > 0:
        raise ConfigError("rho", f"must be > 0, got {rho!r}")
    grid = TIME_GRIDS.get(kind)(steps, float(T), float(eps), float(rho), sde=sde)
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
