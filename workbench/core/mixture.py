"""Gaussian mixtures with full covariances: density, score, sampling, affine maps.

A mixture p(x) = sum_k w_k N(x; mu_k, C_k) is stored through the eigendecomposition
C_k = U_k diag(lam_k) U_k^T, because every linear SDE maps it to another mixture with
C_k(t) = m(t)^2 C_k + s(t)^2 I = U_k diag(m^2 lam_k + s^2) U_k^T: the same eigenvectors, new
eigenvalues. That makes log p_t and its score exact and cheap for any batch of times
(see :mod:`workbench.core.analytic`).

This is the one mixture of the project: the views evaluate it on numpy grids through
:meth:`GaussianMixture.density_np` and :meth:`GaussianMixture.score_np` (the same float64 torch
code, numpy in and out), never through a copy of the formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["GaussianMixture"]


def _as_tensor(value: Sequence | Tensor | float, dtype: torch.dtype = torch.float64) -> Tensor:
    return torch.as_tensor(value, dtype=dtype).clone()


def _numpy_args(
    x: np.ndarray, m: float | np.ndarray, s: float | np.ndarray
) -> tuple[Tensor, Tensor, Tensor]:
    """Points and coefficients as float64 tensors sharing numpy's memory (no copy)."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    mt = torch.from_numpy(np.asarray(m, dtype=np.float64))
    st = torch.from_numpy(np.asarray(s, dtype=np.float64))
    return xt, mt, st


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """sum_k weights[k] N(means[k], covs[k]); tensors are float64 on the CPU unless moved.

    weights: (K,), normalised to sum 1. means: (K, d). covs: (K, d, d), symmetric positive
    definite (positive semi-definite is allowed for a point mass, whose log-density is then
    only finite where s(t) > 0).
    """

    weights: Tensor
    means: Tensor
    covs: Tensor

    def __post_init__(self) -> None:
        w, mu, c = self.weights, self.means, self.covs
        if w.ndim != 1 or mu.ndim != 2 or c.ndim != 3:
            raise ValueError("weights must be (K,), means (K, d), covs (K, d, d)")
        k, d = mu.shape
        if w.shape[0] != k or c.shape != (k, d, d):
            raise ValueError(
                f"mixture shapes disagree: weights {tuple(w.shape)}, means {tuple(mu.shape)}, "
                f"covs {tuple(c.shape)}"
            )
        if not bool(torch.all(w >= 0)) or float(w.sum()) <= 0:
            raise ValueError("mixture weights must be non-negative and not all zero")
        if not (torch.isfinite(mu).all() and torch.isfinite(c).all()):
            raise ValueError("mixture means and covariances must be finite")
        if not torch.allclose(c, c.transpose(-1, -2), rtol=1e-10, atol=1e-12):
            raise ValueError("mixture covariances must be symmetric")
        object.__setattr__(self, "weights", w / w.sum())
        lam, vecs = torch.linalg.eigh(c)
        if bool((lam < -1e-10 * lam.abs().amax().clamp_min(1.0)).any()):
            raise ValueError("mixture covariances must be positive semi-definite")
        object.__setattr__(self, "_eigvals", lam.clamp_min(0.0))
        object.__setattr__(self, "_eigvecs", vecs)

    # construction ---------------------------------------------------------------------------
    @classmethod
    def isotropic(
        cls,
        means: Sequence | Tensor,
        stds: Sequence[float] | Tensor | float,
        weights: Sequence[float] | Tensor | None = None,
    ) -> GaussianMixture:
        """Components N(mu_k, std_k^2 I); ``stds`` may be one number for all."""
        mu = _as_tensor(means)
        if mu.ndim == 1:
            mu = mu[:, None]
        k, d = mu.shape
        sd = _as_tensor(stds).reshape(-1)
        if sd.numel() == 1:
            sd = sd.expand(k)
        if sd.numel() != k:
            raise ValueError(f"{k} means but {sd.numel()} standard deviations")
        covs = (sd**2)[:, None, None] * torch.eye(d, dtype=torch.float64)
        w = torch.ones(k, dtype=torch.float64) if weights is None else _as_tensor(weights)
        return cls(w, mu, covs)

    @classmethod
    def full(
        cls,
        means: Sequence | Tensor,
        covs: Sequence | Tensor,
        weights: Sequence[float] | Tensor | None = None,
    ) -> GaussianMixture:
        mu = _as_tensor(means)
        c = _as_tensor(covs)
        w = torch.ones(mu.shape[0], dtype=torch.float64) if weights is None else _as_tensor(weights)
        return cls(w, mu, c)

    # properties -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def eigvals(self) -> Tensor:
        """(K, d) eigenvalues of each covariance."""
        return self._eigvals  # type: ignore[attr-defined]

    @property
    def eigvecs(self) -> Tensor:
        """(K, d, d) eigenvectors (columns) of each covariance."""
        return self._eigvecs  # type: ignore[attr-defined]

    def mean(self) -> Tensor:
        """The mixture's mean, sum_k w_k mu_k."""
        return self.weights @ self.means

    def covariance(self) -> Tensor:
        """The mixture's covariance: sum_k w_k (C_k + mu_k mu_k^T) - mu mu^T."""
        mu = self.mean()
        second = torch.einsum("k,kij->ij", self.weights, self.covs) + torch.einsum(
            "k,ki,kj->ij", self.weights, self.means, self.means
        )
        return second - torch.outer(mu, mu)

    # maps -----------------------------------------------------------------------------------
    def affine(self, shift: Tensor | float, scale: Tensor | float) -> GaussianMixture:
        """The law of y = (x - shift) / scale (elementwise) when x follows this mixture."""
        shift_t = torch.as_tensor(shift, dtype=torch.float64).expand(self.dim)
        scale_t = torch.as_tensor(scale, dtype=torch.float64).expand(self.dim)
        means = (self.means - shift_t) / scale_t
        covs = self.covs / (scale_t[:, None] * scale_t[None, :])
        return GaussianMixture(self.weights.clone(), means, covs)

    def marginal(self, coords: Sequence[int]) -> GaussianMixture:
        """The law of the coordinates ``coords`` of x: a Gaussian's marginal keeps the means' and
        covariances' rows and columns of those coordinates, so a mixture's does too."""
        idx = torch.as_tensor(list(coords), dtype=torch.long)
        return GaussianMixture(
            self.weights.clone(), self.means[:, idx], self.covs[:, idx][:, :, idx]
        )

    def noised(self, m: float, s: float) -> GaussianMixture:
        """The law of m x + s z, z ~ N(0, I): components N(m mu_k, m^2 C_k + s^2 I)."""
        eye = torch.eye(self.dim, dtype=self.covs.dtype)
        return GaussianMixture(
            self.weights.clone(), m * self.means, m * m * self.covs + s * s * eye
        )

    # density and score ----------------------------------------------------------------------
    def component_log_prob(
        self, x: Tensor, m: Tensor | float = 1.0, s: Tensor | float = 0.0
    ) -> Tensor:
        """log(w_k N(x; m mu_k, m^2 C_k + s^2 I)) for every component: shape (..., K).

        ``m`` and ``s`` broadcast against the batch shape of ``x`` (shape ``x.shape[:-1]``), so
        each point may sit at its own diffusion time.
        """
        proj, var = self._projected(x, m, s)
        d = self.dim
        quad = (proj**2 / var).sum(-1)
        logdet = torch.log(var).sum(-1)
        log_w = torch.log(self.weights.to(x))
        return log_w - 0.5 * (quad + logdet + d * math.log(2 * math.pi))

    def log_prob(self, x: Tensor, m: Tensor | float = 1.0, s: Tensor | float = 0.0) -> Tensor:
        """log p(x) of the (optionally noised) mixture; shape ``x.shape[:-1]``."""
        return torch.logsumexp(self.component_log_prob(x, m, s), dim=-1)

    def score(self, x: Tensor, m: Tensor | float = 1.0, s: Tensor | float = 0.0) -> Tensor:
        """grad_x log p(x) = sum_k r_k(x) (-(C_k^t)^{-1} (x - m mu_k)), r_k the responsibilities."""
        proj, var = self._projected(x, m, s)
        comp = torch.log(self.weights.to(x)) - 0.5 * (
            (proj**2 / var).sum(-1) + torch.log(var).sum(-1)
        )
        resp = torch.softmax(comp, dim=-1)  # (..., K)
        vecs = self.eigvecs.to(x)
        # -sum_k r_k U_k diag(1/var_k) U_k^T (x - m mu_k): weighting by r_k before mapping back
        # to x's coordinates contracts k and the eigen-axis in one product
        return -torch.einsum("kij,...kj->...i", vecs, resp[..., None] * (proj / var))

    def component_score(
        self, x: Tensor, k: int | Tensor, m: Tensor | float = 1.0, s: Tensor | float = 0.0
    ) -> Tensor:
        """grad_x log N(x; m mu_k, m^2 C_k + s^2 I): the score of component ``k`` alone, the
        class-conditional score when components are classes. ``k`` is one index or one per
        point (shape ``x.shape[:-1]``)."""
        proj, var = self._projected(x, m, s)  # (..., K, d)
        k_t = torch.as_tensor(k, dtype=torch.long, device=x.device).expand(x.shape[:-1])
        idx = k_t[..., None, None].expand(*x.shape[:-1], 1, self.dim)
        z = torch.gather(proj / var, -2, idx).squeeze(-2)  # diag(1/var_k) U_k^T (x - m mu_k)
        return -torch.einsum("...ij,...j->...i", self.eigvecs.to(x)[k_t], z)

    # numpy in, numpy out (the views' grids) --------------------------------------------------
    def density_np(
        self, x: np.ndarray, m: float | np.ndarray = 1.0, s: float | np.ndarray = 0.0
    ) -> np.ndarray:
        """p(x) at points (n, d) as float64 numpy: exp of :meth:`log_prob`, in float64 torch.

        ``m`` and ``s`` are one number or one per point, as in :meth:`log_prob`.
        """
        xt, mt, st = _numpy_args(x, m, s)
        return torch.exp(self.log_prob(xt, mt, st)).numpy()

    def score_np(
        self, x: np.ndarray, m: float | np.ndarray = 1.0, s: float | np.ndarray = 0.0
    ) -> np.ndarray:
        """grad log p(x) at points (n, d) as float64 numpy (:meth:`score`, in float64 torch)."""
        xt, mt, st = _numpy_args(x, m, s)
        return self.score(xt, mt, st).numpy()

    def responsibilities(
        self, x: Tensor, m: Tensor | float = 1.0, s: Tensor | float = 0.0
    ) -> Tensor:
        """Posterior component probabilities p(k | x), shape (..., K)."""
        return torch.softmax(self.component_log_prob(x, m, s), dim=-1)

    def _projected(self, x: Tensor, m: Tensor | float, s: Tensor | float) -> tuple[Tensor, Tensor]:
        """U_k^T (x - m mu_k) and the eigenvalues m^2 lam_k + s^2, shaped (..., K, d)."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"points have dimension {x.shape[-1]}, the mixture {self.dim}")
        m_t = torch.as_tensor(m, dtype=x.dtype, device=x.device)
        s_t = torch.as_tensor(s, dtype=x.dtype, device=x.device)
        if m_t.ndim:
            m_t = m_t.expand(x.shape[:-1])[..., None, None]
        if s_t.ndim:
            s_t = s_t.expand(x.shape[:-1])[..., None, None]
        means = self.means.to(x)
        vecs = self.eigvecs.to(x)
        diff = x[..., None, :] - m_t * means  # (..., K, d)
        proj = torch.einsum("kji,...kj->...ki", vecs, diff)
        var = m_t**2 * self.eigvals.to(x) + s_t**2
        return proj, var

    # sampling -------------------------------------------------------------------------------
    def sample_with_labels(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        m: float = 1.0,
        s: float = 0.0,
    ) -> tuple[Tensor, Tensor]:
        """n points of m x + s z, with the index of the component each came from."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        root = self.eigvecs * torch.sqrt(m * m * self.eigvals + s * s)[:, None, :]
        x = m * self.means[labels] + torch.einsum("nij,nj->ni", root[labels], z)
        return x.to(dtype), labels

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        return self.sample_with_labels(n, generator, dtype)[0]
