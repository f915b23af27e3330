"""The forward process itself: paths of the SDE from data, exact for a linear SDE."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from workbench.core.samplers.base import SamplerStep, _noise
from workbench.core.sde import SDE, LinearSDE, broadcast_time
from workbench.core.simulation import checked_times

__all__ = ["simulate_forward"]


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
