"""The empirical-data reference: p_t and the score of the noised training set itself.

For data points x_1..x_N and a linear SDE, the forward process applied to the empirical law
(1/N) sum_i delta(x - x_i) gives the mixture

    p_t(x) = (1/N) sum_i N(x; m(t) x_i, s(t)^2 I),
    grad log p_t(x) = sum_i w_i(x) (m x_i - x) / s^2,   w = softmax_i(-|x - m x_i|^2 / (2 s^2)).

This is the exact minimiser of denoising score matching on that finite set, for any data set
(not only mixtures). Used as a reference it shows what a network would learn with unlimited
capacity, and why such a network memorises: as t -> 0 the score points to the nearest x_i,
and sampling with it reproduces the training points.

The sums run over the data in blocks with a running log-sum-exp, so memory stays at
(batch x block) whatever N is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from workbench.core.sde import SDE, LinearSDE
from workbench.errors import WorkbenchError

__all__ = ["EmpiricalMarginal"]


class EmpiricalMarginal:
    """p_t of the empirical distribution of ``data`` (model units, shape (N, ...))."""

    def __init__(self, data: Tensor, sde: SDE, block: int = 4096) -> None:
        if not isinstance(sde, LinearSDE):
            raise WorkbenchError(
                f"the empirical reference needs a linear SDE; {sde.describe()} has no Gaussian "
                "transition kernel"
            )
        if data.ndim < 2 or data.shape[0] == 0:
            raise ValueError("data must be shaped (N, ...) with N >= 1")
        self.data = data.reshape(data.shape[0], -1)
        self.sde = sde
        self.block = int(block)

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    def _stats(self, x: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(log sum_i exp(-d_i^2 / 2 s^2), weighted mean of m x_i, m, s) for each point."""
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.dim:
            raise ValueError(f"points of {flat.shape[1]} values; the data have {self.dim}")
        t = torch.as_tensor(t, dtype=flat.dtype, device=flat.device)
        m, s = self.sde.marginal_coeffs(t)
        m = m.expand(flat.shape[0])[:, None]
        s = s.expand(flat.shape[0])[:, None]
        run_max = torch.full((flat.shape[0], 1), -math.inf, dtype=flat.dtype, device=flat.device)
        run_sum = torch.zeros_like(run_max)
        run_mean = torch.zeros_like(flat)
        for start in range(0, self.data.shape[0], self.block):
            centres = m[:, :, None] * self.data[start : start + self.block].to(flat).T[None]
            # (n, d, k): the block's noised centres m x_i for every point
            logits = -((flat[:, :, None] - centres) ** 2).sum(1) / (2 * s * s)  # (n, k)
            block_max = logits.amax(1, keepdim=True)
            new_max = torch.maximum(run_max, block_max)
            scale_old = torch.exp(run_max - new_max)
            weights = torch.exp(logits - new_max)  # (n, k)
            run_mean = run_mean * (run_sum * scale_old) + torch.einsum(
                "nk,ndk->nd", weights, centres
            )
            run_sum = run_sum * scale_old + weights.sum(1, keepdim=True)
            run_mean = run_mean / run_sum
            run_max = new_max
        log_sum = (run_max + torch.log(run_sum)).squeeze(1)
        return log_sum, run_mean, m.squeeze(1), s.squeeze(1)

    def log_prob(self, x: Tensor, t: Tensor | float) -> Tensor:
        """log p_t(x), one value per point."""
        log_sum, _, _, s = self._stats(x, t)
        d, n_data = self.dim, self.data.shape[0]
        return log_sum - math.log(n_data) - 0.5 * d * torch.log(2 * math.pi * s * s)

    def score(self, x: Tensor, t: Tensor | float) -> Tensor:
        """grad log p_t(x) = (E_w[m x_i] - x) / s^2, shaped like ``x``."""
        _, mean, _, s = self._stats(x, t)
        flat = x.reshape(x.shape[0], -1)
        return ((mean - flat) / (s * s)[:, None]).reshape(x.shape)
