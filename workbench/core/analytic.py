"""Analytic truth: the exact marginals p_t of Gaussian-mixture data under a linear SDE.

If x0 ~ sum_k w_k N(mu_k, C_k) and p_t(x | x0) = N(m(t) x0, s(t)^2 I), then

    p_t = sum_k w_k N(m(t) mu_k, m(t)^2 C_k + s(t)^2 I),

again a mixture, so log p_t, its score grad log p_t and samples from p_t are exact. It solves
the Fokker–Planck equation dp/dt = -div(f p) + 1/2 g^2 lap p (checked in the tests) and is the
reference every learned score, sampler and view is compared against.
"""

from __future__ import annotations

import torch
from torch import Tensor

from workbench.core.mixture import GaussianMixture
from workbench.core.sde import SDE, LinearSDE
from workbench.errors import WorkbenchError

__all__ = ["AnalyticMarginal"]


class AnalyticMarginal:
    """p_t for mixture data under a linear SDE; states may have any sample shape of d values.

    Times may be one number for all points or one per point (shape (batch,)).
    """

    def __init__(self, mixture: GaussianMixture, sde: SDE) -> None:
        if not isinstance(sde, LinearSDE):
            raise WorkbenchError(
                f"analytic marginals need a linear SDE; {sde.describe()} has no Gaussian "
                "transition kernel (use the Fokker–Planck reference instead)"
            )
        self.mixture = mixture
        self.sde = sde

    @property
    def dim(self) -> int:
        return self.mixture.dim

    def _flat(self, x: Tensor) -> Tensor:
        if x.shape[-1] == self.dim:
            return x
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[-1] != self.dim:
            raise ValueError(f"points of {flat.shape[-1]} values; the data have {self.dim}")
        return flat

    def _coeffs(self, t: Tensor | float, x: Tensor) -> tuple[Tensor, Tensor]:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        m, s = self.sde.marginal_coeffs(t)
        return m, s

    def log_prob(self, x: Tensor, t: Tensor | float) -> Tensor:
        """log p_t(x), one value per point."""
        flat = self._flat(x)
        m, s = self._coeffs(t, flat)
        return self.mixture.log_prob(flat, m, s)

    def score(self, x: Tensor, t: Tensor | float) -> Tensor:
        """grad_x log p_t(x), shaped like ``x``."""
        flat = self._flat(x)
        m, s = self._coeffs(t, flat)
        return self.mixture.score(flat, m, s).reshape(x.shape)

    def mixture_at(self, t: float) -> GaussianMixture:
        """p_t itself, as a mixture."""
        m, s = self.sde.marginal_coeffs(torch.tensor(float(t), dtype=torch.float64))
        return self.mixture.noised(float(m), float(s))

    def sample(
        self,
        n: int,
        t: float,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """n draws from p_t."""
        m, s = self.sde.marginal_coeffs(torch.tensor(float(t), dtype=torch.float64))
        return self.mixture.sample_with_labels(n, generator, dtype, float(m), float(s))[0]
