"""Forward simulation of SDEs without a closed-form kernel: paths, a training cache, p_T.

For a non-linear SDE dX = f(X, t) dt + g(t) dW nothing gives x_t ~ p_t directly, so x_t comes
from the Euler–Maruyama scheme (Kloeden & Platen 1992, sec. 9.1)

    X_{k+1} = X_k + f(X_k, t_k) h + g(t_k) sqrt(h) Z_k,   Z_k ~ N(0, I),

whose weak error is O(h): E[phi(X_N)] - E[phi(X_T)] = O(h) for smooth phi. Three uses:

* :func:`simulate`: states of N paths at chosen times, with a cancel flag, a progress callback
  and a check for non-finite values after every step (a drift that blows up stops the
  simulation with a :class:`SimulationError` naming the first time it happened);
* :class:`SimulationCache`: what the sample-based losses (SSM, SSM-VR, ESM) train on. It holds
  the states of N paths on a grid t_k = k T / K; a draw of (x_t, t) takes a random path's
  state at the grid time t_k <= t below t and advances it to t by EM steps of at most ``dt``
  (the last increment being the caller's ``noise``), so t is continuous and a draw costs
  ~T/(K dt) drift evaluations of the batch rather than a whole path. Every ``refresh_every``
  draws a block of ``refresh_fraction`` N paths is simulated afresh from the current batch's
  data points, so over training the cache follows the data set rather than the first batch;
* :func:`terminal_bank`: x_T of the training data simulated to T, the particles the custom
  SDE's prior p_T draws from.

Paths from the cache are not independent across draws (a path is reused until refreshed);
for stochastic-gradient training that only adds a little correlation between batches.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from workbench.core.cancel import is_cancelled
from workbench.core.sde import SDE, broadcast_time
from workbench.errors import WorkbenchError

__all__ = [
    "SimulationError",
    "SimulationCancelledError",
    "checked_times",
    "simulate",
    "terminal_bank",
    "SimulationCache",
    "DEFAULT_DT",
]

#: the Euler–Maruyama step when the SDE does not set its own ``dt``
DEFAULT_DT = 1e-3
#: CPU simulations run in blocks of at most this many numbers (see :func:`simulate`)
CPU_BLOCK_ELEMENTS = 16384


class SimulationError(WorkbenchError):
    """The forward simulation produced non-finite values (the drift blew up)."""


class SimulationCancelledError(WorkbenchError):
    """The simulation was cancelled through its ``cancel`` flag."""


def _step_size(sde: SDE, dt: float | None) -> float:
    step = float(dt if dt is not None else getattr(sde, "dt", DEFAULT_DT))
    if not step > 0:
        raise ValueError(f"the simulation step must be > 0, got {step}")
    return step


def _blew_up(sde: SDE, t: float) -> SimulationError:
    describe = getattr(sde, "describe", lambda: type(sde).__name__)()
    return SimulationError(
        f"the forward simulation of {describe} became non-finite at t = {t:.4g}: the drift "
        "blows up (check f for terms that grow faster than linearly away from the data, or a "
        "smaller sde.dt)"
    )


def _em_step(sde: SDE, x: Tensor, t: Tensor, h: Tensor | float, z: Tensor) -> Tensor:
    """One Euler–Maruyama step of size h (a number or a per-sample (batch,) tensor) from t."""
    g = broadcast_time(torch.as_tensor(sde.diffusion(t), dtype=x.dtype, device=x.device), x)
    if isinstance(h, Tensor):
        hb = broadcast_time(h, x)
        return x + sde.drift(x, t) * hb + g * torch.sqrt(hb) * z
    return x + sde.drift(x, t) * h + g * math.sqrt(h) * z


def checked_times(times: Tensor | Iterable[float], T: float) -> list[float]:
    """``times`` as floats, checked to be non-negative, strictly increasing and at most T."""
    ts = (
        times.detach().to("cpu", torch.float64).reshape(-1).tolist()
        if isinstance(times, Tensor)
        else [float(t) for t in times]
    )
    if not ts or ts[0] < 0 or any(b <= a for a, b in itertools.pairwise(ts)):
        raise ValueError("times must be non-negative and strictly increasing")
    if ts[-1] > T * (1 + 1e-12):
        raise ValueError(f"times must not exceed T = {T:g}")
    return ts


def simulate(
    sde: SDE,
    x0: Tensor,
    times: Iterable[float] | Tensor,
    *,
    dt: float | None = None,
    generator: torch.Generator | None = None,
    progress: Callable[[float], None] | None = None,
    cancel: Any = None,
) -> Tensor:
    """States of the paths started at x0 (t = 0) at each of ``times``: (len(times), *x0.shape).

    ``times`` increase from 0 up to T; between two of them the EM step is the largest h <= dt
    that divides the interval. ``cancel`` (a callable or an object with ``is_set()``) is polled
    every step; ``progress(fraction)`` is called about 100 times. Non-finite states raise
    :class:`SimulationError` naming the time.
    """
    ts = checked_times(times, sde.T)
    step = _step_size(sde, dt)
    plan = []
    t_prev = 0.0
    for t in ts:
        n_sub = max(0, math.ceil((t - t_prev) / step - 1e-9))
        plan.append((t_prev, n_sub, (t - t_prev) / n_sub if n_sub else 0.0))
        t_prev = t
    n_rows = x0.shape[0] if x0.ndim else 1
    per_row = max(1, x0[0].numel() if x0.ndim > 1 else 1)
    # On the CPU, element-wise ops on more than ~32k numbers go through torch's thread pool;
    # for these small, many, cheap steps that costs more than it gives (10x slower on a busy
    # 2-core machine), so big CPU batches are simulated in blocks below that size.
    rows = x0.shape[0]
    if x0.device.type == "cpu" and x0.ndim >= 1:
        rows = max(1, CPU_BLOCK_ELEMENTS // per_row)
    blocks = [slice(i, min(i + rows, n_rows)) for i in range(0, n_rows, rows)] or [slice(0, 0)]
    total = max(1, sum(n for _, n, _ in plan)) * len(blocks)
    every = max(1, total // 100)
    out = torch.empty((len(ts), *x0.shape), dtype=x0.dtype, device=x0.device)
    done = 0
    for block in blocks:
        x = x0[block]
        for k, (start, n_sub, h) in enumerate(plan):
            for j in range(n_sub):
                if is_cancelled(cancel):
                    raise SimulationCancelledError(
                        f"forward simulation cancelled at t = {start + j * h:.4g}"
                    )
                tj = torch.full((), start + j * h, dtype=x.dtype, device=x.device)
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                x = _em_step(sde, x, tj, h, z)
                if not bool(torch.isfinite(x).all()):
                    raise _blew_up(sde, start + (j + 1) * h)
                done += 1
                if progress is not None and done % every == 0:
                    progress(done / total)
            out[k, block] = x
    if progress is not None:
        progress(1.0)
    return out


def terminal_bank(
    sde: SDE,
    x0: Tensor,
    *,
    dt: float | None = None,
    generator: torch.Generator | None = None,
    progress: Callable[[float], None] | None = None,
    cancel: Any = None,
) -> Tensor:
    """x_T of every path started at x0: particles whose law is p_T (up to the EM weak error).

    With an SDE that takes a bank (``set_terminal_bank``, e.g. the custom SDE) it is also set
    there, so ``sde.prior_sample`` draws from it.
    """
    x_T = simulate(sde, x0, [sde.T], dt=dt, generator=generator, progress=progress, cancel=cancel)[
        0
    ]
    setter = getattr(sde, "set_terminal_bank", None)
    if setter is not None:
        setter(x_T)
    return x_T


class SimulationCache:
    """Cached forward paths to draw training pairs (x_t, t) from; see the module docstring.

    ``n_paths`` paths are kept at ``n_times + 1`` grid times 0, T/K, ..., T (fewer grid times
    when the states would pass ``max_values`` numbers). ``refresh_every`` draws (calls of
    :meth:`draw`, i.e. training steps) a block of ``refresh_fraction`` of the paths is
    simulated again from the data points of the batch given to that draw.
    """

    def __init__(
        self,
        sde: SDE,
        n_paths: int = 4096,
        n_times: int = 200,
        refresh_every: int = 100,
        refresh_fraction: float = 0.25,
        dt: float | None = None,
        max_values: int = 2**25,
    ) -> None:
        if n_paths < 1 or n_times < 1 or refresh_every < 1 or not 0 < refresh_fraction <= 1:
            raise ValueError("n_paths, n_times, refresh_every >= 1 and 0 < refresh_fraction <= 1")
        self.sde = sde
        self.n_paths = int(n_paths)
        self.n_times = int(n_times)
        self.refresh_every = int(refresh_every)
        self.refresh_fraction = float(refresh_fraction)
        self.dt = _step_size(sde, dt)
        self.max_values = int(max_values)
        self.states: Tensor | None = None
        self.draws = 0
        self.refreshes = 0
        self._next_block = 0

    @property
    def grid_step(self) -> float:
        return self.sde.T / self.n_times

    def grid_times(self) -> list[float]:
        return [k * self.grid_step for k in range(self.n_times + 1)]

    def _simulate_from(self, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        return simulate(self.sde, x0, self.grid_times(), dt=self.dt, generator=generator)

    def _starts(self, x0: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
        idx = torch.randint(x0.shape[0], (n,), generator=generator, device=x0.device)
        return x0[idx]

    def fill(self, x0: Tensor, generator: torch.Generator | None = None) -> None:
        """Simulate all paths from points drawn (with replacement) from ``x0``."""
        dim = x0[0].numel() if x0.ndim > 1 else 1
        # keep the stored states within max_values numbers: fewer grid times, not fewer paths
        fit = self.max_values // max(1, self.n_paths * dim) - 1
        self.n_times = max(4, min(self.n_times, fit))
        starts = self._starts(x0, self.n_paths, generator)
        self.states = self._simulate_from(starts, generator)

    def refresh(self, x0: Tensor, generator: torch.Generator | None = None) -> None:
        """Simulate the next block of ``refresh_fraction`` of the paths again, from ``x0``."""
        if self.states is None:
            self.fill(x0, generator)
            return
        m = max(1, math.ceil(self.refresh_fraction * self.n_paths))
        idx = (torch.arange(m, device=self.states.device) + self._next_block) % self.n_paths
        self._next_block = int((self._next_block + m) % self.n_paths)
        starts = self._starts(x0.to(self.states.dtype), m, generator)
        self.states[:, idx] = self._simulate_from(starts, generator)
        self.refreshes += 1

    def draw(
        self,
        x0: Tensor,
        t: Tensor,
        noise: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """x_t for each t (batch,): a cached path's state at the grid time below t, advanced to
        t by EM steps of at most ``dt``, the last with the increment ``noise``.

        ``x0`` (the batch's data points) seeds the paths on the first draw and the refreshes.
        """
        if self.states is None or self.states.device != x0.device:
            self.fill(x0, generator)
        elif self.draws > 0 and self.draws % self.refresh_every == 0:
            self.refresh(x0, generator)
        self.draws += 1
        states = self.states
        assert states is not None
        if states.dtype != x0.dtype:
            states = states.to(x0.dtype)
        batch = t.shape[0]
        delta = self.grid_step
        k = torch.clamp(torch.floor(t.to(torch.float64) / delta), 0, self.n_times - 1).long()
        idx = torch.randint(self.n_paths, (batch,), generator=generator, device=x0.device)
        x = states[k, idx]
        t_k = (k.to(torch.float64) * delta).to(t.dtype)
        span = (t - t_k).clamp_min(0.0)
        n_sub = max(1, math.ceil(delta / self.dt - 1e-9))
        h = span / n_sub
        for j in range(n_sub):
            z = (
                noise
                if j == n_sub - 1
                else torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            )
            x = _em_step(self.sde, x, t_k + j * h, h, z)
        if not bool(torch.isfinite(x).all()):
            raise _blew_up(self.sde, float(t[~torch.isfinite(x.reshape(batch, -1)).all(-1)][0]))
        return x
