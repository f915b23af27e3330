"""Exact log-likelihoods through the probability-flow ODE.

The probability-flow ODE dx/dt = f_tilde(x, t) = f(x, t) - 1/2 g(t)^2 grad log p_t(x)
(Song et al. 2021, eq. 13) is a continuous normalising flow from p_eps to p_T. By the
instantaneous change of variables (Chen et al. 2018, Thm. 1), along a solution
d log p_t(x(t)) / dt = -div f_tilde(x(t), t), so

    log p_eps(x) = log p_T(x(T)) + int_eps^T div f_tilde(x(t), t) dt        (Song et al. 2021,
                                                                            App. D, eq. 40)

with x(eps) = x. :func:`log_likelihood` integrates the augmented state [x, delta] from eps up to
T, with d delta/dt = div f_tilde, and returns log p_T(x(T)) + delta(T), where p_T is the SDE's
prior. This is score_sde_pytorch's ``likelihood.py`` (which uses scipy's RK45), here with the
integrators of :mod:`workbench.core.odeint`.

The divergence is exact (one backward pass per dimension, cheap for low-dimensional data) or
Hutchinson's estimate div f ~ v^T (df/dx) v (Hutchinson 1989; Grathwohl et al. 2018) with one
probe v per sample, Rademacher or Gaussian, fixed for the whole solve as in FFJORD, so the ODE
stays an ODE that an adaptive solver can integrate. Hutchinson gives an unbiased estimate of
each log-likelihood; its variance averages out over many samples.

Everything is in the model's (normalised) units; :func:`data_units_logp` adds the
normaliser's log-Jacobian, and :func:`bits_per_dim` converts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from workbench.core.data import Normalizer
from workbench.core.odeint import METHODS, integrate
from workbench.core.sde import SDE
from workbench.errors import ConfigError, WorkbenchError

__all__ = [
    "DIVERGENCES",
    "PROBES",
    "EXACT_DIVERGENCE_MAX_DIM",
    "Cancelled",
    "LikelihoodResult",
    "log_likelihood",
    "bits_per_dim",
    "data_units_logp",
]

DIVERGENCES = ("auto", "exact", "hutchinson")
PROBES = ("rademacher", "gaussian")
#: ``divergence="auto"`` is exact up to this many dimensions, Hutchinson above
EXACT_DIVERGENCE_MAX_DIM = 10
#: default steps of the fixed-step methods (euler, heun, rk4) when ``steps`` is not given
DEFAULT_FIXED_STEPS = 100

ScoreFn = Callable[[Tensor, Tensor], Tensor]


class LikelihoodResult(NamedTuple):
    """Per-sample log p_eps(x) in nats (model units), and the vector-field evaluations used.

    ``nfe`` counts evaluations of the augmented ODE's right-hand side (each one score
    evaluation plus its divergence) for one chunk; with several chunks it is the largest.
    """

    logp: Tensor
    nfe: int


class Cancelled(WorkbenchError):  # noqa: N818  (it is a state, not an error of the user)
    """The computation was stopped by its ``cancel`` flag.

    ``partial`` holds the result for the chunks finished before the stop (``logp`` of the
    first ``len(partial.logp)`` samples; empty when no chunk finished).
    """

    def __init__(self, partial: LikelihoodResult) -> None:
        super().__init__(f"cancelled after {partial.logp.shape[0]} samples")
        self.partial = partial


def _probe(kind: str, shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None):
    if kind == "rademacher":
        bits = torch.randint(0, 2, shape, generator=generator, device=like.device)
        return (2 * bits - 1).to(like.dtype)
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


def _augmented_field(
    sde: SDE, score_fn: ScoreFn, sample_shape: tuple[int, ...], exact: bool, probe: Tensor | None
) -> Callable[[Tensor, Tensor], Tensor]:
    """y = [x (flattened), delta] -> [f_tilde(x, t), div f_tilde(x, t)], shape (n, d + 1)."""
    d = math.prod(sample_shape)

    def field(t: Tensor, y: Tensor) -> Tensor:
        n = y.shape[0]
        with torch.enable_grad():
            x = y[:, :d].detach().reshape(n, *sample_shape).requires_grad_(True)
            v = sde.probability_flow_drift(x, t, score_fn).reshape(n, d)
            if exact:
                # d backward passes: column i of the Jacobian's diagonal, for all samples at once
                div = torch.zeros(n, dtype=y.dtype, device=y.device)
                for i in range(d):
                    (grad,) = torch.autograd.grad(v[:, i].sum(), x, retain_graph=i < d - 1)
                    div = div + grad.reshape(n, d)[:, i]
            else:
                assert probe is not None
                (grad,) = torch.autograd.grad((v * probe).sum(), x)
                div = (grad.reshape(n, d) * probe).sum(-1)
        return torch.cat([v.detach(), div.detach()[:, None]], dim=1)

    return field


def log_likelihood(
    sde: SDE,
    score_model: nn.Module | ScoreFn,
    x: Tensor,
    *,
    eps: float = 1e-5,
    method: str = "rk45",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    steps: int | None = None,
    divergence: str = "auto",
    probe: str = "rademacher",
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
    progress: Callable[[float], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> LikelihoodResult:
    """log p_eps(x) for every row of ``x`` (model units, shape (n, *sample_shape)), in nats.

    ``method``: ``rk45`` (adaptive, ``rtol``/``atol``) or a fixed-step ``euler``, ``heun``,
    ``rk4`` with ``steps`` uniform steps (default 100). ``divergence``: ``exact``,
    ``hutchinson`` (probe ``rademacher`` or ``gaussian``, one per sample drawn from
    ``generator`` and kept for the whole solve) or ``auto`` (exact for at most
    :data:`EXACT_DIVERGENCE_MAX_DIM` dimensions). The state's dtype is ``x``'s: float64 gives
    the most accurate numbers. ``chunk_size`` solves that many samples at a time (each chunk
    its own adaptive solve).

    ``progress(fraction)`` is called after every accepted step with the fraction of the work
    done (chunks done plus the current chunk's progress in t). ``cancel()`` is checked after
    every accepted step; when it returns True a :class:`Cancelled` exception is raised, which
    carries the finished chunks' result in ``partial``.
    """
    if divergence not in DIVERGENCES:
        raise ConfigError(
            "divergence", f"must be one of {', '.join(DIVERGENCES)}, got {divergence!r}"
        )
    if probe not in PROBES:
        raise ConfigError("probe", f"must be one of {', '.join(PROBES)}, got {probe!r}")
    METHODS.get(method)
    if not 0 < eps < sde.T:
        raise ConfigError("eps", f"must be > 0 and < T ({sde.T:g}), got {eps!r}")
    if x.ndim < 2:
        raise ValueError(f"x must be shaped (n, *sample_shape), got {tuple(x.shape)}")
    n = x.shape[0]
    sample_shape = tuple(x.shape[1:])
    d = math.prod(sample_shape)
    exact = divergence == "exact" or (divergence == "auto" and d <= EXACT_DIVERGENCE_MAX_DIM)
    if method == "rk45":
        times: list[float] = [eps, sde.T]
    else:
        n_steps = DEFAULT_FIXED_STEPS if steps is None else int(steps)
        if n_steps < 1:
            raise ConfigError("steps", f"must be >= 1, got {steps!r}")
        times = torch.linspace(eps, sde.T, n_steps + 1, dtype=torch.float64).tolist()
    size = n if chunk_size is None else int(chunk_size)
    if size < 1:
        raise ConfigError("chunk_size", f"must be >= 1, got {chunk_size!r}")
    starts = list(range(0, n, size))
    span = sde.T - eps

    def score_fn(xx: Tensor, t: Tensor) -> Tensor:
        return score_model(xx, t)

    parts: list[Tensor] = []
    nfe = 0
    for c, start in enumerate(starts):
        xc = x[start : start + size]
        m = xc.shape[0]
        v = None if exact else _probe(probe, (m, d), xc, generator)
        field = _augmented_field(sde, score_fn, sample_shape, exact, v)
        y0 = torch.cat([xc.detach().reshape(m, d), xc.new_zeros(m, 1)], dim=1)
        y, used = y0, 0
        for row in integrate(field, y0, times, method, rtol=rtol, atol=atol):
            y, used = row.y, row.nfe
            if progress is not None:
                progress((c + (row.t - eps) / span) / len(starts))
            if cancel is not None and cancel():
                done = torch.cat(parts) if parts else x.new_zeros(0)
                raise Cancelled(LikelihoodResult(done, nfe))
        x_T = y[:, :d].reshape(m, *sample_shape)
        parts.append(sde.prior_logp(x_T) + y[:, d])
        nfe = max(nfe, used)
    return LikelihoodResult(torch.cat(parts), nfe)


def bits_per_dim(logp_nats: Tensor | float, dim: int) -> Tensor | float:
    """Negative log-likelihood in bits per dimension: -log p / (dim ln 2).

    (For 8-bit images score_sde_pytorch also adds 8 bits for the [0, 256) -> [0, 1) scaling and
    uniform dequantisation; with a normaliser, add its Jacobian first: :func:`data_units_logp`.)
    """
    return -logp_nats / (dim * math.log(2.0))


def data_units_logp(logp_model: Tensor, normalizer: Normalizer) -> Tensor:
    """log p in data units from log p in model units: y = (x - shift) / scale, so
    log p_x(x) = log p_y(y) + log |det dy/dx| = log p_y(y) - sum log scale."""
    return logp_model + normalizer.log_abs_det_jacobian()
