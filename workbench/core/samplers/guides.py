"""How imputation steers the ``pc`` loop: replacement (Song et al. 2021) or SMC (Trippe 2022).

A guide sees every Gaussian update ``mean + std * z`` of the loop and makes the next state from
it, so the known coordinates follow the forward process started at the known values.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from workbench.core.registry import Registry
from workbench.core.samplers.grids import Schedule
from workbench.errors import ConfigError

__all__ = ["Guide", "ReplacementGuide", "SMCGuide", "IMPUTATION_METHODS"]


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
