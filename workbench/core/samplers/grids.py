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

__all__ = ["TIME_GRIDS", "time_grid", "Schedule"]

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
    """The rho-power spacing of Karras et al. (2022, eq. 5), applied to t, not to sigma:
    t_i = (T^(1/rho) + i/N (eps^(1/rho) - T^(1/rho)))^rho, i = 0..N. rho = 1 is the uniform
    grid; larger rho crowds steps near eps.

    This is not EDM's schedule, which spaces the noise level sigma this way. sigma(t) is not
    a power of t (for VE it is geometric in t), so the same rho on t puts the steps elsewhere:
    for VE (sigma from 0.01 to 50, T = 1, eps = 1e-3), 6 of the 11 times of a 10-step grid
    with rho = 7 have sigma < 0.03, against 1 (the end) of EDM's. Kept as it is for now, so
    that recorded runs reproduce; a later change will space sigma(t) itself.
    """
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
